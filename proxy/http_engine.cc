// Boost.Beast sessions: one per connection, a state machine driven by
// completion handlers on the connection's event loop. Each I/O thread runs its
// own loop (io_context) and a connection stays on one loop for its whole life,
// so its handlers never run concurrently and no strand or cross-thread wakeup
// is needed on the way of a request (the nginx worker model). Handlers and
// body reads are posted to the worker pool and post their results back to the
// connection's loop.
#include "proxy/http_engine.h"

#include <sys/resource.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/rfc/pchars.hpp>
#include <boost/url/src.hpp>  // Boost.URL header-only, compiled in this one file
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "proxy/log.h"

namespace portcullis::proxy {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using SteadyClock = std::chrono::steady_clock;

namespace {

// The usual target, an absolute path of RFC 3986 path characters only (no
// '%', no query), is its own decoded path: Boost.URL's parse is not needed.
bool PlainPath(std::string_view target) {
  if (target.empty() || target[0] != '/') return false;
  for (char c : target) {
    if (c != '/' && !boost::urls::pchars(c)) return false;
  }
  return true;
}

std::string DefaultErrorBody(int status, const std::string& message) {
  return std::to_string(status) + " " + message + "\n";
}

}  // namespace

Status SplitHostPort(const std::string& hostport, std::string* host, int* port) {
  auto colon = hostport.rfind(':');
  if (colon == std::string::npos || colon + 1 >= hostport.size()) {
    return Status::InvalidArgument("listen address " + hostport + " is not HOST:PORT");
  }
  std::string h = hostport.substr(0, colon);
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  const std::string p = hostport.substr(colon + 1);
  if (p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos) {
    return Status::InvalidArgument("listen address " + hostport + " has no valid port");
  }
  int n = std::stoi(p);
  if (n > 65535) return Status::InvalidArgument("listen address " + hostport + " has no valid port");
  *host = h.empty() ? "0.0.0.0" : h;
  *port = n;
  return Status::Ok();
}

struct HttpEngine::Impl {
  Impl(HttpEngineOptions o, HttpHandler h, HttpAccessLogger l)
      : opt(std::move(o)),
        handler(std::move(h)),
        logger(std::move(l)),
        loops(MakeLoops(std::max(1, opt.io_threads))),
        acceptor(ioc()),
        pool(static_cast<size_t>(std::max(1, opt.workers))) {
    if (!opt.error_body) opt.error_body = DefaultErrorBody;
    // A loop without a connection must not return from run(): Stop() ends them.
    for (auto& l : loops) keep.push_back(net::make_work_guard(*l));
  }

  static std::vector<std::unique_ptr<net::io_context>> MakeLoops(int n) {
    std::vector<std::unique_ptr<net::io_context>> v;
    for (int i = 0; i < n; ++i) v.push_back(std::make_unique<net::io_context>(1));  // run by one thread
    return v;
  }
  // Loop 0 holds the acceptor (and runs connections like the others).
  net::io_context& ioc() { return *loops[0]; }

  void Accept();
  void OnAccept(beast::error_code ec, tcp::socket socket);
  // Starts a session for an accepted socket (on the loop it was accepted onto).
  void Adopt(tcp::socket socket);
  static constexpr int kAcceptBurst = 256;  // connections taken at once after an accept completes
  // Per-address bookkeeping; false when `addr` is over its cap.
  bool AddClient(const std::string& addr);
  void RemoveClient(const std::string& addr);

  HttpEngineOptions opt;
  HttpHandler handler;
  HttpAccessLogger logger;
  int port = 0;
  std::atomic<bool> draining{false};
  std::atomic<bool> stopped{false};
  std::atomic<int> active{0};
  std::atomic<size_t> connections{0};
  std::atomic<size_t> queued{0};
  std::atomic<size_t> streams{0};
  std::mutex clients_mu;
  std::unordered_map<std::string, size_t> clients;
  // Declared last, destroyed first: the sessions still queued in the loops are
  // destroyed with them and touch the counters above.
  std::vector<std::unique_ptr<net::io_context>> loops;
  std::vector<net::executor_work_guard<net::io_context::executor_type>> keep;
  size_t next_loop = 0;  // the loop the next connection goes to (accept handler only)
  std::optional<ssl::context> tls;
  tcp::acceptor acceptor;
  net::thread_pool pool;
};

namespace {

// One connection. `Stream` is beast::tcp_stream or ssl_stream<tcp_stream>.
template <class Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
 public:
  Session(HttpEngine::Impl* e, Stream stream, std::string remote, int refuse_status)
      : e_(e),
        stream_(std::move(stream)),
        buffer_(e->opt.max_head_bytes + 8192),
        backoff_(stream_.get_executor()),
        remote_(std::move(remote)),
        refuse_status_(refuse_status) {}

