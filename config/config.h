// Proxy configuration: the schema, loading a JSON config file with clear errors,
// and command-line flags (flags win over the file).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "oci/status.h"

namespace portcullis::config {

struct Upstream {
  std::string name;           // the registry name clients use: docker.io, ghcr.io, upstream.test
  std::string url;            // http[s]://host[:port]
  std::string username;       // Basic / token-service credentials (optional)
  std::string password_file;  // file holding the password (never the password itself)
  std::string ca_file;        // extra CA bundle for https upstreams
};

struct Config {
  std::string listen = "127.0.0.1:5000";
  std::string data_dir = "./portcullis-data";
  std::vector<Upstream> upstreams;  // empty: docker.io=https://registry-1.docker.io
  std::string default_upstream;     // empty: the first upstream
  int64_t tag_ttl_seconds = 60;
  int64_t max_stale_seconds = 24 * 3600;
  std::string docker_config;        // docker config.json with "auths" for upstream credentials
  int threads = 64;                 // handler threads (RocksDB reads, upstream requests)
  int io_threads = 0;               // event-loop threads; 0 = the CPU count, at most 4
  int64_t max_connections = 16384;  // open client connections; beyond it 503 and close
  int64_t max_connections_per_client = 0;  // per client address; 0 = no cap
  int64_t max_downloads = 1024;     // responses streaming a blob at once; beyond it 503
  int64_t idle_timeout_seconds = 120;      // keep-alive connection idle between requests
  int64_t send_window_seconds = 30;        // a download slower than min_send_rate over
  int64_t min_send_rate = 1024;            // this window (bytes/second) is cut
  int max_inflight_fetches = 32;    // concurrent upstream blob fetches; more → 429
  int64_t chunk_bytes = 1 << 20;    // blob chunk size in RocksDB
  int64_t upstream_timeout_seconds = 60;
  // Total time one upstream blob fetch may take, headers to last byte; past it
  // the fetch fails (nothing cached, its readers fail, its slot is freed).
  int64_t fetch_deadline_seconds = 3600;
  // Largest blob fetched upstream: a bigger Content-Length is refused before any
  // byte is written (LIMIT_EXCEEDED), a body growing past it fails the fetch.
  // 0 = kDefaultMaxBlobBytes (below).
  int64_t max_blob_bytes = 0;
  std::string log_level = "info";   // debug | info | warn | error
  // Admin API: "" = the default 127.0.0.1:5001 (skipped with a warning if that
  // port is taken), "off" = none, else HOST:PORT (failing to bind stops the start).
  std::string admin_listen;
  std::string admin_token_file;     // "" = <data_dir>/admin.token, created 0600 if absent
  int64_t cache_max_bytes = 0;      // 0 = no bound; else LRU eviction of blobs
  // How flushes write layer bytes to the blob files: "buffered" (through the
  // page cache, which absorbs a burst faster than the disk) or "direct"
  // (O_DIRECT where the file system takes it: less CPU, at the disk's speed).
  std::string cache_writes = "buffered";
  std::string tls_cert, tls_key;    // PEM files: serve HTTPS instead of HTTP
  std::string policy;               // trust policy file ("" = serve everything)
  std::string blob_gate = "referenced";  // referenced | any
  int64_t verdict_ttl_seconds = 300;     // how long a policy verdict is cached
  // Host header allow-list (DNS-rebinding guard, review L8): empty = any Host.
  // Entries: HOST, HOST:PORT, *.DOMAIN[:PORT], [IPv6][:PORT]; the grammar and the
  // matching are proxy::HostAllowed's (proxy/host_check.h), which also validates.
  std::vector<std::string> allowed_hosts;
};

inline constexpr const char* kDefaultAdminListen = "127.0.0.1:5001";
// max_blob_bytes when it is 0: 64 GiB, above the largest layers seen in practice
// (ML images ship 10-30 GiB layers). It does not follow cache_max_bytes: a blob
// larger than the whole cache is still served (and then evicted), as before.
inline constexpr int64_t kDefaultMaxBlobBytes = 64LL << 30;

// The blob size bound in effect (max_blob_bytes, or its default; see above).
int64_t EffectiveMaxBlobBytes(const Config& c);

// Reads a JSON config file. Unknown fields and wrong types are INVALID_ARGUMENT
// naming the field ("upstreams[1].url: must be a string").
StatusOr<Config> LoadFile(const std::string& path);

// Parses a JSON document (as LoadFile does), for tests and `config check`.
StatusOr<Config> Parse(const std::string& json_text, const std::string& origin);

// Applies `serve` flags on top of `cfg` (a `--config FILE` among them is loaded
// first, whatever its position). Returns INVALID_ARGUMENT naming the bad flag.
// Sets *help when --help was given.
StatusOr<Config> FromArgs(const std::vector<std::string>& args, bool* help);

// Checks cross-field rules (unique names, default upstream exists, URLs parse,
// listen is HOST:PORT, positive TTLs) and fills the default upstream.
Status Finalize(Config* cfg);

// The flag reference printed by `portcullis serve --help`.
const char* ServeUsage();

}  // namespace portcullis::config
