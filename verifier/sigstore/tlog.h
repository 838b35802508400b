// Transparency-log proofs for one bundle entry, checked offline against the
// trusted root's log: the Rekor v1 signed entry timestamp (SET), the RFC 6962
// Merkle inclusion proof, and the checkpoint (C2SP signed-note) it leads to.
//
// Contract: each function is OK only when the proof holds; DENIED with the reason
// otherwise (INVALID_ARGUMENT for text that does not parse). None throws. The
// log's key must be valid (validFor) at the time the caller passes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "oci/status.h"
#include "verifier/sigstore/bundle.h"
#include "verifier/sigstore/trusted_root.h"

namespace portcullis::verifier::sigstore {

// The log's signature over the canonical JSON {"body","integratedTime","logID",
// "logIndex"} of the entry (Rekor v1 inclusion promise).
Status VerifySignedEntryTimestamp(const TlogEntry& entry, const LogInstance& log);

// RFC 6962 / RFC 9162 §2.1.3.2 audit path: leaf hash SHA-256(0x00 || body) at
// `index` in a tree of `tree_size` leaves must lead to `root_hash`.
Status VerifyMerkleInclusion(std::string_view leaf_data, int64_t index, int64_t tree_size,
                             const std::vector<std::string>& hashes, std::string_view root_hash);

struct Checkpoint {
  std::string origin;
  int64_t tree_size = 0;
  std::string root_hash;  // raw
};

// Parses a signed note and verifies the log's signature on it: a signature line
// whose name is the log's host and whose key hint is the first 4 bytes of the
// log id must verify with the log key (other lines, e.g. witness cosignatures,
// are ignored). The origin line must be the log's host, or "<host> - <tree id>"
// (Rekor v1 shards).
StatusOr<Checkpoint> VerifyCheckpoint(std::string_view envelope, const LogInstance& log);

// The inclusion proof of `entry` and its checkpoint: Merkle path to the proof's
// root hash, checkpoint signed by `log` with the same tree size and root hash.
Status VerifyInclusion(const TlogEntry& entry, const LogInstance& log);

}  // namespace portcullis::verifier::sigstore
