#include "proxy/listing.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "oci/http_client.h"
#include "oci/manifest.h"

namespace portcullis::proxy {

namespace {

using json = nlohmann::json;

constexpr size_t kMaxPageSize = 1000000000;  // an `n` past this reads as this

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string ReplaceAll(std::string s, const std::string& from, const std::string& to) {
  if (from.empty()) return s;
  size_t pos = 0;
  while ((pos = s.find(from, pos)) != std::string::npos) {
    s.replace(pos, from.size(), to);
    pos += to.size();
  }
  return s;
}

// The OCI index answer for `manifests`.
Listing IndexListing(json manifests, bool filtered) {
  Listing l;
  json idx = {{"schemaVersion", 2}, {"mediaType", std::string(oci::kOciIndex)}, {"manifests", std::move(manifests)}};
  l.body = Dump(idx);
  l.content_type = std::string(oci::kOciIndex);
  if (filtered) l.headers.emplace_back("OCI-Filters-Applied", "artifactType");
  return l;
}

// Descriptors of `index` (a parsed JSON value) that are objects and, when
// `artifact_type` is set, carry exactly that artifactType. nullopt when
// `index` is not an object with a `manifests` array.
std::optional<json> Descriptors(const json& index, const std::optional<std::string>& artifact_type) {
  if (!index.is_object()) return std::nullopt;
  auto it = index.find("manifests");
  if (it == index.end() || !it->is_array()) return std::nullopt;
  json out = json::array();
  for (const auto& d : *it) {
    if (!d.is_object()) continue;
    if (artifact_type) {
      auto at = d.find("artifactType");
      if (at == d.end() || !at->is_string() || at->get_ref<const std::string&>() != *artifact_type) continue;
    }
    out.push_back(d);
  }
  return out;
}

}  // namespace

StatusOr<TagsQuery> ParseTagsQuery(const std::optional<std::string>& n, const std::optional<std::string>& last) {
  TagsQuery q;
  q.last = last;
  if (!n) return q;
  const std::string& s = *n;
  if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos) {
    std::string shown = s.substr(0, 40);
    for (char& c : shown) {
      if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
    }
    return Status::InvalidArgument("invalid pagination number n=\"" + shown + "\": must be a non-negative integer");
  }
  size_t v = 0;
  for (char c : s) {
    v = v * 10 + static_cast<size_t>(c - '0');
    if (v > kMaxPageSize) {
      v = kMaxPageSize;
      break;
    }
  }
  q.n = v;
  return q;
}

