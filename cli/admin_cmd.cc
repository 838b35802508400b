// `portcullis admin`: a client for the admin API of `portcullis serve`
// (--admin-listen): cache statistics, listing, purge, gc, fsck, prefetch,
// health and metrics. Speaks plain HTTP(S) with a bearer token read from a
// file; the token itself is never printed.
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <httplib.h>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "cli/commands.h"
#include "cli/flags.h"
#include "oci/http_client.h"
#include "oci/json_fields.h"
#include "oci/status.h"

namespace portcullis::cli {

namespace {

using nlohmann::json;

constexpr int kExitOk = 0;
constexpr int kExitRefused = 1;  // fsck found bad blobs; health: answered but not healthy/ready
constexpr int kExitError = 2;

constexpr const char* kDefaultServer = "http://127.0.0.1:5001";
constexpr const char* kDefaultTokenFile = "./portcullis-data/admin.token";
constexpr const char* kTokenEnv = "PORTCULLIS_ADMIN_TOKEN_FILE";
constexpr int kDefaultTimeout = 600;
constexpr size_t kMaxBody = 256u << 20;  // a cache listing of a large cache is big, but not this big

constexpr const char* kUsage = R"(Usage: portcullis admin [flags] <command> [args]

Talks to the admin API of a running "portcullis serve" (its --admin-listen address).
Every command except "health" sends the admin token as "Authorization: Bearer";
the token is read from the first line of the token file and never printed.

Commands:
  cache stats          blob and manifest counts, bytes, bound and evictions
  cache ls [REPO]      cached blobs and manifests (REPO: UPSTREAM/REPO, e.g. docker.io/library/alpine)
  cache purge TARGET   drop a repository (UPSTREAM/REPO) or one digest (sha256:...) from the cache
  cache gc             drop blobs and manifests no repository links any more
  cache fsck           re-hash every stored blob and manifest; bad ones are dropped (exit 1 if any)
  prefetch IMAGE       pull IMAGE (e.g. docker.io/library/alpine:3.20) into the cache
  policy reload        re-read the config file and trust policy (a broken one is refused)
  policy test IMAGE    the rule, verdict and reason the server's policy gives IMAGE
  health               /healthz and /readyz (needs no token)
  metrics              the Prometheus metrics, as the server writes them

Flags (accepted before or after the command):
  --server URL         admin API address (default http://127.0.0.1:5001; http:// or https://)
  --token-file FILE    file whose first line is the admin token (default: $PORTCULLIS_ADMIN_TOKEN_FILE,
                       else ./portcullis-data/admin.token, which "serve" creates in its data dir)
  --json               print the server's JSON instead of tables
  --timeout SECONDS    give up on a silent server after this long (default 600)

Run "portcullis admin <command> --help" for details.
Exit codes: 0 success, 1 fsck found bad blobs (or health: not healthy/ready),
2 usage or runtime error (server unreachable, token refused, error answers).
)";

constexpr const char* kCacheUsage = R"(Usage: portcullis admin [flags] cache <subcommand> [args]

Subcommands:
  stats          blob and manifest counts, bytes, the --cache-max-bytes bound, evictions
  ls [REPO]      cached blobs (most recently used first) and manifests; REPO limits the
                 listing to one repository, written UPSTREAM/REPO (docker.io/library/alpine)
  purge TARGET   drop UPSTREAM/REPO (its tags, links and the blobs/manifests nothing else
                 links) or one digest sha256:... (and the manifests that need it)
  gc             drop blobs and manifests that no repository links any more
  fsck           re-hash every stored blob and manifest; drop the ones that do not match

Run "portcullis admin cache <subcommand> --help" for details; "portcullis admin --help"
for the flags (--server, --token-file, --json, --timeout).
)";

constexpr const char* kStatsUsage = R"(Usage: portcullis admin [flags] cache stats

Prints the cache counters: complete blobs and their bytes, manifests, upstream blob
fetches in flight, the byte bound (--cache-max-bytes of serve; 0 = unbounded) and the
evictions done to keep it. --json prints the server's JSON:
  {"blobs":N,"blob_bytes":N,"manifests":N,"inflight_fetches":N,"max_bytes":N,
   "evictions":N,"evicted_bytes":N}
)";

constexpr const char* kLsUsage = R"(Usage: portcullis admin [flags] cache ls [REPO]

Lists the cached blobs (digest, size, time since last access, repositories that link
them; most recently used first, so the next LRU victims are at the bottom) and the
cached manifests (digest, type, size, tags or repositories). REPO, written
UPSTREAM/REPO (e.g. docker.io/library/alpine), limits the listing to one repository.
--json prints the server's JSON.
)";

constexpr const char* kPurgeUsage = R"(Usage: portcullis admin [flags] cache purge TARGET

TARGET is a repository, UPSTREAM/REPO (e.g. docker.io/library/alpine): its tags and
links are dropped, and so are the blobs and manifests no other repository links; or
a digest sha256:<64 hex>: that blob or manifest is dropped wherever it is linked,
with the manifests that need it. The next pull of what was dropped goes upstream again.
Prints what was removed; an error (exit 2) when nothing matched TARGET.
)";