  ~Session() {
    --e_->connections;
    if (!remote_.empty()) e_->RemoveClient(remote_);
  }

  void Start() {
    if constexpr (kTls) {
      Lowest().expires_after(e_->opt.head_timeout);
      stream_.async_handshake(ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (ec) return self->Close(false);
                                self->AfterConnect();
                              });
    } else {
      AfterConnect();
    }
  }

 private:
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

  beast::tcp_stream& Lowest() { return beast::get_lowest_layer(stream_); }
  auto Self() { return this->shared_from_this(); }

  void AfterConnect() {
    if (refuse_status_ != 0) {
      req_ = HttpRequest{};
      req_.remote_addr = remote_;
      return SendOwn(refuse_status_, "too many connections; retry later");
    }
    WaitForRequest(true);
  }

  // Waits for the first byte of the next request: the idle timeout between
  // requests, the head timeout before the first one.
  void WaitForRequest(bool first) {
    if (e_->stopped) return Close(false);
    if (buffer_.size() > 0) return ReadHead();
    Lowest().expires_after(first ? e_->opt.head_timeout : e_->opt.keepalive_idle);
    stream_.async_read_some(buffer_.prepare(4096), [self = Self()](beast::error_code ec, size_t n) {
      if (ec) return self->Close(false);
      self->buffer_.commit(n);
      self->ReadHead();
    });
  }

