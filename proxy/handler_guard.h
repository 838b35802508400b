// The last line of defence of the HTTP servers (registry and admin): httplib
// calls this for an exception that escaped a request handler. It logs the
// exception's text and answers an OCI 500 INTERNAL error whose body and
// headers do not carry that text (httplib's default would put e.what() in an
// EXCEPTION_WHAT header).
#pragma once

#include <exception>

namespace httplib {
struct Request;
struct Response;
}  // namespace httplib

namespace portcullis::proxy {

// For httplib::Server::set_exception_handler. Never throws.
void AnswerException(const httplib::Request& req, httplib::Response& res, std::exception_ptr ep);

}  // namespace portcullis::proxy
