#include "proxy/log.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <ctime>
#include <mutex>
#include <thread>

namespace portcullis::proxy {

namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};

std::string TimeNow() {
  // The date part changes once a second: format it once per second per thread.
  thread_local int64_t last_sec = -1;
  thread_local char prefix[96];
  auto now = std::chrono::system_clock::now();
  auto ms_total = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  int64_t secs = ms_total / 1000;
  if (secs != last_sec) {
    std::time_t t = static_cast<std::time_t>(secs);
    std::tm tm{};
    gmtime_r(&t, &tm);
    std::snprintf(prefix, sizeof prefix, "%04d-%02d-%02dT%02d:%02d:%02d.", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    last_sec = secs;
  }
  int ms = static_cast<int>(ms_total % 1000);
  std::string out(prefix);
  out.push_back(static_cast<char>('0' + ms / 100));
  out.push_back(static_cast<char>('0' + ms / 10 % 10));
  out.push_back(static_cast<char>('0' + ms % 10));
  out.push_back('Z');
  return out;
}

const char* LevelName(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
  }
  return "info";
}

// A JSON string as nlohmann::json::dump writes it (invalid UTF-8 replaced).
// Printable ASCII, nearly every path and name, is escaped here; the rest goes
// through the library so the two writers never disagree.
void AppendString(std::string* out, std::string_view s) {
  bool plain = std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
  if (!plain) {
    *out += nlohmann::json(std::string(s)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return;
  }
  out->push_back('"');
  for (char c : s) {
    if (c == '"' || c == '\\') out->push_back('\\');
    out->push_back(c);
  }
  out->push_back('"');
}

void AppendNumber(std::string* out, double v) {
  if (!std::isfinite(v)) {
    *out += "null";  // as nlohmann writes NaN and infinities
    return;
  }
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  std::string_view text(buf, static_cast<size_t>(r.ptr - buf));
  *out += text;
  if (text.find_first_of(".e") == std::string_view::npos) *out += ".0";  // nlohmann keeps a float a float
}

void AppendField(std::string* out, const LogField& f) {
  AppendString(out, f.key);
  out->push_back(':');
  switch (f.kind) {
    case LogField::Kind::kString: AppendString(out, f.s); break;
    case LogField::Kind::kInt: *out += std::to_string(f.i); break;
    case LogField::Kind::kDouble: AppendNumber(out, f.d); break;
    case LogField::Kind::kBool: *out += f.b ? "true" : "false"; break;
    case LogField::Kind::kStrings:
      out->push_back('[');
      for (size_t i = 0; i < f.list->size(); ++i) {
        if (i) out->push_back(',');
        AppendString(out, (*f.list)[i]);
      }
      out->push_back(']');
      break;
  }
}

// The writer: lines gather in `pending_` (bounded) while the writer thread
// writes the previous batch with one fwrite + fflush.
class Output {
 public:
  void Write(const std::string& line) {
    std::unique_lock<std::mutex> l(mu_);
    if (!running_) {
      std::fwrite(line.data(), 1, line.size(), out_);
      std::fflush(out_);
      return;
    }
    space_.wait(l, [&] { return pending_.size() < kMaxPending || !running_; });
    if (!running_) {
      std::fwrite(line.data(), 1, line.size(), out_);
      std::fflush(out_);
      return;
    }
    const bool was_empty = pending_.empty();
    pending_ += line;
    ++queued_;
    if (was_empty) data_.notify_one();
  }

  void SetOutput(FILE* out) {
    std::lock_guard<std::mutex> l(mu_);
    out_ = out;
  }

  void Start() {
    std::lock_guard<std::mutex> l(mu_);
    if (running_) return;
    running_ = true;
    stopping_ = false;
    writer_ = std::thread([this] { Run(); });
  }

  void Stop() {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (!running_ || stopping_) return;
      stopping_ = true;
    }
    data_.notify_all();
    writer_.join();
    std::lock_guard<std::mutex> l(mu_);
    // Lines queued after the writer's last look are written here.
    std::fwrite(pending_.data(), 1, pending_.size(), out_);
    std::fflush(out_);
    pending_.clear();
    written_ = queued_;
    running_ = false;
    stopping_ = false;
    space_.notify_all();
  }

  void Flush() {
    std::unique_lock<std::mutex> l(mu_);
    if (!running_) return;
    const uint64_t target = queued_;
    space_.wait(l, [&] { return written_ >= target || !running_; });
  }

 private:
  static constexpr size_t kMaxPending = 4 << 20;

  void Run() {
    std::string batch;
    std::unique_lock<std::mutex> l(mu_);
    while (true) {
      data_.wait(l, [&] { return !pending_.empty() || stopping_; });
      if (pending_.empty()) break;  // stopping, and everything is written
      batch.swap(pending_);
      const uint64_t upto = queued_;
      FILE* out = out_;
      l.unlock();
      space_.notify_all();
      std::fwrite(batch.data(), 1, batch.size(), out);
      std::fflush(out);
      batch.clear();
      l.lock();
      written_ = upto;
      space_.notify_all();
    }
  }

  std::mutex mu_;
  std::condition_variable data_;   // the writer waits for lines
  std::condition_variable space_;  // loggers wait for room; Flush waits for written_
  std::string pending_;
  uint64_t queued_ = 0;   // lines handed over so far
  uint64_t written_ = 0;  // of those, lines written
  bool running_ = false;
  bool stopping_ = false;
  FILE* out_ = stdout;
  std::thread writer_;
};

