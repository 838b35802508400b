#include "config/config.h"

#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "oci/http_client.h"

namespace portcullis::config {

using nlohmann::json;

namespace {

Status Bad(const std::string& origin, const std::string& field, const std::string& what) {
  return Status::InvalidArgument(origin + ": " + field + ": " + what);
}

Status GetString(const json& j, const std::string& origin, const std::string& field, std::string* out) {
  if (!j.is_string()) return Bad(origin, field, "must be a string");
  *out = j.get<std::string>();
  return Status::Ok();
}

Status GetInt(const json& j, const std::string& origin, const std::string& field, int64_t lo, int64_t hi,
              int64_t* out) {
  if (!j.is_number_integer()) return Bad(origin, field, "must be an integer");
  int64_t v = j.get<int64_t>();
  if (v < lo || v > hi) {
    return Bad(origin, field, "must be between " + std::to_string(lo) + " and " + std::to_string(hi));
  }
  *out = v;
  return Status::Ok();
}

StatusOr<Upstream> ParseUpstreamFlag(const std::string& v) {
  auto eq = v.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == v.size()) {
    return Status::InvalidArgument("--upstream " + v + ": expected NAME=URL, e.g. docker.io=https://registry-1.docker.io");
  }
  Upstream u;
  u.name = v.substr(0, eq);
  u.url = v.substr(eq + 1);
  return u;
}

std::optional<int64_t> ParseInt(const std::string& s) {
  if (s.empty() || s.size() > 18) return std::nullopt;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  return std::stoll(s);
}

}  // namespace