constexpr const char* kGcUsage = R"(Usage: portcullis admin [flags] cache gc

Drops the blobs and manifests that no repository links any more (left over after
purges and tag moves) and prints how many, and how many bytes, were freed.
)";

constexpr const char* kFsckUsage = R"(Usage: portcullis admin [flags] cache fsck

Re-hashes every stored blob and manifest; those whose bytes do not match their
digest or cannot be read (disk corruption) are dropped, so the next request fetches
them from upstream again.
Reading everything takes a while on a large cache (see --timeout).
Exit 0 when everything is good, 1 when bad content was found (the digests are
listed), 2 on errors.
)";

constexpr const char* kPrefetchUsage = R"(Usage: portcullis admin [flags] prefetch IMAGE

Has the proxy pull IMAGE into its cache: the manifest and every blob (for an index,
every child manifest and its blobs). IMAGE is UPSTREAM/REPO:TAG or UPSTREAM/REPO@DIGEST
where UPSTREAM is one of the proxy's upstream names (e.g. docker.io/library/alpine:3.20);
without an upstream name the default upstream is used, with Docker Hub naming
("alpine" = library/alpine:latest).
On a terminal (stderr) each manifest and blob is shown as it is done; otherwise
nothing is printed until the result. --json prints the server's JSON lines as they come.
)";

constexpr const char* kHealthUsage = R"(Usage: portcullis admin [flags] health

Asks /healthz (the process answers) and /readyz (the cache database is usable).
Needs no token. Exit 0 when both are fine, 1 when the server answered but is not
healthy or not ready, 2 when it cannot be reached.
--json prints {"healthz": "...", "healthz_status": N, "readyz": <the server's JSON>,
"readyz_status": N}.
)";

constexpr const char* kMetricsUsage = R"(Usage: portcullis admin [flags] metrics

Prints the server's Prometheus metrics (text exposition format) as they are, e.g.
portcullis_cache_requests_total, portcullis_served_bytes_total, portcullis_evictions_total.
)";

// ---------------------------------------------------------------- flags

StatusOr<Flags> ParseFlags(const std::vector<std::string>& args) {
  return cli::ParseFlags(args, FlagSpec{{"--server", "--token-file", "--timeout"}, {"--json"}, {}});
}

int Fail(std::string_view cmd, const std::string& message) {
  std::cerr << "portcullis admin" << (cmd.empty() ? "" : " ") << cmd << ": " << message << "\n";
  return kExitError;
}

int Fail(std::string_view cmd, const Status& st) { return Fail(cmd, st.message()); }

// ---------------------------------------------------------------- formatting

std::string HumanBytes(uint64_t n) {
  static const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  if (n < 1024) return std::to_string(n) + " B";
  double v = static_cast<double>(n) / 1024;
  size_t u = 0;
  while (v >= 1024 && u + 1 < std::size(kUnits)) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", v, kUnits[u]);
  return buf;
}

std::string Plural(uint64_t n, std::string_view one, std::string_view many) {
  return std::to_string(n) + " " + std::string(n == 1 ? one : many);
}

std::string Age(int64_t then) {
  if (then <= 0) return "-";
  int64_t now =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  int64_t d = now - then;
  if (d < 0) d = 0;
  if (d < 120) return std::to_string(d) + "s ago";
  if (d < 2 * 3600) return std::to_string(d / 60) + "m ago";
  if (d < 2 * 86400) return std::to_string(d / 3600) + "h ago";
  return std::to_string(d / 86400) + "d ago";
}

std::string ShortMediaType(const std::string& mt) {
  if (mt == "application/vnd.oci.image.manifest.v1+json") return "oci manifest";
  if (mt == "application/vnd.oci.image.index.v1+json") return "oci index";
  if (mt == "application/vnd.docker.distribution.manifest.v2+json") return "docker v2s2";
  if (mt == "application/vnd.docker.distribution.manifest.list.v2+json") return "docker list";
  if (mt == "application/vnd.docker.distribution.manifest.v1+json" ||
      mt == "application/vnd.docker.distribution.manifest.v1+prettyjws") {
    return "docker v2s1";
  }
  return mt.empty() ? "-" : mt;
}

