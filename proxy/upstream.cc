#include "proxy/upstream.h"

#include "oci/errors.h"
#include "oci/json_fields.h"
#include "oci/manifest.h"

namespace portcullis::proxy::upstream {

namespace {
// A pull of `target` in `repo`: the token scope every upstream request carries.
oci::HttpRequest Pull(const std::string& repo, std::string target) {
  oci::HttpRequest req;
  req.target = std::move(target);
  req.scope = "repository:" + repo + ":pull";
  return req;
}
}  // namespace

StatusOr<oci::HttpResponse> Manifest(const Route& route, const std::string& ref, bool head) {
  oci::HttpRequest req = Pull(route.repo, "/v2/" + route.repo + "/manifests/" + ref);
  if (head) req.method = "HEAD";
  req.headers.emplace("Accept", oci::ManifestAcceptHeader());
  return route.upstream->client->Do(req, head ? 0 : oci::kMaxManifestBytes);
}

StatusOr<oci::HttpResponse> HeadBlob(const Route& route, const oci::Digest& d) {
  oci::HttpRequest req = Pull(route.repo, "/v2/" + route.repo + "/blobs/" + d.ToString());
  req.method = "HEAD";
  return route.upstream->client->Do(req, 0);
}

oci::HttpRequest BlobGet(const std::string& repo, const oci::Digest& d) {
  return Pull(repo, "/v2/" + repo + "/blobs/" + d.ToString());
}

StatusOr<oci::HttpResponse> PassThrough(const Route& route, const std::string& target) {
  oci::HttpRequest req = Pull(route.repo, target);
  req.headers.emplace("Accept", "application/json, " + std::string(oci::kOciIndex));
  auto r = route.upstream->client->Do(req, oci::kMaxManifestBytes);
  if (!r.ok() && r.status().code() == Code::kSizeInvalid) {
    return Status::UpstreamInvalid("upstream answer for " + target + " is over 4 MiB");
  }
  if (!r.ok()) return r;
  // 404 goes back to the caller (a registry without the referrers API says so
  // with a bare 404); every other failure is ours to name.
  if (r->status == 404) return r;
  if (r->status != 200) return oci::UpstreamHttpError(r->status, route.Key() + " " + target.substr(0, 200));
  PC_RETURN_IF_ERROR(CheckListing(target, r->body).Annotate("upstream answer for " + route.Key()));
  return r;
}

Status CheckListing(const std::string& target, std::string_view body) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded()) return Status::UpstreamInvalid("the body is not JSON");
  if (!j.is_object()) return Status::UpstreamInvalid("the body is " + oci::JsonTypeName(j) + ", not a JSON object");
  auto path_end = target.find('?');
  std::string_view path = std::string_view(target).substr(0, path_end);
  const std::string_view tags_suffix = "/tags/list";
  if (path.size() >= tags_suffix.size() && path.substr(path.size() - tags_suffix.size()) == tags_suffix) {
    if (oci::FieldPresent(j, "name") && !oci::StringField(j, "name")) {
      return Status::UpstreamInvalid("tags/list name is not a string");
    }
    if (const auto* tags = oci::FindField(j, "tags"); tags != nullptr && !tags->is_null()) {
      if (!tags->is_array()) return Status::UpstreamInvalid("tags/list tags is not an array");
      for (const auto& t : *tags) {
        if (!t.is_string()) return Status::UpstreamInvalid("tags/list tags holds " + oci::JsonTypeName(t));
      }
    }
    return Status::Ok();
  }
  if (path.find("/referrers/") != std::string_view::npos) {
    const auto* ms = oci::FindField(j, "manifests");
    if (ms == nullptr || !ms->is_array()) return Status::UpstreamInvalid("referrers answer has no manifests array");
    for (const auto& m : *ms) {
      if (!m.is_object() || !oci::StringField(m, "digest")) {
        return Status::UpstreamInvalid("referrers answer lists a descriptor without a digest string");
      }
    }
  }
  return Status::Ok();
}

}  // namespace portcullis::proxy::upstream
