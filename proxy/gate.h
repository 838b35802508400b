// The trust-policy gate: every manifest passes it before it is served, and (with
// blob_gate "referenced") every blob must be named by a manifest that passed it
// in the same repository. The exact rules are in verifier/policy.md ("The proxy
// gate"); in short:
//
// - Nothing a pusher chooses decides trust. A manifest passes without a verdict
//   only when its whole shape makes it a signature artifact
//   (verifier/artifact_shape.h); the blobs of such an artifact are served only
//   as small JSON, and nothing it names becomes servable otherwise.
// - Every other manifest needs a verdict of the policy. Verdicts are cached
//   (RocksDB and memory) under (policy version, upstream/repository, digest,
//   and the tag when the policy's decisions depend on it) for verdict_ttl.
// - An accepted manifest makes the blobs it names servable in its repository
//   until its verdict expires. An index accepted BY A VERIFIED SIGNATURE also
//   covers its children in the same repository until then, unless another
//   (more specific) rule decides for the child. When such a mark has expired,
//   the manifest that made it (kept in the store) is checked again before the
//   blob or child is refused: a pull goes on while the signature holds, and
//   stops once it is revoked.
// - Each decision is logged as one JSON line ("policy decision").
//
// Thread-safe. `store` and `metrics` must outlive the gate.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>

#include "oci/manifest.h"
#include "oci/status.h"
#include "proxy/clock.h"
#include "proxy/metrics.h"
#include "proxy/store.h"
#include "proxy/upstreams.h"
#include "verifier/discovery.h"
#include "verifier/policy.h"

namespace portcullis::proxy {

class Gate {
 public:
  // Makes the signature source for one decision about an image of `route`.
  using SignatureSourceFactory = std::function<std::unique_ptr<verifier::SignatureSource>(const Route&)>;

  struct Options {
    int64_t verdict_ttl_seconds = 300;
    bool blob_gate_referenced = true;
    // Bounds of one signature lookup (review M5).
    verifier::LookupLimits lookup_limits;
    // Default: NowSeconds.
    Clock clock;
    // Default: a verifier::RegistrySignatureSource on the route's upstream client.
    SignatureSourceFactory signatures;
  };

  Gate(Store* store, Metrics* metrics, Options options);

  // Swaps the policy (nullptr: no gate). Thread-safe.
  void SetPolicy(std::shared_ptr<const verifier::Policy> policy);
  std::shared_ptr<const verifier::Policy> policy() const;

  // OK when the manifest (`bytes` as served, `media_type`, `digest`) asked for
  // by `tag` ("" when by digest) may be served: accepted, warn mode, no policy,
  // a signature artifact by shape, or covered by a signed index. DENIED naming
  // the rule and the reason otherwise; UPSTREAM_UNAVAILABLE when signatures
  // could not be looked up (fail closed); IO_ERROR when the store fails.
  Status CheckManifest(const Route& route, const std::string& tag, const oci::Digest& digest,
                       const std::string& media_type, const std::string& bytes, const std::string& client);

  // The same decision when it needs no lookup: OK without a policy or with an
  // accepting verdict for this manifest in memory (and not expired). nullopt
  // otherwise: call CheckManifest, which may block. Never blocks on I/O (one
  // shared lock), so it may run on the event loop. Thread-safe.
  std::optional<Status> CheckManifestCached(const Route& route, const std::string& tag, const oci::Digest& digest,
                                            const std::string& client);

  enum class BlobGrant {
    kServe,              // serve it as it is
    kServeArtifactJson,  // only a signature artifact names it: serve it only when
                         // it is small JSON (verifier::IsArtifactBlob)
  };
  // How the blob may be served in this repository; DENIED when not at all.
  // Without a policy or with blob_gate "any": kServe. Blobs are servable when a
  // manifest that passed here names them (until its verdict expires) or when the
  // repository's rule accepts without signatures.
  StatusOr<BlobGrant> CheckBlob(const Route& route, const oci::Digest& digest);

  // Deletes the verdicts and marks of other policy versions (all of them
  // without a policy), expired verdicts, and marks expired for over a day
  // (review L5: gate state must not grow forever). Returns how many went.
  StatusOr<uint64_t> CollectGarbage();

  // Evaluates without caching or recording anything (admin `policy test`).
  StatusOr<verifier::Decision> Test(const Route& route, const std::string& tag, const oci::Digest& digest);

 private:
  struct Hot {
    verifier::Decision decision;
    int64_t expires = 0;
  };
  // CheckManifest; `depth` counts revalidations in progress, `use_hot` is false
  // for them (they must refresh the marks).
  Status Check(const Route& route, const std::string& tag, const oci::Digest& digest, const std::string& media_type,
               const std::string& bytes, const std::string& client, int depth, bool use_hot);
  // What the accepted manifest `digest` (asked by `tag`) makes servable until `expires`.
  Status Record(const std::string& version, const std::string& repo, const oci::Manifest& m, const oci::Digest& digest,
                const std::string& tag, int64_t expires, bool covers_children, const std::string& rule);
  // True when the mark `key` is live. An expired mark is renewed when the
  // manifest that made it (from the store) passes the gate again now.
  // `rule` and `expires` (either may be null) receive the live mark's covering
  // rule and expiry.
  StatusOr<bool> LiveMark(const Route& route, const std::string& key, int64_t now, int depth, std::string* rule,
                          int64_t* expires);
  void Remember(const std::string& key, const verifier::Decision& d, int64_t expires);
  std::atomic<double>* HotCounter(bool warn);

  Store* store_;
  Metrics* metrics_;
  Options opt_;
  // Read on every manifest request by many threads at once: readers share it
  // and never queue behind one another (writers are reloads and new verdicts).
  mutable std::shared_mutex mu_;
  std::shared_ptr<const verifier::Policy> policy_;
  // Hot verdicts in memory (bounded; RocksDB keeps them all): key → decision, expiry.
  std::map<std::string, Hot, std::less<>> hot_;
  static constexpr size_t kMaxHot = 10000;
  // portcullis_policy_decisions_total{verdict, source="cache"} for the hot
  // path, looked up once: [0] accept, [1] warn.
  std::atomic<std::atomic<double>*> hot_counters_[2] = {nullptr, nullptr};
};

// Keys of the gate's records, exposed for tests. `version` is the policy
// version, `repo` "<upstream>/<repository>".
std::string VerdictKey(const std::string& version, const std::string& repo, const oci::Digest& digest,
                       const std::string& tag_part);
std::string BlobMarkKey(const std::string& version, const std::string& repo, const oci::Digest& digest);
std::string ChildMarkKey(const std::string& version, const std::string& repo, const oci::Digest& digest);
std::string ArtifactBlobMarkKey(const std::string& version, const std::string& repo, const oci::Digest& digest);

}  // namespace portcullis::proxy