// Replaces control characters so server text cannot move the terminal around.
std::string Printable(std::string_view s, size_t max = 300) {
  std::string out;
  for (unsigned char c : s) {
    if (out.size() >= max) {
      out += "...";
      break;
    }
    out.push_back(c < 0x20 || c == 0x7f ? ' ' : static_cast<char>(c));
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

// Prints rows as columns separated by two spaces; `right` marks right-aligned
// columns. The last column is not padded.
void PrintTable(std::ostream& os, const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows,
                const std::set<size_t>& right) {
  std::vector<size_t> width(header.size(), 0);
  for (size_t i = 0; i < header.size(); ++i) width[i] = header[i].size();
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size() && i < width.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  auto line = [&](const std::vector<std::string>& r) {
    std::string out;
    for (size_t i = 0; i < r.size(); ++i) {
      const bool last = i + 1 == r.size();
      const size_t pad = width[i] > r[i].size() ? width[i] - r[i].size() : 0;
      if (right.count(i) != 0) out.append(pad, ' ');
      out += r[i];
      if (!last && right.count(i) == 0) out.append(pad, ' ');
      if (!last) out += "  ";
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    os << out << "\n";
  };
  line(header);
  for (const auto& r : rows) line(r);
}

std::string Join(const std::vector<std::string>& v, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i > 0) out += sep;
    out += v[i];
  }
  return out;
}

// Query values: unreserved characters and the ones a query may hold as they are
// (":/@"), everything else percent-encoded.
std::string QueryValue(std::string_view s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == ':' || c == '/' || c == '@') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

// JSON accessors that tolerate missing or mistyped fields.
uint64_t U64(const json& j, const char* key) {
  if (!j.is_object()) return 0;
  auto it = j.find(key);
  if (it == j.end()) return 0;
  if (it->is_number_unsigned()) return it->get<uint64_t>();
  if (it->is_number_integer()) return static_cast<uint64_t>(std::max<int64_t>(0, it->get<int64_t>()));
  if (it->is_number_float()) return static_cast<uint64_t>(std::max(0.0, it->get<double>()));
  return 0;
}
int64_t I64(const json& j, const char* key) {
  if (!j.is_object()) return 0;
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return 0;
  return it->is_number_float() ? static_cast<int64_t>(it->get<double>()) : it->get<int64_t>();
}
std::string Str(const json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}
std::vector<std::string> Strings(const json& j, const char* key) {
  std::vector<std::string> out;
  if (!j.is_object()) return out;
  auto it = j.find(key);
  if (it == j.end() || !it->is_array()) return out;
  for (const auto& e : *it) {
    if (e.is_string()) out.push_back(e.get<std::string>());
  }
  return out;
}

// ---------------------------------------------------------------- the client

struct Reply {
  int status = 0;
  std::string content_type;
  std::string body;
};

class AdminClient {
 public:
  AdminClient(oci::Url url, std::string token, int timeout_seconds)
      : url_(std::move(url)), token_(std::move(token)), timeout_(timeout_seconds) {}

  std::string server() const { return url_.scheme + "://" + url_.host + ":" + std::to_string(url_.port) + url_.path; }

  // Sends the request; a 2xx body goes to `on_data` when given, else into the
  // reply (as does any non-2xx body, up to 64 KiB).
  StatusOr<Reply> Do(const std::string& method, const std::string& target, bool auth,
                     const std::function<bool(const char*, size_t)>& on_data = nullptr) {
    httplib::Client cli(url_.Origin());
    cli.set_connection_timeout(std::chrono::seconds(10));
    cli.set_read_timeout(std::chrono::seconds(timeout_));
    cli.set_write_timeout(std::chrono::seconds(60));
    cli.set_keep_alive(false);
    cli.set_url_encode(false);
    cli.set_decompress(true);
    if (url_.scheme == "https") cli.enable_server_certificate_verification(true);

    httplib::Request req;
    req.method = method;
    req.path = url_.path + target;
    req.headers.emplace("User-Agent", "portcullis-admin/0.1");
    req.headers.emplace("Accept", "application/json, text/plain;q=0.9, */*;q=0.5");
    if (auth) req.headers.emplace("Authorization", "Bearer " + token_);
    if (method == "POST") {
      req.body = "";
      req.headers.emplace("Content-Type", "application/json");
    }
    Reply out;
    bool stream = false, too_big = false, stopped = false;
    req.response_handler = [&](const httplib::Response& r) {
      out.status = r.status;
      out.content_type = r.get_header_value("Content-Type");
      stream = on_data != nullptr && r.status >= 200 && r.status < 300;
      return true;
    };
    req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
      if (stream) {
        if (!on_data(data, n)) {
          stopped = true;
          return false;
        }
        return true;
      }
      const size_t cap = (out.status >= 200 && out.status < 300) ? kMaxBody : size_t(64 * 1024);
      if (out.body.size() + n > cap) {
        too_big = true;
        return false;
      }
      out.body.append(data, n);
      return true;
    };
    httplib::Response res;
    httplib::Error err = httplib::Error::Success;
    const bool ok = cli.send(req, res, err);
    if (ok && out.status == 0) {  // no body: the response handler was not called
      out.status = res.status;
      out.content_type = res.get_header_value("Content-Type");
    }
    if (ok || stopped) return out;
    if (too_big) return Status::SizeInvalid(method + " " + target + ": the answer is larger than expected");
    if (out.status != 0 && err == httplib::Error::Read) {
      return Status::UpstreamUnavailable(method + " " + server() + target +
                                         ": the connection broke while reading the answer (server stopped?)");
    }
    std::string why;
    if (err == httplib::Error::Connection) {
      why = "could not connect (is \"portcullis serve\" running, with its admin API on this address? see "
            "serve --admin-listen)";
    } else if (err == httplib::Error::Read) {
      why = "no answer within " + std::to_string(timeout_) + "s, or the connection broke (see --timeout)";
    } else if (err == httplib::Error::SSLConnection || err == httplib::Error::SSLServerVerification) {
      why = "TLS handshake or certificate verification failed (" + httplib::to_string(err) + ")";
    } else {
      why = "HTTP client error \"" + httplib::to_string(err) + "\"";
    }
    return Status::UpstreamUnavailable("cannot reach the admin API at " + server() + ": " + why);
  }

 private:
  oci::Url url_;
  std::string token_;
  int timeout_;
};

