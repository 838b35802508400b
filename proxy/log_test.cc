#include "proxy/log.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <unistd.h>
#include <string>
#include <thread>
#include <vector>

#include "proxy/metrics.h"

namespace portcullis::proxy {
namespace {

// Reads the file afresh: the writer thread appends to it meanwhile.
std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    out.push_back(text.substr(pos, nl - pos));
    pos = nl + 1;
  }
  return out;
}

}  // namespace

TEST_CASE("log: LogFields writes byte for byte the line Log writes for the same fields") {
  const std::vector<std::string> keys = {"a", "b\"quoted\"", "line\nbreak", "caf\xc3\xa9"};
  const std::vector<std::string> none;
  struct Case {
    std::string path;
    double ms;
  };
  const std::vector<Case> cases = {
      {"/v2/library/alpine/manifests/3.19", 0.123},
      {"/v2/a\\b/\"c\"/manifests/x", 2.0},
      {std::string("/v2/ctl\x01\t\x1f/x"), 12.5},
      {"/v2/\xff\xfe-not-utf8/x", 1000.001},
      {"/v2/caf\xc3\xa9/blobs/sha256:00", 0.001},
      {"/v2/del\x7f/x", 123456.789},
      {"", 0.0},
  };
  for (const auto& c : cases) {
    CAPTURE(c.path);
    for (bool flag : {false, true}) {
      const std::string fast =
          FormatLogLine(LogLevel::kWarn, "access", "2026-11-23T01:02:03.004Z",
                        {{"path", c.path}, {"status", 403}, {"bytes", -1LL}, {"big", 9007199254740993LL},
                         {"duration_ms", c.ms}, {"cached", flag}, {"keys", flag ? keys : none},
                         {"client", "127.0.0.1"}, {"zz", std::string_view("last")}});
      nlohmann::json j = {{"path", c.path},      {"status", 403},   {"bytes", -1},
                          {"big", 9007199254740993LL}, {"duration_ms", c.ms}, {"cached", flag},
                          {"keys", flag ? keys : none},  {"client", "127.0.0.1"}, {"zz", "last"}};
      const std::string slow = FormatLogLine(LogLevel::kWarn, std::string("access"), "2026-11-23T01:02:03.004Z", j);
      CHECK(fast == slow);
      auto parsed = nlohmann::json::parse(fast, nullptr, false);
      REQUIRE(parsed.is_object());
      CHECK(parsed["msg"] == "access");
      CHECK(parsed["level"] == "warn");
      CHECK(parsed["status"] == 403);
      // Fields already in byte order (the access log's) are merged with level, msg and time, not sorted.
      const std::string merged =
          FormatLogLine(LogLevel::kWarn, "access", "2026-11-23T01:02:03.004Z",
                        {{"bytes", -1LL}, {"client", "127.0.0.1"}, {"duration_ms", c.ms}, {"lz", flag},
                         {"method", "GET"}, {"n", "x"}, {"path", c.path}, {"status", 403}, {"u", "up"}, {"zz", "z"}});
      nlohmann::json k = {{"bytes", -1},  {"client", "127.0.0.1"}, {"duration_ms", c.ms}, {"lz", flag}, {"method", "GET"},
                          {"n", "x"},     {"path", c.path},        {"status", 403},       {"u", "up"},  {"zz", "z"}};
      CHECK(merged == FormatLogLine(LogLevel::kWarn, std::string("access"), "2026-11-23T01:02:03.004Z", k));
    }
  }
}

TEST_CASE("log: the writer thread loses no line, keeps lines whole, and Flush/Stop write everything") {
  char path_buf[] = "/tmp/portcullis-log-test-XXXXXX";
  int fd = mkstemp(path_buf);
  REQUIRE(fd >= 0);
  ::close(fd);
  const std::string path = path_buf;
  FILE* f = std::fopen(path.c_str(), "a");  // appends land at the end whatever is read meanwhile
  REQUIRE(f != nullptr);
  SetLogOutput(f);
  StartAsyncLog();
  StartAsyncLog();  // a second start is harmless
  constexpr int kThreads = 4, kPerThread = 5000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t] {
      for (int i = 0; i < kPerThread; ++i) {
        LogFields(LogLevel::kInfo, "test line", {{"thread", t}, {"i", i}, {"pad", std::string(i % 300, 'x')}});
      }
    });
  }
  for (auto& th : threads) th.join();
  FlushLog();
  auto lines = Lines(ReadAll(path));
  CHECK(lines.size() == static_cast<size_t>(kThreads * kPerThread));
  std::vector<int> next(kThreads, 0);
  bool whole = true, ordered = true;
  for (const auto& l : lines) {
    auto j = nlohmann::json::parse(l, nullptr, false);
    if (!j.is_object() || j.value("msg", "") != "test line") {
      whole = false;
      continue;
    }
    int t = j["thread"], i = j["i"];
    if (next[t] != i) ordered = false;  // one thread's lines stay in its order
    next[t] = i + 1;
  }
  CHECK(whole);
  CHECK(ordered);
  // Lines are written in the order they were logged, across threads too.
  for (int i = 0; i < 50; ++i) {
    std::thread([i] { Log(LogLevel::kInfo, "ordered", {{"i", i}}); }).join();
  }
  FlushLog();
  {
    auto all = Lines(ReadAll(path));
    std::vector<int> seen;
    for (const auto& l : all) {
      auto j = nlohmann::json::parse(l, nullptr, false);
      if (j.is_object() && j.value("msg", "") == "ordered") seen.push_back(j["i"]);
    }
    REQUIRE(seen.size() == 50);
    CHECK(std::is_sorted(seen.begin(), seen.end()));
  }
  // An idle writer is woken by the next line: it appears without FlushLog.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  Log(LogLevel::kInfo, "after idle");
  bool appeared = false;
  for (int i = 0; i < 100 && !appeared; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    appeared = ReadAll(path).find("\"msg\":\"after idle\"") != std::string::npos;
  }
  CHECK(appeared);
  // Lines logged just before Stop are written by Stop.
  for (int i = 0; i < 100; ++i) Log(LogLevel::kInfo, "before stop", {{"i", i}});
  StopAsyncLog();
  StopAsyncLog();
  lines = Lines(ReadAll(path));
  CHECK(lines.size() == static_cast<size_t>(kThreads * kPerThread + 50 + 1 + 100));
  // After Stop, lines are written at once again.
  Log(LogLevel::kInfo, "direct");
  FlushLog();  // a no-op when no writer runs
  lines = Lines(ReadAll(path));
  REQUIRE(!lines.empty());
  CHECK(lines.back().find("\"msg\":\"direct\"") != std::string::npos);
  SetLogOutput(stdout);
  std::fclose(f);
  std::remove(path.c_str());
}

