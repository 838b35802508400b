// Tests of the Host allow-list (proxy/host_check.h, security review L8), written
// as the DNS-rebinding attack: a page on attacker.example rebinds its name to
// 127.0.0.1, and its requests carry "Host: attacker.example[:port]".
#include "proxy/host_check.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace portcullis::proxy {
namespace {

const std::vector<std::string> kLocal = {"localhost", "127.0.0.1", "[::1]"};

TEST_CASE("host check: an empty allow-list allows every Host (the check is off)") {
  CHECK(HostAllowed("attacker.example", {}));
  CHECK(HostAllowed("", {}));
  CHECK(HostAllowed("not a host at all", {}));
}

TEST_CASE("host check: a rebound name is refused, the listed names pass, on any port") {
  CHECK_FALSE(HostAllowed("attacker.example", kLocal));
  CHECK_FALSE(HostAllowed("attacker.example:5000", kLocal));
  CHECK_FALSE(HostAllowed("localhost.attacker.example:5000", kLocal));
  CHECK_FALSE(HostAllowed("127.0.0.1.nip.io:5000", kLocal));
  CHECK_FALSE(HostAllowed("evil-localhost:5000", kLocal));
  CHECK(HostAllowed("localhost", kLocal));
  CHECK(HostAllowed("localhost:5000", kLocal));
  CHECK(HostAllowed("127.0.0.1:5000", kLocal));
  CHECK(HostAllowed("[::1]:5000", kLocal));
  CHECK(HostAllowed("[::1]", kLocal));
}

TEST_CASE("host check: names compare case-insensitively, one trailing dot ignored") {
  CHECK(HostAllowed("LocalHost:5000", kLocal));
  CHECK(HostAllowed("localhost.:5000", kLocal));
  CHECK(HostAllowed("MIRROR.Internal", {"mirror.INTERNAL"}));
  CHECK(HostAllowed("mirror.internal", {"mirror.internal."}));
  CHECK_FALSE(HostAllowed("localhost..:5000", kLocal));
}

TEST_CASE("host check: an entry with a port matches only that port") {
  const std::vector<std::string> a = {"mirror.internal:5000"};
  CHECK(HostAllowed("mirror.internal:5000", a));
  CHECK_FALSE(HostAllowed("mirror.internal:5001", a));
  CHECK_FALSE(HostAllowed("mirror.internal", a));  // no port given: not assumed to be 5000
  CHECK(HostAllowed("mirror.internal:05000", a));  // the same number
  CHECK(HostAllowed("[::1]:5000", {"[::1]:5000"}));
  CHECK_FALSE(HostAllowed("[::1]:5001", {"[::1]:5000"}));
}

TEST_CASE("host check: IPv6 compares as addresses; bare IPv6 only in entries") {
  CHECK(HostAllowed("[0:0:0:0:0:0:0:1]:5000", kLocal));
  CHECK(HostAllowed("[::1]:5000", {"::1"}));
  CHECK(HostAllowed("[FE80::1]", {"[fe80::1]"}));
  CHECK_FALSE(HostAllowed("[::2]:5000", kLocal));
  CHECK_FALSE(HostAllowed("::1", kLocal));             // a Host header needs the brackets
  CHECK_FALSE(HostAllowed("[::1", kLocal));            // unclosed
  CHECK_FALSE(HostAllowed("[::1]x", kLocal));          // junk after the bracket
  CHECK_FALSE(HostAllowed("[::1]:", kLocal));          // empty port
  CHECK_FALSE(HostAllowed("[localhost]:5000", kLocal));
  CHECK_FALSE(HostAllowed("[fe80::1%25eth0]", {"[fe80::1]"}));  // zone ids are not addresses
  // An IPv4 address is not the same host as its IPv4-mapped IPv6 form here.
  CHECK_FALSE(HostAllowed("[::ffff:127.0.0.1]:5000", {"127.0.0.1"}));
}

TEST_CASE("host check: wildcard entries match names under the domain only") {
  const std::vector<std::string> a = {"*.mirror.internal"};
  CHECK(HostAllowed("eu.mirror.internal", a));
  CHECK(HostAllowed("a.b.mirror.internal:5000", a));
  CHECK_FALSE(HostAllowed("mirror.internal", a));
  CHECK_FALSE(HostAllowed("evilmirror.internal", a));
  CHECK_FALSE(HostAllowed("mirror.internal.attacker.example", a));
  CHECK_FALSE(HostAllowed("*.mirror.internal", a));  // '*' is not a name character in a header
  CHECK(HostAllowed("eu.mirror.internal:443", {"*.mirror.internal:443"}));
  CHECK_FALSE(HostAllowed("eu.mirror.internal:80", {"*.mirror.internal:443"}));
}

TEST_CASE("host check: malformed Host headers are refused when the list is on") {
  for (const char* h : {"", ":5000", "localhost:", "localhost:abc", "localhost:65536", "localhost:123456",
                        "localhost:-1", "localhost:+80", "user@localhost", "localhost/v2", "local host",
                        "localhost\r\nX-Evil: 1", "localhost:5000:5000", ".localhost", "localhost\t", "."}) {
    CAPTURE(h);
    CHECK_FALSE(HostAllowed(h, kLocal));
  }
  CHECK_FALSE(HostAllowed(std::string(301, 'a'), {std::string(301, 'a')}));
  CHECK_FALSE(HostAllowed(std::string_view("localhost\0evil", 14), kLocal));
  CHECK(HostAllowed("localhost:65535", kLocal));
  CHECK(HostAllowed("localhost:0", kLocal));
}

TEST_CASE("host check: entries are validated; a bad entry matches nothing") {
  for (const char* e : {"localhost", "localhost:5000", "127.0.0.1", "[::1]", "::1", "[::1]:5000", "*.example.com",
                        "*.example.com:443", "Mirror.Internal."}) {
    CAPTURE(e);
    CHECK(ValidateAllowedHost(e).ok());
  }
  for (const char* e : {"", "*", "*.", "*example.com", "http://localhost", "localhost/", "local host", "[::1",
                        "localhost:99999", "a@b", "example..com", "*.*.example.com"}) {
    CAPTURE(e);
    Status st = ValidateAllowedHost(e);
    CHECK(st.code() == Code::kInvalidArgument);
    CHECK_FALSE(st.message().empty());
  }
  CHECK_FALSE(HostAllowed("localhost", {"http://localhost"}));
  CHECK_FALSE(HostAllowed("anything.example", {"*"}));
  Status st = ValidateAllowedHosts({"localhost", "[::1]:5000", "bad host"});
  CHECK(st.code() == Code::kInvalidArgument);
  CHECK(st.message().find("allowed_hosts[2]") != std::string::npos);
  CHECK(ValidateAllowedHosts({}).ok());
}

}  // namespace
}  // namespace portcullis::proxy