  void ReadHead() {
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(e_->opt.max_head_bytes));
    parser_->body_limit(boost::none);  // a body is never read: its size is no parse error
    // Usually the whole head is in the buffer already: parse it here, without
    // a round through the loop. Otherwise (or for what is missing) read it;
    // the parser keeps what it has seen.
    if (buffer_.size() > 0) {
      beast::error_code ec;
      buffer_.consume(parser_->put(buffer_.data(), ec));
      if (!ec && parser_->is_header_done()) return OnHead({});
      if (ec && ec != http::error::need_more) return OnHead(ec);
    }
    // The head deadline runs from the request's first byte.
    Lowest().expires_after(e_->opt.head_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = Self()](beast::error_code ec, size_t) { self->OnHead(ec); });
  }

  void OnHead(beast::error_code ec) {
    req_ = HttpRequest{};
    req_.remote_addr = remote_;
    start_ = SteadyClock::now();
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
      return SendOwn(431, "request head larger than " + std::to_string(e_->opt.max_head_bytes) + " bytes");
    }
    if (ec == beast::error::timeout) return Close(false);
    if (ec == http::error::end_of_stream || ec == net::error::eof || ec == net::error::connection_reset) {
      return Close(false);
    }
    if (ec) return SendOwn(400, "malformed request: " + ec.message());
    const auto& msg = parser_->get();
    req_.method = std::string(msg.method_string());
    req_.target = std::string(msg.target());
    if (req_.method.size() + req_.target.size() + 10 > e_->opt.max_request_line) {
      return SendOwn(400, "request line longer than " + std::to_string(e_->opt.max_request_line) + " bytes");
    }
    size_t fields = 0;
    for (const auto& f : msg) {
      if (++fields > e_->opt.max_header_fields) {
        return SendOwn(431, "more than " + std::to_string(e_->opt.max_header_fields) + " header fields");
      }
      req_.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
    }
    if (PlainPath(msg.target())) {
      req_.path = req_.target;  // what the parse below would give
    } else {
      auto url = boost::urls::parse_origin_form(msg.target());
      if (!url) return SendOwn(400, "malformed request target");
      try {
        req_.path = url->path();
        for (auto p : url->params(boost::urls::encoding_opts(true))) req_.params.emplace(p.key, p.value);
      } catch (...) {
        return SendOwn(400, "malformed request target");
      }
    }
    if (e_->opt.reject_invalid_utf8_path && !IsValidUtf8(req_.path)) {
      return SendOwn(400, "request path is not valid UTF-8");
    }
    req_.has_body = parser_->chunked() || (parser_->content_length() && *parser_->content_length() > 0);
    keep_alive_ = msg.keep_alive() && !req_.has_body;
    if (e_->draining || e_->stopped) {
      keep_alive_ = false;
      return SendOwn(503, "shutting down; retry on another mirror");
    }
    if (e_->opt.in_memory_handler) {
      std::optional<HttpResponse> now;
      try {
        now = e_->opt.in_memory_handler(req_);
      } catch (...) {
        now.reset();  // the worker's handler answers it (and logs what fails there)
      }
      if (now && !now->stream) {
        ++e_->active;
        counted_ = true;
        res_ = std::move(*now);
        return WriteResponse();
      }
    }
    if (e_->queued.load() >= e_->opt.max_queued) {
      keep_alive_ = false;
      return SendOwn(503, "too many requests waiting; retry later");
    }
    ++e_->queued;
    ++e_->active;
    counted_ = true;
    net::post(e_->pool, [self = Self()] {
      --self->e_->queued;
      HttpResponse res;
      try {
        res = self->e_->handler(self->req_);
      } catch (const std::exception& ex) {
        res = self->InternalError(ex.what());
      } catch (...) {
        res = self->InternalError("unknown exception");
      }
      net::post(self->stream_.get_executor(), [self, r = std::move(res)]() mutable {
        self->res_ = std::move(r);
        self->WriteResponse();
      });
    });
  }

  HttpResponse InternalError(const std::string& what) {
    Log(LogLevel::kError, "request handler failed with an exception; answered 500",
        {{"server", e_->opt.name}, {"method", req_.method}, {"path", req_.path.substr(0, 200)},
         {"client", remote_}, {"error", what}});
    HttpResponse r;
    r.status = 500;
    r.SetContent(e_->opt.error_body(500, "internal error while answering this request (logged)"), "application/json");
    r.log.error = "INTERNAL";
    r.log.message = "exception in the request handler";
    return r;
  }

  // An answer of the engine's own (limits, shutdown); always closes.
  void SendOwn(int status, const std::string& message) {
    keep_alive_ = false;
    res_ = HttpResponse{};
    res_.status = status;
    res_.SetContent(e_->opt.error_body(status, message), "application/json");
    res_.log.error = std::to_string(status);
    res_.log.message = message;
    if (!counted_) {
      ++e_->active;
      counted_ = true;
    }
    if (start_ == SteadyClock::time_point{}) start_ = SteadyClock::now();
    WriteResponse();
  }

  template <class Message>
  void FillHead(Message& m) {
    m.result(static_cast<unsigned>(res_.status));
    for (const auto& [k, v] : e_->opt.common_headers) m.insert(k, v);
    for (const auto& [k, v] : res_.headers) m.insert(k, v);
    if (!res_.content_type.empty()) m.set(http::field::content_type, res_.content_type);
    if (res_.close) keep_alive_ = false;
    m.keep_alive(keep_alive_);
  }

  // The status line and fields of `m`, as Beast's serializer writes them.
  static void SerializeHead(http::response<http::empty_body>& m, std::string* out) {
    http::response_serializer<http::empty_body> sr{m};
    sr.split(true);
    beast::error_code ec;
    while (!ec && !sr.is_header_done()) {
      sr.next(ec, [&](beast::error_code&, const auto& buffers) {
        for (auto b : beast::buffers_range_ref(buffers)) out->append(static_cast<const char*>(b.data()), b.size());
        sr.consume(beast::buffer_bytes(buffers));
      });
    }
  }

  void WriteResponse() {
    const bool head = req_.method == "HEAD";
    Lowest().expires_after(e_->opt.send_window);
    if (head || !res_.stream) {
      // A body in memory (or none, for HEAD): Beast serializes the head into
      // head_ here, and head and body go out in one gathered write.
      res_.stream.reset();
      // HEAD announces the length the GET would have; a GET's is its body's.
      const int64_t len = head && res_.length >= 0 ? res_.length : static_cast<int64_t>(res_.body.size());
      http::response<http::empty_body> m;
      FillHead(m);
      const bool no_body = res_.status < 200 || res_.status == 204 || res_.status == 304;
      if (!no_body) m.content_length(static_cast<uint64_t>(len));
      if (head || no_body) std::string().swap(res_.body);
      head_.clear();
      SerializeHead(m, &head_);
      sent_ = static_cast<int64_t>(res_.body.size());
      const std::array<net::const_buffer, 2> buffers{net::buffer(head_), net::buffer(res_.body)};
      return net::async_write(stream_, buffers, [self = Self()](beast::error_code ec, size_t) {
        if (ec) self->sent_ = 0;
        std::string().swap(self->res_.body);  // an idle connection keeps no body
        self->Finish(!ec);
      });
    }
    if (e_->streams.load() >= e_->opt.max_streams) {
      res_.stream.reset();
      return SendOwn(503, "too many downloads at once; retry later");
    }
    ++e_->streams;
    streaming_ = true;
    stream_res_.emplace();
    FillHead(*stream_res_);
    if (res_.length >= 0) {
      stream_res_->content_length(static_cast<uint64_t>(res_.length));
    } else {
      stream_res_->chunked(true);
    }
    stream_res_->body().data = nullptr;
    stream_res_->body().more = true;
    serializer_.emplace(*stream_res_);
    ended_ = end_pending_ = next_ready_ = false;
    writing_ = true;
    http::async_write_header(stream_, *serializer_, [self = Self()](beast::error_code ec, size_t) {
      self->writing_ = false;
      if (ec) return self->EndBody(false);
      self->StartRead();
    });
  }

  // The body is a pipeline: the next piece is read on the pool while the
  // current one is written. A source is never destroyed while Next() runs,
  // and the serializer never while a write runs.
  void StartRead() {
    if (e_->stopped) return EndBody(false);
    reading_ = true;
    net::post(e_->pool, [self = Self()] {
      BodySource::Result r;
      self->next_.Reset();
      try {
        r = self->res_.stream->NextPiece(&self->next_, self->e_->opt.send_piece_bytes);
      } catch (...) {
        r = BodySource::Result::kFailed;
      }
      net::post(self->stream_.get_executor(), [self, r] { self->OnRead(r); });
    });
  }

  void OnRead(BodySource::Result r) {
    using R = BodySource::Result;
    reading_ = false;
    if (ended_) {
      res_.stream.reset();  // the response ended while this read ran
      next_.Reset();
      return;
    }
    if (r == R::kWait) {
      idle_waits_ = std::min(idle_waits_ + 1, 6);
      backoff_.expires_after(std::chrono::milliseconds(1 << (idle_waits_ - 1)));  // 1 ms .. 32 ms
      reading_ = true;  // the source stays busy until the retry
      return backoff_.async_wait([self = Self()](beast::error_code ec) {
        self->reading_ = false;
        if (self->ended_) return self->res_.stream.reset();
        if (ec) return self->EndBody(false);
        self->StartRead();
      });
    }
    idle_waits_ = 0;
    if (r == R::kFailed || (r == R::kData && next_.size == 0)) return EndBody(false);
    next_last_ = r == R::kEnd;
    next_ready_ = true;
    if (!writing_) Pump();
  }

  // Writes the piece that is ready, and reads the one after it meanwhile.
  void Pump() {
    next_ready_ = false;
    std::swap(piece_, next_);
    const bool last = next_last_;
    if (!last) StartRead();
    if (piece_.size == 0) return WriteLast();
    // The serializer only reads the bytes (buffer_body takes a void*).
    stream_res_->body().data = const_cast<char*>(piece_.data);
    stream_res_->body().size = piece_.size;
    stream_res_->body().more = true;
    const auto began = SteadyClock::now();
    Lowest().expires_after(e_->opt.send_window);
    writing_ = true;
    http::async_write(stream_, *serializer_, [self = Self(), last, began](beast::error_code ec, size_t) {
      self->writing_ = false;
      if (ec == http::error::need_buffer) ec = {};
      if (ec || self->end_pending_) return self->EndBody(false);
      const size_t n = self->piece_.size;
      self->sent_ += static_cast<int64_t>(n);
      if (!self->RateOk(n, SteadyClock::now() - began)) return self->EndBody(false);
      if (last) return self->WriteLast();
      if (self->next_ready_) self->Pump();  // else OnRead pumps when the read ends
    });
  }

  // Ends a streamed body: at once, or when the write in flight completes.
  void EndBody(bool completed) {
    if (ended_) return;
    if (writing_) {
      end_pending_ = true;
      return;
    }
    ended_ = true;
    Finish(completed);
  }

  // The client's own pace: time spent in writes only (a slow upstream is not
  // the client's fault). Over every full window, at least the minimum rate.
  bool RateOk(size_t bytes, SteadyClock::duration took) {
    window_bytes_ += bytes;
    window_time_ += took;
    if (window_time_ < e_->opt.send_window) return true;
    const double seconds = std::chrono::duration<double>(window_time_).count();
    const bool ok = static_cast<double>(window_bytes_) >= seconds * static_cast<double>(e_->opt.min_send_bytes_per_second);
    if (!ok) {
      Log(LogLevel::kWarn, "client reads too slowly; connection cut",
          {{"server", e_->opt.name}, {"client", remote_}, {"path", req_.path.substr(0, 200)},
           {"bytes_per_second", static_cast<int64_t>(static_cast<double>(window_bytes_) / seconds)}});
    }
    window_bytes_ = 0;
    window_time_ = {};
    return ok;
  }

  void WriteLast() {
    stream_res_->body().data = nullptr;
    stream_res_->body().size = 0;
    stream_res_->body().more = false;
    Lowest().expires_after(e_->opt.send_window);
    writing_ = true;
    http::async_write(stream_, *serializer_, [self = Self()](beast::error_code ec, size_t) {
      self->writing_ = false;
      if (ec == http::error::need_buffer) ec = {};
      self->EndBody(!ec && !self->end_pending_);
    });
  }

  // The response ended (completed or not): log it, then the next request or close.
  void Finish(bool completed) {
    if (streaming_) {
      --e_->streams;
      streaming_ = false;
    }
    serializer_.reset();
    stream_res_.reset();
    if (!reading_) {
      res_.stream.reset();  // releases pins and fetch references now, not at close
      next_.Reset();  // an idle connection keeps no body bytes
    }
    piece_.Reset();
    if (counted_) {
      const double seconds = std::chrono::duration<double>(SteadyClock::now() - start_).count();
      try {
        if (e_->logger) e_->logger(req_, res_, sent_, seconds, completed);
      } catch (...) {
      }
      --e_->active;
      counted_ = false;
    }
    sent_ = 0;
    start_ = {};
    window_bytes_ = 0;
    window_time_ = {};
    if (completed && keep_alive_ && !e_->stopped) return WaitForRequest(false);
    Close(completed);
  }

  // Closes; after a complete response, lingers briefly reading (and dropping)
  // what the client still sends, so an unread request body does not turn the
  // close into a reset that destroys the response in flight.
  void Close(bool linger) {
    beast::error_code ignored;
    if constexpr (kTls) {
      if (linger) {
        Lowest().expires_after(std::chrono::seconds(1));
        return stream_.async_shutdown([self = Self()](beast::error_code) {
          beast::error_code ig;
          self->Lowest().socket().close(ig);
        });
      }
      Lowest().socket().close(ignored);
    } else {
      if (!linger) {
        Lowest().socket().close(ignored);
        return;
      }
      Lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
      Lowest().expires_after(std::chrono::seconds(2));
      Drop();
    }
  }

  void Drop() {
    buffer_.clear();
    stream_.async_read_some(buffer_.prepare(4096), [self = Self()](beast::error_code ec, size_t n) {
      self->dropped_ += n;
      if (ec || self->dropped_ > (1 << 20)) {
        beast::error_code ig;
        self->Lowest().socket().close(ig);
        return;
      }
      self->Drop();
    });
  }

  HttpEngine::Impl* e_;
  Stream stream_;
  beast::flat_buffer buffer_;
  net::steady_timer backoff_;
  const std::string remote_;
  const int refuse_status_;
  std::optional<http::request_parser<http::empty_body>> parser_;
  HttpRequest req_;
  HttpResponse res_;
  std::optional<http::response<http::buffer_body>> stream_res_;
  std::optional<http::response_serializer<http::buffer_body>> serializer_;
  std::string head_;         // a response head in memory (capacity kept between requests)
  BodyPiece piece_;          // the body piece being written
  BodyPiece next_;           // the body piece being read, or ready
  bool reading_ = false;     // a Next() (or its backoff) is in flight
  bool writing_ = false;     // an async_write of the body is in flight
  bool next_ready_ = false;  // next_ holds a piece to write
  bool next_last_ = false;   // ... and it is the last one
  bool ended_ = false;       // the streamed response has ended
  bool end_pending_ = false; // end it when the write in flight completes
  bool keep_alive_ = true;
  bool counted_ = false;
  bool streaming_ = false;
  int idle_waits_ = 0;
  int64_t sent_ = 0;
  size_t dropped_ = 0;
  SteadyClock::time_point start_{};
  uint64_t window_bytes_ = 0;
  SteadyClock::duration window_time_{};
};

}  // namespace

