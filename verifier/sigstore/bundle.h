// Sigstore bundle parsing: v0.1, v0.2 and v0.3 (media types
// application/vnd.dev.sigstore.bundle+json;version=0.N and
// application/vnd.dev.sigstore.bundle.v0.3+json), with a message signature or a
// DSSE envelope.
//
// Contract: ParseBundle never throws; JSON with duplicate keys, unknown media
// types, bad base64, missing required fields, an empty certificate chain, or
// sizes beyond the bounds below are INVALID_ARGUMENT (UNSUPPORTED for
// well-formed but unsupported features), with the field named. Parsing checks
// structure only: nothing here is trusted until verify.h has checked it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "oci/status.h"

namespace portcullis::verifier::sigstore {

struct TlogEntry {
  int64_t log_index = 0;
  std::string log_id;  // raw bytes
  std::string kind, version;
  std::optional<int64_t> integrated_time;  // absent or 0 in Rekor v2
  std::string signed_entry_timestamp;      // raw bytes; empty without an inclusion promise
  bool has_inclusion_proof = false;
  int64_t proof_log_index = 0;
  int64_t tree_size = 0;
  std::string root_hash;  // raw bytes
  std::vector<std::string> hashes;
  std::string checkpoint;  // signed-note text; empty if absent
  std::string body;        // the canonicalized body (decoded JSON bytes)
};

struct DsseEnvelope {
  std::string payload;  // decoded
  std::string payload_type;
  std::string signature;  // decoded signatures[0].sig
};

struct Bundle {
  int minor_version = 0;                  // 1, 2 or 3
  std::vector<std::string> certificates;  // DER, leaf first (v0.3: the single leaf)
  bool has_public_key = false;            // publicKey hint instead of a certificate
  std::string public_key_hint;
  std::vector<TlogEntry> tlog_entries;
  std::vector<std::string> rfc3161_timestamps;  // DER TimeStampResp
  bool is_dsse = false;
  // messageSignature
  std::string message_digest_algorithm;  // "SHA2_256", ... or empty
  std::string message_digest;            // raw bytes
  std::string signature;                 // raw bytes
  // dsseEnvelope
  DsseEnvelope dsse;
};

inline constexpr size_t kMaxBundleBytes = 16u << 20;

StatusOr<Bundle> ParseBundle(std::string_view json_text);

}  // namespace portcullis::verifier::sigstore