StatusOr<Config> Parse(const std::string& text, const std::string& origin) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return Status::InvalidArgument(origin + ": not valid JSON");
  if (!j.is_object()) return Status::InvalidArgument(origin + ": the top level must be a JSON object");
  Config c;
  for (auto& [key, v] : j.items()) {
    if (key == "listen") {
      PC_RETURN_IF_ERROR(GetString(v, origin, key, &c.listen));
    } else if (key == "data_dir") {
      PC_RETURN_IF_ERROR(GetString(v, origin, key, &c.data_dir));
    } else if (key == "default_upstream") {
      PC_RETURN_IF_ERROR(GetString(v, origin, key, &c.default_upstream));
    } else if (key == "docker_config") {
      PC_RETURN_IF_ERROR(GetString(v, origin, key, &c.docker_config));
    } else if (key == "log_level") {
      PC_RETURN_IF_ERROR(GetString(v, origin, key, &c.log_level));
    } else if (key == "admin_listen") {
      PC_RETURN_IF_ERROR(GetString(v, origin, key, &c.admin_listen));
    } else if (key == "admin_token_file") {
      PC_RETURN_IF_ERROR(GetString(v, origin, key, &c.admin_token_file));
    } else if (key == "tls_cert") {
      PC_RETURN_IF_ERROR(GetString(v, origin, key, &c.tls_cert));
    } else if (key == "tls_key") {
      PC_RETURN_IF_ERROR(GetString(v, origin, key, &c.tls_key));
    } else if (key == "cache_max_bytes") {
      PC_RETURN_IF_ERROR(GetInt(v, origin, key, 0, INT64_MAX, &c.cache_max_bytes));
    } else if (key == "policy") {
      PC_RETURN_IF_ERROR(GetString(v, origin, key, &c.policy));
    } else if (key == "cache_writes") {
      PC_RETURN_IF_ERROR(GetString(v, origin, key, &c.cache_writes));
    } else if (key == "blob_gate") {
      PC_RETURN_IF_ERROR(GetString(v, origin, key, &c.blob_gate));
    } else if (key == "verdict_ttl") {
      PC_RETURN_IF_ERROR(GetInt(v, origin, key, 0, 30LL * 86400, &c.verdict_ttl_seconds));
    } else if (key == "tag_ttl") {
      PC_RETURN_IF_ERROR(GetInt(v, origin, key, 0, 365LL * 86400, &c.tag_ttl_seconds));
    } else if (key == "max_stale") {
      PC_RETURN_IF_ERROR(GetInt(v, origin, key, 0, 3650LL * 86400, &c.max_stale_seconds));
    } else if (key == "upstream_timeout") {
      PC_RETURN_IF_ERROR(GetInt(v, origin, key, 1, 3600, &c.upstream_timeout_seconds));
    } else if (key == "fetch_deadline") {
      PC_RETURN_IF_ERROR(GetInt(v, origin, key, 1, 7LL * 86400, &c.fetch_deadline_seconds));
    } else if (key == "max_blob_bytes") {
      PC_RETURN_IF_ERROR(GetInt(v, origin, key, 0, INT64_MAX / 2, &c.max_blob_bytes));
    } else if (key == "threads") {
      int64_t n;
      PC_RETURN_IF_ERROR(GetInt(v, origin, key, 2, 4096, &n));
      c.threads = static_cast<int>(n);
    } else if (key == "io_threads") {
      int64_t n;
      PC_RETURN_IF_ERROR(GetInt(v, origin, key, 0, 64, &n));
      c.io_threads = static_cast<int>(n);
    } else if (key == "max_connections") {
      PC_RETURN_IF_ERROR(GetInt(v, origin, key, 1, 1 << 20, &c.max_connections));
    } else if (key == "max_connections_per_client") {
      PC_RETURN_IF_ERROR(GetInt(v, origin, key, 0, 1 << 20, &c.max_connections_per_client));
    } else if (key == "max_downloads") {
      PC_RETURN_IF_ERROR(GetInt(v, origin, key, 1, 1 << 20, &c.max_downloads));
    } else if (key == "idle_timeout") {
      PC_RETURN_IF_ERROR(GetInt(v, origin, key, 1, 86400, &c.idle_timeout_seconds));
    } else if (key == "send_window") {
      PC_RETURN_IF_ERROR(GetInt(v, origin, key, 1, 3600, &c.send_window_seconds));
    } else if (key == "min_send_rate") {
      PC_RETURN_IF_ERROR(GetInt(v, origin, key, 0, 1LL << 30, &c.min_send_rate));
    } else if (key == "max_inflight_fetches") {
      int64_t n;
      PC_RETURN_IF_ERROR(GetInt(v, origin, key, 1, 4096, &n));
      c.max_inflight_fetches = static_cast<int>(n);
    } else if (key == "chunk_bytes") {
      PC_RETURN_IF_ERROR(GetInt(v, origin, key, 4096, 64LL << 20, &c.chunk_bytes));
    } else if (key == "allowed_hosts") {
      if (!v.is_array()) return Bad(origin, key, "must be an array of strings");
      if (v.size() > 1024) return Bad(origin, key, "at most 1024 entries");
      for (size_t i = 0; i < v.size(); ++i) {
        std::string h;
        PC_RETURN_IF_ERROR(GetString(v[i], origin, key + "[" + std::to_string(i) + "]", &h));
        c.allowed_hosts.push_back(h);
      }
    } else if (key == "upstreams") {
      if (!v.is_array()) return Bad(origin, key, "must be an array of {name, url, ...}");
      for (size_t i = 0; i < v.size(); ++i) {
        std::string f = "upstreams[" + std::to_string(i) + "]";
        const json& e = v[i];
        if (!e.is_object()) return Bad(origin, f, "must be an object");
        Upstream u;
        for (auto& [uk, uv] : e.items()) {
          std::string uf = f + "." + uk;
          if (uk == "name") {
            PC_RETURN_IF_ERROR(GetString(uv, origin, uf, &u.name));
          } else if (uk == "url") {
            PC_RETURN_IF_ERROR(GetString(uv, origin, uf, &u.url));
          } else if (uk == "username") {
            PC_RETURN_IF_ERROR(GetString(uv, origin, uf, &u.username));
          } else if (uk == "password_file") {
            PC_RETURN_IF_ERROR(GetString(uv, origin, uf, &u.password_file));
          } else if (uk == "ca_file") {
            PC_RETURN_IF_ERROR(GetString(uv, origin, uf, &u.ca_file));
          } else {
            return Bad(origin, uf, "unknown field (known: name, url, username, password_file, ca_file)");
          }
        }
        if (u.name.empty()) return Bad(origin, f + ".name", "is required");
        if (u.url.empty()) return Bad(origin, f + ".url", "is required");
        c.upstreams.push_back(u);
      }
    } else {
      return Bad(origin, key, "unknown field");
    }
  }
  return c;
}

StatusOr<Config> LoadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::InvalidArgument("cannot read config file " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return Parse(ss.str(), path);
}

