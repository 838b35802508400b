#include "oci/stream_get.h"

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <algorithm>
#include <cstring>
#include <optional>

namespace portcullis::oci::internal {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

class StreamTls {
 public:
  asio::ssl::context ctx{asio::ssl::context::tls_client};
};

class StreamConnection {
 public:
  // Declared first: destroyed last, after the streams that use it. Handlers
  // still queued (a late cancel) are destroyed with it, never run.
  asio::io_context ioc;
  std::string origin;  // Url::Origin() it is connected to
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls;
  // Bytes read off the socket and not yet parsed: the header, then at most
  // one read (64 KiB) of body at a time.
  beast::flat_buffer buffer{128 * 1024};
  std::unique_ptr<char[]> piece{new char[kStreamPiece]};
  bool aborted = false;  // a cancel reached this connection: every later operation fails

  // Beast reads at most the buffer's free capacity (64 KiB at most) per
  // socket read: room for a full one from the start, not 512 bytes.
  StreamConnection() { buffer.reserve(64 * 1024); }

  // Runs on this connection's thread (posted by a cancel): ends the operation
  // in progress and every one after it.
  void Abort() {
    aborted = true;
    beast::error_code ignored;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
    lowest().cancel();
  }

  beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : *plain; }

  // Runs one asynchronous operation to its end on this thread, with a
  // deadline for it. Returns the operation's error.
  template <class Start>
  beast::error_code Run(std::chrono::steady_clock::duration timeout, Start&& start) {
    beast::error_code result;
    bool done = false;
    if (aborted) return asio::error::operation_aborted;
    lowest().expires_after(timeout);
    start([&](beast::error_code ec, auto&&...) {
      result = ec;
      done = true;
    });
    ioc.restart();
    while (!done && ioc.run_one() > 0) {
    }
    if (!done) result = asio::error::operation_aborted;
    return result;
  }

  // Either stream, for Beast's algorithms.
  template <class F>
  beast::error_code WithStream(std::chrono::steady_clock::duration timeout, F&& f) {
    if (tls) return Run(timeout, [&](auto h) { f(*tls, std::move(h)); });
    return Run(timeout, [&](auto h) { f(*plain, std::move(h)); });
  }
};

void StreamConnectionDeleter::operator()(StreamConnection* c) const { delete c; }

StatusOr<std::shared_ptr<StreamTls>> MakeStreamTls(const std::string& ca_file) {
  auto t = std::make_shared<StreamTls>();
  beast::error_code ec;
  t->ctx.set_verify_mode(asio::ssl::verify_peer, ec);
  if (!ec) {
    if (ca_file.empty()) {
      t->ctx.set_default_verify_paths(ec);
    } else {
      t->ctx.load_verify_file(ca_file, ec);
    }
  }
  if (ec) {
    return Status::UpstreamUnavailable("cannot load the CA bundle" + (ca_file.empty() ? "" : " " + ca_file) +
                                   " (check --upstream-ca): " + ec.message());
  }
  return t;
}