Output& TheOutput() {
  static Output* o = new Output();  // never destroyed: loggers may run during exit
  return *o;
}

}  // namespace

void SetLogLevel(LogLevel level) { g_level = static_cast<int>(level); }

LogLevel ParseLogLevel(const std::string& s) {
  if (s == "debug") return LogLevel::kDebug;
  if (s == "warn") return LogLevel::kWarn;
  if (s == "error") return LogLevel::kError;
  return LogLevel::kInfo;
}

bool LogEnabled(LogLevel level) { return static_cast<int>(level) >= g_level.load(); }

std::string FormatLogLine(LogLevel level, const std::string& msg, std::string_view time,
                          const nlohmann::json& fields) {
  nlohmann::json line = nlohmann::json::object();
  line["time"] = std::string(time);
  line["level"] = LevelName(level);
  line["msg"] = msg;
  if (fields.is_object()) {
    for (auto& [k, v] : fields.items()) line[k] = v;
  }
  return line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string FormatLogLine(LogLevel level, std::string_view msg, std::string_view time,
                          std::initializer_list<LogField> fields) {
  return FormatLogLine(level, msg, time, fields.begin(), fields.size());
}

std::string FormatLogLine(LogLevel level, std::string_view msg, std::string_view time, const LogField* fields,
                          size_t count) {
  // Keys in byte order, as nlohmann's std::map keeps them, with the three fixed keys merged in.
  const LogField fixed[] = {{"level", LevelName(level)}, {"msg", msg}, {"time", time}};
  std::array<const LogField*, 32> order{};
  size_t n = 0;
  for (const auto& f : fixed) order[n++] = &f;
  for (size_t i = 0; i < count && n < order.size(); ++i) order[n++] = &fields[i];
  std::sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(n),
            [](const LogField* a, const LogField* b) { return a->key < b->key; });
  std::string out;
  out.reserve(320);
  out.push_back('{');
  for (size_t i = 0; i < n; ++i) {
    if (i) out.push_back(',');
    AppendField(&out, *order[i]);
  }
  out.push_back('}');
  return out;
}

void Log(LogLevel level, const std::string& msg, nlohmann::json fields) {
  if (!LogEnabled(level)) return;
  std::string out = FormatLogLine(level, msg, TimeNow(), fields);
  out.push_back('\n');
  TheOutput().Write(out);
}

void LogFields(LogLevel level, std::string_view msg, std::initializer_list<LogField> fields) {
  LogFields(level, msg, fields.begin(), fields.size());
}

void LogFields(LogLevel level, std::string_view msg, const LogField* fields, size_t n) {
  if (!LogEnabled(level)) return;
  std::string out = FormatLogLine(level, msg, TimeNow(), fields, n);
  out.push_back('\n');
  TheOutput().Write(out);
}

void SetLogOutput(FILE* out) { TheOutput().SetOutput(out); }
void StartAsyncLog() { TheOutput().Start(); }
void StopAsyncLog() { TheOutput().Stop(); }
void FlushLog() { TheOutput().Flush(); }

}  // namespace portcullis::proxy
