// The two listing endpoints of the OCI pull API, answered the way the
// distribution spec says even when the upstream does not:
//   - tags/list?n=N&last=T: at most N tags, a Link to the next page;
//   - referrers/<digest>: always an OCI image index, from the upstream's
//     referrers API, else from the sha256-<hex> fallback tag, else empty.
// No trust decision is made here: these answers name manifests, they do not
// serve them (every manifest and blob a client then asks for goes through
// the gate as usual).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "oci/digest.h"
#include "oci/status.h"
#include "proxy/registry.h"
#include "proxy/upstreams.h"

namespace portcullis::proxy {

// What the HTTP layer sends back: status, body, content type, extra headers.
struct Listing {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
};

// The client's pagination of tags/list. `n` absent: no bound.
struct TagsQuery {
  std::optional<size_t> n;
  std::optional<std::string> last;
};

// Parses the raw `n` and `last` query values (nullopt: the parameter is
// absent). INVALID_ARGUMENT (HTTP 400; the distribution code
// PAGINATION_NUMBER_INVALID is not in the error table) unless `n` is a
// non-negative decimal integer; values past 10^9 are read as 10^9.
StatusOr<TagsQuery> ParseTagsQuery(const std::optional<std::string>& n, const std::optional<std::string>& last);

// Applies `q` to an upstream's 200 tags/list body, for upstreams that ignore
// `n` and/or `last`: sorts the tags lexically (byte order), drops tags <= last,
// keeps at most n, and when tags were
// cut returns a Link "<LINK_PATH?n=N&last=LASTTAG[EXTRA_QUERY]>; rel=\"next\""
// (`link_path` is "/v2/<name as the client used it>/tags/list", `extra_query`
// e.g. "&ns=docker.io"). nullopt when the body is not a tags/list object or
// nothing had to change (the upstream's answer then goes out as it came).
struct TagsPage {
  std::string body;
  std::string link;  // empty: no next page known from this answer
};
std::optional<TagsPage> PaginateTags(const std::string& upstream_body, const TagsQuery& q,
                                     const std::string& link_path, const std::string& extra_query);

// Rewrites an upstream tags/list Link so that it points at the proxy under the
// name the client used (`client_name`), keeping ?ns= when the client sent it.
std::string RewriteTagsLink(std::string link, const std::string& upstream_repo, const std::string& client_name,
                            const std::string& ns);

// GET tags/list with pagination, through `registry`'s upstream for `route`.
// Non-200 upstream answers are passed on as they came; transport failures are
// errors (503 UPSTREAM_UNAVAILABLE).
StatusOr<Listing> ListTags(Registry& registry, const Route& route, const std::string& client_name,
                           const std::string& ns, const TagsQuery& q);

// GET referrers/<subject>: always a 200 OCI index. `artifact_type` (nullopt:
// no filter) keeps only descriptors with that artifactType and adds the header
// OCI-Filters-Applied: artifactType. The fallback tag index is read bounded
// (4 MiB); only descriptors that are JSON objects are listed. Upstream 5xx and
// transport failures are 503 UPSTREAM_UNAVAILABLE.
StatusOr<Listing> ListReferrers(Registry& registry, const Route& route, const oci::Digest& subject,
                                const std::optional<std::string>& artifact_type);

}  // namespace portcullis::proxy
