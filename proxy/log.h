// JSON-lines logging on stdout: one object per line, safe from many threads.
// Secrets are never passed in; callers log names, digests and outcomes only.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace portcullis::proxy {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

void SetLogLevel(LogLevel level);
LogLevel ParseLogLevel(const std::string& s);  // unknown → info
bool LogEnabled(LogLevel level);

// Writes {"time": ..., "level": ..., "msg": msg, ...fields}.
void Log(LogLevel level, const std::string& msg, nlohmann::json fields = nlohmann::json::object());

}  // namespace portcullis::proxy