bool HttpEngine::Impl::AddClient(const std::string& addr) {
  std::lock_guard<std::mutex> l(clients_mu);
  size_t& n = clients[addr];
  ++n;
  return opt.max_connections_per_client == 0 || n <= opt.max_connections_per_client;
}

void HttpEngine::Impl::RemoveClient(const std::string& addr) {
  std::lock_guard<std::mutex> l(clients_mu);
  auto it = clients.find(addr);
  if (it == clients.end()) return;
  if (--it->second == 0) clients.erase(it);
}

void HttpEngine::Impl::Accept() {
  auto& loop = *loops[next_loop++ % loops.size()];
  acceptor.async_accept(loop.get_executor(),
                        [this](beast::error_code ec, tcp::socket socket) { OnAccept(ec, std::move(socket)); });
}

void HttpEngine::Impl::OnAccept(beast::error_code ec, tcp::socket socket) {
  if (stopped) return;
  if (ec) {
    if (ec == net::error::operation_aborted) return;
    // Out of descriptors or memory: wait a moment instead of spinning.
    Log(LogLevel::kWarn, "accept failed", {{"server", opt.name}, {"error", ec.message()}});
    auto timer = std::make_shared<net::steady_timer>(ioc(), std::chrono::milliseconds(100));
    timer->async_wait([this, timer](beast::error_code) {
      if (!stopped) Accept();
    });
    return;
  }
  Adopt(std::move(socket));
  // A burst of connections (a fleet, wrk -c1000) waits in the listen queue:
  // take what is there now rather than one per turn of loop 0, where each
  // turn also serves every connection already open. Measured with wrk -c1000
  // on a cached manifest: p99 0.16-1.07 s in 6 of 8 runs before, 23-31 ms in
  // 4 of 4 with the burst.
  for (int i = 0; i < kAcceptBurst && !stopped; ++i) {
    tcp::socket next(*loops[next_loop % loops.size()]);
    beast::error_code e;
    acceptor.accept(next, e);  // the acceptor is non-blocking: would_block ends the burst
    if (e) break;              // other errors: the asynchronous accept meets them again
    ++next_loop;
    Adopt(std::move(next));
  }
  Accept();
}

