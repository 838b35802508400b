#include "proxy/log.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>
#include <iterator>
#include <condition_variable>
#include <ctime>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

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

// For each byte: 0 when it stands for itself in a JSON string, 1 for '"' and
// '\\' (a backslash in front), 2 for controls and non-ASCII (the library).
constexpr std::array<uint8_t, 256> kJsonByteClass = [] {
  std::array<uint8_t, 256> t{};
  for (int c = 0; c < 256; ++c) t[static_cast<size_t>(c)] = (c < 0x20 || c >= 0x7f) ? 2 : 0;
  t['"'] = 1;
  t['\\'] = 1;
  return t;
}();

// A JSON string as nlohmann::json::dump writes it (invalid UTF-8 replaced).
// Printable ASCII, nearly every path and name, is escaped here; the rest goes
// through the library so the two writers never disagree. The common case, no
// byte to escape, is one scan and one append.
void AppendString(std::string* out, std::string_view s) {
  size_t i = 0;
  while (i < s.size() && kJsonByteClass[static_cast<unsigned char>(s[i])] == 0) ++i;
  if (i == s.size()) {
    out->push_back('"');
    out->append(s);
    out->push_back('"');
    return;
  }
  for (size_t j = i; j < s.size(); ++j) {
    if (kJsonByteClass[static_cast<unsigned char>(s[j])] == 2) {
      *out += nlohmann::json(std::string(s)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      return;
    }
  }
  out->push_back('"');
  size_t from = 0;
  for (; i < s.size(); ++i) {
    if (s[i] == '"' || s[i] == '\\') {
      out->append(s.data() + from, i - from);
      out->push_back('\\');
      from = i;  // the character itself goes with the next run
    }
  }
  out->append(s.data() + from, s.size() - from);
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

// The writer. Each logging thread appends to a buffer of its own under its
// own (uncontended) lock; one writer thread collects every buffer each few
// milliseconds, puts the lines back in the order they were logged (a global
// sequence number; a line appended while a collection is under way may go
// out with the next one) and writes them with one fwrite + fflush. A global lock
// here, held by 64 request threads on 2 cores, queued requests behind a
// preempted holder: p99 of cached manifests went from 1.7 ms to 6-8 ms.
class Output {
 public:
  void Write(const std::string& line) {
    // No writer thread (every command but serve): write now, register nothing.
    if (!running_.load()) {
      WriteNow(line.data(), line.size());
      return;
    }
    ThreadBuf* buf = Mine();
    std::unique_lock<std::mutex> l(buf->mu);
    if (!running_.load()) {  // Stop ran meanwhile
      l.unlock();
      WriteNow(line.data(), line.size());
      return;
    }
    // Bounded: a thread far ahead of the writer waits for it.
    if (buf->data.size() >= kMaxThreadBytes) {
      Wake();
      buf->drained.wait(l, [&] { return buf->data.size() < kMaxThreadBytes || !running_.load(); });
      if (!running_.load()) {
        l.unlock();
        WriteNow(line.data(), line.size());
        return;
      }
    }
    const uint64_t seq = seq_.fetch_add(1);
    const uint32_t len = static_cast<uint32_t>(line.size());
    buf->data.append(reinterpret_cast<const char*>(&seq), sizeof seq);
    buf->data.append(reinterpret_cast<const char*>(&len), sizeof len);
    const size_t before = buf->data.size();
    buf->data.append(line);
    const bool big = before < kWakeBytes && buf->data.size() >= kWakeBytes;  // crossed just now
    l.unlock();
    // The writer sleeps without a deadline only when it found nothing to
    // write; while lines keep coming it looks again every kBatchWindow.
    if (big || idle_.load()) Wake();
  }

  void SetOutput(FILE* out) {
    std::lock_guard<std::mutex> l(out_mu_);
    out_ = out;
  }

  void Start() {
    std::lock_guard<std::mutex> l(mu_);
    if (running_.load() || writer_.joinable()) return;
    stopping_ = false;
    running_ = true;
    writer_ = std::thread([this] { Run(); });
  }

  void Stop() {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (!running_.load() || stopping_) return;
      stopping_ = true;
    }
    cv_.notify_all();
    writer_.join();
    // Lines appended after the writer's last look: each buffer is drained
    // under its lock once running_ is false, so no line is left behind.
    running_ = false;
    Collect();
    std::lock_guard<std::mutex> l(mu_);
    writer_ = std::thread();
    stopping_ = false;
    ++cycles_done_;
    cv_.notify_all();
  }

  void Flush() {
    std::unique_lock<std::mutex> l(mu_);
    if (!running_.load()) return;
    // A collection that starts after this point sees every line already logged.
    const uint64_t target = cycles_started_ + 1;
    flush_wanted_ = true;
    cv_.notify_all();
    cv_.wait(l, [&] { return cycles_done_ >= target || !running_.load(); });
  }

 private:
  struct ThreadBuf {
    std::mutex mu;
    std::condition_variable drained;
    std::string data;  // records: 8-byte sequence, 4-byte length, line
    bool orphan = false;  // its thread ended: drop it once drained
  };
  // Keeps the calling thread's buffer registered; marks it orphaned at thread exit.
  struct Holder {
    std::shared_ptr<ThreadBuf> buf;
    ~Holder() {
      if (!buf) return;
      std::lock_guard<std::mutex> l(buf->mu);
      buf->orphan = true;
    }
  };

  static constexpr size_t kMaxThreadBytes = 256 << 10;
  static constexpr size_t kWakeBytes = 64 << 10;
  static constexpr auto kBatchWindow = std::chrono::milliseconds(5);

  ThreadBuf* Mine() {
    thread_local Holder holder;
    if (!holder.buf) {
      holder.buf = std::make_shared<ThreadBuf>();
      std::lock_guard<std::mutex> l(mu_);
      bufs_.push_back(holder.buf);
    }
    return holder.buf.get();
  }

  void Wake() {
    std::lock_guard<std::mutex> l(mu_);
    wake_ = true;
    cv_.notify_all();
  }

  void WriteNow(const char* data, size_t n) {
    std::lock_guard<std::mutex> l(out_mu_);
    std::fwrite(data, 1, n, out_);
    std::fflush(out_);
  }

  // Takes every buffer's lines, writes them in sequence order; true when
  // there were any. Called by the writer, and by Stop once it has ended.
  bool Collect() {
    std::vector<std::shared_ptr<ThreadBuf>> bufs;
    {
      std::lock_guard<std::mutex> l(mu_);
      bufs = bufs_;
    }
    std::vector<std::string> taken;
    taken.reserve(bufs.size());
    std::vector<ThreadBuf*> dead;
    for (auto& b : bufs) {
      std::lock_guard<std::mutex> l(b->mu);
      if (!b->data.empty()) {
        taken.emplace_back();
        taken.back().swap(b->data);
        b->data.reserve(std::min(taken.back().capacity(), kMaxThreadBytes + 4096));
        b->drained.notify_all();
      }
      if (b->orphan) dead.push_back(b.get());
    }
    if (!dead.empty()) {
      std::lock_guard<std::mutex> l(mu_);
      // An orphan's thread has ended: nothing is appended after this drain.
      std::erase_if(bufs_, [&](const std::shared_ptr<ThreadBuf>& b) {
        return std::find(dead.begin(), dead.end(), b.get()) != dead.end();
      });
    }
    if (taken.empty()) return false;
    std::vector<std::pair<uint64_t, std::string_view>> lines;
    for (const auto& t : taken) {
      size_t pos = 0;
      while (pos + 12 <= t.size()) {
        uint64_t seq;
        uint32_t len;
        std::memcpy(&seq, t.data() + pos, sizeof seq);
        std::memcpy(&len, t.data() + pos + 8, sizeof len);
        lines.emplace_back(seq, std::string_view(t.data() + pos + 12, len));
        pos += 12 + len;
      }
    }
    std::sort(lines.begin(), lines.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
    out_buf_.clear();
    for (const auto& [seq, text] : lines) out_buf_ += text;
    WriteNow(out_buf_.data(), out_buf_.size());
    if (out_buf_.capacity() > (4u << 20)) std::string().swap(out_buf_);
    return true;
  }

  void Run() {
    std::unique_lock<std::mutex> l(mu_);
    while (true) {
      // Let lines gather for a moment: one write for many requests.
      if (!stopping_ && !flush_wanted_ && !wake_) {
        cv_.wait_for(l, kBatchWindow, [&] { return stopping_ || flush_wanted_ || wake_; });
      }
      const bool stop = stopping_;
      flush_wanted_ = false;
      wake_ = false;
      ++cycles_started_;
      l.unlock();
      const bool wrote = Collect();
      l.lock();
      ++cycles_done_;
      cv_.notify_all();
      if (stop) return;
      if (!wrote) {
        // Nothing came in a whole window: say so, look once more (a line
        // appended before idle_ was set is found here; one appended after
        // sees idle_ and wakes us), then sleep until woken.
        idle_ = true;
        l.unlock();
        const bool more = Collect();
        l.lock();
        if (!more) cv_.wait(l, [&] { return stopping_ || flush_wanted_ || wake_; });
        idle_ = false;
      }
    }
  }

  std::mutex mu_;  // bufs_, the writer's state, Flush
  std::condition_variable cv_;
  std::vector<std::shared_ptr<ThreadBuf>> bufs_;
  std::atomic<uint64_t> seq_{0};
  std::atomic<bool> running_{false};
  std::atomic<bool> idle_{false};
  bool stopping_ = false;
  bool flush_wanted_ = false;
  bool wake_ = false;  // a logger asked for a collection now
  uint64_t cycles_started_ = 0;
  uint64_t cycles_done_ = 0;
  std::thread writer_;
  std::string out_buf_;  // the writer's; Stop uses it after the writer ended
  std::mutex out_mu_;    // out_ and the direct writes
  FILE* out_ = stdout;
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
  const size_t m = std::min(count, order.size() - std::size(fixed));
  bool sorted = true;
  for (size_t i = 1; i < m && sorted; ++i) sorted = !(fields[i].key < fields[i - 1].key);
  size_t n = 0;
  if (sorted) {
    // Fields already in byte order (the access log's): merge, no sort.
    size_t i = 0, j = 0;
    while (i < std::size(fixed) || j < m) {
      if (j == m || (i < std::size(fixed) && fixed[i].key < fields[j].key)) {
        order[n++] = &fixed[i++];
      } else {
        order[n++] = &fields[j++];
      }
    }
  } else {
    for (const auto& f : fixed) order[n++] = &f;
    for (size_t i = 0; i < m; ++i) order[n++] = &fields[i];
    std::sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(n),
              [](const LogField* a, const LogField* b) { return a->key < b->key; });
  }
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
