// How `portcullis verify IMAGE` checks an image, decided from its flags
// (cli-internal): with a public key (--key), by a trust policy (--policy), or
// keyless, against a certificate identity (--certificate-identity[-regexp] and
// --certificate-oidc-issuer[-regexp], as cosign verify has them), from a
// trusted root (--trusted-root FILE, else the built-in public-good root).
//
// Contract: VerifyModeFromFlags never throws; every usage error is an
// INVALID_ARGUMENT naming the flags (the caller exits 2).
#pragma once

#include "cli/flags.h"
#include "oci/status.h"
#include "verifier/bundle_check.h"

namespace portcullis::cli {

struct VerifyMode {
  enum class Kind { kKey, kPolicy, kKeyless };
  Kind kind = Kind::kKey;
  verifier::KeylessIdentity identity;  // kKeyless: subject/issuer, exact or regexp
};

// The flags of `portcullis verify` (without the registry-access flags).
FlagSpec VerifyFlagSpec();

// The mode `flags` (parsed with VerifyFlagSpec) ask for. Errors: more than one
// of --key, --policy and the --certificate-* flags; none of them; --trusted-root
// with --policy; not exactly one of --certificate-identity and
// --certificate-identity-regexp, or of --certificate-oidc-issuer and
// --certificate-oidc-issuer-regexp; a regular expression that does not compile.
StatusOr<VerifyMode> VerifyModeFromFlags(const Flags& flags);

}  // namespace portcullis::cli