namespace {

std::string Unbracketed(const std::string& host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') return host.substr(1, host.size() - 2);
  return host;
}

bool IsIpLiteral(const std::string& host) {
  beast::error_code ec;
  asio::ip::make_address(Unbracketed(host), ec);
  return !ec;
}

// What a Host header says: the port only when it is not the scheme's own.
std::string HostHeader(const Url& u) {
  const bool default_port = (u.scheme == "https" && u.port == 443) || (u.scheme == "http" && u.port == 80);
  return default_port ? u.host : u.host + ":" + std::to_string(u.port);
}

// A TLS failure as a sentence; verification failures name their cause.
std::string DescribeTls(StreamConnection& c, const beast::error_code& ec) {
  long v = c.tls ? SSL_get_verify_result(c.tls->native_handle()) : X509_V_OK;
  if (v != X509_V_OK) {
    return std::string("TLS certificate verification failed (") + X509_verify_cert_error_string(v) +
           "): unknown CA or wrong host name (see --upstream-ca)";
  }
  return "TLS handshake failed: " + ec.message();
}

// A new connection's streams, before it connects (so a cancel can reach it).
Status Prepare(StreamConnection& c, const Url& origin, StreamTls* tls, const std::string& what) {
  c.origin = origin.Origin();
  if (origin.scheme == "https") {
    if (tls == nullptr) return Status::Internal(what + ": no TLS settings for an https origin");
    c.tls.emplace(c.ioc, tls->ctx);
  } else {
    c.plain.emplace(c.ioc);
  }
  return Status::Ok();
}

Status Connect(StreamConnection& c, const Url& origin, const ClientOptions& opts, const std::string& what) {
  beast::error_code ec;
  tcp::resolver resolver(c.ioc);
  // getaddrinfo, blocking, as cpp-httplib does: a name lookup has the system's own timeouts.
  auto endpoints = resolver.resolve(Unbracketed(origin.host), std::to_string(origin.port), ec);
  if (ec) return Status::UpstreamUnavailable(what + ": cannot resolve " + origin.host + ": " + ec.message());
  ec = c.Run(opts.connect_timeout, [&](auto h) { c.lowest().async_connect(endpoints, std::move(h)); });
  if (ec == beast::error::timeout) return Status::UpstreamUnavailable(what + ": timed out connecting");
  if (ec) return Status::UpstreamUnavailable(what + ": cannot connect: " + ec.message());
  beast::error_code ignored;
  c.lowest().socket().set_option(tcp::no_delay(true), ignored);
  if (c.tls) {
    SSL* ssl = c.tls->native_handle();
    const std::string name = Unbracketed(origin.host);
    // SNI names hosts, never addresses (RFC 6066).
    if (!IsIpLiteral(name) && SSL_set_tlsext_host_name(ssl, name.c_str()) != 1) {
      return Status::UpstreamUnavailable(what + ": cannot set the TLS server name");
    }
    c.tls->set_verify_callback(asio::ssl::host_name_verification(name), ec);
    if (!ec) {
      ec = c.Run(opts.connect_timeout,
                 [&](auto h) { c.tls->async_handshake(asio::ssl::stream_base::client, std::move(h)); });
    }
    if (ec == beast::error::timeout) return Status::UpstreamUnavailable(what + ": timed out in the TLS handshake");
    if (ec) return Status::UpstreamUnavailable(what + ": " + DescribeTls(c, ec));
  }
  return Status::Ok();
}

// A pooled connection the server closed while it sat idle fails its first
// write or read like this; the request is sent again on a new one.
bool LooksStale(const beast::error_code& ec) {
  return ec == http::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::error::broken_pipe || ec == asio::ssl::error::stream_truncated;
}

struct Attempt {
  StatusOr<HttpResponse> result = HttpResponse{};
  bool reusable = false;  // the connection may carry another request
  bool stale = false;     // failed before any byte of an answer, on a reused connection
};

// A 2xx body of `length` bytes (its Content-Length), read straight from the
// socket into the room hop.body_space gives, each read handed to on_data at
// once: no copy through Beast's buffer. Bytes that came in with the head
// are taken first. Never reads past `length`: whatever follows the body
// stays where the reuse check finds it.
template <class Failed>
void ReadIntoSpace(StreamConnection* c, const StreamHop& hop, const ClientOptions& opts, uint64_t length,
                   bool keep_alive, Attempt& a, bool* aborted, Failed&& failed) {
  uint64_t left = length;
  while (left > 0) {
    // Named variables, not a structured binding: the read's lambda captures `room`.
    const std::pair<char*, size_t> space = (*hop.body_space)();
    char* const room = space.first;
    const size_t room_size = space.second;
    if (room == nullptr || room_size == 0) {
      *aborted = true;
      return;
    }
    const size_t want = static_cast<size_t>(std::min<uint64_t>(room_size, left));
    size_t n = 0;
    if (c->buffer.size() > 0) {
      n = std::min(want, c->buffer.size());
      std::memcpy(room, c->buffer.data().data(), n);
      c->buffer.consume(n);
    } else {
      beast::error_code ec = c->WithStream(opts.read_timeout, [&](auto& s, auto h) {
        s.async_read_some(asio::buffer(room, want), [&n, h = std::move(h)](beast::error_code e, size_t got) mutable {
          n = got;
          h(e);
        });
      });
      if (ec) {
        failed(ec, "while reading the body");
        return;
      }
    }
    left -= n;
    if (n > 0 && !(*hop.on_data)(room, n)) {
      *aborted = true;
      return;
    }
  }
  beast::error_code ignored;
  a.reusable = keep_alive && c->buffer.size() == 0 && c->lowest().socket().available(ignored) == 0 && !ignored;
}

// The hop on one connection (which the caller destroys unless a.reusable:
// a cancel may still refer to it until the caller detaches).
Attempt Once(StreamConnection* c, bool reused, const StreamHop& hop, const ClientOptions& opts, bool* aborted,
             const std::string& what) {
  Attempt a;
  http::request<http::empty_body> rq{http::verb::get, hop.target, 11};
  rq.set(http::field::host, HostHeader(hop.origin));
  for (const auto& [k, v] : hop.headers) rq.insert(k, v);
  rq.keep_alive(true);

  auto failed = [&](const beast::error_code& ec, const char* during) {
    std::string why = ec == beast::error::timeout
                          ? std::string("timed out ") + during
                          : std::string("the connection failed ") + during + ": " + ec.message();
    a.result = Status::UpstreamUnavailable(what + ": " + why);
  };

  beast::error_code ec =
      c->WithStream(opts.read_timeout, [&](auto& s, auto h) { http::async_write(s, rq, std::move(h)); });
  if (ec) {
    a.stale = reused && LooksStale(ec);
    failed(ec, "while sending the request");
    return a;
  }
  http::response_parser<http::buffer_body> p;
  p.header_limit(64 * 1024);
  p.body_limit(boost::none);  // the caller bounds a blob (max_blob_bytes, Content-Length)
  ec = c->WithStream(opts.read_timeout,
                     [&](auto& s, auto h) { http::async_read_header(s, c->buffer, p, std::move(h)); });
  if (ec) {
    a.stale = reused && c->buffer.size() == 0 && LooksStale(ec);
    failed(ec, "while reading the answer");
    return a;
  }
  HttpResponse& out = *a.result;
  out.status = static_cast<int>(p.get().result_int());
  out.headers_decoded = false;
  for (const auto& f : p.get()) out.headers.emplace(std::string(f.name_string()), std::string(f.value()));
  const bool auth_or_redirect = out.status == 401 || IsRedirectStatus(out.status);
  const bool stream_body = out.status >= 200 && out.status < 300;
  if (!auth_or_redirect && hop.on_headers != nullptr && !(*hop.on_headers)(out.status, out.headers)) {
    *aborted = true;
    return a;
  }
  if (stream_body && hop.body_space != nullptr && !p.chunked() && p.content_length()) {
    ReadIntoSpace(c, hop, opts, *p.content_length(), p.keep_alive(), a, aborted, failed);
    return a;
  }
  char* const piece = c->piece.get();
  while (!p.is_done()) {
    // Fill a piece: one socket read (64 KiB at most) per step, each with its own deadline.
    auto& body = p.get().body();
    body.data = piece;
    body.size = kStreamPiece;
    body.more = true;
    while (!p.is_done() && body.size > 0) {
      ec = c->WithStream(opts.read_timeout,
                         [&](auto& s, auto h) { http::async_read_some(s, c->buffer, p, std::move(h)); });
      if (ec == http::error::need_buffer) ec = {};
      if (ec) {
        failed(ec, "while reading the answer");
        return a;
      }
      // Nothing more has arrived: hand over what has, so readers never wait
      // on a slow upstream for a piece to fill. (Bytes still in `buffer` are
      // an unfinished chunk header the parser waits to complete.)
      beast::error_code ignored;
      if (body.size < kStreamPiece && c->lowest().socket().available(ignored) == 0) break;
    }
    const size_t n = kStreamPiece - body.size;
    if (n == 0) continue;
    if (stream_body) {
      if (!(*hop.on_data)(piece, n)) {
        *aborted = true;
        return a;
      }
    } else {
      if (out.body.size() + n > kStreamErrorBody) {
        a.result = Status::SizeInvalid(what + ": an HTTP " + std::to_string(out.status) + " answer's body is over " +
                                       std::to_string(kStreamErrorBody) + " bytes");
        return a;
      }
      out.body.append(piece, n);
    }
  }
  // Reused only when the answer ended where its framing said and nothing
  // follows it, read or waiting (bytes past the body would be read as the
  // next answer).
  beast::error_code ignored;
  a.reusable = p.keep_alive() && c->buffer.size() == 0 && c->lowest().socket().available(ignored) == 0 && !ignored;
  return a;
}

}  // namespace

