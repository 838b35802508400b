#include "cli/verify_mode.h"

#include <regex>
#include <string>

namespace portcullis::cli {

namespace {

constexpr const char* kIdentity = "--certificate-identity";
constexpr const char* kIdentityRe = "--certificate-identity-regexp";
constexpr const char* kIssuer = "--certificate-oidc-issuer";
constexpr const char* kIssuerRe = "--certificate-oidc-issuer-regexp";

Status CheckRegexp(const Flags& flags, const char* name) {
  if (!flags.Has(name)) return Status::Ok();
  try {
    std::regex re(flags.Value(name), std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    return Status::InvalidArgument(std::string(name) + ": not a valid regular expression: " + e.what());
  }
  return Status::Ok();
}

}  // namespace

FlagSpec VerifyFlagSpec() {
  FlagSpec spec;
  spec.values = {"--key", "--policy", "--trusted-root", kIdentity, kIdentityRe, kIssuer, kIssuerRe};
  spec.bools = {"--json"};
  return spec;
}

StatusOr<VerifyMode> VerifyModeFromFlags(const Flags& flags) {
  const bool key = flags.Has("--key"), policy = flags.Has("--policy");
  const bool keyless = flags.Has(kIdentity) || flags.Has(kIdentityRe) || flags.Has(kIssuer) || flags.Has(kIssuerRe);
  if (int(key) + int(policy) + int(keyless) > 1) {
    return Status::InvalidArgument("--key, --policy and the --certificate-* flags exclude each other");
  }
  if (!key && !policy && !keyless) {
    return Status::InvalidArgument(
        "missing --key PUB, --policy FILE, or --certificate-identity[-regexp] with --certificate-oidc-issuer[-regexp]");
  }
  if (policy && flags.Has("--trusted-root")) {
    return Status::InvalidArgument(
        "--trusted-root goes with --key or --certificate-* (a policy names its own trusted_root)");
  }
  VerifyMode mode;
  if (key) return mode;
  if (policy) {
    mode.kind = VerifyMode::Kind::kPolicy;
    return mode;
  }
  if (flags.Has(kIdentity) == flags.Has(kIdentityRe)) {
    return Status::InvalidArgument("give exactly one of --certificate-identity and --certificate-identity-regexp");
  }
  if (flags.Has(kIssuer) == flags.Has(kIssuerRe)) {
    return Status::InvalidArgument(
        "give exactly one of --certificate-oidc-issuer and --certificate-oidc-issuer-regexp");
  }
  PC_RETURN_IF_ERROR(CheckRegexp(flags, kIdentityRe));
  PC_RETURN_IF_ERROR(CheckRegexp(flags, kIssuerRe));
  mode.kind = VerifyMode::Kind::kKeyless;
  mode.identity.subject = flags.Value(kIdentity);
  mode.identity.subject_regexp = flags.Value(kIdentityRe);
  mode.identity.issuer = flags.Value(kIssuer);
  mode.identity.issuer_regexp = flags.Value(kIssuerRe);
  return mode;
}

}  // namespace portcullis::cli
