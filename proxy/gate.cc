#include "proxy/gate.h"

#include <nlohmann/json.hpp>
#include <optional>

#include "proxy/log.h"
#include "verifier/artifact_shape.h"

namespace portcullis::proxy {

namespace {

constexpr const char* kDecisionsHelp = "Trust-policy decisions by verdict and how they were reached.";

// A source for rules that need no signatures: Evaluate never asks it.
class NoSignatures : public verifier::SignatureSource {
 public:
  StatusOr<std::vector<verifier::FoundSignature>> Find(const oci::Digest&) override {
    return Status::Internal("no signature lookup expected");
  }
};

// The tag part of a verdict key: the tag only when decisions depend on it.
std::string TagPart(const verifier::Policy& policy, const std::string& tag) {
  return policy.DecisionDependsOnTag() ? (tag.empty() ? "@" : ":" + tag) : "";
}

std::string EncodeVerdict(const verifier::Decision& d, int64_t expires) {
  nlohmann::json j = {{"allowed", d.allowed}, {"warn", d.warn_only}, {"rule", d.rule},
                      {"reason", d.reason},   {"keys", d.keys_matched}, {"expires", expires}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// A stored verdict, when it is well-formed and unexpired.
std::optional<std::pair<verifier::Decision, int64_t>> DecodeVerdict(const std::string& v, int64_t now) {
  auto j = nlohmann::json::parse(v, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return std::nullopt;
  auto b = [&](const char* k) { return j.contains(k) && j[k].is_boolean() && j[k].get<bool>(); };
  auto s = [&](const char* k) { return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string(); };
  if (!j.contains("expires") || !j["expires"].is_number_integer()) return std::nullopt;
  const int64_t expires = j["expires"].get<int64_t>();
  if (expires <= now) return std::nullopt;
  verifier::Decision d;
  d.allowed = b("allowed");
  d.warn_only = b("warn");
  d.rule = s("rule");
  d.reason = s("reason");
  if (j.contains("keys") && j["keys"].is_array()) {
    for (const auto& k : j["keys"]) {
      if (k.is_string()) d.keys_matched.push_back(k.get<std::string>());
    }
  }
  return std::make_pair(std::move(d), expires);
}

// A mark: what passed (a blob, an index child) and because of which manifest.
// Encoded "<expires>|<parent digest>|<tag>|<rule>" (tags hold no '|'; the rule,
// last, may).
struct Mark {
  int64_t expires = 0;
  oci::Digest parent;  // the manifest whose pass made it
  std::string tag;     // the tag that manifest was asked by ("" by digest)
  std::string rule;    // children: the rule that accepted the index
};

std::string EncodeMark(int64_t expires, const oci::Digest& parent, const std::string& tag, const std::string& rule) {
  return std::to_string(expires) + "|" + parent.ToString() + "|" + tag + "|" + rule;
}

std::optional<Mark> DecodeMark(const std::string& v) {
  size_t a = v.find('|');
  if (a == std::string::npos) return std::nullopt;
  size_t b = v.find('|', a + 1);
  if (b == std::string::npos) return std::nullopt;
  size_t c = v.find('|', b + 1);
  if (c == std::string::npos) return std::nullopt;
  std::string num = v.substr(0, a);
  if (num.empty() || num.size() > 18 || num.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  auto parent = oci::Digest::Parse(v.substr(a + 1, b - a - 1));
  if (!parent.ok()) return std::nullopt;
  Mark m;
  m.expires = std::stoll(num);
  m.parent = *parent;
  m.tag = v.substr(b + 1, c - b - 1);
  m.rule = v.substr(c + 1);
  return m;
}

// How deep a revalidation may chain (a blob's image, its index, theirs...).
constexpr int kMaxRevalidationDepth = 4;

}  // namespace

std::string VerdictKey(const std::string& version, const std::string& repo, const oci::Digest& digest,
                       const std::string& tag_part) {
  return "v2|" + version + "|" + repo + "|" + digest.ToString() + tag_part;
}
std::string BlobMarkKey(const std::string& version, const std::string& repo, const oci::Digest& digest) {
  return "b|" + version + "|" + repo + "@" + digest.ToString();
}
std::string ChildMarkKey(const std::string& version, const std::string& repo, const oci::Digest& digest) {
  return "c|" + version + "|" + repo + "@" + digest.ToString();
}
std::string ArtifactBlobMarkKey(const std::string& version, const std::string& repo, const oci::Digest& digest) {
  return "a|" + version + "|" + repo + "@" + digest.ToString();
}

Gate::Gate(Store* store, Metrics* metrics, Options options)
    : store_(store), metrics_(metrics), opt_(std::move(options)) {
  if (!opt_.clock) opt_.clock = NowSeconds;
  if (!opt_.signatures) {
    verifier::LookupLimits limits = opt_.lookup_limits;
    opt_.signatures = [limits](const Route& route) -> std::unique_ptr<verifier::SignatureSource> {
      return std::make_unique<verifier::RegistrySignatureSource>(*route.upstream->client, route.repo, "", limits);
    };
  }
}

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
    c = metrics_->Handle("portcullis_policy_decisions_total", kDecisionsHelp,
                         {{"verdict", warn ? "warn" : "accept"}, {"source", "cache"}});
    slot.store(c, std::memory_order_release);
  }
  return c;
}

StatusOr<bool> Gate::LiveMark(const Route& route, const std::string& key, int64_t now, int depth, std::string* rule,
                              int64_t* expires) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    PC_ASSIGN_OR_RETURN(std::optional<std::string> v, store_->GetGateMark(key));
    if (!v) return false;
    std::optional<Mark> m = DecodeMark(*v);
    if (!m) return false;  // written by an older version: not trusted
    if (m->expires > now) {
      if (rule) *rule = m->rule;
      if (expires) *expires = m->expires;
      return true;
    }
    // Expired with the verdict of the manifest that made it: ask that manifest
    // again (a pull in progress when the verdict lapses goes on while the
    // signature holds; a revoked one stops here).
    if (attempt > 0 || depth >= kMaxRevalidationDepth) return false;
    PC_ASSIGN_OR_RETURN(std::optional<StoredManifest> parent, store_->GetManifest(m->parent));
    if (!parent) return false;
    Status st = Check(route, m->tag, m->parent, parent->media_type, parent->bytes, "(revalidation)", depth + 1,
                      /*use_hot=*/false);
    if (st.Is(Code::kUpstreamUnavailable) || st.Is(Code::kIoError)) return st;
    if (!st.ok()) return false;
  }
  return false;
}

Status Gate::Record(const std::string& version, const std::string& repo, const oci::Manifest& m,
                    const oci::Digest& digest, const std::string& tag, int64_t expires, bool covers_children,
                    const std::string& rule) {
  std::vector<std::string> blobs;
  for (const auto& b : m.Blobs()) blobs.push_back(BlobMarkKey(version, repo, b.digest));
  if (!blobs.empty()) PC_RETURN_IF_ERROR(store_->PutGateMarks(blobs, EncodeMark(expires, digest, tag, "")));
  if (covers_children && m.IsIndex() && !m.manifests.empty()) {
    std::vector<std::string> children;
    for (const auto& c : m.manifests) children.push_back(ChildMarkKey(version, repo, c.digest));
    PC_RETURN_IF_ERROR(store_->PutGateMarks(children, EncodeMark(expires, digest, tag, rule)));
  }
  return Status::Ok();
}

StatusOr<uint64_t> Gate::CollectGarbage() {
  auto policy = this->policy();
  const std::string version = policy ? policy->version() : std::string();
  const int64_t now = opt_.clock();
  uint64_t dropped = 0;
  PC_RETURN_IF_ERROR(store_->DropGateRecords(
      [&](std::string_view key, std::string_view value) {
        // Current keys: "v2|<version>|..." (verdicts), "b|", "c|", "a|" + "<version>|..." (marks).
        size_t bar = key.find('|');
        if (bar == std::string_view::npos || version.empty()) return true;
        std::string_view kind = key.substr(0, bar);
        if (kind != "v2" && kind != "b" && kind != "c" && kind != "a") return true;  // an older format
        if (key.substr(bar + 1, version.size()) != version) return true;
        if (kind == "v2") return !DecodeVerdict(std::string(value), now).has_value();
        // Expired marks still name the manifest to revalidate a pull with; a
        // day later nobody is pulling through them.
        std::optional<Mark> m = DecodeMark(std::string(value));
        return !m || m->expires + 86400 <= now;
      },
      &dropped));
  return dropped;
}

StatusOr<verifier::Decision> Gate::Test(const Route& route, const std::string& tag, const oci::Digest& digest) {
  auto policy = this->policy();
  if (!policy) return Status::InvalidArgument("the proxy runs without a policy (--policy)");
  auto sigs = opt_.signatures(route);
  return policy->Evaluate(route.Key(), tag, digest, *sigs);
}

Status Gate::CheckManifest(const Route& route, const std::string& tag, const oci::Digest& digest,
                           const std::string& media_type, const std::string& bytes, const std::string& client) {
  return Check(route, tag, digest, media_type, bytes, client, 0, /*use_hot=*/true);
}

namespace {
// One line per decision: info when served, warn when refused or warn-only.
void LogDecision(const verifier::Decision& d, const char* how, const std::string& policy_version,
                 const std::string& client, const std::string& image, const oci::Digest& digest) {
  const LogLevel level = d.allowed && !d.warn_only ? LogLevel::kInfo : LogLevel::kWarn;
  if (!LogEnabled(level)) return;
  LogFields(level, "policy decision",
            {{"client", client},
             {"image", image},
             {"digest", digest.ToString()},
             {"rule", d.rule},
             {"verdict", d.verdict()},
             {"reason", d.reason},
             {"keys", d.keys_matched},
             {"cached", std::string_view(how) == "cache"},
             {"source", how},
             {"policy_version", policy_version}});
}
}  // namespace

std::optional<Status> Gate::CheckManifestCached(const Route& route, const std::string& tag, const oci::Digest& digest,
                                                const std::string& client) {
  // An accepting verdict in memory needs nothing else (what it makes servable
  // was recorded, with the same expiry, when it was reached). All of it runs
  // under one shared lock: no reference counts, no copies.
  const int64_t now = opt_.clock();
  std::shared_lock<std::shared_mutex> l(mu_);
  if (!policy_) return Status::Ok();
  auto it = hot_.find(VerdictKey(policy_->version(), route.Key(), digest, TagPart(*policy_, tag)));
  if (it == hot_.end() || it->second.expires <= now || !it->second.decision.allowed) return std::nullopt;
  const verifier::Decision& d = it->second.decision;
  HotCounter(d.warn_only)->fetch_add(1, std::memory_order_relaxed);
  LogDecision(d, "cache", policy_->version(), client, route.Key() + (tag.empty() ? "" : ":" + tag), digest);
  return Status::Ok();
}

Status Gate::Check(const Route& route, const std::string& tag, const oci::Digest& digest, const std::string& media_type,
                   const std::string& bytes, const std::string& client, int depth, bool use_hot) {
  if (use_hot) {
    if (auto hot = CheckManifestCached(route, tag, digest, client)) return *hot;
  }
  const std::string image = route.Key() + (tag.empty() ? "" : ":" + tag);
  auto log_decision = [&](const verifier::Decision& d, const char* how, const std::string& policy_version) {
    LogDecision(d, how, policy_version, client, image, digest);
  };
  const int64_t now = opt_.clock();
  auto policy = this->policy();
  if (!policy) return Status::Ok();
  const std::string& version = policy->version();
  const std::string key = VerdictKey(version, route.Key(), digest, TagPart(*policy, tag));
  auto count = [&](const std::string& verdict, const std::string& how) {
    metrics_->Inc("portcullis_policy_decisions_total", kDecisionsHelp, {{"verdict", verdict}, {"source", how}});
  };
  PC_ASSIGN_OR_RETURN(oci::Manifest m, oci::ParseManifest(bytes, media_type));

  // 1. A signature artifact by shape: served without a verdict; its blobs only
  // as small JSON, and only until the verdict TTL passes.
  verifier::ArtifactShape shape = verifier::ClassifyArtifact(bytes, media_type);
  if (shape.is_artifact()) {
    std::vector<std::string> keys;
    for (const auto& b : shape.blobs) keys.push_back(ArtifactBlobMarkKey(version, route.Key(), b.digest));
    if (!keys.empty()) {
      PC_RETURN_IF_ERROR(store_->PutGateMarks(keys, EncodeMark(now + opt_.verdict_ttl_seconds, digest, tag, "")));
    }
    verifier::Decision d;
    d.allowed = true;
    d.rule = "(signature artifact)";
    d.reason = shape.kind == verifier::ArtifactShape::Kind::kSignature
                   ? "a signature or attestation manifest by shape: served without a verdict"
                   : "a referrers index by shape: served without a verdict (its entries are checked on their own)";
    count("accept", "signature_artifact");
    log_decision(d, "signature_artifact", version);
    return Status::Ok();
  }

  // 2. A child of an index that passed by a verified signature, while that
  // verdict lives, unless another rule decides for this child.
  std::string covering_rule;
  int64_t expires = 0;
  PC_ASSIGN_OR_RETURN(bool child, LiveMark(route, ChildMarkKey(version, route.Key(), digest), now, depth,
                                           &covering_rule, &expires));
  if (child) {
    if (covering_rule == policy->MatchedRule(route.Key(), tag, digest)) {
      verifier::Decision d;
      d.allowed = true;
      d.rule = covering_rule;
      d.reason = "covered by a signed index in " + route.Key() + " (rule " + covering_rule + ")";
      PC_RETURN_IF_ERROR(Record(version, route.Key(), m, digest, tag, expires, /*covers_children=*/true, covering_rule));
      count("accept", "covered");
      log_decision(d, "covered", version);
      Remember(key, d, expires);
      return Status::Ok();
    }
  }

  // 3. The verdict of the policy, cached or evaluated now.
  verifier::Decision d;
  const char* how = "evaluated";
  PC_ASSIGN_OR_RETURN(std::optional<std::string> cached, store_->GetVerdict(key));
  std::optional<std::pair<verifier::Decision, int64_t>> stored;
  if (cached) stored = DecodeVerdict(*cached, now);
  if (stored) {
    d = std::move(stored->first);
    how = "cache";
    // Marks may have lapsed before this verdict (another tag's pass wrote them).
    if (d.allowed) {
      PC_RETURN_IF_ERROR(Record(version, route.Key(), m, digest, tag, stored->second, d.verified_by_signature(), d.rule));
    }
    Remember(key, d, stored->second);
  } else {
    auto sigs = opt_.signatures(route);
    auto ev = policy->Evaluate(route.Key(), tag, digest, *sigs);
    if (!ev.ok()) {
      Log(LogLevel::kError, "policy decision failed: signatures could not be looked up; refused",
          {{"client", client}, {"image", image}, {"digest", digest.ToString()}, {"error", ev.status().ToString()}});
      count("error", "evaluated");
      return Status::UpstreamUnavailable("could not check the signatures of " + digest.ToString() + ": " +
                                         ev.status().message());
    }
    d = *ev;
    const int64_t expires = now + opt_.verdict_ttl_seconds;
    // What it makes servable first: a verdict on disk always has its marks.
    if (d.allowed) {
      PC_RETURN_IF_ERROR(Record(version, route.Key(), m, digest, tag, expires, d.verified_by_signature(), d.rule));
    }
    PC_RETURN_IF_ERROR(store_->PutVerdict(key, EncodeVerdict(d, expires)));
    Remember(key, d, expires);
  }
  count(d.verdict(), how);
  log_decision(d, how, version);
  if (!d.allowed) return Status::Denied("refused by the trust policy: rule " + d.rule + ": " + d.reason);
  return Status::Ok();
}

StatusOr<Gate::BlobGrant> Gate::CheckBlob(const Route& route, const oci::Digest& digest) {
  auto policy = this->policy();
  if (!policy || !opt_.blob_gate_referenced) return BlobGrant::kServe;
  const int64_t now = opt_.clock();
  const std::string& version = policy->version();
  PC_ASSIGN_OR_RETURN(bool mark, LiveMark(route, BlobMarkKey(version, route.Key(), digest), now, 0, nullptr, nullptr));
  if (mark) return BlobGrant::kServe;
  // A repository whose rule accepts without signatures (accept,
  // insecureAcceptAnything, a warning default): any of its blobs may be served,
  // also before a manifest was asked for.
  if (!policy->NeedsSignatures(route.Key(), "", digest)) {
    NoSignatures none;
    auto d = policy->Evaluate(route.Key(), "", digest, none);
    if (d.ok() && d->allowed) return BlobGrant::kServe;
  }
  PC_ASSIGN_OR_RETURN(mark, LiveMark(route, ArtifactBlobMarkKey(version, route.Key(), digest), now, 0, nullptr, nullptr));
  if (mark) return BlobGrant::kServeArtifactJson;
  return Status::Denied("blob " + digest.ToString() + " is not named by any manifest that passed the trust policy in " +
                        route.Key() + " (fetch an image's manifest before its blobs)");
}

}  // namespace portcullis::proxy
