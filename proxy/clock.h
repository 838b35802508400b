// Time for the proxy's expiries (tag TTL, max-stale, verdict TTL): one clock,
// passed in where a test needs to move it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>

namespace portcullis::proxy {

// Unix seconds now (the system clock).
inline int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A source of Unix seconds; the default is NowSeconds. Must be thread-safe.
using Clock = std::function<int64_t()>;

}  // namespace portcullis::proxy
