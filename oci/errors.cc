#include "oci/errors.h"

#include <array>
#include <nlohmann/json.hpp>

#include "oci/json_fields.h"

namespace portcullis {

namespace oci {
namespace {

// Wire codes from the distribution spec; the internal kinds borrow the nearest one.
constexpr std::array<ErrorInfo, 23> kTable = {{
    {Code::kOk, "OK", 200},
    {Code::kNameInvalid, "NAME_INVALID", 400},
    {Code::kTagInvalid, "TAG_INVALID", 400},
    {Code::kDigestInvalid, "DIGEST_INVALID", 400},
    {Code::kManifestInvalid, "MANIFEST_INVALID", 400},
    {Code::kManifestUnknown, "MANIFEST_UNKNOWN", 404},
    {Code::kBlobUnknown, "BLOB_UNKNOWN", 404},
    {Code::kNameUnknown, "NAME_UNKNOWN", 404},
    {Code::kUnauthorized, "UNAUTHORIZED", 401},
    {Code::kDenied, "DENIED", 403},
    {Code::kUnsupported, "UNSUPPORTED", 405},
    {Code::kTooManyRequests, "TOOMANYREQUESTS", 429},
    {Code::kRangeInvalid, "RANGE_INVALID", 416},
    {Code::kSizeInvalid, "SIZE_INVALID", 400},
    {Code::kInvalidArgument, "INVALID_ARGUMENT", 400},
    {Code::kNotFound, "NOT_FOUND", 404},
    {Code::kAlreadyExists, "ALREADY_EXISTS", 409},
    {Code::kUpstreamUnavailable, "UPSTREAM_UNAVAILABLE", 503},
    {Code::kUpstreamInvalid, "UPSTREAM_INVALID", 502},
    {Code::kLimitExceeded, "LIMIT_EXCEEDED", 403},
    {Code::kIoError, "IO_ERROR", 500},
    {Code::kInternal, "INTERNAL", 500},
    {Code::kInternal, "INTERNAL", 500},
}};

}  // namespace

const ErrorInfo& LookupError(Code code) {
  for (const auto& row : kTable) {
    if (row.code == code) return row;
  }
  return kTable.back();
}

std::string_view CodeName(Code code) { return LookupError(code).wire_code; }

std::string ErrorJson(const Status& status) {
  nlohmann::json err = {{"code", std::string(LookupError(status.code()).wire_code)},
                        {"message", status.message()},
                        {"detail", nullptr}};
  // Messages may quote raw request or upstream bytes: invalid UTF-8 becomes U+FFFD.
  return DumpSafe(nlohmann::json({{"errors", nlohmann::json::array({err})}}));
}

Status UpstreamHttpError(int status, const std::string& what) {
  std::string msg = "upstream answered HTTP " + std::to_string(status) + " for " + what;
  switch (status) {
    case 401: return Status::Unauthorized(msg);
    case 403: return Status::Denied(msg);
    case 404: return Status::NotFound(msg);
    case 429: return Status::TooManyRequests(msg + "; retry later");
    case 408: return Status::UpstreamUnavailable(msg);
    default: break;
  }
  if (status >= 500 && status <= 599) return Status::UpstreamUnavailable(msg);
  return Status::UpstreamInvalid(msg);
}

}  // namespace oci

std::string Status::ToString() const {
  if (ok()) return "OK";
  return std::string(oci::CodeName(code_)) + ": " + message_;
}

}  // namespace portcullis
