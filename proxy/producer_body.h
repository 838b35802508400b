// A response body written by a producer on its own thread (the JSON lines of
// an admin prefetch): the producer emits pieces into a bounded buffer that the
// engine drains. A producer that runs ahead of a slow client waits; one whose
// client went away runs to its end with its output dropped.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string_view>

#include "proxy/http_message.h"

namespace portcullis::proxy {

// Emits one piece of the body; blocks while `max_buffered` bytes wait for the client.
using Emit = std::function<void(std::string_view)>;

// Starts `produce` on a new thread at once. It returns true when the body is
// complete, false (or an exception) to cut it. `running` (optional, must
// outlive the thread) counts producers still running, for a clean shutdown.
// The thread cannot be created: the body fails at its first read.
std::unique_ptr<BodySource> ProducerBody(std::function<bool(const Emit&)> produce, size_t max_buffered,
                                         std::atomic<int>* running);

}  // namespace portcullis::proxy