// Explains a non-2xx answer. Never includes the token.
std::string DescribeError(const Reply& r, const std::string& what) {
  if (r.status == 401) return "the admin API refused the token (401): check --token-file";
  std::string msg = what + ": the server answered HTTP " + std::to_string(r.status);
  auto j = json::parse(r.body, nullptr, false);
  if (!j.is_discarded() && j.is_object() && j.contains("errors") && j["errors"].is_array() && !j["errors"].empty()) {
    std::vector<std::string> parts;
    for (const auto& e : j["errors"]) {
      std::string code = Str(e, "code"), m = Str(e, "message");
      parts.push_back(Printable(code + (code.empty() || m.empty() ? "" : ": ") + m));
    }
    return msg + " " + Join(parts, "; ");
  }
  if (r.status == 404) {
    return msg + " (no such endpoint: is --server the admin address of a portcullis serve with the admin API, "
                 "not its registry address?)";
  }
  std::string body = Printable(r.body, 200);
  return body.empty() ? msg : msg + ": " + body;
}

StatusOr<std::string> ReadToken(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Status::InvalidArgument("cannot read the admin token file " + path + ": " + std::strerror(errno) +
                                   " (give --token-file FILE or set $" + kTokenEnv +
                                   "; serve writes <data-dir>/admin.token)");
  }
  std::string line;
  std::getline(in, line);
  if (in.bad()) return Status::IoError("cannot read the admin token file " + path);
  while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
  size_t start = 0;
  while (start < line.size() && std::isspace(static_cast<unsigned char>(line[start]))) ++start;
  line.erase(0, start);
  if (line.empty()) return Status::InvalidArgument("the admin token file " + path + " has an empty first line");
  for (unsigned char c : line) {
    if (c < 0x21 || c > 0x7e) {
      return Status::InvalidArgument("the first line of the admin token file " + path +
                                     " holds characters a token cannot have (spaces or control characters)");
    }
  }
  return line;
}

std::string TokenPath(const Flags& flags) {
  if (flags.Has("--token-file")) return flags.Value("--token-file");
  if (const char* env = std::getenv(kTokenEnv); env != nullptr && *env != '\0') return env;
  return kDefaultTokenFile;
}

StatusOr<oci::Url> ServerUrl(const Flags& flags) {
  std::string s = flags.Has("--server") ? flags.Value("--server") : kDefaultServer;
  if (s.find("://") == std::string::npos) s = "http://" + s;  // "127.0.0.1:5001"
  auto u = oci::ParseUrl(s);
  if (!u.ok()) return u.status().Annotate("--server");
  if (u->path.find_first_of("?#") != std::string::npos) {
    return Status::InvalidArgument("--server \"" + s + "\" must not have a query or fragment");
  }
  return u;
}

StatusOr<int> Timeout(const Flags& flags) {
  if (!flags.Has("--timeout")) return kDefaultTimeout;
  const std::string v = flags.Value("--timeout");
  if (v.size() > 7 || !std::all_of(v.begin(), v.end(), ::isdigit) || std::stoi(v) <= 0) {
    return Status::InvalidArgument("--timeout wants a positive number of seconds, not \"" + v + "\"");
  }
  return std::stoi(v);
}

StatusOr<AdminClient> MakeClient(const Flags& flags, bool need_token) {
  PC_ASSIGN_OR_RETURN(oci::Url url, ServerUrl(flags));
  PC_ASSIGN_OR_RETURN(int timeout, Timeout(flags));
  std::string token;
  if (need_token) {
    PC_ASSIGN_OR_RETURN(token, ReadToken(TokenPath(flags)));
  }
  return AdminClient(std::move(url), std::move(token), timeout);
}

// GET/POST with the token; a 2xx JSON body parsed.
StatusOr<json> CallJson(AdminClient& client, const std::string& method, const std::string& target,
                        std::string* raw = nullptr) {
  PC_ASSIGN_OR_RETURN(Reply r, client.Do(method, target, /*auth=*/true));
  if (r.status < 200 || r.status >= 300) return Status::InvalidArgument(DescribeError(r, method + " " + target));
  auto j = json::parse(r.body, nullptr, false);
  if (j.is_discarded()) {
    return Status::InvalidArgument(method + " " + target + ": the server's answer is not JSON: " +
                                   Printable(r.body, 120));
  }
  if (raw != nullptr) *raw = r.body;
  return j;
}

