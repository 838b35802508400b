// `portcullis verify-bundle`: verify a Sigstore bundle (cosign v3, sigstore-js,
// sigstore-python, GitHub attestations) for a file or a sha256 digest, offline,
// from a trusted root. The library is verifier/sigstore/verify.h; this file
// parses flags, reads files and prints.
#include <iostream>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/flags.h"
#include "cli/verify_report.h"
#include "keys/files.h"
#include "keys/key.h"
#include "verifier/sigstore/verify.h"

namespace portcullis::cli {

namespace {

constexpr int kExitOk = 0;
constexpr int kExitRefused = 1;
constexpr int kExitError = 2;
constexpr size_t kMaxArtifactBytes = size_t{256} << 20;

constexpr const char* kUsage =
    R"(Usage: portcullis verify-bundle --bundle FILE (--certificate-identity ID | --certificate-identity-regexp RE)
                                 (--certificate-oidc-issuer URL | --certificate-oidc-issuer-regexp RE)
                                 [--trusted-root FILE] FILE_OR_DIGEST
       portcullis verify-bundle --bundle FILE --key PUB.pem [--trusted-root FILE] FILE_OR_DIGEST

Verifies a Sigstore bundle (v0.1, v0.2, v0.3) over FILE_OR_DIGEST (a file of at
most 256 MiB, or sha256:<hex> of it) offline: the signing time (Rekor signed entry
timestamp or RFC 3161 timestamp), the Fulcio certificate chain at that time, its
SCT, the identity, the transparency log entry, its inclusion proof and checkpoint,
and the signature. Nothing is fetched from the network.

Flags:
  --bundle FILE                          the bundle (.sigstore.json)
  --certificate-identity ID              the certificate's SAN (URI or email), exactly
  --certificate-identity-regexp RE       or an ECMAScript regular expression matching all of it
  --certificate-oidc-issuer URL          the OIDC issuer in the certificate, exactly
  --certificate-oidc-issuer-regexp RE    or a regular expression matching all of it
  --key PUB.pem                          verify a key-based bundle with this public key instead
  --trusted-root FILE                    a trusted_root.json (default: the Sigstore public-good
                                         root built into portcullis)

Exit 0 verified, 1 refused (the reason on stderr), 2 usage or I/O error.
)";

int Fail(int code, const std::string& message) {
  std::cerr << "portcullis verify-bundle: " << message << "\n";
  return code;
}

}  // namespace

int RunVerifyBundle(const std::vector<std::string>& args) {
  FlagSpec spec;
  spec.values = {"--bundle",
                 "--certificate-identity",
                 "--certificate-identity-regexp",
                 "--certificate-oidc-issuer",
                 "--certificate-oidc-issuer-regexp",
                 "--key",
                 "--trusted-root"};
  auto flags = ParseFlags(args, spec);
  if (!flags.ok()) return Fail(kExitError, flags.status().message() + " (see portcullis verify-bundle --help)");
  if (flags->help) {
    std::cout << kUsage;
    return kExitOk;
  }
  if (flags->positional.size() != 1) return Fail(kExitError, "want exactly one FILE_OR_DIGEST (see --help)");
  if (!flags->Has("--bundle")) return Fail(kExitError, "--bundle FILE is required");

  verifier::sigstore::VerifyOptions options;
  const bool has_identity = flags->Has("--certificate-identity") || flags->Has("--certificate-identity-regexp") ||
                            flags->Has("--certificate-oidc-issuer") || flags->Has("--certificate-oidc-issuer-regexp");
  if (flags->Has("--key")) {
    if (has_identity) return Fail(kExitError, "--key and --certificate-* flags exclude each other");
    auto key = keys::PublicKey::FromPemFile(flags->Value("--key"));
    if (!key.ok()) return Fail(kExitError, "--key: " + key.status().message());
    auto der = key->Der();
    if (!der.ok()) return Fail(kExitError, "--key: " + der.status().message());
    options.key_der = *der;
  } else {
    auto& id = options.identity;
    id.identity = flags->Value("--certificate-identity");
    id.identity_regexp = flags->Value("--certificate-identity-regexp");
    id.issuer = flags->Value("--certificate-oidc-issuer");
    id.issuer_regexp = flags->Value("--certificate-oidc-issuer-regexp");
    if (id.identity.empty() == id.identity_regexp.empty()) {
      return Fail(kExitError, "give one of --certificate-identity and --certificate-identity-regexp (or --key)");
    }
    if (id.issuer.empty() == id.issuer_regexp.empty()) {
      return Fail(kExitError, "give one of --certificate-oidc-issuer and --certificate-oidc-issuer-regexp");
    }
  }

  const std::string target = flags->positional[0];
  verifier::sigstore::Artifact artifact;
  if (target.starts_with("sha256:")) {
    auto a = verifier::sigstore::Artifact::FromDigest(target);
    if (!a.ok()) return Fail(kExitError, "FILE_OR_DIGEST \"" + target + "\": " + a.status().message());
    artifact = std::move(*a);
  } else {
    auto data = keys::ReadSmallFile(target, kMaxArtifactBytes);
    if (!data.ok()) return Fail(kExitError, data.status().message());
    artifact = verifier::sigstore::Artifact::FromBytes(std::move(*data));
  }

  auto root = LoadTrustedRoot(flags->Value("--trusted-root"));
  if (!root.ok()) return Fail(kExitError, root.status().message());

  auto bundle_text = keys::ReadSmallFile(flags->Value("--bundle"), verifier::sigstore::kMaxBundleBytes);
  if (!bundle_text.ok()) return Fail(kExitError, bundle_text.status().message());
  auto bundle = verifier::sigstore::ParseBundle(*bundle_text);
  if (!bundle.ok()) return Fail(kExitRefused, "refused: " + bundle.status().message());

  auto result = verifier::sigstore::VerifyBundle(*bundle, *root, artifact, options);
  if (!result.ok()) {
    if (result.status().Is(Code::kInvalidArgument)) return Fail(kExitError, result.status().message());
    return Fail(kExitRefused, "refused: " + result.status().message());
  }
  std::cout << "Verified OK";
  if (result->keyless) {
    std::cout << ": " << result->identity.sans[0] << " (issuer " << result->identity.issuer << ")";
  } else {
    std::cout << " with the given key";
  }
  std::cout << "\n  log: " << result->log_url << " index " << result->log_index << "\n";
  for (int64_t t : result->signing_times) std::cout << "  signed at: " << verifier::sigstore::FormatTime(t) << "\n";
  if (result->dsse) std::cout << "  in-toto predicate: " << result->predicate_type << "\n";
  const auto& id = result->identity;
  if (!id.source_repository_uri.empty()) std::cout << "  source repository: " << id.source_repository_uri << "\n";
  if (!id.source_repository_ref.empty()) std::cout << "  source ref: " << id.source_repository_ref << "\n";
  if (!id.build_signer_uri.empty()) std::cout << "  build signer: " << id.build_signer_uri << "\n";
  if (!id.runner_environment.empty()) std::cout << "  runner environment: " << id.runner_environment << "\n";
  return kExitOk;
}

}  // namespace portcullis::cli