StatusOr<HttpResponse> StreamGet(StreamConnectionPtr& conn, const StreamHop& hop, const ClientOptions& opts,
                                 StreamTls* tls, bool* aborted) {
  *aborted = false;
  const std::string what = "GET " + hop.origin.Origin() + hop.target.substr(0, 300);
  if (hop.on_data == nullptr) return Status::Internal(what + ": no body handler");
  if (conn && conn->origin != hop.origin.Origin()) conn.reset();
  try {
    for (int attempt = 0; attempt < 2; ++attempt) {
      const bool reused = conn != nullptr;
      if (!conn) {
        conn.reset(new StreamConnection);
        Status st = Prepare(*conn, hop.origin, tls, what);
        if (!st.ok()) {
          conn.reset();
          return st;
        }
      }
      // Cancel() reaches the connection from its own thread: posted to the
      // connection's io_context, it ends the operation in progress at once.
      StreamConnection* c = conn.get();
      if (hop.cancel != nullptr && !hop.cancel->AttachAbort(c, [c] { asio::post(c->ioc, [c] { c->Abort(); }); })) {
        conn.reset();
        return Status::UpstreamUnavailable(what + ": cancelled");
      }
      Attempt a;
      {
        // Detached before the connection can go, on every path (an exception included).
        struct Detach {
          StreamCancel* cancel;
          const void* key;
          ~Detach() {
            if (cancel != nullptr) cancel->DetachAbort(key);
          }
        } detach{hop.cancel, c};
        Status connected = reused ? Status::Ok() : Connect(*c, hop.origin, opts, what);
        if (connected.ok()) {
          a = Once(c, reused, hop, opts, aborted, what);
        } else {
          a.result = connected;
        }
      }
      if (hop.cancel != nullptr && hop.cancel->cancelled()) {
        // Its socket was (or is about to be) shut: never reused, never a success.
        conn.reset();
        return Status::UpstreamUnavailable(what + ": cancelled");
      }
      if (!a.reusable) conn.reset();
      if (a.stale && attempt == 0) continue;
      return std::move(a.result);
    }
  } catch (const std::exception& e) {
    // Asio and Beast report through error codes here; an allocation failure
    // or a library surprise still ends the hop, not the process.
    conn.reset();
    return Status::UpstreamUnavailable(what + ": " + e.what());
  }
  return Status::UpstreamUnavailable(what + ": the connection closed before an answer");
}

}  // namespace portcullis::oci::internal
