// The prefetch station: pulls an image into the cache ahead of its clients
// (the admin API's `cache prefetch`), through the same path and gate a client
// pull takes.
#pragma once

#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "oci/status.h"
#include "proxy/registry.h"

namespace portcullis::proxy {

// Pulls `ref` (a tag or digest) of `route` into the cache: the manifest (every
// child of an index), each passing the gate, then every blob, waiting up to
// `fetch_wait` for each fetch to finish. `on_event` gets one JSON object per
// manifest and blob as it is done; `*summary` the totals at the end. The first
// error ends it (DENIED by the gate, the upstream's errors). Blocks: run it on
// its own thread. Thread-safe as `registry` is.
Status Prefetch(Registry& registry, const Route& route, const std::string& ref, std::chrono::seconds fetch_wait,
                const std::function<void(const nlohmann::json&)>& on_event, nlohmann::json* summary);

}  // namespace portcullis::proxy