void PrintJson(const std::string& raw) {
  std::cout << raw;
  if (raw.empty() || raw.back() != '\n') std::cout << "\n";
}

// ---------------------------------------------------------------- commands

int CacheStats(const Flags& flags) {
  const char* cmd = "cache stats";
  if (flags.positional.size() > 2) return Fail(cmd, "unexpected argument \"" + flags.positional[2] + "\"");
  auto client = MakeClient(flags, true);
  if (!client.ok()) return Fail(cmd, client.status());
  std::string raw;
  auto j = CallJson(*client, "GET", "/api/v1/cache/stats", &raw);
  if (!j.ok()) return Fail(cmd, j.status());
  if (flags.Has("--json")) {
    PrintJson(raw);
    return kExitOk;
  }
  const uint64_t max = U64(*j, "max_bytes"), bytes = U64(*j, "blob_bytes");
  std::vector<std::vector<std::string>> rows = {
      {"blobs", std::to_string(U64(*j, "blobs"))},
      {"blob bytes", HumanBytes(bytes) + " (" + std::to_string(bytes) + ")"},
      {"manifests", std::to_string(U64(*j, "manifests"))},
      {"in-flight fetches", std::to_string(U64(*j, "inflight_fetches"))},
  };
  if (max == 0) {
    rows.push_back({"max bytes", "unbounded"});
  } else {
    char pct[32];
    std::snprintf(pct, sizeof pct, "%.0f%%", 100.0 * static_cast<double>(bytes) / static_cast<double>(max));
    rows.push_back({"max bytes", HumanBytes(max) + " (" + std::to_string(max) + "; " + pct + " used)"});
  }
  rows.push_back({"evictions", std::to_string(U64(*j, "evictions")) + " (" + HumanBytes(U64(*j, "evicted_bytes")) +
                                   ")"});
  for (const auto& r : rows) {
    std::cout << r[0] << std::string(19 - r[0].size(), ' ') << r[1] << "\n";
  }
  return kExitOk;
}

int CacheLs(const Flags& flags) {
  const char* cmd = "cache ls";
  if (flags.positional.size() > 3) return Fail(cmd, "unexpected argument \"" + flags.positional[3] + "\"");
  std::string target = "/api/v1/cache/ls";
  std::string repo;
  if (flags.positional.size() == 3) {
    repo = flags.positional[2];
    if (repo.find_first_of(" \t\r\n") != std::string::npos) return Fail(cmd, "REPO must not contain spaces");
    target += "?repo=" + QueryValue(repo);
  }
  auto client = MakeClient(flags, true);
  if (!client.ok()) return Fail(cmd, client.status());
  std::string raw;
  auto j = CallJson(*client, "GET", target, &raw);
  if (!j.ok()) return Fail(cmd, j.status());
  if (flags.Has("--json")) {
    PrintJson(raw);
    return kExitOk;
  }
  struct Blob {
    std::string digest;
    uint64_t size;
    int64_t last_access;
    std::vector<std::string> repos;
  };
  std::vector<Blob> blobs;
  uint64_t total = 0;
  if (j->contains("blobs") && (*j)["blobs"].is_array()) {
    for (const auto& b : (*j)["blobs"]) {
      blobs.push_back({Str(b, "digest"), U64(b, "size"), I64(b, "last_access"), Strings(b, "repos")});
      total += blobs.back().size;
    }
  }
  std::stable_sort(blobs.begin(), blobs.end(), [](const Blob& a, const Blob& b) {
    return a.last_access != b.last_access ? a.last_access > b.last_access : a.digest < b.digest;
  });
  std::vector<std::vector<std::string>> rows;
  for (const auto& b : blobs) {
    rows.push_back({b.digest, HumanBytes(b.size), Age(b.last_access), b.repos.empty() ? "-" : Join(b.repos, ",")});
  }
  std::cout << "BLOBS (" << Plural(blobs.size(), "blob", "blobs") << ", " << HumanBytes(total)
            << (repo.empty() ? "" : " linked by " + repo) << ")\n";
  if (!rows.empty()) PrintTable(std::cout, {"DIGEST", "SIZE", "LAST USE", "REPOSITORIES"}, rows, {1});

  rows.clear();
  size_t nman = 0;
  if (j->contains("manifests") && (*j)["manifests"].is_array()) {
    for (const auto& m : (*j)["manifests"]) {
      ++nman;
      std::vector<std::string> tags = Strings(m, "tags"), repos = Strings(m, "repos");
      std::string refs = !tags.empty() ? Join(tags, ",") : repos.empty() ? "-" : "(untagged) " + Join(repos, ",");
      rows.push_back({Str(m, "digest"), ShortMediaType(Str(m, "media_type")), HumanBytes(U64(m, "size")), refs});
    }
  }
  std::cout << "\nMANIFESTS (" << Plural(nman, "manifest", "manifests") << ")\n";
  if (!rows.empty()) PrintTable(std::cout, {"DIGEST", "TYPE", "SIZE", "TAGS / REPOSITORIES"}, rows, {2});
  return kExitOk;
}