StatusOr<Config> FromArgs(const std::vector<std::string>& args, bool* help) {
  *help = false;
  Config c;
  // The file first, so flags win wherever they stand.
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--config") {
      if (i + 1 >= args.size()) return Status::InvalidArgument("--config needs a FILE");
      PC_ASSIGN_OR_RETURN(c, LoadFile(args[i + 1]));
    } else if (args[i].rfind("--config=", 0) == 0) {
      PC_ASSIGN_OR_RETURN(c, LoadFile(args[i].substr(9)));
    }
  }
  bool flag_upstreams = false;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string flag = args[i], value;
    bool has_inline = false;
    if (auto eq = flag.find('='); flag.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
      has_inline = true;
    }
    if (flag == "--help" || flag == "-h") {
      *help = true;
      return c;
    }
    auto need = [&]() -> StatusOr<std::string> {
      if (has_inline) return value;
      if (i + 1 >= args.size()) return Status::InvalidArgument(flag + " needs a value");
      return args[++i];
    };
    auto need_int = [&](int64_t lo, int64_t hi) -> StatusOr<int64_t> {
      PC_ASSIGN_OR_RETURN(std::string s, need());
      auto n = ParseInt(s);
      if (!n || *n < lo || *n > hi) {
        return Status::InvalidArgument(flag + " " + s + ": must be an integer between " + std::to_string(lo) +
                                       " and " + std::to_string(hi));
      }
      return *n;
    };
    if (flag == "--config") {
      PC_RETURN_IF_ERROR(need().status());
    } else if (flag == "--listen") {
      PC_ASSIGN_OR_RETURN(c.listen, need());
    } else if (flag == "--data-dir") {
      PC_ASSIGN_OR_RETURN(c.data_dir, need());
    } else if (flag == "--upstream") {
      PC_ASSIGN_OR_RETURN(std::string v, need());
      PC_ASSIGN_OR_RETURN(Upstream u, ParseUpstreamFlag(v));
      if (!flag_upstreams) c.upstreams.clear();  // flags replace the file's list
      flag_upstreams = true;
      c.upstreams.push_back(u);
    } else if (flag == "--default-upstream") {
      PC_ASSIGN_OR_RETURN(c.default_upstream, need());
    } else if (flag == "--tag-ttl") {
      PC_ASSIGN_OR_RETURN(c.tag_ttl_seconds, need_int(0, 365LL * 86400));
    } else if (flag == "--max-stale") {
      PC_ASSIGN_OR_RETURN(c.max_stale_seconds, need_int(0, 3650LL * 86400));
    } else if (flag == "--upstream-timeout") {
      PC_ASSIGN_OR_RETURN(c.upstream_timeout_seconds, need_int(1, 3600));
    } else if (flag == "--fetch-deadline") {
      PC_ASSIGN_OR_RETURN(c.fetch_deadline_seconds, need_int(1, 7LL * 86400));
    } else if (flag == "--max-blob-bytes") {
      PC_ASSIGN_OR_RETURN(c.max_blob_bytes, need_int(0, INT64_MAX / 2));
    } else if (flag == "--threads") {
      PC_ASSIGN_OR_RETURN(int64_t n, need_int(2, 4096));
      c.threads = static_cast<int>(n);
    } else if (flag == "--io-threads") {
      PC_ASSIGN_OR_RETURN(int64_t n, need_int(0, 64));
      c.io_threads = static_cast<int>(n);
    } else if (flag == "--max-connections") {
      PC_ASSIGN_OR_RETURN(c.max_connections, need_int(1, 1 << 20));
    } else if (flag == "--max-connections-per-client") {
      PC_ASSIGN_OR_RETURN(c.max_connections_per_client, need_int(0, 1 << 20));
    } else if (flag == "--max-downloads") {
      PC_ASSIGN_OR_RETURN(c.max_downloads, need_int(1, 1 << 20));
    } else if (flag == "--idle-timeout") {
      PC_ASSIGN_OR_RETURN(c.idle_timeout_seconds, need_int(1, 86400));
    } else if (flag == "--send-window") {
      PC_ASSIGN_OR_RETURN(c.send_window_seconds, need_int(1, 3600));
    } else if (flag == "--min-send-rate") {
      PC_ASSIGN_OR_RETURN(c.min_send_rate, need_int(0, 1LL << 30));
    } else if (flag == "--max-inflight-fetches") {
      PC_ASSIGN_OR_RETURN(int64_t n, need_int(1, 4096));
      c.max_inflight_fetches = static_cast<int>(n);
    } else if (flag == "--chunk-bytes") {
      PC_ASSIGN_OR_RETURN(c.chunk_bytes, need_int(4096, 64LL << 20));
    } else if (flag == "--docker-config") {
      PC_ASSIGN_OR_RETURN(c.docker_config, need());
    } else if (flag == "--admin-listen") {
      PC_ASSIGN_OR_RETURN(c.admin_listen, need());
    } else if (flag == "--admin-token-file") {
      PC_ASSIGN_OR_RETURN(c.admin_token_file, need());
    } else if (flag == "--tls-cert") {
      PC_ASSIGN_OR_RETURN(c.tls_cert, need());
    } else if (flag == "--tls-key") {
      PC_ASSIGN_OR_RETURN(c.tls_key, need());
    } else if (flag == "--cache-max-bytes") {
      PC_ASSIGN_OR_RETURN(c.cache_max_bytes, need_int(0, INT64_MAX / 2));
    } else if (flag == "--cache-writes") {
      PC_ASSIGN_OR_RETURN(c.cache_writes, need());
    } else if (flag == "--policy") {
      PC_ASSIGN_OR_RETURN(c.policy, need());
    } else if (flag == "--blob-gate") {
      PC_ASSIGN_OR_RETURN(c.blob_gate, need());
    } else if (flag == "--verdict-ttl") {
      PC_ASSIGN_OR_RETURN(c.verdict_ttl_seconds, need_int(0, 30LL * 86400));
    } else if (flag == "--allowed-hosts") {
      // A comma-separated list; it replaces the file's list ("" empties it: any Host).
      PC_ASSIGN_OR_RETURN(std::string v, need());
      c.allowed_hosts.clear();
      for (size_t start = 0; start <= v.size() && !v.empty();) {
        size_t comma = v.find(',', start);
        if (comma == std::string::npos) comma = v.size();
        c.allowed_hosts.push_back(v.substr(start, comma - start));
        start = comma + 1;
        if (c.allowed_hosts.size() > 1024) return Status::InvalidArgument("--allowed-hosts: at most 1024 entries");
      }
    } else if (flag == "--log-level") {
      PC_ASSIGN_OR_RETURN(c.log_level, need());
    } else if (flag == "--upstream-auth" || flag == "--upstream-ca") {
      PC_ASSIGN_OR_RETURN(std::string v, need());
      auto eq = v.find('=');
      if (eq == std::string::npos || eq == 0) {
        return Status::InvalidArgument(flag + " " + v + ": expected NAME=" +
                                       (flag == "--upstream-auth" ? "USER:PASSWORD_FILE" : "FILE"));
      }
      std::string name = v.substr(0, eq), rest = v.substr(eq + 1);
      Upstream* target = nullptr;
      for (auto& u : c.upstreams) {
        if (u.name == name) target = &u;
      }
      if (target == nullptr) {
        return Status::InvalidArgument(flag + " " + name + ": no upstream of that name (give --upstream " + name +
                                       "=URL before it)");
      }
      if (flag == "--upstream-ca") {
        target->ca_file = rest;
      } else {
        auto colon = rest.find(':');
        if (colon == std::string::npos || colon == 0 || colon + 1 == rest.size()) {
          return Status::InvalidArgument("--upstream-auth " + name + "=...: expected USER:PASSWORD_FILE");
        }
        target->username = rest.substr(0, colon);
        target->password_file = rest.substr(colon + 1);
      }
    } else {
      return Status::InvalidArgument("unknown flag " + flag + " (see portcullis serve --help)");
    }
  }
  return c;
}

