// The one table that maps a Status code to its OCI distribution error code and
// HTTP status, and the OCI error JSON body built from a Status.
#pragma once

#include <string>
#include <string_view>

#include "oci/status.h"

namespace portcullis::oci {

struct ErrorInfo {
  Code code;
  std::string_view wire_code;  // e.g. "MANIFEST_UNKNOWN"
  int http_status;
};

// Returns the table row for `code` (every Code has one).
const ErrorInfo& LookupError(Code code);

// {"errors":[{"code":"...","message":"...","detail":null}]}. Never throws:
// invalid UTF-8 in the message is replaced by U+FFFD.
std::string ErrorJson(const Status& status);

// The Status an upstream HTTP status the caller did not expect maps to (the
// incoming direction): 401 UNAUTHORIZED, 403 DENIED, 404 NOT_FOUND, 429
// TOOMANYREQUESTS, 408 and 5xx UPSTREAM_UNAVAILABLE (retrying may help), and
// anything else (400, an unfollowed redirect, a 2xx of the wrong kind)
// UPSTREAM_INVALID. The message reads "upstream answered HTTP <n> for <what>".
Status UpstreamHttpError(int status, const std::string& what);

// Name of a code for logs, e.g. "DIGEST_INVALID" or "UPSTREAM_UNAVAILABLE".
std::string_view CodeName(Code code);

}  // namespace portcullis::oci
