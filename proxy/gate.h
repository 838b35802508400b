// The trust-policy gate: every manifest passes it before it is served, and (with
// blob_gate "referenced") every blob must be named by a manifest that passed it
// in the same repository.
//
// - Signature artifacts (the sha256-<hex>.sig and sha256-<hex> tags, manifests
//   with a subject or a cosign/sigstore artifact type, simple-signing manifests)
//   pass without a signature of their own, so clients that verify for
//   themselves still find them.
// - A verified index covers its children in the same repository; a child
//   signed on its own passes too.
// - Verdicts are cached in RocksDB under (policy version, repository, digest)
//   for verdict_ttl; a new policy version evaluates again.
// - Each decision is logged as one JSON line ("policy decision").
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "oci/manifest.h"
#include "oci/status.h"
#include "proxy/metrics.h"
#include "proxy/store.h"
#include <atomic>
#include <map>
#include <shared_mutex>

#include "proxy/upstreams.h"
#include "verifier/policy.h"

namespace portcullis::proxy {

class Gate {
 public:
  Gate(Store* store, Metrics* metrics, int64_t verdict_ttl_seconds, bool blob_gate_referenced);

  // Swaps the policy (nullptr: no gate). Thread-safe.
  void SetPolicy(std::shared_ptr<const verifier::Policy> policy);
  std::shared_ptr<const verifier::Policy> policy() const;

  // OK when the manifest may be served (accepted, warn mode, no policy, or a
  // signature artifact); DENIED naming the rule and the reason otherwise;
  // UPSTREAM_UNAVAILABLE when signatures could not be looked up (fail closed).
  Status CheckManifest(const Route& route, const std::string& tag, const oci::Digest& digest,
                       const std::string& media_type, const std::string& bytes, const std::string& client);

  // OK when the blob may be served in this repository.
  Status CheckBlob(const Route& route, const oci::Digest& digest);

  // Evaluates without caching or recording anything (admin `policy test`).
  StatusOr<verifier::Decision> Test(const Route& route, const std::string& tag, const oci::Digest& digest);

 private:
  Status Record(const std::string& prefix, const oci::Manifest& m, const oci::Digest& digest);

  Store* store_;
  Metrics* metrics_;
  const int64_t verdict_ttl_;
  const bool blob_gate_referenced_;
  // Read on every manifest request by many threads at once: readers share it
  // and never queue behind one another (writers are reloads and new verdicts).
  mutable std::shared_mutex mu_;
  std::shared_ptr<const verifier::Policy> policy_;
  // Hot verdicts in memory (bounded; RocksDB keeps them all): key → decision, expiry.
  struct Hot {
    verifier::Decision decision;
    int64_t expires = 0;
  };
  std::map<std::string, Hot, std::less<>> hot_;
  static constexpr size_t kMaxHot = 10000;
  void Remember(const std::string& key, const verifier::Decision& d, int64_t expires);
  // portcullis_policy_decisions_total{verdict, source="cache"} for the hot
  // path, looked up once: [0] accept, [1] warn.
  std::atomic<std::atomic<double>*> hot_counters_[2] = {nullptr, nullptr};
  std::atomic<double>* HotCounter(bool warn);
};

// True for manifests that are signature artifacts rather than images.
bool IsSignatureArtifact(const std::string& tag, const oci::Manifest& m);

}  // namespace portcullis::proxy
