#include "proxy/manifest_store.h"

#include "oci/errors.h"
#include "oci/http_client.h"
#include "oci/manifest.h"
#include "oci/reference.h"
#include "proxy/log.h"
#include "proxy/upstream.h"

namespace portcullis::proxy {

namespace {
ManifestStore::Options WithDefaults(ManifestStore::Options o) {
  if (!o.clock) o.clock = NowSeconds;
  return o;
}
}  // namespace

ManifestStore::ManifestStore(Store* store, Counters* counters, Options options)
    : store_(store), counters_(counters), opt_(WithDefaults(std::move(options))) {}

std::optional<ManifestResult> ManifestStore::Peek(const Route& route, const std::string& ref) {
  oci::Digest d;
  if (ref.find(':') != std::string::npos) {
    auto parsed = oci::Digest::Parse(ref);
    if (!parsed.ok() || !store_->PeekLink(route.Key(), *parsed)) return std::nullopt;
    d = *parsed;
  } else {
    if (!oci::ValidateTag(ref).ok()) return std::nullopt;
    auto rec = store_->PeekTag(route.Key() + ":" + ref);
    if (!rec || opt_.clock() - rec->fetched_at >= opt_.tag_ttl_seconds) return std::nullopt;
    d = rec->digest;
  }
  auto m = store_->PeekManifest(d);
  if (!m) return std::nullopt;
  ManifestResult r;
  r.media_type = std::move(m->media_type);
  r.bytes = std::move(m->bytes);
  r.digest = d;
  r.cache_hit = true;
  return r;
}

StatusOr<ManifestResult> ManifestStore::FromCache(const Route& route, const oci::Digest& d, bool stale) {
  PC_ASSIGN_OR_RETURN(auto m, store_->GetManifest(d));
  if (!m) return Status::ManifestUnknown("manifest " + d.ToString() + " is not cached for " + route.Key());
  ManifestResult r;
  r.media_type = m->media_type;
  r.bytes = std::move(m->bytes);
  r.digest = d;
  r.cache_hit = true;
  r.stale = stale;
  return r;
}

StatusOr<ManifestResult> ManifestStore::Fetch(const Route& route, const std::string& ref,
                                                 const std::optional<oci::Digest>& want) {
  auto resp = upstream::Manifest(route, ref, /*head=*/false);
  if (!resp.ok()) {
    if (resp.status().code() == Code::kSizeInvalid) {
      return Status::ManifestInvalid("upstream manifest " + route.Key() + ":" + ref + " is over the 4 MiB limit");
    }
    return resp.status();
  }
  if (resp->status == 404) {
    return Status::ManifestUnknown("manifest " + ref + " is unknown to " + route.Key() + " upstream");
  }
  if (resp->status != 200) return oci::UpstreamHttpError(resp->status, route.Key() + ":" + ref);
  std::string cl = oci::HeaderValue(resp->headers, "Content-Length");
  if (!cl.empty() && cl != std::to_string(resp->body.size())) {
    return Status::UpstreamInvalid("upstream sent " + std::to_string(resp->body.size()) + " bytes for manifest " +
                                   ref + " but Content-Length " + cl);
  }
  std::string alg = want ? want->algorithm() : "sha256";
  auto hasher = oci::Hasher::Create(alg);
  hasher->Update(resp->body);
  oci::Digest got = hasher->Finish();
  if (want && got != *want) {
    Log(LogLevel::kError, "upstream manifest does not match its digest; not cached",
        {{"upstream", route.upstream->name}, {"repo", route.repo}, {"want", want->ToString()}, {"got", got.ToString()}});
    return Status::UpstreamInvalid("upstream sent manifest bytes whose digest is " + got.ToString() + ", not " +
                                   want->ToString() + "; not served, not cached");
  }
  std::string header_digest = oci::HeaderValue(resp->headers, "Docker-Content-Digest");
  if (!want && !header_digest.empty() && header_digest != got.ToString()) {
    auto hd = oci::Digest::Parse(header_digest);
    // A sha512 header is fine if it matches the bytes under sha512.
    bool ok = false;
    if (hd.ok() && hd->algorithm() != "sha256") {
      auto h2 = oci::Hasher::Create(hd->algorithm());
      h2->Update(resp->body);
      ok = h2->Finish() == *hd;
    }
    if (!ok) {
      Log(LogLevel::kError, "upstream Docker-Content-Digest does not match the manifest bytes; not cached",
          {{"upstream", route.upstream->name}, {"repo", route.repo}, {"ref", ref}, {"header", header_digest},
           {"got", got.ToString()}});
      return Status::UpstreamInvalid("upstream says manifest " + ref + " is " + header_digest.substr(0, 200) +
                                     " but its bytes hash to " + got.ToString() + "; not served, not cached");
    }
  }
  std::string content_type = oci::HeaderValue(resp->headers, "Content-Type");
  auto parsed = oci::ParseManifest(resp->body, content_type);
  if (!parsed.ok()) {
    // The client asked for nothing wrong: what the upstream sent is (502), and it is not cached.
    return Status::UpstreamInvalid("upstream manifest " + route.Key() + ":" + ref + " is not valid: " +
                                   parsed.status().message());
  }
  PC_RETURN_IF_ERROR(store_->PutManifest(got, {parsed->media_type, resp->body}));
  // The repository holds this manifest. What it names is linked only when the
  // upstream shows the repository holds it (a fetch there, or a HEAD): a
  // registry that accepts dangling references would otherwise let a manifest
  // in one repository claim another repository's cached layers (review L12).
  PC_RETURN_IF_ERROR(store_->PutLinks(route.Key(), {got}));
  std::vector<oci::Digest> needed;
  for (const auto& b : parsed->Blobs()) needed.push_back(b.digest);
  for (const auto& c : parsed->manifests) needed.push_back(c.digest);
  PC_RETURN_IF_ERROR(store_->PutRefs(got, needed));
  ManifestResult r;
  r.media_type = parsed->media_type;
  r.bytes = std::move(resp->body);
  r.digest = got;
  return r;
}

StatusOr<ManifestResult> ManifestStore::Get(const Route& route, const std::string& ref) {
  if (ref.find(':') != std::string::npos) {
    PC_ASSIGN_OR_RETURN(oci::Digest d, oci::Digest::Parse(ref));
    // Digests are immutable: a cached one is always served from the cache.
    if (store_->HasLink(route.Key(), d)) {
      auto cached = FromCache(route, d, false);
      if (cached.ok()) {
        ++counters_->manifest_hits;
        return cached;
      }
    }
    ++counters_->manifest_misses;
    return Fetch(route, d.ToString(), d);
  }
  PC_RETURN_IF_ERROR(oci::ValidateTag(ref));
  const std::string key = route.Key() + ":" + ref;
  PC_ASSIGN_OR_RETURN(auto rec, store_->GetTag(key));
  const int64_t now = opt_.clock();
  if (rec && now - rec->fetched_at < opt_.tag_ttl_seconds) {
    auto cached = FromCache(route, rec->digest, false);
    if (cached.ok()) {
      ++counters_->manifest_hits;
      return cached;
    }
  }
  ++counters_->manifest_misses;
  auto serve_stale = [&](const Status& why) -> StatusOr<ManifestResult> {
    if (rec && now - rec->fetched_at <= opt_.max_stale_seconds) {
      auto cached = FromCache(route, rec->digest, true);
      if (cached.ok()) {
        ++counters_->stale_served;
        Log(LogLevel::kWarn, "upstream unavailable; serving a cached tag",
            {{"upstream", route.upstream->name}, {"repo", route.repo}, {"tag", ref},
             {"digest", rec->digest.ToString()}, {"age_seconds", now - rec->fetched_at}, {"error", why.ToString()}});
        return cached;
      }
    }
    return why;
  };
  if (rec) {
    // Revalidate with a HEAD: cheap, and it does not count against pull limits.
    auto resp = upstream::Manifest(route, ref, /*head=*/true);
    if (!resp.ok()) return serve_stale(resp.status());
    if (resp->status >= 500) return serve_stale(oci::UpstreamHttpError(resp->status, key));
    if (resp->status == 404) {
      PC_RETURN_IF_ERROR(store_->DeleteTag(key));
      return Status::ManifestUnknown("manifest " + ref + " is unknown to " + route.Key() + " upstream");
    }
    if (resp->status == 200 && oci::HeaderValue(resp->headers, "Docker-Content-Digest") == rec->digest.ToString()) {
      auto cached = FromCache(route, rec->digest, false);
      if (cached.ok()) {
        PC_RETURN_IF_ERROR(store_->PutTag(key, {rec->digest, now}));
        return cached;
      }
    }
  }
  auto fetched = Fetch(route, ref, std::nullopt);
  if (!fetched.ok()) {
    Code c = fetched.status().code();
    if (c == Code::kUpstreamUnavailable) return serve_stale(fetched.status());
    if (c == Code::kManifestUnknown && rec) PC_RETURN_IF_ERROR(store_->DeleteTag(key));
    return fetched.status();
  }
  PC_RETURN_IF_ERROR(store_->PutTag(key, {fetched->digest, now}));
  return fetched;
}

}  // namespace portcullis::proxy
