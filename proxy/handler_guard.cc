#include "proxy/handler_guard.h"

#include <httplib.h>

#include "oci/errors.h"
#include "proxy/log.h"

namespace portcullis::proxy {

void AnswerException(const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
  std::string what = "unknown exception";
  try {
    if (ep) std::rethrow_exception(ep);
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
  }
  try {
    Log(LogLevel::kError, "request handler failed with an exception; answered 500",
        {{"method", req.method}, {"path", req.path.substr(0, 200)}, {"client", req.remote_addr}, {"error", what}});
  } catch (...) {
  }
  try {
    // Whatever the handler set before it threw (a digest header, a length) is wrong now.
    res.headers.clear();
    res.status = 500;
    res.set_header("Docker-Distribution-API-Version", "registry/2.0");
    res.set_content(oci::ErrorJson(Status::Internal("internal error while answering this request (logged)")),
                    "application/json");
  } catch (...) {
    res.status = 500;
  }
}

}  // namespace portcullis::proxy
