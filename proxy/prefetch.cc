#include "proxy/prefetch.h"

#include <set>
#include <vector>

#include "oci/manifest.h"

namespace portcullis::proxy {

Status Prefetch(Registry& registry, const Route& route, const std::string& ref, std::chrono::seconds fetch_wait,
                const std::function<void(const nlohmann::json&)>& on_event, nlohmann::json* summary) {
  Gate& gate = registry.gate();
  PC_ASSIGN_OR_RETURN(ManifestResult top, registry.GetManifest(route, ref));
  PC_RETURN_IF_ERROR(gate.CheckManifest(route, ref.find(':') == std::string::npos ? ref : "", top.digest,
                                        top.media_type, top.bytes, "admin prefetch"));
  uint64_t manifests = 1, blobs = 0, bytes = 0;
  on_event({{"event", "manifest"}, {"digest", top.digest.ToString()}, {"media_type", top.media_type}});
  PC_ASSIGN_OR_RETURN(oci::Manifest parsed, oci::ParseManifest(top.bytes, top.media_type));
  std::vector<oci::Manifest> todo;
  if (parsed.IsIndex()) {
    for (const auto& child : parsed.manifests) {
      PC_ASSIGN_OR_RETURN(ManifestResult m, registry.GetManifest(route, child.digest.ToString()));
      PC_RETURN_IF_ERROR(gate.CheckManifest(route, "", m.digest, m.media_type, m.bytes, "admin prefetch"));
      ++manifests;
      on_event({{"event", "manifest"}, {"digest", m.digest.ToString()}, {"media_type", m.media_type}});
      PC_ASSIGN_OR_RETURN(oci::Manifest pm, oci::ParseManifest(m.bytes, m.media_type));
      if (!pm.IsIndex()) todo.push_back(std::move(pm));
    }
  } else {
    todo.push_back(std::move(parsed));
  }
  std::set<oci::Digest> seen;
  for (const auto& m : todo) {
    for (const auto& b : m.Blobs()) {
      if (!seen.insert(b.digest).second) continue;
      PC_ASSIGN_OR_RETURN(BlobSource src, registry.OpenBlob(route, b.digest));
      if (src.fetch && !src.fetch->WaitDone(fetch_wait)) {
        Status why = src.fetch->failure();
        return why.ok() ? Status::UpstreamUnavailable("fetch of " + b.digest.ToString() + " did not finish") : why;
      }
      ++blobs;
      bytes += static_cast<uint64_t>(b.size);
      on_event({{"event", "blob"}, {"digest", b.digest.ToString()}, {"size", b.size}, {"cached", src.cache_hit}});
    }
  }
  *summary = {{"event", "done"}, {"digest", top.digest.ToString()}, {"manifests", manifests},
              {"blobs", blobs},   {"bytes", bytes}};
  return Status::Ok();
}

}  // namespace portcullis::proxy
