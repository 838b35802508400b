// The Host check (security review L8): a web page the developer visits can
// rebind its own host name to 127.0.0.1 and read /v2/... through a local proxy,
// which fetches with the configured upstream credentials. Such a request still
// carries the page's host name in its Host header, so an allow-list of Host
// values stops it.
//
// Pure functions, no I/O; safe on any bytes (untrusted Host headers).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "oci/status.h"

namespace portcullis::proxy {

// True when a request with Host header `host_header` may be served under the
// allow-list `allowed` (config field `allowed_hosts`, flag --allowed-hosts).
//
//   - `allowed` empty: every request is allowed (the check is off), even one
//     without a Host header.
//   - Otherwise the header must be a well-formed HOST or HOST:PORT: a DNS name or
//     IPv4 address (letters, digits, '-', '.', '_'), or an IPv6 address in
//     brackets ("[::1]:5000"); a port is 1-5 digits up to 65535. An empty or
//     malformed header (userinfo '@', spaces, a path, a bare IPv6 address,
//     "host:", longer than 300 bytes, ...) is refused.
//   - Names compare case-insensitively, one trailing dot ignored ("LocalHost." =
//     "localhost"); IPv6 addresses compare as addresses ("[0:0::1]" = "[::1]").
//   - An entry HOST (or [IPv6], or a bare IPv6 address such as ::1) matches that
//     host on any port; HOST:PORT only a header naming that port (a header
//     without a port does not match it); "*.example.com" matches every name
//     under example.com (not example.com itself), on any port or the given one.
//   - An entry that ValidateAllowedHost refuses matches nothing.
bool HostAllowed(std::string_view host_header, const std::vector<std::string>& allowed);

// OK when `entry` is a well-formed allow-list entry (see HostAllowed), else
// INVALID_ARGUMENT naming the problem. "*" alone is refused (leave the list
// empty to allow any Host).
Status ValidateAllowedHost(std::string_view entry);

// ValidateAllowedHost over a list; the error names the entry ("allowed_hosts[2]: ...").
Status ValidateAllowedHosts(const std::vector<std::string>& entries);

}  // namespace portcullis::proxy
