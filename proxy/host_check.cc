#include "proxy/host_check.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <optional>

namespace portcullis::proxy {

namespace {

constexpr size_t kMaxHostBytes = 300;  // a DNS name is at most 253; room for "[v6]:port"

// A parsed Host header or allow-list entry.
struct HostPort {
  bool ipv6 = false;
  std::array<unsigned char, 16> addr{};  // when ipv6
  std::string name;                      // lower case, no trailing dot (when !ipv6)
  bool wildcard = false;                 // entry "*.suffix": name holds "suffix"
  int port = -1;                         // -1: none given
};

bool NameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_';
}

std::optional<int> ParsePort(std::string_view s) {
  if (s.empty() || s.size() > 5) return std::nullopt;
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  if (v > 65535) return std::nullopt;
  return v;
}

bool ParseV6(std::string_view s, HostPort* out) {
  if (s.empty() || s.size() > 45) return false;  // INET6_ADDRSTRLEN - 1
  char buf[64];
  std::memcpy(buf, s.data(), s.size());
  buf[s.size()] = '\0';
  if (inet_pton(AF_INET6, buf, out->addr.data()) != 1) return false;
  out->ipv6 = true;
  return true;
}

bool ParseName(std::string_view s, bool allow_wildcard, HostPort* out) {
  if (allow_wildcard && s.size() > 2 && s.substr(0, 2) == "*.") {
    out->wildcard = true;
    s.remove_prefix(2);
  }
  if (!s.empty() && s.back() == '.') s.remove_suffix(1);
  if (s.empty()) return false;
  for (char c : s) {
    if (!NameChar(c)) return false;
  }
  if (s.front() == '.' || s.back() == '.' || s.find("..") != std::string_view::npos) return false;
  out->name.clear();
  for (char c : s) out->name.push_back((c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c);
  return true;
}

// HOST, HOST:PORT, [V6], [V6]:PORT; entries also a bare V6 and *.NAME[:PORT].
std::optional<HostPort> Parse(std::string_view s, bool entry) {
  if (s.empty() || s.size() > kMaxHostBytes) return std::nullopt;
  HostPort hp;
  if (s.front() == '[') {
    auto close = s.find(']');
    if (close == std::string_view::npos || !ParseV6(s.substr(1, close - 1), &hp)) return std::nullopt;
    std::string_view rest = s.substr(close + 1);
    if (rest.empty()) return hp;
    if (rest.front() != ':') return std::nullopt;
    auto port = ParsePort(rest.substr(1));
    if (!port) return std::nullopt;
    hp.port = *port;
    return hp;
  }
  const size_t colons = static_cast<size_t>(std::count(s.begin(), s.end(), ':'));
  if (colons > 1) {
    // A bare IPv6 address: an entry may be written so ("::1"); a Host header may not.
    if (!entry || !ParseV6(s, &hp)) return std::nullopt;
    return hp;
  }
  std::string_view name = s;
  if (colons == 1) {
    auto colon = s.find(':');
    auto port = ParsePort(s.substr(colon + 1));
    if (!port) return std::nullopt;
    hp.port = *port;
    name = s.substr(0, colon);
  }
  if (!ParseName(name, entry, &hp)) return std::nullopt;
  return hp;
}

bool Matches(const HostPort& entry, const HostPort& host) {
  if (entry.port >= 0 && entry.port != host.port) return false;
  if (entry.ipv6 || host.ipv6) return entry.ipv6 && host.ipv6 && entry.addr == host.addr;
  if (!entry.wildcard) return entry.name == host.name;
  // "*.example.com": a name ending in ".example.com" with at least one label before it.
  const std::string& n = host.name;
  const std::string& suffix = entry.name;
  return n.size() > suffix.size() + 1 && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0 &&
         n[n.size() - suffix.size() - 1] == '.';
}

}  // namespace

bool HostAllowed(std::string_view host_header, const std::vector<std::string>& allowed) {
  if (allowed.empty()) return true;
  auto host = Parse(host_header, /*entry=*/false);
  if (!host) return false;
  for (const auto& a : allowed) {
    auto entry = Parse(a, /*entry=*/true);
    if (entry && Matches(*entry, *host)) return true;
  }
  return false;
}

Status ValidateAllowedHost(std::string_view entry) {
  if (entry == "*") {
    return Status::InvalidArgument("\"*\" is not an allowed host; leave allowed_hosts empty to allow any Host");
  }
  if (!Parse(entry, /*entry=*/true)) {
    return Status::InvalidArgument("\"" + std::string(entry.substr(0, 100)) +
                                   "\" is not HOST, HOST:PORT, *.DOMAIN[:PORT] or an IPv6 address ([::1]:PORT)");
  }
  return Status::Ok();
}

Status ValidateAllowedHosts(const std::vector<std::string>& entries) {
  for (size_t i = 0; i < entries.size(); ++i) {
    if (Status st = ValidateAllowedHost(entries[i]); !st.ok()) {
      return Status::InvalidArgument("allowed_hosts[" + std::to_string(i) + "]: " + st.message());
    }
  }
  return Status::Ok();
}

}  // namespace portcullis::proxy
