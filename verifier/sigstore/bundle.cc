#include "verifier/sigstore/bundle.h"

#include "verifier/sigstore/json_util.h"
#include "verifier/strict_json.h"

namespace portcullis::verifier::sigstore {

namespace {

using nlohmann::json;

constexpr size_t kMaxCerts = 10;
constexpr size_t kMaxTlogEntries = 8;
constexpr size_t kMaxProofHashes = 64;
constexpr size_t kMaxTimestamps = 8;

StatusOr<TlogEntry> ParseTlogEntry(const json& j, const std::string& where, int minor) {
  if (!j.is_object()) return Status::InvalidArgument(where + " is not an object");
  TlogEntry e;
  PC_ASSIGN_OR_RETURN(e.log_index, Int64(j, "logIndex", where));
  PC_ASSIGN_OR_RETURN(const json* id, Object(j, "logId", where));
  PC_ASSIGN_OR_RETURN(e.log_id, Bytes(*id, "keyId", where + ".logId"));
  PC_ASSIGN_OR_RETURN(const json* kv, Object(j, "kindVersion", where));
  PC_ASSIGN_OR_RETURN(e.kind, String(*kv, "kind", where + ".kindVersion"));
  PC_ASSIGN_OR_RETURN(e.version, String(*kv, "version", where + ".kindVersion"));
  if (Field(j, "integratedTime") != nullptr) {
    PC_ASSIGN_OR_RETURN(int64_t t, Int64(j, "integratedTime", where));
    if (t != 0) e.integrated_time = t;
  }
  if (const json* promise = Field(j, "inclusionPromise")) {
    PC_ASSIGN_OR_RETURN(e.signed_entry_timestamp, Bytes(*promise, "signedEntryTimestamp", where + ".inclusionPromise"));
    if (e.signed_entry_timestamp.empty()) return Status::InvalidArgument(where + ".inclusionPromise is empty");
  }
  if (const json* proof = Field(j, "inclusionProof")) {
    std::string w = where + ".inclusionProof";
    if (!proof->is_object()) return Status::InvalidArgument(w + " is not an object");
    e.has_inclusion_proof = true;
    PC_ASSIGN_OR_RETURN(e.proof_log_index, Int64(*proof, "logIndex", w));
    PC_ASSIGN_OR_RETURN(e.tree_size, Int64(*proof, "treeSize", w));
    PC_ASSIGN_OR_RETURN(e.root_hash, Bytes(*proof, "rootHash", w));
    if (const json* hs = Field(*proof, "hashes")) {
      if (!hs->is_array() || hs->size() > kMaxProofHashes) {
        return Status::InvalidArgument(w + ".hashes is not a bounded array");
      }
      for (const auto& h : *hs) {
        if (!h.is_string()) return Status::InvalidArgument(w + ".hashes holds a non-string");
        PC_ASSIGN_OR_RETURN(std::string raw, DecodeBase64(h.get_ref<const std::string&>(), w + ".hashes[]"));
        e.hashes.push_back(std::move(raw));
      }
    }
    if (const json* cp = Field(*proof, "checkpoint")) {
      PC_ASSIGN_OR_RETURN(e.checkpoint, String(*cp, "envelope", w + ".checkpoint"));
    }
  }
  PC_ASSIGN_OR_RETURN(e.body, Bytes(j, "canonicalizedBody", where));
  if (minor == 1 && e.signed_entry_timestamp.empty()) {
    return Status::InvalidArgument(where + ": a v0.1 bundle needs an inclusion promise");
  }
  if (minor >= 2 && (!e.has_inclusion_proof || e.checkpoint.empty())) {
    return Status::InvalidArgument(where + ": a v0.2+ bundle needs an inclusion proof with a checkpoint");
  }
  return e;
}

Status ParseCertificates(const json& vm, Bundle& b) {
  if (const json* leaf = Field(vm, "certificate")) {
    if (b.minor_version < 3) return Status::InvalidArgument("verificationMaterial.certificate needs a v0.3 bundle");
    PC_ASSIGN_OR_RETURN(std::string der, Bytes(*leaf, "rawBytes", "verificationMaterial.certificate"));
    if (der.empty()) return Status::InvalidArgument("verificationMaterial.certificate is empty");
    b.certificates.push_back(std::move(der));
    return Status::Ok();
  }
  if (const json* chain = Field(vm, "x509CertificateChain")) {
    const json* certs = Field(*chain, "certificates");
    if (certs == nullptr || !certs->is_array() || certs->empty()) {
      return Status::InvalidArgument("verificationMaterial.x509CertificateChain is empty");
    }
    if (certs->size() > kMaxCerts) return Status::InvalidArgument("x509CertificateChain has too many certificates");
    for (const auto& c : *certs) {
      PC_ASSIGN_OR_RETURN(std::string der, Bytes(c, "rawBytes", "x509CertificateChain.certificates[]"));
      if (der.empty()) return Status::InvalidArgument("x509CertificateChain holds an empty certificate");
      b.certificates.push_back(std::move(der));
    }
    return Status::Ok();
  }
  if (const json* pk = Field(vm, "publicKey")) {
    b.has_public_key = true;
    if (const json* hint = Field(*pk, "hint"); hint != nullptr && hint->is_string()) b.public_key_hint = *hint;
    return Status::Ok();
  }
  return Status::InvalidArgument("verificationMaterial has no certificate, certificate chain or public key");
}

StatusOr<Bundle> ParseBundleImpl(std::string_view text) {
  if (text.size() > kMaxBundleBytes) return Status::InvalidArgument("bundle is larger than 16 MiB");
  PC_ASSIGN_OR_RETURN(json j, ParseStrictJson(text));
  if (!j.is_object()) return Status::InvalidArgument("bundle is not a JSON object");
  Bundle b;
  PC_ASSIGN_OR_RETURN(std::string mt, String(j, "mediaType", "bundle"));
  if (mt == "application/vnd.dev.sigstore.bundle+json;version=0.1") {
    b.minor_version = 1;
  } else if (mt == "application/vnd.dev.sigstore.bundle+json;version=0.2") {
    b.minor_version = 2;
  } else if (mt == "application/vnd.dev.sigstore.bundle+json;version=0.3" ||
             mt == "application/vnd.dev.sigstore.bundle.v0.3+json") {
    b.minor_version = 3;
  } else {
    return Status::Unsupported("unsupported: bundle media type \"" + mt.substr(0, 100) + "\"");
  }

  PC_ASSIGN_OR_RETURN(const json* vm, Object(j, "verificationMaterial", "bundle"));
  PC_RETURN_IF_ERROR(ParseCertificates(*vm, b));
  const json* entries = Field(*vm, "tlogEntries");
  if (entries != nullptr) {
    if (!entries->is_array() || entries->size() > kMaxTlogEntries) {
      return Status::InvalidArgument("verificationMaterial.tlogEntries is not a bounded array");
    }
    for (size_t i = 0; i < entries->size(); ++i) {
      PC_ASSIGN_OR_RETURN(TlogEntry e,
                          ParseTlogEntry((*entries)[i], "tlogEntries[" + std::to_string(i) + "]", b.minor_version));
      b.tlog_entries.push_back(std::move(e));
    }
  }
  if (const json* tvd = Field(*vm, "timestampVerificationData")) {
    if (const json* ts = Field(*tvd, "rfc3161Timestamps")) {
      if (!ts->is_array() || ts->size() > kMaxTimestamps) {
        return Status::InvalidArgument("timestampVerificationData.rfc3161Timestamps is not a bounded array");
      }
      for (const auto& t : *ts) {
        PC_ASSIGN_OR_RETURN(std::string der, Bytes(t, "signedTimestamp", "rfc3161Timestamps[]"));
        b.rfc3161_timestamps.push_back(std::move(der));
      }
    }
  }

  const json* ms = Field(j, "messageSignature");
  const json* env = Field(j, "dsseEnvelope");
  if ((ms == nullptr) == (env == nullptr)) {
    return Status::InvalidArgument("bundle must hold exactly one of messageSignature and dsseEnvelope");
  }
  if (ms != nullptr) {
    if (const json* md = Field(*ms, "messageDigest")) {
      PC_ASSIGN_OR_RETURN(b.message_digest_algorithm, String(*md, "algorithm", "messageSignature.messageDigest"));
      PC_ASSIGN_OR_RETURN(b.message_digest, Bytes(*md, "digest", "messageSignature.messageDigest"));
    }
    PC_ASSIGN_OR_RETURN(b.signature, Bytes(*ms, "signature", "messageSignature"));
    if (b.signature.empty()) return Status::InvalidArgument("messageSignature.signature is empty");
  } else {
    b.is_dsse = true;
    PC_ASSIGN_OR_RETURN(b.dsse.payload, Bytes(*env, "payload", "dsseEnvelope"));
    PC_ASSIGN_OR_RETURN(b.dsse.payload_type, String(*env, "payloadType", "dsseEnvelope"));
    const json* sigs = Field(*env, "signatures");
    if (sigs == nullptr || !sigs->is_array() || sigs->size() != 1) {
      return Status::InvalidArgument("dsseEnvelope must carry exactly one signature");
    }
    PC_ASSIGN_OR_RETURN(b.dsse.signature, Bytes((*sigs)[0], "sig", "dsseEnvelope.signatures[0]"));
    if (b.dsse.signature.empty()) return Status::InvalidArgument("dsseEnvelope.signatures[0].sig is empty");
  }
  return b;
}

}  // namespace

StatusOr<Bundle> ParseBundle(std::string_view json_text) {
  try {
    auto b = ParseBundleImpl(json_text);
    if (!b.ok()) return b.status().Annotate("bundle");
    return b;
  } catch (const std::exception& e) {
    return Status::InvalidArgument(std::string("bundle: malformed: ") + e.what());
  }
}

}  // namespace portcullis::verifier::sigstore
