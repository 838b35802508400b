// Test helper for the proxy tests (not part of the library): a fake upstream
// registry, an httplib::Server on 127.0.0.1 serving manifests, blobs and
// paginated tag lists per repository, with counters of what it was asked and
// blob answers that can lie, stall or stream in pieces.
#pragma once

#include <doctest/doctest.h>
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "oci/digest.h"
#include "oci/manifest.h"

namespace portcullis::proxy::testing {

// A one-shot latch the fake upstream waits on mid-body.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  void Open() {
    std::lock_guard<std::mutex> l(mu);
    open = true;
    cv.notify_all();
  }
  bool Wait(std::chrono::milliseconds t = std::chrono::seconds(10)) {
    std::unique_lock<std::mutex> l(mu);
    return cv.wait_for(l, t, [&] { return open; });
  }
};

struct FakeManifest {
  std::string bytes;
  std::string content_type = std::string(oci::kOciManifest);
  std::string header_digest;  // empty: the true digest of `bytes`
};

// How the fake upstream answers a blob GET. A HEAD always gets the status and,
// for 200, the Content-Length of `body`.
struct FakeBlob {
  std::string body;            // the bytes sent (may differ from the digest's bytes)
  int status = 200;            // other: this status with an error body
  bool whole = false;          // one set_content (Content-Length, no streaming); the rest is ignored
  size_t piece = 1000;         // bytes per write
  bool chunked = false;        // no Content-Length; chunked transfer encoding
  size_t gate_at = SIZE_MAX;   // wait on the gate before sending bytes at or after this offset
  bool gate_before_end = false;  // chunked: wait on the gate before the terminating chunk
  std::shared_ptr<Gate> gate;
};