int CachePurge(const Flags& flags) {
  const char* cmd = "cache purge";
  if (flags.positional.size() < 3) return Fail(cmd, "want a TARGET: UPSTREAM/REPO or sha256:<hex> (see --help)");
  if (flags.positional.size() > 3) return Fail(cmd, "unexpected argument \"" + flags.positional[3] + "\"");
  const std::string target = flags.positional[2];
  if (target.find_first_of(" \t\r\n") != std::string::npos) return Fail(cmd, "TARGET must not contain spaces");
  auto client = MakeClient(flags, true);
  if (!client.ok()) return Fail(cmd, client.status());
  std::string raw;
  auto j = CallJson(*client, "POST", "/api/v1/cache/purge?target=" + QueryValue(target), &raw);
  if (!j.ok()) return Fail(cmd, j.status());
  if (flags.Has("--json")) {
    PrintJson(raw);
    return kExitOk;
  }
  std::cout << "purged " << target << ": " << Plural(U64(*j, "blobs"), "blob", "blobs") << ", "
            << Plural(U64(*j, "manifests"), "manifest", "manifests") << ", " << Plural(U64(*j, "tags"), "tag", "tags")
            << "\n";
  return kExitOk;
}

int CacheGc(const Flags& flags) {
  const char* cmd = "cache gc";
  if (flags.positional.size() > 2) return Fail(cmd, "unexpected argument \"" + flags.positional[2] + "\"");
  auto client = MakeClient(flags, true);
  if (!client.ok()) return Fail(cmd, client.status());
  std::string raw;
  auto j = CallJson(*client, "POST", "/api/v1/cache/gc", &raw);
  if (!j.ok()) return Fail(cmd, j.status());
  if (flags.Has("--json")) {
    PrintJson(raw);
    return kExitOk;
  }
  std::cout << "gc removed " << Plural(U64(*j, "blobs"), "blob", "blobs") << " (" << HumanBytes(U64(*j, "bytes"))
            << ") and " << Plural(U64(*j, "manifests"), "manifest", "manifests") << "\n";
  return kExitOk;
}

int CacheFsck(const Flags& flags) {
  const char* cmd = "cache fsck";
  if (flags.positional.size() > 2) return Fail(cmd, "unexpected argument \"" + flags.positional[2] + "\"");
  auto client = MakeClient(flags, true);
  if (!client.ok()) return Fail(cmd, client.status());
  std::string raw;
  auto j = CallJson(*client, "POST", "/api/v1/cache/fsck", &raw);
  if (!j.ok()) return Fail(cmd, j.status());
  std::vector<std::string> bad = Strings(*j, "bad");
  if (flags.Has("--json")) {
    PrintJson(raw);
  } else if (bad.empty()) {
    std::cout << "checked " << Plural(U64(*j, "checked"), "stored blob or manifest", "stored blobs and manifests")
              << ": all match their digests\n";
  } else {
    std::cout << "checked " << Plural(U64(*j, "checked"), "stored blob or manifest", "stored blobs and manifests")
              << ": " << bad.size()
              << " did not match their digest; " << U64(*j, "dropped")
              << " dropped (they are fetched from upstream again when asked for):\n";
    for (const auto& d : bad) std::cout << "  " << Printable(d) << "\n";
  }
  return bad.empty() ? kExitOk : kExitRefused;
}

constexpr const char* kPolicyUsage = R"(Usage: portcullis admin [flags] policy reload | policy test IMAGE

  policy reload      re-read the server's config file and trust policy (as SIGHUP does);
                     a broken file is refused and the old policy stays in force
  policy test IMAGE  what the server's policy decides for IMAGE (e.g. upstream.test/lab/small:v1):
                     the rule, the verdict and the reason; exit 0 accepted or warn, 1 refused
)";

int PolicyCmd(const Flags& flags) {
  const auto& pos = flags.positional;
  if (pos.size() < 2) return Fail("policy", "want reload or test IMAGE (see --help)");
  const std::string cmd = "policy " + pos[1];
  auto client = MakeClient(flags, true);
  if (!client.ok()) return Fail(cmd, client.status());
  std::string raw;
  if (pos[1] == "reload") {
    if (pos.size() > 2) return Fail(cmd, "unexpected argument \"" + pos[2] + "\"");
    auto j = CallJson(*client, "POST", "/api/v1/policy/reload", &raw);
    if (!j.ok()) return Fail(cmd, j.status());
    if (flags.Has("--json")) {
      PrintJson(raw);
    } else {
      std::cout << "reloaded; policy " << Printable(j->value("policy", std::string("(none)"))) << " version "
                << Printable(j->value("version", std::string("-"))) << "\n";
    }
    return kExitOk;
  }
  if (pos[1] == "test") {
    if (pos.size() != 3) return Fail(cmd, "want exactly one IMAGE");
    auto j = CallJson(*client, "GET", "/api/v1/policy/test?image=" + QueryValue(pos[2]), &raw);
    if (!j.ok()) return Fail(cmd, j.status());
    const std::string verdict = j->value("verdict", std::string());
    if (flags.Has("--json")) {
      PrintJson(raw);
    } else {
      std::cout << Printable(j->value("image", pos[2])) << "@" << Printable(j->value("digest", std::string())) << "\n"
                << "  rule     " << Printable(j->value("rule", std::string())) << "\n"
                << "  verdict  " << Printable(verdict) << "\n"
                << "  reason   " << Printable(j->value("reason", std::string())) << "\n";
    }
    return verdict == "reject" ? kExitRefused : kExitOk;
  }
  return Fail("policy", "unknown subcommand \"" + pos[1] + "\" (want reload or test IMAGE)");
}

