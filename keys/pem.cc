#include "keys/pem.h"

#include "oci/base64.h"

namespace portcullis::keys {

namespace {

constexpr std::string_view kBegin = "-----BEGIN ";
constexpr std::string_view kEnd = "-----END ";
constexpr std::string_view kDashes = "-----";

// Finds the next "-----BEGIN <type>-----" at or after `from` that starts a line.
// On success sets *type and *body_start (just past the line) and returns true.
bool FindBegin(std::string_view text, size_t from, std::string* type, size_t* body_start, size_t* begin_at) {
  while (true) {
    size_t at = text.find(kBegin, from);
    if (at == std::string_view::npos) return false;
    from = at + kBegin.size();
    if (at != 0 && text[at - 1] != '\n') continue;
    size_t eol = text.find('\n', from);
    std::string_view line = text.substr(from, eol == std::string_view::npos ? std::string_view::npos : eol - from);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() < kDashes.size() || line.substr(line.size() - kDashes.size()) != kDashes) continue;
    *type = std::string(line.substr(0, line.size() - kDashes.size()));
    *body_start = eol == std::string_view::npos ? text.size() : eol + 1;
    *begin_at = at;
    return true;
  }
}

}  // namespace

std::string EncodePem(std::string_view type, std::string_view body) {
  std::string b64 = oci::Base64Encode(body);
  std::string out;
  out.reserve(b64.size() + b64.size() / 64 + 2 * type.size() + 40);
  out.append(kBegin).append(type).append(kDashes).push_back('\n');
  for (size_t i = 0; i < b64.size(); i += 64) {
    out.append(b64, i, 64).push_back('\n');
  }
  out.append(kEnd).append(type).append(kDashes).push_back('\n');
  return out;
}

StatusOr<PemBlock> DecodePem(std::string_view text) {
  PemBlock block;
  size_t body_start = 0, begin_at = 0;
  if (!FindBegin(text, 0, &block.type, &body_start, &begin_at)) {
    return Status::InvalidArgument("not a PEM file: no \"-----BEGIN ...-----\" line");
  }
  size_t end_at = text.find(kEnd, body_start);
  while (end_at != std::string_view::npos && text[end_at - 1] != '\n') end_at = text.find(kEnd, end_at + 1);
  if (end_at == std::string_view::npos) {
    return Status::InvalidArgument("truncated PEM: no \"-----END " + block.type + "-----\" line");
  }
  std::string_view end_line = text.substr(end_at + kEnd.size());
  end_line = end_line.substr(0, end_line.find('\n'));
  if (!end_line.empty() && end_line.back() == '\r') end_line.remove_suffix(1);
  std::string want = block.type + std::string(kDashes);
  if (end_line != want) {
    return Status::InvalidArgument("malformed PEM: BEGIN type \"" + block.type + "\" but END line \"-----END " +
                                   std::string(end_line.substr(0, 80)) + "\"");
  }
  std::string b64;
  for (char c : text.substr(body_start, end_at - body_start)) {
    if (c == '\n' || c == '\r' || c == ' ' || c == '\t') continue;
    if (c == ':') return Status::InvalidArgument("PEM headers are not supported (block \"" + block.type + "\")");
    b64.push_back(c);
  }
  if (b64.empty()) return Status::InvalidArgument("empty PEM block \"" + block.type + "\"");
  auto decoded = oci::Base64Decode(b64);
  if (!decoded) {
    return Status::InvalidArgument("corrupted PEM: body of \"" + block.type + "\" is not valid base64");
  }
  block.body = std::move(*decoded);
  return block;
}

std::vector<std::string> PemTypes(std::string_view text) {
  std::vector<std::string> types;
  std::string type;
  size_t from = 0, body_start = 0, begin_at = 0;
  while (FindBegin(text, from, &type, &body_start, &begin_at)) {
    types.push_back(type);
    from = body_start;
  }
  return types;
}

}  // namespace portcullis::keys
