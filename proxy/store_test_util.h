// Test helpers shared by the proxy's unit tests (not part of the library):
// opening a store in a test folder, and a registry client for a fake upstream.
#pragma once

#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "oci/http_client.h"
#include "proxy/store.h"

namespace portcullis::proxy::testing {

// Opens (creating) the store in `dir`; `cleaned` receives the count of
// half-written blobs removed. Fails the test when the store cannot open.
inline std::unique_ptr<Store> OpenStore(const std::string& dir, int* cleaned = nullptr,
                                        const StoreOptions& options = {}) {
  int n = -1;
  auto s = Store::Open(dir, &n, options);
  REQUIRE_MESSAGE(s.ok(), s.status().ToString());
  if (cleaned != nullptr) *cleaned = n;
  return std::move(s).value();
}

// A client of the fake upstream at `url` with short timeouts.
inline std::shared_ptr<oci::RegistryClient> ClientFor(const std::string& url) {
  auto u = oci::ParseUrl(url);
  REQUIRE(u.ok());
  oci::ClientOptions opts;
  opts.connect_timeout = std::chrono::seconds(5);
  opts.read_timeout = std::chrono::seconds(10);
  return std::make_shared<oci::RegistryClient>(*u, std::nullopt, opts);
}

}  // namespace portcullis::proxy::testing