void HttpEngine::Impl::Adopt(tcp::socket socket) {
  // The connection's own loop (the socket was accepted onto it); this handler
  // runs on loop 0, so the session starts there by a post.
  net::any_io_executor loop = socket.get_executor();
  beast::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);
  auto endpoint = socket.remote_endpoint(ignored);
  std::string remote = ignored ? std::string("unknown") : endpoint.address().to_string();
  ++connections;
  int refuse = 0;
  if (connections.load() > opt.max_connections) refuse = 503;
  if (!AddClient(remote)) refuse = 503;
  if (tls) {
    if (refuse) {
      // No handshake for a connection that is refused anyway.
      socket.close(ignored);
      --connections;
      RemoveClient(remote);
    } else {
      using S = beast::ssl_stream<beast::tcp_stream>;
      auto s = std::make_shared<Session<S>>(this, S(beast::tcp_stream(std::move(socket)), *tls), remote, 0);
      net::post(loop, [s] { s->Start(); });
    }
  } else {
    auto s = std::make_shared<Session<beast::tcp_stream>>(this, beast::tcp_stream(std::move(socket)), remote, refuse);
    net::post(loop, [s] { s->Start(); });
  }
}

HttpEngine::HttpEngine(HttpEngineOptions options, HttpHandler handler, HttpAccessLogger logger)
    : impl_(std::make_shared<Impl>(std::move(options), std::move(handler), std::move(logger))) {}

