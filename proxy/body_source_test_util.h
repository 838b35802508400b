// Test helper shared by the proxy's unit tests (not part of the library):
// reading a response body source (proxy/http_message.h) as the engine would.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

#include "proxy/http_message.h"

namespace portcullis::proxy::testing {

// Reads `source` until *got holds at least `n` bytes, it ends or fails, or
// `for_at_most` passed (then kWait); sleeps `pause` after every piece, as a
// client slower than the upstream, and 1 ms after every kWait.
inline BodySource::Result ReadUpTo(BodySource& source, std::string* got, size_t n,
                                   std::chrono::milliseconds for_at_most,
                                   std::chrono::milliseconds pause = std::chrono::milliseconds(0)) {
  const auto deadline = std::chrono::steady_clock::now() + for_at_most;
  while (std::chrono::steady_clock::now() < deadline) {
    BodyPiece p;
    const auto r = source.NextPiece(&p, 1500);
    got->append(p.data, p.size);
    if (r == BodySource::Result::kEnd || r == BodySource::Result::kFailed || got->size() >= n) return r;
    std::this_thread::sleep_for(r == BodySource::Result::kWait ? std::chrono::milliseconds(1) : pause);
  }
  return BodySource::Result::kWait;
}

// Reads `source` to its end (or its failure, or 20 s).
inline BodySource::Result ReadOut(BodySource& source, std::string* got,
                                  std::chrono::milliseconds pause = std::chrono::milliseconds(0)) {
  return ReadUpTo(source, got, SIZE_MAX, std::chrono::seconds(20), pause);
}

}  // namespace portcullis::proxy::testing
