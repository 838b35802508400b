// Discovering cosign signatures of an image and verifying them by key.
//
// Discovery today is the legacy tag mode (formats.md §2): the OCI manifest
// tagged sha256-<hex>.sig in the image's repository, one simple-signing layer
// per signature. Referrers and the fallback tag (§3) plug in beside
// FindSignatures later; VerifySignatures works on whatever they find.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "keys/key.h"
#include "oci/digest.h"
#include "oci/http_client.h"
#include "oci/status.h"
#include "verifier/simple_signing.h"

namespace portcullis::verifier {

inline constexpr std::string_view kSimpleSigningMediaType = "application/vnd.dev.cosign.simplesigning.v1+json";
inline constexpr std::string_view kSignatureAnnotation = "dev.cosignproject.cosign/signature";
inline constexpr std::string_view kCertificateAnnotation = "dev.sigstore.cosign/certificate";
inline constexpr std::string_view kChainAnnotation = "dev.sigstore.cosign/chain";
inline constexpr std::string_view kBundleAnnotation = "dev.sigstore.cosign/bundle";

// Largest payload blob fetched (cosign's payloads are a few hundred bytes).
inline constexpr size_t kMaxPayloadBytes = 1 << 20;

// "sha256-<hex>.sig": the tag cosign stores the signatures of `digest` under.
std::string SignatureTag(const oci::Digest& digest);

// One simple-signing layer of a signature manifest.
struct SignatureLayer {
  oci::Digest layer_digest;
  int64_t size = 0;
  std::map<std::string, std::string> annotations;
  std::string signature_b64;  // the kSignatureAnnotation value ("" when absent)
  std::string payload;        // the layer blob, digest and size checked; "" when `problem` is set
  std::string problem;        // why the payload could not be had ("" when it was)
};

// The simple-signing layers stored for `digest` in `repo` under its .sig tag,
// in manifest order (layers of other media types are skipped). Empty when the
// tag does not exist. A payload blob that is missing, of the wrong size or
// digest sets that layer's `problem` and the others are still returned.
// Errors: transport, auth, a .sig manifest that is not an image manifest.
StatusOr<std::vector<SignatureLayer>> FindSignatures(oci::RegistryClient& client, const std::string& repo,
                                                     const oci::Digest& digest, const std::string& scope = "");

struct VerifiedSignature {
  oci::Digest layer_digest;
  std::string payload;  // the signed bytes
  SimpleSigningPayload parsed;
};

struct RejectedSignature {
  oci::Digest layer_digest;
  std::string reason;
};

struct VerificationReport {
  std::vector<VerifiedSignature> verified;
  std::vector<RejectedSignature> rejected;
  bool ok() const { return !verified.empty(); }
};

// VerifySimpleSigning on each layer with `key` against `digest`.
VerificationReport VerifySignatures(const std::vector<SignatureLayer>& layers, const keys::PublicKey& key,
                                    const oci::Digest& digest);

}  // namespace portcullis::verifier
