// The upstream station of the pull path: the only proxy code that builds
// requests to an upstream registry (the target, the pull scope, the Accept
// header). What an answer's status means is mapped by the one inbound table
// (oci::UpstreamHttpError, oci/errors.h). Every call blocks on the network
// (bounded by the route's client timeouts) and is thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "oci/digest.h"
#include "oci/http_client.h"
#include "oci/status.h"
#include "proxy/upstreams.h"

namespace portcullis::proxy::upstream {

// GET (HEAD when `head`) of the manifest `ref` (a tag or a digest) with the
// manifest types the proxy serves in Accept. A GET body over 4 MiB is
// SIZE_INVALID. The answer is returned whatever its status.
StatusOr<oci::HttpResponse> Manifest(const Route& route, const std::string& ref, bool head);

// HEAD of a blob; the answer whatever its status.
StatusOr<oci::HttpResponse> HeadBlob(const Route& route, const oci::Digest& d);

// The GET of a blob in `repo`, for a fetch thread to send (streamed).
oci::HttpRequest BlobGet(const std::string& repo, const oci::Digest& d);

// GETs `target` (a tags/list or referrers path, query allowed) and returns the
// answer as is. Bodies over 4 MiB are refused. A 200 whose body is not a
// well-typed listing (CheckListing) is UPSTREAM_INVALID; a 404 is returned as
// it is; any other status is an error (oci::UpstreamHttpError).
StatusOr<oci::HttpResponse> PassThrough(const Route& route, const std::string& target);

// Checks an upstream 200 answer to `target` (a tags/list or referrers path,
// query allowed) before it is passed on: a JSON object; tags/list: "name" a
// string and "tags" an array of strings (or null) when present; referrers: a
// "manifests" array of objects with a "digest" string. UPSTREAM_INVALID names
// the problem. Never throws.
Status CheckListing(const std::string& target, std::string_view body);

}  // namespace portcullis::proxy::upstream
