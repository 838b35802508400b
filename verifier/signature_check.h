// One found signature against one trusted key, with the outcome sorted into
// kinds so that the policy engine can say precisely why an image was refused.
// The checks run in containers/image's order: the signature must verify over the
// payload bytes, then the payload must parse strictly, then its
// docker-manifest-digest must equal the image digest.
#pragma once

#include <string>

#include "keys/key.h"
#include "oci/digest.h"
#include "verifier/discovery.h"
#include "verifier/simple_signing.h"

namespace portcullis::verifier {

struct SignatureCheck {
  enum class Kind {
    kVerified,     // signed by the key, well-formed, for this digest
    kUnreadable,   // the payload could not be fetched, or no/invalid base64 signature (any key)
    kOtherKey,     // does not verify with this key
    kBadPayload,   // signed by the key, but the payload is not cosign's strict shape
    kWrongDigest,  // signed by the key, but for another image digest
  };
  Kind kind = Kind::kOtherKey;
  std::string detail;            // the reason, for every kind but kVerified
  SimpleSigningPayload payload;  // kVerified and kWrongDigest
};

// A Sigstore bundle (sig.bundle) is always kOtherKey: it is not a
// simple-signing signature (bundle_check.h verifies it).
SignatureCheck CheckSignature(const FoundSignature& sig, const keys::PublicKey& key, const oci::Digest& digest);

// A short label for a found signature in reasons and reports:
// "layer sha256:abcdef123456 (tag sha256-….sig)".
std::string SignatureLabel(const FoundSignature& sig);

}  // namespace portcullis::verifier