std::optional<TagsPage> PaginateTags(const std::string& upstream_body, const TagsQuery& q,
                                     const std::string& link_path, const std::string& extra_query) {
  if (!q.n && !q.last) return std::nullopt;
  json j = json::parse(upstream_body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  auto it = j.find("tags");
  if (it == j.end() || !it->is_array()) return std::nullopt;  // null tags: an empty repository
  std::vector<std::string> all;
  for (const auto& t : *it) {
    if (!t.is_string()) return std::nullopt;
    all.push_back(t.get_ref<const std::string&>());
  }
  // Pages are cut from the list in lexical order (distribution 2.8 lists tags
  // in storage order when it ignores n).
  bool changed = !std::is_sorted(all.begin(), all.end());
  std::sort(all.begin(), all.end());
  std::vector<std::string> tags;
  for (auto& s : all) {
    if (q.last && s <= *q.last) {  // the upstream ignored `last`
      changed = true;
      continue;
    }
    tags.push_back(std::move(s));
  }
  TagsPage page;
  if (q.n && tags.size() > *q.n) {  // the upstream ignored `n`
    tags.resize(*q.n);
    changed = true;
    if (!tags.empty()) {
      page.link = "<" + link_path + "?n=" + std::to_string(*q.n) + "&last=" + oci::QueryEscape(tags.back()) +
                  extra_query + ">; rel=\"next\"";
    }
  }
  if (!changed) return std::nullopt;
  (*it) = tags;
  page.body = Dump(j);
  return page;
}

std::string RewriteTagsLink(std::string link, const std::string& upstream_repo, const std::string& client_name,
                            const std::string& ns) {
  // An absolute link names the upstream's host: make it relative to us.
  if (auto lt = link.find('<'); lt != std::string::npos && link.compare(lt + 1, 4, "http") == 0) {
    auto scheme = link.find("://", lt);
    auto path = scheme == std::string::npos ? std::string::npos : link.find('/', scheme + 3);
    if (path != std::string::npos) link = link.substr(0, lt + 1) + link.substr(path);
  }
  link = ReplaceAll(link, "/v2/" + upstream_repo + "/", "/v2/" + client_name + "/");
  if (!ns.empty()) {
    const bool has_query = link.find('?') != std::string::npos && link.find('?') < link.find(">;");
    link = ReplaceAll(link, ">;", std::string(has_query ? "&" : "?") + "ns=" + oci::QueryEscape(ns) + ">;");
  }
  return link;
}

StatusOr<Listing> ListTags(Registry& registry, const Route& route, const std::string& client_name,
                           const std::string& ns, const TagsQuery& q) {
  std::string target = "/v2/" + route.repo + "/tags/list";
  std::string query;
  if (q.n) query += "?n=" + std::to_string(*q.n);
  if (q.last) query += std::string(query.empty() ? "?" : "&") + "last=" + oci::QueryEscape(*q.last);
  PC_ASSIGN_OR_RETURN(auto r, registry.PassThrough(route, target + query));
  Listing out;
  out.status = r.status;
  std::string ct = oci::HeaderValue(r.headers, "Content-Type");
  out.content_type = ct.empty() ? "application/json" : ct;
  std::string link = oci::HeaderValue(r.headers, "Link");
  if (!link.empty()) link = RewriteTagsLink(link, route.repo, client_name, ns);
  out.body = std::move(r.body);
  if (r.status == 200) {
    const std::string extra = ns.empty() ? "" : "&ns=" + oci::QueryEscape(ns);
    if (auto page = PaginateTags(out.body, q, "/v2/" + client_name + "/tags/list", extra)) {
      out.body = std::move(page->body);
      out.content_type = "application/json";
      // Our cut has the next page; else (only sorted or dropped) the upstream's Link still holds.
      if (!page->link.empty()) link = page->link;
    }
  }
  if (!link.empty()) out.headers.emplace_back("Link", link);
  return out;
}

StatusOr<Listing> ListReferrers(Registry& registry, const Route& route, const oci::Digest& subject,
                                const std::optional<std::string>& artifact_type) {
  std::string target = "/v2/" + route.repo + "/referrers/" + subject.ToString();
  if (artifact_type) target += "?artifactType=" + oci::QueryEscape(*artifact_type);
  PC_ASSIGN_OR_RETURN(auto r, registry.PassThrough(route, target));
  if (r.status >= 500) {
    return Status::UpstreamUnavailable("upstream " + route.upstream->name + " answered HTTP " +
                                       std::to_string(r.status) + " for the referrers of " + subject.ToString());
  }
  if (r.status == 200) {
    json j = json::parse(r.body, nullptr, false);
    if (!j.is_discarded()) {
      const bool upstream_filtered =
          oci::HeaderValue(r.headers, "OCI-Filters-Applied").find("artifactType") != std::string::npos;
      if (!artifact_type || upstream_filtered) {
        if (Descriptors(j, std::nullopt)) {  // an index: pass it on as it came
          Listing l;
          l.body = std::move(r.body);
          l.content_type = std::string(oci::kOciIndex);
          if (artifact_type) l.headers.emplace_back("OCI-Filters-Applied", "artifactType");
          return l;
        }
      } else if (auto ds = Descriptors(j, artifact_type)) {
        return IndexListing(std::move(*ds), true);
      }
    }
  }
  // No referrers API (distribution 2.8 answers 404): the fallback tag schema.
  std::string tag = subject.ToString();  // sha256:<hex> -> sha256-<hex>, at most 128 characters
  tag[tag.find(':')] = '-';
  if (tag.size() > 128) tag.resize(128);
  PC_ASSIGN_OR_RETURN(auto f, registry.PassThrough(route, "/v2/" + route.repo + "/manifests/" + tag));
  if (f.status >= 500) {
    return Status::UpstreamUnavailable("upstream " + route.upstream->name + " answered HTTP " +
                                       std::to_string(f.status) + " for the referrers tag of " + subject.ToString());
  }
  if (f.status == 200) {
    json j = json::parse(f.body, nullptr, false);
    if (!j.is_discarded()) {
      if (auto ds = Descriptors(j, artifact_type)) return IndexListing(std::move(*ds), artifact_type.has_value());
    }
  }
  return IndexListing(json::array(), artifact_type.has_value());
}

}  // namespace portcullis::proxy
