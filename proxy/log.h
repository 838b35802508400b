// JSON-lines logging on stdout: one object per line, safe from many threads.
// Secrets are never passed in; callers log names, digests and outcomes only.
//
// Lines are written as they are logged, or — once StartAsyncLog() has run, as
// `serve` does — handed to one writer thread that writes what gathered in up to
// 5 ms (or 64 KiB) in one call. A request thread then never waits on a write(2)
// under the log lock, and rarely wakes the writer; it waits only when 4 MiB are
// already queued (lines are never dropped).
#pragma once

#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace portcullis::proxy {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

void SetLogLevel(LogLevel level);
LogLevel ParseLogLevel(const std::string& s);  // unknown → info
bool LogEnabled(LogLevel level);

// Writes {"time": ..., "level": ..., "msg": msg, ...fields}, keys sorted.
void Log(LogLevel level, const std::string& msg, nlohmann::json fields = nlohmann::json::object());

// One field of LogFields: a string, an integer, a number, a bool or a list of
// strings. It refers to the caller's data, which must outlive the call.
struct LogField {
  enum class Kind { kString, kInt, kDouble, kBool, kStrings };
  LogField() : kind(Kind::kString) {}
  LogField(std::string_view k, std::string_view v) : key(k), kind(Kind::kString), s(v) {}
  LogField(std::string_view k, const std::string& v) : key(k), kind(Kind::kString), s(v) {}
  LogField(std::string_view k, const char* v) : key(k), kind(Kind::kString), s(v) {}
  LogField(std::string_view k, int v) : key(k), kind(Kind::kInt), i(v) {}
  LogField(std::string_view k, long v) : key(k), kind(Kind::kInt), i(v) {}
  LogField(std::string_view k, long long v) : key(k), kind(Kind::kInt), i(v) {}
  LogField(std::string_view k, double v) : key(k), kind(Kind::kDouble), d(v) {}
  LogField(std::string_view k, bool v) : key(k), kind(Kind::kBool), b(v) {}
  LogField(std::string_view k, const std::vector<std::string>& v) : key(k), kind(Kind::kStrings), list(&v) {}

  std::string_view key;
  Kind kind;
  std::string_view s;
  int64_t i = 0;
  double d = 0;
  bool b = false;
  const std::vector<std::string>* list = nullptr;
};

// The same line as Log() with the same fields, built without a JSON tree: for
// the per-request access and decision lines. Keys must be distinct and must not
// be "time", "level" or "msg".
void LogFields(LogLevel level, std::string_view msg, std::initializer_list<LogField> fields);
void LogFields(LogLevel level, std::string_view msg, const LogField* fields, size_t n);

// The text of one line (no newline), for tests and for Log/LogFields.
std::string FormatLogLine(LogLevel level, std::string_view msg, std::string_view time,
                          std::initializer_list<LogField> fields);
std::string FormatLogLine(LogLevel level, std::string_view msg, std::string_view time, const LogField* fields,
                          size_t n);
std::string FormatLogLine(LogLevel level, const std::string& msg, std::string_view time, const nlohmann::json& fields);

// Where lines go (default stdout); for tests. Call before StartAsyncLog.
void SetLogOutput(FILE* out);
// Starts the writer thread; StopAsyncLog writes what is queued, stops it and
// returns to direct writes. FlushLog returns once every line logged before it
// has been written. All three are safe to call in any state.
void StartAsyncLog();
void StopAsyncLog();
void FlushLog();

}  // namespace portcullis::proxy
