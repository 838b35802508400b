#include "proxy/metrics.h"

#include <cmath>
#include <cstdio>
#include <sstream>

namespace portcullis::proxy {

namespace {

std::string Escape(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string Num(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return std::to_string(static_cast<long long>(v));
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

}  // namespace

std::string Metrics::RenderLabels(const Labels& labels) {
  if (labels.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i) out += ",";
    out += labels[i].first + "=\"" + Escape(labels[i].second) + "\"";
  }
  return out + "}";
}

void Metrics::Inc(const std::string& name, const std::string& help, const Labels& labels, double v) {
  std::string key = RenderLabels(labels);
  std::lock_guard<std::mutex> l(mu_);
  auto& f = counters_[name];
  if (f.help.empty()) f.help = help;
  f.series[key].fetch_add(v, std::memory_order_relaxed);
}

std::atomic<double>* Metrics::Handle(const std::string& name, const std::string& help, const Labels& labels) {
  std::string key = RenderLabels(labels);
  std::lock_guard<std::mutex> l(mu_);
  auto& f = counters_[name];
  if (f.help.empty()) f.help = help;
  return &f.series[key];  // std::map nodes never move
}

double Metrics::Get(const std::string& name, const Labels& labels) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = counters_.find(name);
  if (it == counters_.end()) return 0;
  auto s = it->second.series.find(RenderLabels(labels));
  return s == it->second.series.end() ? 0 : s->second.load();
}

namespace {

// The methods of RFC 9110 (index + 1); 0 for any other.
constexpr std::array<std::string_view, 9> kMethods = {"GET",    "HEAD",    "POST",    "PUT",  "DELETE",
                                                       "CONNECT", "OPTIONS", "TRACE", "PATCH"};

int MethodIndex(const std::string& method) {
  for (size_t i = 0; i < kMethods.size(); ++i) {
    if (method == kMethods[i]) return static_cast<int>(i) + 1;
  }
  return 0;
}

}  // namespace

void Metrics::RecordRequest(const std::string& route, const std::string& method, int status, int64_t bytes,
                            double seconds) {
  const int m = MethodIndex(method);
  std::lock_guard<std::mutex> l(mu_);
  auto it = requests_.find(RequestKeyView{route, m, status});
  if (it == requests_.end()) {
    const std::string r = "route=\"" + Escape(route) + "\"";
    const std::string method_label = m == 0 ? std::string("other") : std::string(kMethods[static_cast<size_t>(m - 1)]);
    auto& requests = counters_["portcullis_http_requests_total"];
    if (requests.help.empty()) requests.help = "HTTP requests by route, method and status.";
    auto& served = counters_["portcullis_served_bytes_total"];
    if (served.help.empty()) served.help = "Response body bytes sent to clients, by route.";
    RequestSeries s{&requests.series["{" + r + ",method=\"" + method_label + "\",status=\"" + std::to_string(status) + "\"}"],
                    &served.series["{" + r + "}"], nullptr};
    it = requests_.emplace(RequestKey{route, m, status}, s).first;
  }
  it->second.requests->fetch_add(1, std::memory_order_relaxed);
  it->second.bytes->fetch_add(static_cast<double>(bytes), std::memory_order_relaxed);
  if (seconds >= 0) {
    // The histogram is created by the first observation: a route that never
    // observed has none in the exposition.
    if (it->second.latency == nullptr) it->second.latency = &latency_[route];
    Observe(it->second.latency, seconds);
  }
}

void Metrics::Observe(Histogram* h, double seconds) {
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    if (seconds <= kBuckets[i]) ++h->buckets[i];
  }
  ++h->count;
  h->sum += seconds;
}

void Metrics::Callback(const std::string& name, const std::string& help, const std::string& type,
                       const Labels& labels, std::function<double()> read) {
  std::lock_guard<std::mutex> l(mu_);
  auto& f = callbacks_[name];
  f.help = help;
  f.type = type;
  f.series.emplace_back(RenderLabels(labels), std::move(read));
}

std::string Metrics::Render() const {
  std::ostringstream out;
  std::map<std::string, CallbackFamily> callbacks;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& [name, f] : counters_) {
      out << "# HELP " << name << " " << f.help << "\n# TYPE " << name << " counter\n";
      for (const auto& [labels, v] : f.series) out << name << labels << " " << Num(v.load()) << "\n";
    }
    const std::string h = "portcullis_request_duration_seconds";
    out << "# HELP " << h << " Time from request start to the end of the response, by route.\n"
        << "# TYPE " << h << " histogram\n";
    for (const auto& [route, hist] : latency_) {
      std::string r = "route=\"" + Escape(route) + "\"";
      for (size_t i = 0; i < kBuckets.size(); ++i) {
        out << h << "_bucket{" << r << ",le=\"" << Num(kBuckets[i]) << "\"} " << hist.buckets[i] << "\n";
      }
      out << h << "_bucket{" << r << ",le=\"+Inf\"} " << hist.count << "\n";
      out << h << "_sum{" << r << "} " << Num(hist.sum) << "\n";
      out << h << "_count{" << r << "} " << hist.count << "\n";
    }
    callbacks = callbacks_;
  }
  // Callbacks run without the lock: they may take other locks.
  for (const auto& [name, f] : callbacks) {
    out << "# HELP " << name << " " << f.help << "\n# TYPE " << name << " " << f.type << "\n";
    for (const auto& [labels, read] : f.series) out << name << labels << " " << Num(read()) << "\n";
  }
  return out.str();
}

}  // namespace portcullis::proxy