TEST_CASE("metrics: RecordRequest counts the request, its bytes and its latency in the exposition") {
  Metrics m;
  m.RecordRequest("manifest", "GET", 200, 450, 0.0007);
  m.RecordRequest("manifest", "GET", 200, 450, 0.02);
  m.RecordRequest("manifest", "HEAD", 404, 0, -1);  // no latency observed
  m.RecordRequest("bl\"ob", "GET", 200, 1000, 0.3);
  CHECK(m.Get("portcullis_http_requests_total", {{"route", "manifest"}, {"method", "GET"}, {"status", "200"}}) == 2);
  CHECK(m.Get("portcullis_http_requests_total", {{"route", "manifest"}, {"method", "HEAD"}, {"status", "404"}}) == 1);
  CHECK(m.Get("portcullis_served_bytes_total", {{"route", "manifest"}}) == 900);
  CHECK(m.Get("portcullis_served_bytes_total", {{"route", "bl\"ob"}}) == 1000);
  const std::string text = m.Render();
  CHECK(text.find("portcullis_request_duration_seconds_count{route=\"manifest\"} 2\n") != std::string::npos);
  CHECK(text.find("portcullis_request_duration_seconds_bucket{route=\"manifest\",le=\"0.001\"} 1\n") !=
        std::string::npos);
  CHECK(text.find("portcullis_request_duration_seconds_bucket{route=\"manifest\",le=\"0.025\"} 2\n") !=
        std::string::npos);
  CHECK(text.find("route=\"bl\\\"ob\"") != std::string::npos);
  CHECK(text.find("# HELP portcullis_http_requests_total HTTP requests by route, method and status.\n") !=
        std::string::npos);
}

TEST_CASE("metrics: a client's own method names cannot grow the request series without bound (attack)") {
  Metrics m;
  for (int i = 0; i < 5000; ++i) m.RecordRequest("other", "X" + std::to_string(i), 405, 0, 0.001);
  m.RecordRequest("other", "GET", 405, 0, 0.001);
  CHECK(m.Get("portcullis_http_requests_total", {{"route", "other"}, {"method", "other"}, {"status", "405"}}) == 5000);
  CHECK(m.Get("portcullis_http_requests_total", {{"route", "other"}, {"method", "GET"}, {"status", "405"}}) == 1);
  const std::string text = m.Render();
  size_t series = 0;
  for (size_t at = 0; (at = text.find("\nportcullis_http_requests_total{", at)) != std::string::npos; ++at) ++series;
  CHECK(series == 2);
  CHECK(text.find("X4999") == std::string::npos);
}

TEST_CASE("metrics: a Handle is the series Inc adds to, and the exposition shows what both added") {
  Metrics m;
  const Metrics::Labels labels = {{"verdict", "accept"}, {"source", "cache"}};
  std::atomic<double>* h = m.Handle("portcullis_policy_decisions_total", "Decisions.", labels);
  REQUIRE(h != nullptr);
  CHECK(m.Handle("portcullis_policy_decisions_total", "Decisions.", labels) == h);  // the same series
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([h] {
      for (int i = 0; i < 10000; ++i) h->fetch_add(1, std::memory_order_relaxed);
    });
  }
  for (auto& th : threads) th.join();
  m.Inc("portcullis_policy_decisions_total", "Decisions.", labels, 2);
  m.Inc("portcullis_policy_decisions_total", "Decisions.", {{"verdict", "reject"}, {"source", "evaluated"}});
  CHECK(m.Get("portcullis_policy_decisions_total", labels) == 40002);
  const std::string text = m.Render();
  CHECK(text.find("portcullis_policy_decisions_total{verdict=\"accept\",source=\"cache\"} 40002\n") != std::string::npos);
  CHECK(text.find("portcullis_policy_decisions_total{verdict=\"reject\",source=\"evaluated\"} 1\n") != std::string::npos);
}

}  // namespace portcullis::proxy
