#include "verifier/sigstore/verify.h"

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <ctime>

#include "verifier/sigstore/crypto.h"
#include "verifier/sigstore/json_util.h"
#include "verifier/sigstore/rekor_body.h"
#include "verifier/sigstore/timestamp.h"
#include "verifier/sigstore/tlog.h"
#include "verifier/strict_json.h"

namespace portcullis::verifier::sigstore {

namespace {

using nlohmann::json;

constexpr int64_t kClockSkewSeconds = 60;
constexpr std::string_view kInTotoPayloadType = "application/vnd.in-toto+json";

bool IsRekorV2(const TlogEntry& e) { return (e.kind == "hashedrekord" || e.kind == "dsse") && e.version == "0.0.2"; }

// Step 1: the verified signing times.
StatusOr<std::vector<int64_t>> SigningTimes(const Bundle& b, const TlogEntry& entry, const LogInstance& log,
                                            const TrustedRoot& root, std::string_view signature, int64_t now) {
  std::vector<int64_t> times;
  for (const auto& ts : b.rfc3161_timestamps) {
    PC_ASSIGN_OR_RETURN(int64_t t, VerifyRfc3161(ts, signature, root));
    times.push_back(t);
  }
  if (IsRekorV2(entry)) {
    if (times.empty()) return Status::Denied("a Rekor v2 entry needs an RFC 3161 timestamp (none in the bundle)");
    for (int64_t t : times) {
      if (!log.valid_for.Contains(t)) {
        return Status::Denied("the log key of " + log.base_url + " is not valid at " + FormatTime(t));
      }
    }
  } else if (!entry.signed_entry_timestamp.empty()) {
    PC_RETURN_IF_ERROR(VerifySignedEntryTimestamp(entry, log));
    int64_t t = *entry.integrated_time;
    if (!log.valid_for.Contains(t)) {
      return Status::Denied("the log key of " + log.base_url + " is not valid at the integrated time " + FormatTime(t));
    }
    if (t > now + kClockSkewSeconds) {
      return Status::Denied("the log's integrated time " + FormatTime(t) + " is in the future");
    }
    times.push_back(t);
  } else if (times.empty()) {
    return Status::Denied(
        "no verified signing time: the log entry has no signed entry timestamp and there is no RFC 3161 timestamp");
  } else {
    // A Rekor v1 entry without a SET: its checkpoint is only trusted if the log key
    // was valid at the (TSA) signing times.
    for (int64_t t : times) {
      if (!log.valid_for.Contains(t)) {
        return Status::Denied("the log key of " + log.base_url + " is not valid at " + FormatTime(t));
      }
    }
  }
  for (int64_t t : times) {
    if (t > now + kClockSkewSeconds) return Status::Denied("signing time " + FormatTime(t) + " is in the future");
  }
  return times;
}

// Step 4 for DSSE: the in-toto statement names the artifact.
StatusOr<std::string> CheckStatement(const std::string& payload, const std::string& artifact_hex) {
  auto parsed = ParseStrictJson(payload);
  if (!parsed.ok()) return Status::Denied("DSSE payload: " + parsed.status().message());
  const json& st = *parsed;
  const json* type = Field(st, "_type");
  if (type == nullptr || !type->is_string() ||
      (*type != "https://in-toto.io/Statement/v1" && *type != "https://in-toto.io/Statement/v0.1")) {
    return Status::Denied("DSSE payload is not an in-toto statement");
  }
  std::string predicate_type;
  if (const json* pt = Field(st, "predicateType"); pt != nullptr && pt->is_string()) predicate_type = *pt;
  const json* subjects = Field(st, "subject");
  if (subjects == nullptr || !subjects->is_array()) return Status::Denied("in-toto statement has no subject list");
  for (const auto& s : *subjects) {
    const json* digest = Field(s, "digest");
    if (digest == nullptr) continue;
    const json* sha = Field(*digest, "sha256");
    if (sha != nullptr && sha->is_string() && *sha == artifact_hex) return predicate_type;
  }
  return Status::Denied("the artifact's sha256 is not among the in-toto statement's subjects");
}

// Step 4 for message signatures.
Status CheckMessageSignature(const Bundle& b, const PKey& key, const Artifact& artifact) {
  if (b.message_digest_algorithm == "SHA2_256" && b.message_digest != artifact.sha256) {
    return Status::Denied("the bundle's message digest is not the artifact's sha256");
  }
  PC_ASSIGN_OR_RETURN(std::string hash, HashNameFor(key));
  Status st;
  if (hash == "sha256") {
    st = VerifyPrehashed(key, hash, artifact.sha256, b.signature);
  } else if (artifact.bytes) {
    st = VerifySignature(key, *artifact.bytes, b.signature);
  } else {
    return Status::Unsupported("unsupported: this key type signs the artifact itself (or its " + hash +
                               "): give the artifact file, not its sha256");
  }
  if (!st.ok()) return st.Is(Code::kDenied) ? Status::Denied("the signature over the artifact does not verify") : st;
  return Status::Ok();
}

// A key-based bundle without log entry or timestamp: the signature alone.
StatusOr<VerifyResult> VerifyUntimedKey(const Bundle& b, const Artifact& artifact, const std::string& key_der) {
  auto k = ParsePublicKeyDer(key_der);
  if (!k.ok()) return Status::InvalidArgument("the verification key is not a public key");
  VerifyResult result;
  result.dsse = b.is_dsse;
  if (b.is_dsse) {
    if (b.dsse.payload_type != kInTotoPayloadType) {
      return Status::Unsupported("unsupported: DSSE payload type \"" + b.dsse.payload_type.substr(0, 80) + "\"");
    }
    Status st = VerifySignature(*k, DssePae(b.dsse.payload_type, b.dsse.payload), b.dsse.signature);
    if (!st.ok()) return st.Is(Code::kDenied) ? Status::Denied("the DSSE envelope signature does not verify") : st;
    PC_ASSIGN_OR_RETURN(result.predicate_type, CheckStatement(b.dsse.payload, Hex(artifact.sha256)));
  } else {
    PC_RETURN_IF_ERROR(CheckMessageSignature(b, *k, artifact));
  }
  return result;
}

StatusOr<VerifyResult> VerifyImpl(const Bundle& b, const TrustedRoot& root, const Artifact& artifact,
                                  const VerifyOptions& opt) {
  const bool keyless = !opt.key_der.has_value();
  if (keyless && b.has_public_key) {
    return Status::Denied("the bundle is signed with a key, not a certificate: verify it with a key");
  }
  if (!keyless && !b.has_public_key) {
    return Status::Denied("the bundle carries a certificate: verify it with an identity, not a key");
  }
  if (artifact.sha256.size() != 32) return Status::InvalidArgument("artifact digest is not a sha256");
  if (b.tlog_entries.empty() && !keyless && opt.allow_untimed_key && b.rfc3161_timestamps.empty()) {
    return VerifyUntimedKey(b, artifact, *opt.key_der);
  }
  if (b.tlog_entries.empty()) return Status::Denied("the bundle has no transparency log entry");
  if (b.tlog_entries.size() != 1) {
    return Status::Unsupported("unsupported: " + std::to_string(b.tlog_entries.size()) +
                               " transparency log entries (exactly one is supported)");
  }
  const int64_t now = opt.now != 0 ? opt.now : static_cast<int64_t>(std::time(nullptr));
  const TlogEntry& entry = b.tlog_entries[0];
  const std::string& signature = b.is_dsse ? b.dsse.signature : b.signature;

  // Keys and certificates are parsed up front; nothing is trusted yet.
  VerifyResult result;
  result.keyless = keyless;
  result.dsse = b.is_dsse;
  Cert leaf;
  PKey key;
  EntryExpectation want;
  if (keyless) {
    PC_ASSIGN_OR_RETURN(leaf, LeafFromBundle(b.certificates));
    EVP_PKEY* pk = X509_get_pubkey(leaf.get());
    if (pk == nullptr) return Status::Denied("the certificate's public key is unusable");
    key = PKey(pk, EVP_PKEY_free);
    PC_ASSIGN_OR_RETURN(want.verifier_der, CertDer(leaf));
  } else {
    auto k = ParsePublicKeyDer(*opt.key_der);
    if (!k.ok()) return Status::InvalidArgument("the verification key is not a public key");
    key = *k;
    PC_ASSIGN_OR_RETURN(want.verifier_der, PublicKeyDer(key));
    want.verifier_is_cert = false;
  }

  // 1. Signing time.
  const LogInstance* log = root.FindTlog(entry.log_id);
  if (log == nullptr) return Status::Denied("the log entry is from a log that is not in the trusted root");
  PC_ASSIGN_OR_RETURN(result.signing_times, SigningTimes(b, entry, *log, root, signature, now));

  // 2. Certificate at every signing time, SCT, identity.
  if (keyless && opt.fulcio_anchors != nullptr) {
    std::vector<Cert> intermediates;
    for (size_t i = 1; i < b.certificates.size() && i <= 8; ++i) {
      auto c = ParseCertDer(b.certificates[i]);
      if (!c.ok()) return Status::Denied("a chain certificate of the bundle does not parse");
      intermediates.push_back(std::move(*c));
    }
    for (int64_t t : result.signing_times) {
      PC_RETURN_IF_ERROR(VerifyChainToAnchors(leaf, *opt.fulcio_anchors, intermediates, t));
    }
    PC_ASSIGN_OR_RETURN(result.identity, ExtractIdentity(leaf));
    PC_ASSIGN_OR_RETURN(result.fulcio_issuer, FulcioIssuer(leaf));
    result.email_sans = EmailSans(leaf);
  } else if (keyless) {
    Cert issuer;
    for (int64_t t : result.signing_times) {
      PC_ASSIGN_OR_RETURN(issuer, VerifyChainAt(leaf, root, t));
    }
    PC_RETURN_IF_ERROR(VerifyEmbeddedSct(leaf, issuer, root));
    PC_ASSIGN_OR_RETURN(result.identity, ExtractIdentity(leaf));
    PC_RETURN_IF_ERROR(MatchIdentity(result.identity, opt.identity));
  }

  // 3. Transparency log entry and inclusion proof.
  want.signature = signature;
  want.is_dsse = b.is_dsse;
  want.artifact_sha256 = artifact.sha256;
  want.dsse = b.dsse;
  PC_RETURN_IF_ERROR(CheckEntryBody(entry, want));
  if (IsRekorV2(entry) && !entry.has_inclusion_proof) {
    return Status::Denied("a Rekor v2 entry needs an inclusion proof");
  }
  if (entry.has_inclusion_proof && (opt.verify_inclusion_proof || IsRekorV2(entry))) {
    PC_RETURN_IF_ERROR(VerifyInclusion(entry, *log));
  }
  result.log_url = log->base_url;
  result.log_index = entry.log_index;

  // 4. The signature.
  if (b.is_dsse) {
    if (b.dsse.payload_type != kInTotoPayloadType) {
      return Status::Unsupported("unsupported: DSSE payload type \"" + b.dsse.payload_type.substr(0, 80) + "\"");
    }
    Status st = VerifySignature(key, DssePae(b.dsse.payload_type, b.dsse.payload), b.dsse.signature);
    if (!st.ok()) return st.Is(Code::kDenied) ? Status::Denied("the DSSE envelope signature does not verify") : st;
    PC_ASSIGN_OR_RETURN(result.predicate_type, CheckStatement(b.dsse.payload, Hex(artifact.sha256)));
  } else {
    PC_RETURN_IF_ERROR(CheckMessageSignature(b, key, artifact));
  }
  return result;
}

}  // namespace

Artifact Artifact::FromBytes(std::string data) {
  Artifact a;
  a.sha256 = Sha256(data);
  a.bytes = std::move(data);
  return a;
}

StatusOr<Artifact> Artifact::FromDigest(std::string_view digest) {
  if (!digest.starts_with("sha256:") || digest.size() != 7 + 64) {
    return Status::InvalidArgument("want sha256:<64 lowercase hex>");
  }
  Artifact a;
  for (size_t i = 7; i < digest.size(); i += 2) {
    auto nib = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      return -1;
    };
    int hi = nib(digest[i]), lo = nib(digest[i + 1]);
    if (hi < 0 || lo < 0) return Status::InvalidArgument("want sha256:<64 lowercase hex>");
    a.sha256.push_back(static_cast<char>(hi * 16 + lo));
  }
  return a;
}

StatusOr<VerifyResult> VerifyBundle(const Bundle& bundle, const TrustedRoot& root, const Artifact& artifact,
                                    const VerifyOptions& options) {
  try {
    return VerifyImpl(bundle, root, artifact, options);
  } catch (const std::exception& e) {
    return Status::Denied(std::string("verification failed on malformed input: ") + e.what());
  }
}

}  // namespace portcullis::verifier::sigstore
