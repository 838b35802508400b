// Sigstore trusted root (application/vnd.dev.sigstore.trustedroot+json;version=0.1):
// the pre-distributed keys and certificates every offline check is anchored to.
//
// Contract: Parse() never throws; any malformed entry refuses the whole root
// (INVALID_ARGUMENT naming the entry), including a transparency log, CT log,
// Fulcio CA or TSA whose validFor has no start. validFor is a closed interval:
// a time equal to `end` is inside it; no end means "still valid". CT log keys that
// OpenSSL cannot parse refuse the root too (never silently dropped).
// PublicGood() is the Sigstore public-good root embedded at build time
// (verifier/sigstore/public_good_trusted_root.json).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "oci/status.h"
#include "verifier/sigstore/crypto.h"

namespace portcullis::verifier::sigstore {

struct TimeRange {
  int64_t start = 0;
  std::optional<int64_t> end;  // inclusive
  bool Contains(int64_t t) const { return t >= start && (!end || t <= *end); }
};

// A Rekor log (v1 or v2) or a CT log.
struct LogInstance {
  std::string base_url;  // "https://rekor.sigstore.dev"
  std::string host;      // "rekor.sigstore.dev": the checkpoint origin's name
  std::string log_id;    // raw key id bytes (logId.keyId)
  std::string key_details;
  PKey key;
  TimeRange valid_for;
};

// A Fulcio CA or a timestamp authority: certChain leaf (or intermediate) first,
// root last.
struct CertAuthority {
  std::string uri;
  std::vector<Cert> chain;
  TimeRange valid_for;
};

struct TrustedRoot {
  std::vector<LogInstance> tlogs;
  std::vector<LogInstance> ctlogs;
  std::vector<CertAuthority> certificate_authorities;
  std::vector<CertAuthority> timestamp_authorities;

  static StatusOr<TrustedRoot> Parse(std::string_view json_text);
  static StatusOr<TrustedRoot> PublicGood();

  // The log whose logId.keyId equals `log_id` (raw bytes), or nullptr.
  const LogInstance* FindTlog(std::string_view log_id) const;
  const LogInstance* FindCtlog(std::string_view log_id) const;
};

// The embedded public-good trusted_root.json text (generated at build time).
std::string_view PublicGoodTrustedRootJson();

}  // namespace portcullis::verifier::sigstore
