// Test helper for the proxy tests (not part of the library): the proxy under
// test (Store + Router + Registry + HttpServer on 127.0.0.1:<any port>) and
// small helpers shared by server_test.cc and listing_test.cc.
#pragma once

#include <doctest/doctest.h>
#include <httplib.h>

#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "config/config.h"
#include "proxy/log.h"
#include "proxy/registry.h"
#include "proxy/server.h"
#include "proxy/store.h"
#include "proxy/upstreams.h"
#include "tests/test_util.h"

namespace portcullis::proxy::testing {

inline constexpr int64_t kChunk = 4096;  // the proxy's chunk size in these tests

using config::Config;

// Quiets the proxy's JSON log lines for the duration of a test.
struct QuietLogs {
  QuietLogs() { portcullis::proxy::SetLogLevel(portcullis::proxy::LogLevel::kError); }
  ~QuietLogs() { portcullis::proxy::SetLogLevel(portcullis::proxy::LogLevel::kInfo); }
};

// The proxy under test, serving on 127.0.0.1:<any port>.
class Proxy {
 public:
  Proxy(const std::vector<std::pair<std::string, std::string>>& upstreams,
        const std::function<void(Config&)>& tweak = {}) {
    cfg_.listen = "127.0.0.1:0";
    cfg_.data_dir = dir_.path.string();
    for (const auto& [name, url] : upstreams) cfg_.upstreams.push_back({name, url, "", "", ""});
    cfg_.default_upstream = upstreams.front().first;
    cfg_.tag_ttl_seconds = 60;
    cfg_.chunk_bytes = kChunk;
    cfg_.threads = 8;
    cfg_.max_inflight_fetches = 8;
    cfg_.upstream_timeout_seconds = 5;
    if (tweak) tweak(cfg_);
    int cleaned = 0;
    auto st = Store::Open(cfg_.data_dir, &cleaned);
    REQUIRE_MESSAGE(st.ok(), st.status().ToString());
    store_ = std::shared_ptr<Store>(std::move(st).value());
    auto router = Router::Create(cfg_);
    REQUIRE_MESSAGE(router.ok(), router.status().ToString());
    registry_ = std::make_unique<Registry>(cfg_, store_, std::move(router).value());
    server_ = std::make_unique<HttpServer>(cfg_, registry_.get());
    auto bound = server_->Bind();
    REQUIRE_MESSAGE(bound.ok(), bound.ToString());
    REQUIRE(server_->port() > 0);
    thread_ = std::thread([this] { server_->Serve(); });
    // Ready once it answers.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    bool up = false;
    while (!up && std::chrono::steady_clock::now() < deadline) {
      httplib::Client c("127.0.0.1", server_->port());
      c.set_connection_timeout(1, 0);
      auto r = c.Get("/v2/");
      up = r && r->status == 200;
      if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    REQUIRE(up);
  }
  ~Proxy() {
    server_->Stop();
    thread_.join();
    registry_->fetches().WaitIdle(std::chrono::steady_clock::now() + std::chrono::seconds(10));
  }

  std::unique_ptr<httplib::Client> Client() const {
    auto c = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    c->set_connection_timeout(5, 0);
    c->set_read_timeout(10, 0);
    c->set_keep_alive(true);
    return c;
  }
  int port() const { return server_->port(); }
  Store& store() { return *store_; }
  Registry& registry() { return *registry_; }
  const Config& config() const { return cfg_; }
  // Blob fetches run on their own threads; wait for them (and their links).
  void Settle() { REQUIRE(registry_->fetches().WaitIdle(std::chrono::steady_clock::now() + std::chrono::seconds(10))); }

 private:
  ::portcullis::testing::TempDir dir_;
  Config cfg_;
  std::shared_ptr<Store> store_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
};

inline std::string ErrorCode(const httplib::Result& r) {
  if (!r) return "<no response>";
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  if (j.is_discarded() || !j.contains("errors") || !j["errors"].is_array() || j["errors"].empty()) {
    return "<not an error body: " + r->body.substr(0, 200) + ">";
  }
  const auto& code = j["errors"][0];
  return code.is_object() && code.contains("code") && code["code"].is_string() ? code["code"].get<std::string>()
                                                                              : "<no code>";
}

}  // namespace portcullis::proxy::testing
