// Prometheus metrics in the text exposition format (version 0.0.4), written by
// hand: a few counter families with labels, gauges read at scrape time, and one
// latency histogram. Thread-safe; updates are a mutex and a map lookup, or one
// atomic add through a Handle.
#pragma once

#include <array>
#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace portcullis::proxy {

class Metrics {
 public:
  using Labels = std::vector<std::pair<std::string, std::string>>;

  // Adds `v` to counter `name{labels}`. `help` is used the first time.
  void Inc(const std::string& name, const std::string& help, const Labels& labels, double v = 1);
  // The counter `name{labels}` itself, created at 0 when absent: a hot path
  // keeps the pointer (valid as long as this Metrics) and adds to it with no lock.
  std::atomic<double>* Handle(const std::string& name, const std::string& help, const Labels& labels);
  // One served request, under one lock: portcullis_http_requests_total{route,
  // method,status} += 1, portcullis_served_bytes_total{route} += bytes, and the
  // latency histogram (when seconds >= 0). A method other than the nine of RFC
  // 9110 is counted as method="other" (the client chooses it: the series stay
  // bounded). After the first request of a (route, method, status), no string
  // is built: one map lookup finds the series.
  void RecordRequest(const std::string& route, const std::string& method, int status, int64_t bytes,
                     double seconds);
  // A series whose value is read at scrape time; `type` is "gauge" or "counter"
  // (a counter kept elsewhere, e.g. in an atomic).
  void Callback(const std::string& name, const std::string& help, const std::string& type, const Labels& labels,
                std::function<double()> read);

  // The whole exposition, families sorted by name.
  std::string Render() const;

  // Value of one counter series (0 when absent), for tests and the CLI.
  double Get(const std::string& name, const Labels& labels) const;

  static constexpr std::array<double, 12> kBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                      0.05,   0.1,   0.25,   0.5,   1,    5};

 private:
  struct Family {
    std::string help;
    // rendered label set → value; atomic so a Handle can add without the lock
    std::map<std::string, std::atomic<double>> series;
  };
  struct Histogram {
    std::array<uint64_t, kBuckets.size()> buckets{};
    uint64_t count = 0;
    double sum = 0;
  };
  static std::string RenderLabels(const Labels& labels);
  static void Observe(Histogram* h, double seconds);

  // RecordRequest's series for one (route, method, status), found once.
  struct RequestKey {
    std::string route;
    int method;
    int status;
  };
  struct RequestKeyView {
    std::string_view route;
    int method;
    int status;
  };
  struct RequestKeyLess {
    using is_transparent = void;
    template <class A, class B>
    bool operator()(const A& a, const B& b) const {
      if (a.status != b.status) return a.status < b.status;
      if (a.method != b.method) return a.method < b.method;
      return std::string_view(a.route) < std::string_view(b.route);
    }
  };
  struct RequestSeries {
    std::atomic<double>* requests;
    std::atomic<double>* bytes;
    Histogram* latency;
  };

  mutable std::mutex mu_;
  std::map<std::string, Family> counters_;
  std::map<std::string, Histogram> latency_;  // by route
  std::map<RequestKey, RequestSeries, RequestKeyLess> requests_;
  struct CallbackFamily {
    std::string help, type;
    std::vector<std::pair<std::string, std::function<double()>>> series;
  };
  std::map<std::string, CallbackFamily> callbacks_;
};

}  // namespace portcullis::proxy