int Prefetch(const Flags& flags) {
  const char* cmd = "prefetch";
  if (flags.positional.size() < 2) return Fail(cmd, "want an IMAGE, e.g. docker.io/library/alpine:3.20 (see --help)");
  if (flags.positional.size() > 2) return Fail(cmd, "unexpected argument \"" + flags.positional[2] + "\"");
  const std::string image = flags.positional[1];
  if (image.empty() || image.find_first_of(" \t\r\n") != std::string::npos) {
    return Fail(cmd, "IMAGE must not be empty or contain spaces");
  }
  auto client = MakeClient(flags, true);
  if (!client.ok()) return Fail(cmd, client.status());
  const bool as_json = flags.Has("--json");
  const bool progress = !as_json && ::isatty(STDERR_FILENO) == 1;

  std::string pending;
  json last;  // the last event seen
  bool saw_final = false;
  std::string bad_line;
  auto on_line = [&](const std::string& line) {
    if (line.empty()) return;
    if (as_json) {
      std::cout << line << "\n" << std::flush;
    }
    auto ev = json::parse(line, nullptr, false);
    if (ev.is_discarded() || !ev.is_object()) {
      if (bad_line.empty()) bad_line = line;
      return;
    }
    last = ev;
    const std::string kind = Str(ev, "event");
    if (kind == "done" || kind == "error") saw_final = true;
    if (!progress) return;
    if (kind == "manifest") {
      std::cerr << "manifest " << Printable(Str(ev, "digest")) << "\n";
    } else if (kind == "blob") {
      const bool cached = ev.contains("cached") && ev["cached"].is_boolean() && ev["cached"].get<bool>();
      std::cerr << "blob     " << Printable(Str(ev, "digest")) << "  " << HumanBytes(U64(ev, "size"))
                << (cached ? "  (already cached)" : "  (fetched)") << "\n";
    }
  };
  auto on_data = [&](const char* data, size_t n) {
    pending.append(data, n);
    size_t nl;
    while ((nl = pending.find('\n')) != std::string::npos) {
      std::string line = pending.substr(0, nl);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      pending.erase(0, nl + 1);
      on_line(line);
    }
    return true;
  };
  auto r = client->Do("POST", "/api/v1/prefetch?image=" + QueryValue(image), /*auth=*/true, on_data);
  if (!r.ok()) {
    if (saw_final && Str(last, "event") == "done") {
      // the result arrived; a broken connection after it changes nothing
    } else {
      return Fail(cmd, r.status().Annotate("prefetch " + image));
    }
  } else if (r->status < 200 || r->status >= 300) {
    return Fail(cmd, DescribeError(*r, "prefetch " + image));
  }
  if (!pending.empty()) on_line(pending);
  if (!saw_final) {
    std::string why = "the server's answer ended before a result (did the server stop?)";
    if (!bad_line.empty()) why += "; it sent a line that is not JSON: " + Printable(bad_line, 120);
    return Fail(cmd, "prefetch " + image + ": " + why);
  }
  if (Str(last, "event") == "error") {
    std::string code = Str(last, "code"), m = Str(last, "message");
    return Fail(cmd, "prefetch " + image + " failed: " + Printable(code + (code.empty() ? "" : ": ") + m));
  }
  if (!as_json) {
    std::string digest = Str(last, "digest"), name = Str(last, "image");
    std::cout << "prefetched " << Printable(name.empty() ? image : name) << (digest.empty() ? "" : "@" + digest)
              << ": " << Plural(U64(last, "manifests"), "manifest", "manifests") << ", "
              << Plural(U64(last, "blobs"), "blob", "blobs") << ", " << HumanBytes(U64(last, "bytes")) << "\n";
  }
  return kExitOk;
}