// A fake upstream registry: manifests and blobs per repository, paginated tag
// lists, and counters of what it was asked.
class FakeRegistry {
 public:
  // `keep_alive_seconds` bounds how long Stop() waits for idle connections.
  explicit FakeRegistry(int keep_alive_seconds = 5) {
    svr_.set_keep_alive_timeout(keep_alive_seconds);
    svr_.Get(R"(/v2/(.+)/tags/list)", [this](const httplib::Request& req, httplib::Response& res) {
      Record(req);
      ++tag_lists;
      if (Failing(res)) return;
      const std::string repo = req.matches[1].str();
      std::vector<std::string> tags = {"a", "b", "c", "d", "e"};
      if (ignore_pagination) {  // as distribution 2.8: every tag, no Link
        res.set_content(nlohmann::json({{"name", repo}, {"tags", tags}}).dump(), "application/json");
        return;
      }
      size_t n = req.has_param("n") ? std::stoul(req.get_param_value("n")) : tags.size();
      size_t start = 0;
      if (req.has_param("last")) {
        while (start < tags.size() && tags[start] <= req.get_param_value("last")) ++start;
      }
      nlohmann::json page = nlohmann::json::array();
      for (size_t i = start; i < tags.size() && i < start + n; ++i) page.push_back(tags[i]);
      if (start + n < tags.size()) {
        // Appended piece by piece: GCC 12 at -O3 warns (-Wrestrict, a false
        // positive) on "literal" + std::string&& here.
        std::string link = "<";
        if (absolute_links) link += url();
        link += "/v2/" + repo + "/tags/list?n=" + std::to_string(n) + "&last=" + page.back().get<std::string>() +
                ">; rel=\"next\"";
        res.set_header("Link", link);
      }
      if (unsorted_pages) std::reverse(page.begin(), page.end());
      res.set_content(nlohmann::json({{"name", repo}, {"tags", page}}).dump(), "application/json");
    });
    svr_.Get(R"(/v2/(.+)/referrers/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
      Record(req);
      if (Failing(res)) return;
      std::lock_guard<std::mutex> l(mu_);
      auto it = referrers_.find(req.matches[1].str() + "|" + req.matches[2].str());
      if (it == referrers_.end()) {  // no referrers API, as distribution 2.8: a plain-text 404
        res.status = 404;
        res.set_content("404 page not found\n", "text/plain");
        return;
      }
      res.set_content(it->second, std::string(oci::kOciIndex));
    });
    svr_.Get(R"(/v2/(.+)/manifests/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
      Record(req);
      if (req.method == "HEAD") {
        ++manifest_heads;
      } else {
        ++manifest_gets;
      }
      if (Failing(res)) return;
      FakeManifest m;
      {
        std::lock_guard<std::mutex> l(mu_);
        auto it = manifests_.find(req.matches[1].str() + "|" + req.matches[2].str());
        if (it == manifests_.end()) {
          res.status = 404;
          res.set_content(R"({"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown","detail":null}]})",
                          "application/json");
          return;
        }
        m = it->second;
      }
      res.set_header("Docker-Content-Digest",
                     m.header_digest.empty() ? oci::Digest::Sha256Of(m.bytes).ToString() : m.header_digest);
      res.set_content(m.bytes, m.content_type);
    });
    svr_.Get(R"(/v2/(.+)/blobs/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
      Record(req);
      if (req.method == "HEAD") {
        ++blob_heads;
      } else {
        ++blob_gets;
      }
      if (Failing(res)) return;
      FakeBlob b;
      {
        std::lock_guard<std::mutex> l(mu_);
        auto it = blobs_.find(req.matches[1].str() + "|" + req.matches[2].str());
        if (it == blobs_.end()) {
          res.status = 404;
          res.set_content(R"({"errors":[{"code":"BLOB_UNKNOWN","message":"unknown","detail":null}]})",
                          "application/json");
          return;
        }
        b = it->second;
      }
      res.status = b.status;
      if (b.status != 200) {
        res.set_content(R"({"errors":[]})", "application/json");
        return;
      }
      if (req.method == "HEAD" || b.whole) {
        res.set_content(b.body, "application/octet-stream");
        return;
      }
      auto body = std::make_shared<std::string>(std::move(b.body));
      if (b.chunked) {
        res.set_chunked_content_provider("application/octet-stream", [body, b](size_t off, httplib::DataSink& sink) {
          if (off >= body->size()) {
            if (b.gate_before_end && b.gate) b.gate->Wait();
            sink.done();
            return true;
          }
          if (off >= b.gate_at && b.gate) b.gate->Wait();
          return sink.write(body->data() + off, std::min(b.piece, body->size() - off));
        });
        return;
      }
      res.set_content_provider(body->size(), "application/octet-stream",
                               [body, b](size_t off, size_t len, httplib::DataSink& sink) {
                                 if (off >= b.gate_at && b.gate) b.gate->Wait();
                                 return sink.write(body->data() + off, std::min(b.piece, len));
                               });
    });
    port_ = svr_.bind_to_any_port("127.0.0.1");
    REQUIRE(port_ > 0);
    thread_ = std::thread([this] { svr_.listen_after_bind(); });
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!svr_.is_running() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    REQUIRE(svr_.is_running());
  }
  ~FakeRegistry() { Stop(); }
  FakeRegistry(const FakeRegistry&) = delete;
  FakeRegistry& operator=(const FakeRegistry&) = delete;

  void Stop() {
    if (thread_.joinable()) {
      svr_.stop();
      thread_.join();
    }
  }
  std::string url() const {
    std::string u = "http://127.0.0.1:";
    u += std::to_string(port_);
    return u;
  }

  void SetManifest(const std::string& repo, const std::string& ref, FakeManifest m) {
    std::lock_guard<std::mutex> l(mu_);
    manifests_[repo + "|" + ref] = std::move(m);
  }
  // Serves `bytes` (an OCI image manifest) under `tag` and under its own digest.
  oci::Digest SetTagged(const std::string& repo, const std::string& tag, const std::string& bytes) {
    oci::Digest d = oci::Digest::Sha256Of(bytes);
    SetManifest(repo, tag, FakeManifest{bytes, std::string(oci::kOciManifest), ""});
    SetManifest(repo, d.ToString(), FakeManifest{bytes, std::string(oci::kOciManifest), ""});
    return d;
  }
  // Answers GET referrers/<subject> in `repo` with `index` (200): the
  // upstream then has the referrers API for that subject.
  void SetReferrers(const std::string& repo, const oci::Digest& subject, std::string index) {
    std::lock_guard<std::mutex> l(mu_);
    referrers_[repo + "|" + subject.ToString()] = std::move(index);
  }
  void RemoveManifest(const std::string& repo, const std::string& ref) {
    std::lock_guard<std::mutex> l(mu_);
    manifests_.erase(repo + "|" + ref);
  }
  // Answers blob requests for `d` in `repo` as `b` says.
  void SetBlob(const std::string& repo, const oci::Digest& d, FakeBlob b) {
    std::lock_guard<std::mutex> l(mu_);
    blobs_[repo + "|" + d.ToString()] = std::move(b);
  }
  // Serves `body` for `d` in `repo` with one set_content.
  void SetBlob(const std::string& repo, const oci::Digest& d, std::string body) {
    FakeBlob b;
    b.body = std::move(body);
    b.whole = true;
    SetBlob(repo, d, std::move(b));
  }
  // "METHOD /path?query" of every request, in arrival order.
  std::vector<std::string> Requests() {
    std::lock_guard<std::mutex> l(mu_);
    return requests_;
  }

  std::atomic<int> manifest_gets{0}, manifest_heads{0}, blob_gets{0}, blob_heads{0}, tag_lists{0};
  std::atomic<int> fail_status{0};          // non-zero: every request gets this status
  std::atomic<bool> absolute_links{false};  // tags/list Link with scheme://host
  std::atomic<bool> ignore_pagination{false};  // tags/list: every tag whatever n and last say
  std::atomic<bool> unsorted_pages{false};     // tags/list: each page in reverse order

 private:
  bool Failing(httplib::Response& res) {
    if (fail_status == 0) return false;
    res.status = fail_status;
    res.set_content(R"({"errors":[{"code":"UNAVAILABLE","message":"down","detail":null}]})", "application/json");
    return true;
  }

  void Record(const httplib::Request& req) {
    std::string q;
    for (const auto& [k, v] : req.params) q += (q.empty() ? "?" : "&") + k + "=" + v;
    std::lock_guard<std::mutex> l(mu_);
    requests_.push_back(req.method + " " + req.path + q);
  }

  httplib::Server svr_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mu_;
  std::map<std::string, FakeManifest> manifests_;
  std::map<std::string, FakeBlob> blobs_;
  std::map<std::string, std::string> referrers_;  // repo|subject -> index
  std::vector<std::string> requests_;
};

}  // namespace portcullis::proxy::testing
