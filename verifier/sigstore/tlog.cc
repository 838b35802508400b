#include "verifier/sigstore/tlog.h"

#include <nlohmann/json.hpp>

#include "oci/base64.h"
#include "verifier/sigstore/crypto.h"

namespace portcullis::verifier::sigstore {

namespace {

constexpr size_t kMaxCheckpointBytes = 64 * 1024;
constexpr size_t kMaxSignatureLines = 64;
constexpr std::string_view kEmDash = "\xE2\x80\x94 ";

std::string NodeHash(std::string_view left, std::string_view right) {
  std::string buf;
  buf.reserve(1 + left.size() + right.size());
  buf.push_back('\x01');
  buf.append(left);
  buf.append(right);
  return Sha256(buf);
}

bool ParseDecimal(std::string_view s, int64_t& out) {
  if (s.empty() || s.size() > 18) return false;
  out = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    out = out * 10 + (c - '0');
  }
  return true;
}

}  // namespace

Status VerifySignedEntryTimestamp(const TlogEntry& entry, const LogInstance& log) {
  if (entry.signed_entry_timestamp.empty()) return Status::Denied("the log entry has no signed entry timestamp");
  if (!entry.integrated_time) {
    return Status::Denied("the log entry has a signed entry timestamp but no integrated time");
  }
  // Canonical JSON: keys sorted, no spaces (what Rekor signs).
  nlohmann::json payload = {{"body", oci::Base64Encode(entry.body)},
                            {"integratedTime", *entry.integrated_time},
                            {"logID", Hex(entry.log_id)},
                            {"logIndex", entry.log_index}};
  Status st = VerifySignature(log.key, payload.dump(), entry.signed_entry_timestamp);
  if (!st.ok()) return Status::Denied("the signed entry timestamp does not verify with the log key of " + log.base_url);
  return Status::Ok();
}

Status VerifyMerkleInclusion(std::string_view leaf_data, int64_t index, int64_t tree_size,
                             const std::vector<std::string>& hashes, std::string_view root_hash) {
  if (tree_size <= 0 || index < 0 || index >= tree_size) {
    return Status::Denied("inclusion proof: index " + std::to_string(index) + " outside a tree of " +
                          std::to_string(tree_size));
  }
  if (root_hash.size() != 32) return Status::Denied("inclusion proof: root hash is not 32 bytes");
  std::string leaf;
  leaf.push_back('\x00');
  leaf.append(leaf_data);
  std::string r = Sha256(leaf);
  uint64_t fn = static_cast<uint64_t>(index), sn = static_cast<uint64_t>(tree_size - 1);
  for (const auto& p : hashes) {
    if (p.size() != 32) return Status::Denied("inclusion proof: a hash is not 32 bytes");
    if (sn == 0) return Status::Denied("inclusion proof: too many hashes");
    if ((fn & 1) == 1 || fn == sn) {
      r = NodeHash(p, r);
      if ((fn & 1) == 0) {
        while ((fn & 1) == 0 && fn != 0) {
          fn >>= 1;
          sn >>= 1;
        }
      }
    } else {
      r = NodeHash(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn != 0) return Status::Denied("inclusion proof: too few hashes");
  if (r != root_hash) {
    return Status::Denied("inclusion proof: the computed root hash does not match the proof's root hash");
  }
  return Status::Ok();
}

StatusOr<Checkpoint> VerifyCheckpoint(std::string_view envelope, const LogInstance& log) {
  if (envelope.size() > kMaxCheckpointBytes) return Status::InvalidArgument("checkpoint is too large");
  size_t split = envelope.find("\n\n");
  if (split == std::string_view::npos) {
    return Status::InvalidArgument("checkpoint: no blank line before the signatures");
  }
  std::string_view note = envelope.substr(0, split + 1);
  std::string_view sigs = envelope.substr(split + 2);

  // Body: origin, tree size, base64 root hash, optional extension lines.
  std::vector<std::string_view> lines;
  for (size_t pos = 0; pos < note.size();) {
    size_t nl = note.find('\n', pos);
    lines.push_back(note.substr(pos, nl - pos));
    pos = nl + 1;
    if (lines.size() > 64) return Status::InvalidArgument("checkpoint: too many lines");
  }
  if (lines.size() < 3) return Status::InvalidArgument("checkpoint: want origin, tree size and root hash lines");
  Checkpoint cp;
  cp.origin = std::string(lines[0]);
  if (cp.origin.empty()) return Status::InvalidArgument("checkpoint: empty origin line");
  if (!ParseDecimal(lines[1], cp.tree_size)) {
    return Status::InvalidArgument("checkpoint: the line after the origin is not a tree size (origin line missing?)");
  }
  auto root = DecodeBase64(lines[2], "checkpoint root hash");
  if (!root.ok() || root->size() != 32) {
    return Status::InvalidArgument("checkpoint: root hash line is not 32 base64 bytes");
  }
  cp.root_hash = *root;
  if (cp.origin != log.host && !cp.origin.starts_with(log.host + " - ")) {
    return Status::Denied("checkpoint origin \"" + cp.origin.substr(0, 100) + "\" is not the log " + log.host);
  }

  // Signature lines: "— <name> <base64(key hint (4) || signature)>".
  bool verified = false;
  size_t count = 0;
  for (size_t pos = 0; pos < sigs.size();) {
    size_t nl = sigs.find('\n', pos);
    if (nl == std::string_view::npos) return Status::InvalidArgument("checkpoint: signature line without newline");
    std::string_view line = sigs.substr(pos, nl - pos);
    pos = nl + 1;
    if (++count > kMaxSignatureLines) return Status::InvalidArgument("checkpoint: too many signature lines");
    if (!line.starts_with(kEmDash)) return Status::InvalidArgument("checkpoint: malformed signature line");
    line.remove_prefix(kEmDash.size());
    size_t sp = line.find(' ');
    if (sp == std::string_view::npos || sp == 0) return Status::InvalidArgument("checkpoint: malformed signature line");
    std::string_view name = line.substr(0, sp);
    auto blob = DecodeBase64(line.substr(sp + 1), "checkpoint signature");
    if (!blob.ok() || blob->size() < 5) return Status::InvalidArgument("checkpoint: malformed signature");
    if (name != log.host || log.log_id.size() < 4 || blob->compare(0, 4, log.log_id, 0, 4) != 0) continue;
    if (VerifySignature(log.key, note, std::string_view(*blob).substr(4)).ok()) verified = true;
  }
  if (count == 0) return Status::InvalidArgument("checkpoint: no signature lines");
  if (!verified) return Status::Denied("checkpoint is not signed by the log " + log.host);
  return cp;
}

Status VerifyInclusion(const TlogEntry& entry, const LogInstance& log) {
  if (!entry.has_inclusion_proof) return Status::Denied("the log entry has no inclusion proof");
  PC_RETURN_IF_ERROR(
      VerifyMerkleInclusion(entry.body, entry.proof_log_index, entry.tree_size, entry.hashes, entry.root_hash));
  if (entry.checkpoint.empty()) return Status::Denied("the inclusion proof has no checkpoint");
  auto cp = VerifyCheckpoint(entry.checkpoint, log);
  if (!cp.ok()) return Status::Denied(cp.status().message());
  if (cp->tree_size != entry.tree_size || cp->root_hash != entry.root_hash) {
    return Status::Denied("the checkpoint's tree size and root hash are not the inclusion proof's");
  }
  return Status::Ok();
}

}  // namespace portcullis::verifier::sigstore
