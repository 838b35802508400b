#include "proxy/gate.h"

#include <nlohmann/json.hpp>
#include <optional>

#include "proxy/log.h"
#include "proxy/registry.h"
#include "verifier/discovery.h"
#include "verifier/signatures.h"

namespace portcullis::proxy {

namespace {
constexpr std::string_view kSigstoreBundleType = "application/vnd.dev.sigstore.bundle.v0.3+json";
}

bool IsSignatureArtifact(const std::string& tag, const oci::Manifest& m) {
  if (!tag.empty() && verifier::IsSignatureArtifactTag(tag)) return true;
  if (m.subject) return true;
  if (m.artifact_type == verifier::kCosignSignatureArtifactType || m.artifact_type == kSigstoreBundleType) return true;
  if (m.config && (m.config->media_type == verifier::kCosignSignatureArtifactType)) return true;
  if (!m.IsIndex() && !m.layers.empty()) {
    bool all = true;
    for (const auto& l : m.layers) all = all && l.media_type == verifier::kSimpleSigningMediaType;
    if (all) return true;
  }
  return false;
}

Gate::Gate(Store* store, Metrics* metrics, int64_t verdict_ttl_seconds, bool blob_gate_referenced)
    : store_(store), metrics_(metrics), verdict_ttl_(verdict_ttl_seconds), blob_gate_referenced_(blob_gate_referenced) {}

void Gate::SetPolicy(std::shared_ptr<const verifier::Policy> policy) {
  std::unique_lock<std::shared_mutex> l(mu_);
  policy_ = std::move(policy);
  hot_.clear();  // keyed by policy version: the old entries can no longer match
}

std::shared_ptr<const verifier::Policy> Gate::policy() const {
  std::shared_lock<std::shared_mutex> l(mu_);
  return policy_;
}

void Gate::Remember(const std::string& key, const verifier::Decision& d, int64_t expires) {
  std::unique_lock<std::shared_mutex> l(mu_);
  if (hot_.size() >= kMaxHot) hot_.clear();
  hot_[key] = Hot{d, expires};
}

std::atomic<double>* Gate::HotCounter(bool warn) {
  auto& slot = hot_counters_[warn ? 1 : 0];
  std::atomic<double>* c = slot.load(std::memory_order_acquire);
  if (c == nullptr) {
    c = metrics_->Handle("portcullis_policy_decisions_total", "Trust-policy decisions by verdict and how they were reached.",
                         {{"verdict", warn ? "warn" : "accept"}, {"source", "cache"}});
    slot.store(c, std::memory_order_release);
  }
  return c;
}

Status Gate::Record(const std::string& prefix, const oci::Manifest& m, const oci::Digest&) {
  // Not the manifest itself: its own verdict expires with the verdict TTL.
  std::vector<oci::Digest> ds;
  for (const auto& b : m.Blobs()) ds.push_back(b.digest);
  for (const auto& c : m.manifests) ds.push_back(c.digest);  // an index covers its children
  return store_->MarkAllowed(prefix, ds);
}

StatusOr<verifier::Decision> Gate::Test(const Route& route, const std::string& tag, const oci::Digest& digest) {
  auto policy = this->policy();
  if (!policy) return Status::InvalidArgument("the proxy runs without a policy (--policy)");
  verifier::RegistrySignatureSource sigs(*route.upstream->client, route.repo);
  return policy->Evaluate(route.Key(), tag, digest, sigs);
}

Status Gate::CheckManifest(const Route& route, const std::string& tag, const oci::Digest& digest,
                           const std::string& media_type, const std::string& bytes, const std::string& client) {
  auto log_decision = [&](const verifier::Decision& d, bool cached, const std::string& policy_version) {
    const LogLevel level = d.allowed && !d.warn_only ? LogLevel::kInfo : LogLevel::kWarn;
    if (!LogEnabled(level)) return;
    LogFields(level, "policy decision",
              {{"client", client},
               {"image", route.Key() + (tag.empty() ? "" : ":" + tag)},
               {"digest", digest.ToString()},
               {"rule", d.rule},
               {"verdict", d.verdict()},
               {"reason", d.reason},
               {"keys", d.keys_matched},
               {"cached", cached},
               {"policy_version", policy_version}});
  };
  const std::string repo_digest = "|" + route.Key() + "|" + digest.ToString();
  const int64_t now = NowSeconds();
  {
    // The hot path: an accepting verdict in memory needs nothing else (its
    // blobs and children were recorded when it was reached). All of it runs
    // under one shared lock: no reference counts touched, no copies. A
    // refusal takes the full path below, where an index that passed since may
    // cover the manifest.
    std::shared_lock<std::shared_mutex> l(mu_);
    if (!policy_) return Status::Ok();
    auto it = hot_.find(policy_->version() + repo_digest);
    if (it != hot_.end() && it->second.expires > now && it->second.decision.allowed) {
      const verifier::Decision& d = it->second.decision;
      HotCounter(d.warn_only)->fetch_add(1, std::memory_order_relaxed);
      log_decision(d, true, policy_->version());
      return Status::Ok();
    }
  }
  auto policy = this->policy();
  if (!policy) return Status::Ok();
  const std::string prefix = policy->version() + "|" + route.Key();
  const std::string key = policy->version() + repo_digest;
  auto count = [&](const std::string& verdict, const std::string& how) {
    metrics_->Inc("portcullis_policy_decisions_total", "Trust-policy decisions by verdict and how they were reached.",
                  {{"verdict", verdict}, {"source", how}});
  };
  PC_ASSIGN_OR_RETURN(oci::Manifest m, oci::ParseManifest(bytes, media_type));
  if (IsSignatureArtifact(tag, m)) {
    count("accept", "signature_artifact");
    return Record(prefix, m, digest);
  }
  // Covered by an index that passed in this repository.
  if (store_->IsAllowed(prefix, digest)) {
    count("accept", "covered");
    return Record(prefix, m, digest);
  }
  verifier::Decision d;
  bool from_cache = false;
  PC_ASSIGN_OR_RETURN(std::optional<std::string> cached, store_->GetVerdict(key));
  if (cached) {
    auto j = nlohmann::json::parse(*cached, nullptr, false);
    if (j.is_object() && j.value("expires", int64_t(0)) > now) {
      d.allowed = j.value("allowed", false);
      d.warn_only = j.value("warn", false);
      d.rule = j.value("rule", "");
      d.reason = j.value("reason", "");
      d.keys_matched = j.value("keys", std::vector<std::string>());
      from_cache = true;
      Remember(key, d, j.value("expires", int64_t(0)));
    }
  }
  if (!from_cache) {
    verifier::RegistrySignatureSource sigs(*route.upstream->client, route.repo);
    auto ev = policy->Evaluate(route.Key(), tag, digest, sigs);
    if (!ev.ok()) {
      Log(LogLevel::kError, "policy decision failed: signatures could not be looked up; refused",
          {{"client", client}, {"image", route.Key() + (tag.empty() ? "" : ":" + tag)},
           {"digest", digest.ToString()}, {"error", ev.status().ToString()}});
      count("error", "evaluated");
      return Status::UpstreamUnavailable("could not check the signatures of " + digest.ToString() + ": " +
                                         ev.status().message());
    }
    d = *ev;
    // Blobs and children first: a verdict on disk always has its record.
    if (d.allowed) PC_RETURN_IF_ERROR(Record(prefix, m, digest));
    nlohmann::json j = {{"allowed", d.allowed},       {"warn", d.warn_only},
                        {"rule", d.rule},             {"reason", d.reason},
                        {"keys", d.keys_matched},     {"expires", now + verdict_ttl_}};
    PC_RETURN_IF_ERROR(store_->PutVerdict(key, j.dump()));
    Remember(key, d, now + verdict_ttl_);
  }
  count(d.verdict(), from_cache ? "cache" : "evaluated");
  log_decision(d, from_cache, policy->version());
  if (!d.allowed) {
    return Status::Denied("refused by the trust policy: rule " + d.rule + ": " + d.reason);
  }
  return Status::Ok();  // blobs and children were recorded when the verdict was reached
}

Status Gate::CheckBlob(const Route& route, const oci::Digest& digest) {
  auto policy = this->policy();
  if (!policy || !blob_gate_referenced_) return Status::Ok();
  if (store_->IsAllowed(policy->version() + "|" + route.Key(), digest)) return Status::Ok();
  return Status::Denied("blob " + digest.ToString() + " is not named by any manifest that passed the trust policy in " +
                        route.Key() + " (fetch an image's manifest before its blobs)");
}

}  // namespace portcullis::proxy