HttpEngine::~HttpEngine() {
  Stop();
  impl_->pool.join();
}

Status HttpEngine::Bind(const std::string& hostport) {
  Impl& e = *impl_;
  if (!e.opt.tls_cert.empty() || !e.opt.tls_key.empty()) {
    try {
      e.tls.emplace(ssl::context::tls_server);
      e.tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                         ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
      e.tls->use_certificate_chain_file(e.opt.tls_cert);
      e.tls->use_private_key_file(e.opt.tls_key, ssl::context::pem);
    } catch (const std::exception&) {
      e.tls.reset();
      return Status::InvalidArgument("cannot load the TLS certificate " + e.opt.tls_cert + " and key " +
                                     e.opt.tls_key + " (PEM files, the key matching the certificate)");
    }
  }
  std::string host;
  int port = 0;
  PC_RETURN_IF_ERROR(SplitHostPort(hostport, &host, &port));
  // Every connection is a descriptor: raise the soft limit to the hard one.
  struct rlimit rl {};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    (void)::setrlimit(RLIMIT_NOFILE, &rl);
  }
  beast::error_code ec;
  auto addr = net::ip::make_address(host, ec);
  if (ec) {
    tcp::resolver resolver(e.ioc());
    auto results = resolver.resolve(host, std::to_string(port), ec);
    if (ec || results.empty()) return Status::IoError("cannot listen on " + hostport + ": unknown host");
    addr = results.begin()->endpoint().address();
  }
  tcp::endpoint ep(addr, static_cast<unsigned short>(port));
  e.acceptor.open(ep.protocol(), ec);
  if (!ec) e.acceptor.set_option(net::socket_base::reuse_address(true), ec);  // never SO_REUSEPORT
  if (!ec) e.acceptor.bind(ep, ec);
  if (!ec) e.acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (!ec) e.acceptor.non_blocking(true, ec);  // the accept bursts (OnAccept) must never block
  if (ec) {
    beast::error_code ignored;
    e.acceptor.close(ignored);
    return Status::IoError("cannot listen on " + hostport + " (" + ec.message() + ")");
  }
  e.port = e.acceptor.local_endpoint(ec).port();
  return Status::Ok();
}

void HttpEngine::Serve() {
  Impl& e = *impl_;
  if (e.stopped) return;
  net::post(e.ioc(), [&e] { e.Accept(); });
  std::vector<std::thread> threads;
  for (size_t i = 1; i < e.loops.size(); ++i) threads.emplace_back([&e, i] { e.loops[i]->run(); });
  e.ioc().run();
  for (auto& t : threads) t.join();
}

void HttpEngine::Stop() {
  Impl& e = *impl_;
  if (e.stopped.exchange(true)) return;
  net::post(e.ioc(), [&e] {
    beast::error_code ignored;
    e.acceptor.close(ignored);
  });
  for (auto& l : e.loops) l->stop();
}

bool HttpEngine::Drain(std::chrono::steady_clock::time_point deadline) {
  impl_->draining = true;
  while (impl_->active.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const bool drained = impl_->active.load() <= 0;
  Stop();
  return drained;
}

int HttpEngine::port() const { return impl_->port; }
int HttpEngine::active_requests() const { return impl_->active.load(); }
size_t HttpEngine::open_connections() const { return impl_->connections.load(); }

}  // namespace portcullis::proxy
