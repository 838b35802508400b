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

// {"errors":[{"code":"...","message":"...","detail":null}]}
std::string ErrorJson(const Status& status);

// Name of a code for logs, e.g. "DIGEST_INVALID" or "UPSTREAM_UNAVAILABLE".
std::string_view CodeName(Code code);

}  // namespace portcullis::oci