Status Finalize(Config* c) {
  if (c->upstreams.empty()) c->upstreams.push_back({"docker.io", "https://registry-1.docker.io", "", "", ""});
  std::set<std::string> names;
  for (size_t i = 0; i < c->upstreams.size(); ++i) {
    const Upstream& u = c->upstreams[i];
    std::string f = "upstream " + u.name;
    if (u.name.find('/') != std::string::npos || u.name.find_first_of(" \t?#") != std::string::npos) {
      return Status::InvalidArgument(f + ": NAME must be a registry host name such as docker.io, without '/'");
    }
    if (!names.insert(u.name).second) return Status::InvalidArgument(f + ": given twice");
    auto url = oci::ParseUrl(u.url);
    if (!url.ok()) return Status::InvalidArgument(f + ": " + url.status().message());
    if (!u.password_file.empty() && u.username.empty()) {
      return Status::InvalidArgument(f + ": password_file without username");
    }
  }
  if (c->default_upstream.empty()) c->default_upstream = c->upstreams.front().name;
  if (!names.count(c->default_upstream)) {
    return Status::InvalidArgument("default upstream \"" + c->default_upstream + "\" is not one of the upstreams");
  }
  auto valid_hostport = [](const std::string& hp) {
    auto colon = hp.rfind(':');
    return colon != std::string::npos && colon != 0 && ParseInt(hp.substr(colon + 1)) &&
           *ParseInt(hp.substr(colon + 1)) <= 65535;
  };
  if (!valid_hostport(c->listen)) {
    return Status::InvalidArgument("listen \"" + c->listen + "\": expected HOST:PORT, e.g. 127.0.0.1:5000");
  }
  if (!c->admin_listen.empty() && c->admin_listen != "off" && !valid_hostport(c->admin_listen)) {
    return Status::InvalidArgument("admin_listen \"" + c->admin_listen + "\": expected HOST:PORT or off");
  }
  if (!c->admin_listen.empty() && c->admin_listen != "off" && c->admin_listen == c->listen) {
    return Status::InvalidArgument("admin_listen must differ from listen (" + c->listen + ")");
  }
  if (c->tls_cert.empty() != c->tls_key.empty()) {
    return Status::InvalidArgument("tls_cert and tls_key go together: give both or neither");
  }
  if (c->cache_writes != "buffered" && c->cache_writes != "direct") {
    return Status::InvalidArgument("cache_writes \"" + c->cache_writes + "\": expected buffered or direct");
  }
  if (c->blob_gate != "referenced" && c->blob_gate != "any") {
    return Status::InvalidArgument("blob_gate \"" + c->blob_gate + "\": expected referenced or any");
  }
  if (c->cache_max_bytes < 0) return Status::InvalidArgument("cache_max_bytes: must not be negative");
  if (c->data_dir.empty()) return Status::InvalidArgument("data_dir: must not be empty");
  if (c->tag_ttl_seconds < 0) return Status::InvalidArgument("tag_ttl: must not be negative");
  if (c->max_stale_seconds < 0) return Status::InvalidArgument("max_stale: must not be negative");
  if (c->upstream_timeout_seconds < 1) return Status::InvalidArgument("upstream_timeout: must be at least 1");
  if (c->fetch_deadline_seconds < 1) return Status::InvalidArgument("fetch_deadline: must be at least 1");
  if (c->max_blob_bytes < 0) return Status::InvalidArgument("max_blob_bytes: must not be negative");
  if (c->threads < 2) return Status::InvalidArgument("threads: must be at least 2");
  if (c->max_connections < 1) return Status::InvalidArgument("max_connections: must be at least 1");
  if (c->max_downloads < 1) return Status::InvalidArgument("max_downloads: must be at least 1");
  if (c->idle_timeout_seconds < 1) return Status::InvalidArgument("idle_timeout: must be at least 1");
  if (c->send_window_seconds < 1) return Status::InvalidArgument("send_window: must be at least 1");
  if (c->max_inflight_fetches < 1) return Status::InvalidArgument("max_inflight_fetches: must be at least 1");
  if (c->chunk_bytes < 4096) return Status::InvalidArgument("chunk_bytes: must be at least 4096");
  static const std::set<std::string> kLevels = {"debug", "info", "warn", "error"};
  if (!kLevels.count(c->log_level)) {
    return Status::InvalidArgument("log_level \"" + c->log_level + "\": expected debug, info, warn or error");
  }
  return Status::Ok();
}

