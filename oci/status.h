// Status and StatusOr<T>: errors are values, never exceptions across modules.
//
// A Status carries a Code and a human message. Codes name what went wrong in the
// terms of the OCI distribution spec where one exists (see errors.h for the one
// table that maps each Code to its wire code and HTTP status), plus a few
// internal kinds (kIoError, kInternal, ...). Thread-compatible value types.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace portcullis {

enum class Code {
  kOk = 0,
  // Client errors with an OCI wire code.
  kNameInvalid,       // malformed repository name
  kTagInvalid,        // malformed tag
  kDigestInvalid,     // malformed digest, or content that does not match its digest
  kManifestInvalid,   // manifest that cannot be parsed or is too large
  kManifestUnknown,   // no such manifest
  kBlobUnknown,       // no such blob
  kNameUnknown,       // no such repository / upstream
  kUnauthorized,      // credentials missing or wrong
  kDenied,            // refused by policy
  kUnsupported,       // operation not supported (writes to the proxy)
  kTooManyRequests,   // a bound was hit; retry later
  kRangeInvalid,      // unsatisfiable Range
  kSizeInvalid,       // content longer or shorter than declared
  // Errors without a dedicated OCI code.
  kInvalidArgument,   // bad input to a function, config or CLI
  kNotFound,          // a key, file or record is absent
  kAlreadyExists,     // refusing to overwrite
  kUpstreamUnavailable,  // upstream unreachable, timed out or answered 5xx
  kUpstreamInvalid,   // upstream answered something that violates the protocol
  kLimitExceeded,     // a bound on work done for one request was hit (refused, not retried)
  kIoError,           // local disk or database failure
  kInternal,          // a bug
};

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  static Status NameInvalid(std::string m) { return {Code::kNameInvalid, std::move(m)}; }
  static Status TagInvalid(std::string m) { return {Code::kTagInvalid, std::move(m)}; }
  static Status DigestInvalid(std::string m) { return {Code::kDigestInvalid, std::move(m)}; }
  static Status ManifestInvalid(std::string m) { return {Code::kManifestInvalid, std::move(m)}; }
  static Status ManifestUnknown(std::string m) { return {Code::kManifestUnknown, std::move(m)}; }
  static Status BlobUnknown(std::string m) { return {Code::kBlobUnknown, std::move(m)}; }
  static Status NameUnknown(std::string m) { return {Code::kNameUnknown, std::move(m)}; }
  static Status Unauthorized(std::string m) { return {Code::kUnauthorized, std::move(m)}; }
  static Status Denied(std::string m) { return {Code::kDenied, std::move(m)}; }
  static Status Unsupported(std::string m) { return {Code::kUnsupported, std::move(m)}; }
  static Status TooManyRequests(std::string m) { return {Code::kTooManyRequests, std::move(m)}; }
  static Status RangeInvalid(std::string m) { return {Code::kRangeInvalid, std::move(m)}; }
  static Status SizeInvalid(std::string m) { return {Code::kSizeInvalid, std::move(m)}; }
  static Status InvalidArgument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
  static Status NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
  static Status AlreadyExists(std::string m) { return {Code::kAlreadyExists, std::move(m)}; }
  static Status UpstreamUnavailable(std::string m) { return {Code::kUpstreamUnavailable, std::move(m)}; }
  static Status UpstreamInvalid(std::string m) { return {Code::kUpstreamInvalid, std::move(m)}; }
  static Status LimitExceeded(std::string m) { return {Code::kLimitExceeded, std::move(m)}; }
  static Status IoError(std::string m) { return {Code::kIoError, std::move(m)}; }
  static Status Internal(std::string m) { return {Code::kInternal, std::move(m)}; }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  bool Is(Code c) const { return code_ == c; }

  // "CODE_NAME: message", for logs and CLI errors.
  std::string ToString() const;

  // Returns a copy with `prefix + ": "` before the message (same code).
  Status Annotate(const std::string& prefix) const {
    if (ok()) return *this;
    return Status(code_, prefix + ": " + message_);
  }

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

// Either a T or a non-OK Status.
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  StatusOr(Status status) : v_(std::move(status)) {  // NOLINT
    assert(!std::get<Status>(v_).ok() && "StatusOr built from an OK Status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  Status status() const { return ok() ? Status::Ok() : std::get<Status>(v_); }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> v_;
};

#define PC_RETURN_IF_ERROR(expr)               \
  do {                                         \
    ::portcullis::Status _st = (expr);         \
    if (!_st.ok()) return _st;                 \
  } while (0)

#define PC_CONCAT_INNER(a, b) a##b
#define PC_CONCAT(a, b) PC_CONCAT_INNER(a, b)
#define PC_ASSIGN_OR_RETURN(lhs, expr) PC_ASSIGN_OR_RETURN_IMPL(PC_CONCAT(_so_, __LINE__), lhs, expr)
#define PC_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.status();            \
  lhs = std::move(tmp).value()

}  // namespace portcullis