int Health(const Flags& flags) {
  const char* cmd = "health";
  if (flags.positional.size() > 1) return Fail(cmd, "unexpected argument \"" + flags.positional[1] + "\"");
  auto client = MakeClient(flags, /*need_token=*/false);
  if (!client.ok()) return Fail(cmd, client.status());
  auto h = client->Do("GET", "/healthz", false);
  if (!h.ok()) return Fail(cmd, h.status());
  auto r = client->Do("GET", "/readyz", false);
  if (!r.ok()) return Fail(cmd, r.status());
  const bool healthy = h->status == 200;
  auto rj = json::parse(r->body, nullptr, false);
  const bool ready = r->status == 200 && !rj.is_discarded() && oci::BoolField(rj, "ready").value_or(false);
  if (flags.Has("--json")) {
    std::string htext = h->body;
    while (!htext.empty() && (htext.back() == '\n' || htext.back() == '\r')) htext.pop_back();
    json out = {{"healthz", htext}, {"healthz_status", h->status}, {"readyz_status", r->status}};
    out["readyz"] = rj.is_discarded() ? json(r->body) : rj;
    std::cout << oci::DumpSafe(out) << "\n";
  } else {
    std::cout << "healthz  " << (healthy ? "ok" : "FAILING (HTTP " + std::to_string(h->status) + ")");
    if (!healthy && !h->body.empty()) std::cout << ": " << Printable(h->body, 200);
    std::cout << "\n";
    std::cout << "readyz   " << (ready ? "ready" : "NOT READY (HTTP " + std::to_string(r->status) + ")");
    if (!rj.is_discarded() && rj.is_object() && rj.contains("checks") && rj["checks"].is_object()) {
      std::vector<std::string> checks;
      for (const auto& [k, v] : rj["checks"].items()) {
        checks.push_back(Printable(k) + ": " + Printable(v.is_string() ? v.get<std::string>() : oci::DumpSafe(v), 200));
      }
      if (!checks.empty()) std::cout << " (" << Join(checks, ", ") << ")";
    } else if (!ready && !r->body.empty()) {
      std::cout << ": " << Printable(r->body, 200);
    }
    std::cout << "\n";
  }
  if (h->status == 401 || r->status == 401) {
    std::cerr << "portcullis admin health: /healthz and /readyz should need no token, but the server answered 401\n";
  }
  return healthy && ready ? kExitOk : kExitRefused;
}

int Metrics(const Flags& flags) {
  const char* cmd = "metrics";
  if (flags.positional.size() > 1) return Fail(cmd, "unexpected argument \"" + flags.positional[1] + "\"");
  auto client = MakeClient(flags, true);
  if (!client.ok()) return Fail(cmd, client.status());
  auto r = client->Do("GET", "/metrics", true);
  if (!r.ok()) return Fail(cmd, r.status());
  if (r->status != 200) return Fail(cmd, DescribeError(*r, "GET /metrics"));
  std::cout << r->body;
  if (!r->body.empty() && r->body.back() != '\n') std::cout << "\n";
  return kExitOk;
}

// The usage text for the command named by the first positional words.
const char* UsageFor(const std::vector<std::string>& pos) {
  if (pos.empty()) return kUsage;
  if (pos[0] == "cache") {
    if (pos.size() < 2) return kCacheUsage;
    if (pos[1] == "stats") return kStatsUsage;
    if (pos[1] == "ls") return kLsUsage;
    if (pos[1] == "purge") return kPurgeUsage;
    if (pos[1] == "gc") return kGcUsage;
    if (pos[1] == "fsck") return kFsckUsage;
    return kCacheUsage;
  }
  if (pos[0] == "prefetch") return kPrefetchUsage;
  if (pos[0] == "policy") return kPolicyUsage;
  if (pos[0] == "health") return kHealthUsage;
  if (pos[0] == "metrics") return kMetricsUsage;
  return kUsage;
}

}  // namespace

int RunAdmin(const std::vector<std::string>& args) {
  auto flags = ParseFlags(args);
  if (!flags.ok()) return Fail("", flags.status().message() + " (see portcullis admin --help)");
  std::vector<std::string>& pos = flags->positional;
  if (!pos.empty() && pos[0] == "help") {
    pos.erase(pos.begin());
    flags->help = true;
  }
  if (flags->help) {
    std::cout << UsageFor(pos);
    return kExitOk;
  }
  if (pos.empty()) {
    std::cerr << kUsage;
    return kExitError;
  }
  const std::string& cmd = pos[0];
  if (cmd == "cache") {
    if (pos.size() < 2) {
      std::cerr << "portcullis admin cache: want a subcommand\n\n" << kCacheUsage;
      return kExitError;
    }
    const std::string& sub = pos[1];
    if (sub == "stats") return CacheStats(*flags);
    if (sub == "ls") return CacheLs(*flags);
    if (sub == "purge") return CachePurge(*flags);
    if (sub == "gc") return CacheGc(*flags);
    if (sub == "fsck") return CacheFsck(*flags);
    std::cerr << "portcullis admin cache: unknown subcommand \"" << Printable(sub) << "\"\n\n" << kCacheUsage;
    return kExitError;
  }
  if (cmd == "prefetch") return Prefetch(*flags);
  if (cmd == "policy") return PolicyCmd(*flags);
  if (cmd == "health") return Health(*flags);
  if (cmd == "metrics") return Metrics(*flags);
  std::cerr << "portcullis admin: unknown command \"" << Printable(cmd) << "\"\n\n" << kUsage;
  return kExitError;
}

}  // namespace portcullis::cli