int64_t EffectiveMaxBlobBytes(const Config& c) { return c.max_blob_bytes > 0 ? c.max_blob_bytes : kDefaultMaxBlobBytes; }

const char* ServeUsage() {
  return R"(Usage: portcullis serve [flags]

Runs the pull-through proxy. Every flag may also be set in a JSON config file
(--config FILE; field names in brackets); flags win over the file.

  --config FILE                 JSON config file
  --listen HOST:PORT            address to serve on [listen] (default 127.0.0.1:5000)
  --data-dir DIR                RocksDB cache folder [data_dir] (default ./portcullis-data)
  --upstream NAME=URL           an upstream registry, repeatable [upstreams: {name, url}];
                                NAME is the registry name clients use (docker.io, ghcr.io),
                                URL is http:// or https:// (default docker.io=https://registry-1.docker.io)
  --default-upstream NAME       upstream for paths without ?ns= or a NAME prefix
                                [default_upstream] (default: the first upstream)
  --tag-ttl SECONDS             answer tags from the cache this long before asking
                                upstream again [tag_ttl] (default 60)
  --max-stale SECONDS           when the upstream is down, serve cached tags up to this
                                age [max_stale] (default 86400)
  --upstream-auth NAME=USER:PASSWORD_FILE
                                credentials for an upstream [upstreams: {username, password_file}]
  --upstream-ca NAME=FILE       CA bundle for an https upstream [upstreams: {ca_file}]
  --docker-config FILE          docker config.json whose "auths" hold upstream credentials
                                [docker_config]
  --upstream-timeout SECONDS    connect/read timeout for upstream requests [upstream_timeout] (default 60)
  --fetch-deadline SECONDS      total time one upstream blob fetch may take; past it the fetch
                                fails and nothing is cached [fetch_deadline] (default 3600)
  --max-blob-bytes N            largest blob fetched upstream; a bigger one is refused with
                                LIMIT_EXCEEDED before a byte is stored [max_blob_bytes]
                                (default 0: 64 GiB)
  --threads N                   handler threads: RocksDB reads and upstream requests [threads] (default 64)
  --io-threads N                event-loop threads holding every connection [io_threads]
                                (default 0: the CPU count, at most 4)
  --max-connections N           open client connections; beyond it 503 and close [max_connections]
                                (default 16384)
  --max-connections-per-client N
                                open connections per client address [max_connections_per_client]
                                (default 0: no cap)
  --max-downloads N             blob responses streaming at once; beyond it 503 [max_downloads]
                                (default 1024; each holds up to two chunks)
  --idle-timeout SECONDS        close a keep-alive connection idle this long [idle_timeout] (default 120)
  --min-send-rate BYTES         cut a download the client reads slower than this many bytes a
                                second over --send-window [min_send_rate] (default 1024)
  --send-window SECONDS         the window of --min-send-rate [send_window] (default 30)
  --max-inflight-fetches N      concurrent upstream blob fetches; beyond it the one no client has read
                                for the longest is cancelled, else 429 [max_inflight_fetches] (default 32)
  --chunk-bytes N               blob chunk size in RocksDB [chunk_bytes] (default 1048576)
  --log-level LEVEL             debug, info, warn or error [log_level] (default info)
  --cache-max-bytes N           bound the blob cache; least-recently-used blobs are evicted
                                in the background [cache_max_bytes] (default 0: no bound)
  --cache-writes buffered|direct
                                how flushes write layer bytes: through the page cache, or with
                                O_DIRECT where the file system takes it (less CPU, but a cold pull
                                waits for the disk once the in-memory window is used up) [cache_writes]
                                (default buffered)
  --admin-listen HOST:PORT|off  admin API listener [admin_listen] (default 127.0.0.1:5001,
                                skipped with a warning when that port is taken)
  --admin-token-file FILE       bearer token of the admin API [admin_token_file]
                                (default DATA_DIR/admin.token, created mode 0600 if absent)
  --policy FILE                 trust policy: serve only images whose signatures satisfy it
                                (Portcullis JSON or containers-policy.json) [policy]
  --blob-gate referenced|any    referenced: a blob is served only when a manifest that passed
                                the policy in the same repository names it [blob_gate] (default referenced)
  --verdict-ttl SECONDS         cache policy verdicts this long [verdict_ttl] (default 300)
  --allowed-hosts H1,H2,...     serve only requests whose Host header is listed: HOST, HOST:PORT,
                                *.DOMAIN[:PORT], [IPv6][:PORT] (guards a local proxy against DNS
                                rebinding) [allowed_hosts: ["localhost", ...]] (default: any Host)
  --tls-cert FILE --tls-key FILE
                                serve HTTPS with this PEM certificate chain and key [tls_cert, tls_key]
)";
}

}  // namespace portcullis::config
