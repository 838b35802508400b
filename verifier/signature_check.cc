#include "verifier/signature_check.h"

#include "oci/base64.h"

namespace portcullis::verifier {

SignatureCheck CheckSignature(const FoundSignature& sig, const keys::PublicKey& key, const oci::Digest& digest) {
  SignatureCheck out;
  if (sig.bundle) {  // bundles are checked by bundle_check.h, never as simple signing
    out.kind = SignatureCheck::Kind::kOtherKey;
    out.detail = "a Sigstore bundle, not a simple-signing signature";
    return out;
  }
  if (!sig.problem.empty()) {
    out.kind = SignatureCheck::Kind::kUnreadable;
    out.detail = sig.problem;
    return out;
  }
  std::string b64;
  for (char c : sig.signature_b64) {
    if (c != '\r' && c != '\n') b64.push_back(c);
  }
  if (b64.empty()) {
    out.kind = SignatureCheck::Kind::kUnreadable;
    out.detail = "the layer has no signature annotation";
    return out;
  }
  auto raw = oci::Base64Decode(b64);
  if (!raw) {
    out.kind = SignatureCheck::Kind::kUnreadable;
    out.detail = "the signature annotation is not standard base64";
    return out;
  }
  if (Status st = key.Verify(sig.payload, *raw); !st.ok()) {
    out.kind = SignatureCheck::Kind::kOtherKey;
    out.detail = st.message();
    return out;
  }
  auto parsed = ParseSimpleSigningPayload(sig.payload);
  if (!parsed.ok()) {
    out.kind = SignatureCheck::Kind::kBadPayload;
    out.detail = parsed.status().message();
    return out;
  }
  out.payload = std::move(*parsed);
  if (out.payload.manifest_digest != digest) {
    out.kind = SignatureCheck::Kind::kWrongDigest;
    out.detail = "signature is for " + out.payload.manifest_digest.ToString() + ", not " + digest.ToString();
    return out;
  }
  out.kind = SignatureCheck::Kind::kVerified;
  return out;
}

std::string SignatureLabel(const FoundSignature& sig) {
  std::string s = std::string(sig.bundle ? "bundle " : "layer ") + (sig.layer_digest.empty() ? std::string("?") : sig.layer_digest.ToString().substr(0, 19));
  if (!sig.source.empty()) s += " (" + sig.source + ")";
  return s;
}

}  // namespace portcullis::verifier
