#include "proxy/upstream/h2_pool.h"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cstring>
#include <utility>

#include "proxy/base/log.h"
#include "proxy/net/drain_read.h"
#include "proxy/net/send_now.h"
#include "proxy/net/tls_stream.h"
#include "proxy/stats/stats.h"

namespace outrigger::upstream {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {
constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);
// How long a connection whose codec failed may take to flush its GOAWAY before it is closed.
constexpr auto kFlushGrace = std::chrono::seconds(1);
constexpr size_t kReadBuffer = 16 * 1024;

std::unexpected<H2Error> err(H2Errc code, std::string detail = {}, uint32_t h2_code = 0) {
  H2Error e;
  e.code = code;
  e.h2_code = h2_code;
  e.detail = std::move(detail);
  return std::unexpected(std::move(e));
}

std::string endpoint_name(const tcp::endpoint& ep) {
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}
}  // namespace

// ---------------------------------------------------------------------------------------------
// Errors

std::string_view h2_errc_name(H2Errc e) noexcept {
  switch (e) {
    case H2Errc::kConnectRefused:
      return "connect_refused";
    case H2Errc::kConnectTimeout:
      return "connect_timeout";
    case H2Errc::kConnectFailed:
      return "connect_failed";
    case H2Errc::kTlsHandshake:
      return "tls_handshake";
    case H2Errc::kNotH2:
      return "not_h2";
    case H2Errc::kBreakerOpen:
      return "breaker_open";
    case H2Errc::kPoolTimeout:
      return "pool_timeout";
    case H2Errc::kGoaway:
      return "goaway";
    case H2Errc::kStreamLimit:
      return "stream_limit";
    case H2Errc::kRefused:
      return "refused";
    case H2Errc::kReset:
      return "reset";
    case H2Errc::kConnectionLost:
      return "connection_lost";
    case H2Errc::kTimeout:
      return "timeout";
    case H2Errc::kCancelled:
      return "cancelled";
    case H2Errc::kProtocol:
      return "protocol";
  }
  return "unknown";
}

AttemptResult H2Error::attempt_result() const noexcept {
  switch (code) {
    case H2Errc::kConnectRefused:
    case H2Errc::kConnectTimeout:
    case H2Errc::kConnectFailed:
    case H2Errc::kTlsHandshake:
    case H2Errc::kNotH2:
    case H2Errc::kBreakerOpen:
    case H2Errc::kPoolTimeout:
      return AttemptResult::kConnectFailure;
    case H2Errc::kGoaway:
    case H2Errc::kStreamLimit:
    case H2Errc::kRefused:
      return AttemptResult::kRefusedStream;
    case H2Errc::kTimeout:
      return AttemptResult::kPerTryTimeout;
    default:
      return AttemptResult::kReset;
  }
}

bool H2Error::unprocessed() const noexcept {
  const AttemptResult r = attempt_result();
  return r == AttemptResult::kConnectFailure || r == AttemptResult::kRefusedStream;
}

void to_h1_view(const H2ResponseHead& h, http::ResponseHead* out) noexcept {
  out->status = h.status;
  out->reason = {};
  out->version_minor = 1;
  out->keep_alive = true;
  out->has_te_chunked = false;
  out->head_bytes = 0;
  out->connection_token_count = 0;
  if (h.end_stream) {
    out->body = http::BodyKind::kNone;
    out->content_length = 0;
  } else if (h.content_length >= 0) {
    out->body = http::BodyKind::kContentLength;
    out->content_length = static_cast<uint64_t>(h.content_length);
  } else {
    out->body = http::BodyKind::kChunked;
    out->content_length = 0;
  }
  size_t n = 0;
  for (const h2::Field& f : h.fields.fields()) {
    if (n == out->headers.size()) break;
    out->headers[n++] = http::Header{f.name, f.value, http::HeaderKind::kOther, false};
  }
  out->header_count = n;
}

// ---------------------------------------------------------------------------------------------
// Stream state (owned by the H2Stream handle; the connection maps id -> state while it lives)

struct H2StreamState {
  explicit H2StreamState(asio::io_context& io) : read_timer(io), write_timer(io) {}
  int32_t id = 0;
  // Send side: the caller's bytes being taken by the codec (write_body is suspended meanwhile).
  std::span<const uint8_t> out;
  bool out_end = false;        // the body ends after `out`
  bool send_deferred = false;  // on_body_read said kDeferred: resume() when data comes
  bool local_done = false;     // the end of the body (or trailers) went to the codec
  // Receive side.
  // Not yet read (1xx first, then the final head): one or two, so a vector (a deque allocates
  // twice when built).
  std::vector<H2ResponseHead> heads;
  std::vector<uint8_t> in;    // received, not yet handed out
  std::vector<uint8_t> held;  // handed out by the last read_body, consumed at the next
  h2::FieldList trailers;
  bool has_trailers = false;
  bool remote_done = false;  // END_STREAM received: the response is complete
  // End.
  bool closed = false;  // on_stream_close arrived
  h2::CloseInfo close;
  bool lost = false;       // the connection ended first
  bool cancelled = false;  // reset() by the caller
  bool timed_out = false;  // write_body's deadline passed (the stream was reset)
  bool rst_sent = false;
  asio::steady_timer read_timer;
  asio::steady_timer write_timer;
};

namespace {
H2Error stream_error(const H2StreamState& st, const H2Connection& c) {
  H2Error e;
  if (st.timed_out) {
    e.code = H2Errc::kTimeout;
    e.detail = "request body not taken by the upstream in time";
  } else if (st.cancelled) {
    e.code = H2Errc::kCancelled;
    e.detail = "stream reset by the caller";
  } else if (st.closed && st.close.unprocessed) {
    e.code = H2Errc::kRefused;
    e.h2_code = st.close.error_code;
    e.detail = c.state() == H2Connection::State::kReady ? "stream refused by the upstream"
                                                        : "stream not processed (GOAWAY)";
  } else if (st.closed) {
    e.code = H2Errc::kReset;
    e.h2_code = st.close.error_code;
    e.detail = st.close.reset_by_peer ? "stream reset by the upstream: " : "stream closed: ";
    e.detail += h2::error_code_name(st.close.error_code);
  } else {
    e.code = H2Errc::kConnectionLost;
    e.detail = c.error().empty() ? std::string("connection closed") : c.error();
  }
  return e;
}

bool stream_failed(const H2StreamState& st) {
  return st.cancelled || st.timed_out || st.closed || st.lost;
}
}  // namespace

// ---------------------------------------------------------------------------------------------
// H2Stream

H2Stream::H2Stream(std::shared_ptr<H2Connection> c, std::unique_ptr<H2StreamState> s) noexcept
    : conn_(std::move(c)), st_(std::move(s)) {}

H2Stream::H2Stream(H2Stream&& o) noexcept : conn_(std::move(o.conn_)), st_(std::move(o.st_)) {}

H2Stream& H2Stream::operator=(H2Stream&& o) noexcept {
  if (this != &o) {
    release();
    conn_ = std::move(o.conn_);
    st_ = std::move(o.st_);
  }
  return *this;
}

H2Stream::~H2Stream() { release(); }

void H2Stream::release() noexcept {
  if (!st_) return;
  H2Connection& c = *conn_;
  c.reset_stream(*st_, st_->remote_done ? h2::kNoError : h2::kCancel);
  c.forget_stream(st_.get());
  c.recycle(std::move(st_));
  conn_.reset();
}

int32_t H2Stream::id() const noexcept { return st_ ? st_->id : 0; }

size_t H2Stream::buffered_bytes() const noexcept {
  return st_ ? st_->in.size() + st_->held.size() : 0;
}

bool H2Stream::complete() const noexcept { return st_ && st_->remote_done && st_->local_done; }

void H2Stream::reset(uint32_t code) {
  if (!st_ || st_->cancelled) return;
  st_->cancelled = true;
  conn_->reset_stream(*st_, code);
  st_->out = {};
  st_->read_timer.cancel();
  st_->write_timer.cancel();
}

asio::awaitable<std::expected<void, H2Error>> H2Stream::write_body(std::span<const uint8_t> bytes,
                                                                   bool end,
                                                                   Clock::time_point deadline) {
  if (!st_) co_return err(H2Errc::kProtocol, "no stream");
  H2StreamState* st = st_.get();
  H2Connection* c = conn_.get();
  if (st->local_done) co_return err(H2Errc::kProtocol, "request body already ended");
  if (stream_failed(*st)) co_return std::unexpected(stream_error(*st, *c));
  st->out = bytes;
  st->out_end = end;
  if (st->send_deferred) {
    st->send_deferred = false;
    c->session_->resume(st->id);
  }
  c->kick();
  for (;;) {
    if (st->out.empty() && (!st->out_end || st->local_done))
      co_return std::expected<void, H2Error>();
    if (stream_failed(*st)) {
      st->out = {};
      co_return std::unexpected(stream_error(*st, *c));
    }
    if (Clock::now() >= deadline) {
      st->out = {};  // the caller's bytes are not ours past this point
      st->timed_out = true;
      c->reset_stream(*st, h2::kCancel);
      st->read_timer.cancel();
      co_return std::unexpected(stream_error(*st, *c));
    }
    st->write_timer.expires_at(deadline);
    (void)co_await st->write_timer.async_wait(use_nothrow);
  }
}

std::expected<void, H2Error> H2Stream::write_trailers(std::span<const h2::Field> trailers) {
  if (!st_) return err(H2Errc::kProtocol, "no stream");
  H2StreamState* st = st_.get();
  H2Connection* c = conn_.get();
  if (st->local_done || st->out_end) return err(H2Errc::kProtocol, "request body already ended");
  if (!st->out.empty()) return err(H2Errc::kProtocol, "a body write is in progress");
  if (stream_failed(*st)) return std::unexpected(stream_error(*st, *c));
  if (auto r = c->session_->submit_trailers(st->id, trailers); !r) {
    return err(H2Errc::kProtocol, r.error());
  }
  st->out_end = true;  // on_body_read answers kEnd: the codec sends the trailers with END_STREAM
  if (st->send_deferred) {
    st->send_deferred = false;
    c->session_->resume(st->id);
  }
  c->kick();
  return {};
}

asio::awaitable<std::expected<H2ResponseHead, H2Error>> H2Stream::read_response_head(
    Clock::time_point deadline) {
  if (!st_) co_return err(H2Errc::kProtocol, "no stream");
  H2StreamState* st = st_.get();
  H2Connection* c = conn_.get();
  for (;;) {
    if (!st->heads.empty()) {
      H2ResponseHead h = std::move(st->heads.front());
      st->heads.erase(st->heads.begin());
      co_return h;
    }
    if (st->remote_done || stream_failed(*st)) {
      if (st->remote_done && !st->cancelled) co_return err(H2Errc::kProtocol, "no response head");
      co_return std::unexpected(stream_error(*st, *c));
    }
    if (Clock::now() >= deadline) co_return err(H2Errc::kTimeout, "no response head in time");
    st->read_timer.expires_at(deadline);
    (void)co_await st->read_timer.async_wait(use_nothrow);
  }
}

std::optional<std::expected<H2BodyChunk, H2Error>> H2Stream::read_body_now() {
  if (!st_) return err(H2Errc::kProtocol, "no stream");
  H2StreamState* st = st_.get();
  H2Connection* c = conn_.get();
  if (!st->held.empty()) {
    // The caller passed the previous chunk on: re-open the upstream's window for it.
    if (!c->transport_closed_ && c->session_) {
      c->session_->consume(st->id, st->held.size());
      c->kick();
    }
    st->held.clear();
  }
  if (st->cancelled) return std::unexpected(stream_error(*st, *c));
  if (!st->in.empty()) {
    std::swap(st->in, st->held);  // `in` keeps filling while the caller holds `held`
    H2BodyChunk chunk;
    chunk.data = {st->held.data(), st->held.size()};
    chunk.end = st->remote_done;
    if (chunk.end && st->has_trailers) chunk.trailers = &st->trailers;
    return chunk;
  }
  if (st->remote_done) {
    H2BodyChunk chunk;
    chunk.end = true;
    if (st->has_trailers) chunk.trailers = &st->trailers;
    return chunk;
  }
  if (stream_failed(*st)) return std::unexpected(stream_error(*st, *c));
  return std::nullopt;
}

asio::awaitable<std::expected<H2BodyChunk, H2Error>> H2Stream::read_body(
    Clock::time_point deadline) {
  for (int waits = 0; waits < 1'000'000; ++waits) {
    if (auto r = read_body_now()) co_return std::move(*r);
    if (Clock::now() >= deadline) co_return err(H2Errc::kTimeout, "response body idle too long");
    st_->read_timer.expires_at(deadline);
    (void)co_await st_->read_timer.async_wait(use_nothrow);
  }
  co_return err(H2Errc::kTimeout, "response body idle too long");
}

// ---------------------------------------------------------------------------------------------
// H2Connection

H2Connection::H2Connection(Passkey, asio::io_context& io, std::unique_ptr<Connection> conn,
                           const H2ConnectionOptions& options, std::shared_ptr<H2Counters> counters)
    : io_(io),
      conn_(std::move(conn)),
      options_(options),
      counters_(std::move(counters)),
      kick_timer_(io),
      idle_since_(Clock::now()) {}

H2Connection::~H2Connection() = default;

std::expected<std::shared_ptr<H2Connection>, H2Error> H2Connection::adopt(
    asio::io_context& io, std::unique_ptr<Connection> conn, const H2ConnectionOptions& options) {
  if (conn->name.empty()) conn->name = endpoint_name(conn->endpoint);
  auto c = std::make_shared<H2Connection>(Passkey{}, io, std::move(conn), options,
                                          std::make_shared<H2Counters>());
  if (!c->start()) return err(H2Errc::kProtocol, c->error_);
  return c;
}

asio::awaitable<std::expected<std::shared_ptr<H2Connection>, H2Error>> H2Connection::connect(
    asio::io_context& io, const tcp::endpoint& ep, const H2Tls& tls,
    std::chrono::milliseconds timeout, const H2ConnectionOptions& options) {
  auto conn = std::make_unique<Connection>(io);
  conn->endpoint = ep;
  conn->name = endpoint_name(ep);
  if (options.breaker) {
    if (options.breaker->try_acquire(Resource::kConnections) != Overflow::kNone) {
      co_return err(H2Errc::kBreakerOpen, "circuit breaker open: max connections");
    }
    conn->breaker = options.breaker;
  }
  auto c = std::make_shared<H2Connection>(Passkey{}, io, std::move(conn), options,
                                          std::make_shared<H2Counters>());
  // Spawned rather than awaited: its by-value arguments then never sit as temporaries in a
  // co_await expression (g++ 12 mishandles those). Its watchdog ends it by the deadline.
  asio::co_spawn(io, run_connect(c, ep, tls, timeout), asio::detached);
  auto ready = co_await c->wait_ready(Clock::now() + timeout + std::chrono::seconds(1));
  if (!ready) co_return std::unexpected(std::move(ready.error()));
  co_return c;
}

asio::awaitable<void> H2Connection::run_connect(std::shared_ptr<H2Connection> self,
                                                tcp::endpoint ep, H2Tls tls,
                                                std::chrono::milliseconds timeout) {
  H2Connection& c = *self;
  const auto deadline = Clock::now() + timeout;
  bool timed_out = false;
  // The watchdog closes the socket at the deadline, which ends whatever step is pending. It holds
  // only weak references, so it may fire after this coroutine has finished.
  auto flag = std::make_shared<bool>(false);
  asio::steady_timer watchdog(c.io_, deadline);
  watchdog.async_wait([w = std::weak_ptr<H2Connection>(self), flag](boost::system::error_code ec) {
    if (ec) return;
    auto s = w.lock();
    if (!s || s->state_ != State::kConnecting) return;
    *flag = true;
    // Set before the close wakes the pool's waiters: they take this error as theirs.
    H2Error e;
    e.code = H2Errc::kConnectTimeout;
    e.detail = "upstream connect timeout";
    s->connect_error_ = std::move(e);
    s->close_transport();
  });
  auto failed = [&](H2Errc code, std::string detail, std::string_view tls_reason = {}) {
    H2Error e;
    e.code = code;
    e.detail = std::move(detail);
    e.tls_reason = tls_reason;
    if (!c.error_.empty() && code != H2Errc::kTlsHandshake) e.detail += ": " + c.error_;
    c.connect_error_ = std::move(e);
    ++c.counters_->connect_failures;
    if (c.error_.empty()) c.error_ = c.connect_error_->detail;
    log::warn("upstream h2 connect failed", {{"endpoint", c.conn_->name},
                                             {"reason", std::string(h2_errc_name(code))},
                                             {"detail", c.connect_error_->detail}});
    c.close_transport();
  };

  auto [ec] = co_await c.conn_->socket.async_connect(ep, use_nothrow);
  timed_out = *flag;
  if (ec || c.transport_closed_) {
    if (timed_out) {
      failed(H2Errc::kConnectTimeout, "upstream connect timeout");
    } else if (ec == asio::error::connection_refused) {
      failed(H2Errc::kConnectRefused, "upstream connection refused");
    } else {
      failed(H2Errc::kConnectFailed, "upstream connect error: " + ec.message());
    }
    co_return;
  }
  boost::system::error_code ignored;
  c.conn_->socket.set_option(tcp::no_delay(true), ignored);
  net::enable_read_hints(c.conn_->socket);

  if (tls.material) {
    auto ssl = tls.material->new_ssl(tls.sni, tls.sessions, c.conn_->name);
    if (!ssl) {
      if (c.stats_)
        c.stats_->tls.errors[static_cast<size_t>(stats::TlsError::kHandshakeFailed)].inc();
      failed(H2Errc::kTlsHandshake, ssl.error(), "handshake_failed");
      co_return;
    }
    c.conn_->tls = net::make_client_stream(c.conn_->socket, std::move(*ssl), tls.material);
    const boost::system::error_code hec = co_await net::handshake(*c.conn_->tls, false);
    timed_out = *flag;
    if (hec || c.transport_closed_) {
      const std::string_view reason =
          timed_out ? std::string_view("handshake_timeout")
                    : tls::handshake_failure_reason(net::native(*c.conn_->tls), hec);
      if (tls.sessions) {
        tls.sessions->forget(c.conn_->name,
                             tls.sni.empty() ? tls.material->settings().sni : tls.sni);
      }
      if (c.stats_)
        c.stats_->tls.errors[static_cast<size_t>(stats::tls_error_from_reason(reason))].inc();
      failed(timed_out ? H2Errc::kConnectTimeout : H2Errc::kTlsHandshake,
             "upstream tls handshake failed: " + std::string(reason) + " (" + hec.message() + ")",
             reason);
      co_return;
    }
    ++c.counters_->tls_handshakes;
    const bool resumed = SSL_session_reused(net::native(*c.conn_->tls)) != 0;
    if (resumed) ++c.counters_->tls_resumed;
    if (c.stats_) {
      c.stats_->tls.handshakes.inc();
      if (resumed) c.stats_->tls.resumed.inc();
    }
    const std::string_view alpn = tls::negotiated_alpn(net::native(*c.conn_->tls));
    if (tls.count_alpn && c.stats_) c.stats_->alpn[alpn == "h2" ? 0 : alpn.empty() ? 2 : 1].inc();
    if (alpn != "h2") {
      failed(H2Errc::kNotH2, "upstream did not negotiate h2 (ALPN: \"" + std::string(alpn) + "\")");
      co_return;
    }
  }

  if (!c.start()) {
    failed(H2Errc::kProtocol, "h2 session: " + c.error_);
    co_return;
  }
  // The server's SETTINGS (its preface) make the connection ready.
  while (c.state_ == State::kConnecting && !c.transport_closed_ && Clock::now() < deadline) {
    co_await c.sleep_until_changed(deadline);
  }
  timed_out = *flag || (c.state_ == State::kConnecting && Clock::now() >= deadline);
  if (c.ready_once_ && !c.transport_closed_) co_return;  // ready (maybe GOAWAY'd already)
  if (timed_out && c.error_.empty()) {
    failed(H2Errc::kConnectTimeout, "no HTTP/2 SETTINGS from the upstream in time");
  } else {
    failed(H2Errc::kNotH2, "upstream did not speak HTTP/2");
  }
}

asio::awaitable<void> H2Connection::run_adopted(std::shared_ptr<H2Connection> self,
                                                std::chrono::milliseconds timeout) {
  H2Connection& c = *self;
  const auto deadline = Clock::now() + timeout;
  if (c.start()) {
    while (c.state_ == State::kConnecting && !c.transport_closed_ && Clock::now() < deadline) {
      co_await c.sleep_until_changed(deadline);
    }
    if (c.ready_once_ && !c.transport_closed_) co_return;  // ready (maybe GOAWAY'd already)
  }
  const bool timed_out = !c.transport_closed_ && c.error_.empty();
  H2Error e;
  e.code = timed_out ? H2Errc::kConnectTimeout : H2Errc::kNotH2;
  e.detail =
      timed_out ? "no HTTP/2 SETTINGS from the upstream in time" : "upstream did not speak HTTP/2";
  if (!c.error_.empty()) e.detail += ": " + c.error_;
  c.connect_error_ = std::move(e);
  ++c.counters_->connect_failures;
  if (c.error_.empty()) c.error_ = c.connect_error_->detail;
  log::warn("upstream h2 connect failed",
            {{"endpoint", c.conn_->name},
             {"reason", std::string(h2_errc_name(c.connect_error_->code))},
             {"detail", c.connect_error_->detail}});
  c.close_transport();
}

bool H2Connection::start() {
  if (started_) return true;
  auto s = h2::ClientSession::create(this, options_.limits);
  if (!s) {
    error_ = s.error();
    return false;
  }
  session_ = std::move(*s);
  started_ = true;
  asio::co_spawn(io_, reader(shared_from_this()), asio::detached);
  asio::co_spawn(io_, writer(shared_from_this()), asio::detached);
  return true;
}

asio::awaitable<std::expected<void, H2Error>> H2Connection::wait_ready(Clock::time_point deadline) {
  auto self = shared_from_this();
  while (state_ == State::kConnecting && !transport_closed_) {
    if (Clock::now() >= deadline) co_return err(H2Errc::kConnectTimeout, "no SETTINGS in time");
    co_await sleep_until_changed(deadline);
  }
  if (ready_once_ && state_ != State::kClosed) co_return std::expected<void, H2Error>();
  if (connect_error_) co_return std::unexpected(*connect_error_);
  co_return err(H2Errc::kNotH2, error_.empty() ? std::string("connection closed") : error_);
}

asio::awaitable<void> H2Connection::sleep_until_changed(Clock::time_point deadline) {
  auto self = shared_from_this();
  asio::steady_timer t(io_, deadline);
  ready_waiters_.push_back(&t);
  struct Unregister {
    std::vector<asio::steady_timer*>& v;
    asio::steady_timer* t;
    ~Unregister() { std::erase(v, t); }
  } unregister{ready_waiters_, &t};
  (void)co_await t.async_wait(use_nothrow);
}

void H2Connection::wake_ready() noexcept {
  for (auto* t : ready_waiters_) t->cancel();
}

asio::awaitable<void> H2Connection::reader(std::shared_ptr<H2Connection> self) {
  H2Connection& c = *self;
  std::vector<uint8_t> buf(kReadBuffer);
  for (;;) {
    boost::system::error_code ec;
    size_t n = 0;
    if (c.conn_->tls) {
      std::tie(ec, n) = co_await net::read_some(*c.conn_->tls, asio::buffer(buf));
    } else {
      std::tie(ec, n) =
          co_await net::async_read_drain(c.conn_->socket, asio::buffer(buf), use_nothrow);
    }
    if (c.transport_closed_) co_return;
    if (ec || n == 0) {
      c.fail(ec && ec != asio::error::eof ? "read: " + ec.message() : "closed by the upstream",
             true);
      co_return;
    }
    // Watch the server's first frame (it must be SETTINGS): once all its bytes were fed, the
    // peer's limits are known and the connection takes streams.
    bool first_frame_done = false;
    if (!c.ready_once_) {
      size_t i = 0;
      for (; i < n && c.first_bytes_ < 9; ++i) c.first_frame_hdr_[c.first_bytes_++] = buf[i];
      if (c.first_bytes_ == 9) {
        if (c.first_frame_hdr_[3] != 0x4) {
          c.fail("upstream did not send HTTP/2 SETTINGS first", false);
          co_return;
        }
        c.first_payload_ += n - i;
        const size_t len = (size_t{c.first_frame_hdr_[0]} << 16) |
                           (size_t{c.first_frame_hdr_[1]} << 8) | c.first_frame_hdr_[2];
        first_frame_done = c.first_payload_ >= len;
      }
    }
    auto r = c.session_->feed({buf.data(), n});
    c.kick();
    if (!r) {
      // The codec queued a GOAWAY: the writer flushes it and closes when done(); the streams in
      // flight are lost now. The grace timer bounds a peer that does not read.
      if (c.error_.empty()) c.error_ = r.error();
      const bool was_connecting = c.state_ == State::kConnecting;
      c.set_state(State::kDraining);
      for (auto& [id, st] : c.streams_) {
        if (!st->closed && !st->lost) {
          st->lost = true;
          st->read_timer.cancel();
          st->write_timer.cancel();
        }
      }
      if (!c.streams_.empty() && !c.lost_counted_) {
        c.lost_counted_ = true;
        ++c.counters_->connections_lost;
      }
      if (was_connecting) c.wake_ready();
      asio::steady_timer grace(c.io_, kFlushGrace);
      (void)co_await grace.async_wait(use_nothrow);
      c.close_transport();
      co_return;
    }
    if (first_frame_done && c.state_ == State::kConnecting && !c.transport_closed_) {
      c.ready_once_ = true;
      ++c.counters_->connections_opened;
      if (c.stats_) c.stats_->cx_total.inc();
      c.idle_since_ = Clock::now();
      c.set_state(c.session_->goaway_received() ? State::kDraining : State::kReady);
      c.wake_ready();
    }
  }
}

asio::awaitable<void> H2Connection::writer(std::shared_ptr<H2Connection> self) {
  H2Connection& c = *self;
  for (;;) {
    if (c.transport_closed_) co_return;
    std::span<const uint8_t> out = c.session_->pending_output();
    if (!out.empty()) {
      boost::system::error_code ec;
      size_t n = 0;
      if (c.conn_->tls) {
        std::tie(ec, n) =
            co_await net::write(*c.conn_->tls, asio::const_buffer(out.data(), out.size()));
      } else {
        // One non-blocking send first; Asio's write only for what the socket did not take
        // (see net/send_now.h).
        const asio::const_buffer all(out.data(), out.size());
        size_t sent = 0;
        if (auto r = net::send_now(c.conn_->socket, {&all, 1}, &sent)) {
          std::tie(ec, n) = *r;
        } else {
          std::tie(ec, n) = co_await asio::async_write(
              c.conn_->socket, asio::const_buffer(out.data() + sent, out.size() - sent),
              use_nothrow);
          n += sent;
        }
      }
      if (c.transport_closed_) co_return;
      if (ec) {
        c.fail("write: " + ec.message(), true);
        co_return;
      }
      c.session_->consume_output(n);
      continue;
    }
    if (c.session_->done()) {
      // GOAWAY exchanged and every stream ended (or the codec failed and its GOAWAY is out).
      c.close_transport();
      co_return;
    }
    // Sleep until kicked; an idle connection sleeps until its idle deadline.
    const bool idle = c.state_ == State::kReady && c.streams_.empty() &&
                      c.session_->open_streams() == 0 && c.options_.idle_timeout.count() > 0;
    const auto wake_at = idle ? c.idle_since_ + c.options_.idle_timeout : Clock::time_point::max();
    if (idle && Clock::now() >= wake_at) {
      ++c.counters_->idle_closed;
      c.close();
      continue;
    }
    c.kick_timer_.expires_at(wake_at);
    (void)co_await c.kick_timer_.async_wait(use_nothrow);
  }
}

void H2Connection::kick() noexcept { kick_timer_.cancel(); }

void H2Connection::set_state(State s) noexcept {
  if (state_ == s || state_ == State::kClosed) return;
  state_ = s;
  notify_pool();
}

void H2Connection::notify_pool() noexcept {
  if (pool_ != nullptr) pool_->on_connection_changed(this);
}

void H2Connection::fail(std::string why, bool lost) noexcept {
  if (error_.empty()) error_ = std::move(why);
  bool in_flight = false;
  for (auto& [id, st] : streams_) in_flight |= !st->closed && !st->lost;
  if (lost && in_flight && !lost_counted_) {
    lost_counted_ = true;
    ++counters_->connections_lost;
  }
  close_transport();
}

void H2Connection::close_transport() noexcept {
  if (transport_closed_) return;
  transport_closed_ = true;
  if (state_ == State::kConnecting && !ready_once_ && !connect_error_) {
    // Provisional, for waiters woken below; run_connect() refines it.
    H2Error e;
    e.code = H2Errc::kConnectFailed;
    e.detail = "connection closed while connecting";
    if (!error_.empty()) e.detail += ": " + error_;
    connect_error_ = std::move(e);
  }
  boost::system::error_code ignored;
  conn_->socket.shutdown(tcp::socket::shutdown_both, ignored);
  conn_->socket.close(ignored);
  const bool was_open = state_ != State::kConnecting;
  for (auto& [id, st] : streams_) {
    if (!st->closed) {
      st->lost = true;
      st->out = {};
    }
    st->read_timer.cancel();
    st->write_timer.cancel();
  }
  if (was_open) ++counters_->connections_closed;
  wake_ready();
  kick_timer_.cancel();
  state_ = State::kClosed;
  notify_pool();
}

void H2Connection::close() noexcept {
  if (transport_closed_) return;
  if (!session_ || state_ == State::kConnecting) {
    close_transport();
    return;
  }
  for (auto& [id, st] : streams_) {
    if (!st->closed && !st->lost) {
      st->lost = true;
      st->out = {};
      st->read_timer.cancel();
      st->write_timer.cancel();
    }
  }
  if (error_.empty()) error_ = "connection closed locally";
  set_state(State::kDraining);
  session_->terminate(h2::kNoError);  // the writer flushes the GOAWAY, then done() closes
  kick();
}

void H2Connection::close_when_idle() noexcept {
  if (transport_closed_) return;
  close_when_idle_ = true;
  if (state_ == State::kReady) set_state(State::kDraining);
  note_idle();
}

void H2Connection::abort(std::string why) noexcept { fail(std::move(why), true); }

bool H2Connection::can_open_stream() const noexcept {
  return state_ == State::kReady && !transport_closed_ && session_ && session_->can_open_stream();
}

size_t H2Connection::active_streams() const noexcept {
  return session_ ? session_->open_streams() : 0;
}

uint32_t H2Connection::peer_max_concurrent_streams() const noexcept {
  return session_ ? session_->peer_max_concurrent_streams() : 0;
}

const h2::Counters& H2Connection::codec_counters() const noexcept {
  static const h2::Counters kNone;
  return session_ ? session_->counters() : kNone;
}

std::expected<H2Stream, H2Error> H2Connection::open_stream(
    std::span<const h2::Field> request_fields, bool has_body) {
  if (state_ != State::kReady || transport_closed_ || !session_) {
    return err(H2Errc::kGoaway,
               state_ == State::kConnecting ? "connection not ready" : "connection is closing");
  }
  if (!session_->can_open_stream()) {
    if (session_->goaway_received()) return err(H2Errc::kGoaway, "connection is going away");
    return err(H2Errc::kStreamLimit, "peer's concurrent stream limit reached");
  }
  auto id = session_->submit_request(request_fields, has_body);
  if (!id) return err(H2Errc::kProtocol, id.error());
  std::unique_ptr<H2StreamState> st;
  if (!spare_.empty()) {
    st = std::move(spare_.back());
    spare_.pop_back();
  } else {
    st = std::make_unique<H2StreamState>(io_);
  }
  st->id = *id;
  st->local_done = !has_body;
  streams_[*id] = st.get();
  ++counters_->streams_opened;
  kick();
  return H2Stream(shared_from_this(), std::move(st));
}

void H2Connection::reset_stream(H2StreamState& st, uint32_t code) noexcept {
  if (st.closed || st.lost || st.rst_sent || transport_closed_ || !session_) return;
  st.rst_sent = true;
  session_->reset_stream(st.id, code);
  kick();
}

void H2Connection::recycle(std::unique_ptr<H2StreamState> st) noexcept {
  // Enough for the streams a connection has in flight at once (h2load -m8 over 16 clients puts
  // 100+ on one connection; with 8 kept, 9 of 10 states were built anew); a buffer grown by a
  // large body is not kept.
  constexpr size_t kSpareStates = 128;
  constexpr size_t kKeepBytes = 4096;  // at most 128 x 2 x 4 KiB held per connection
  if (spare_.size() >= kSpareStates || st->in.capacity() > kKeepBytes ||
      st->held.capacity() > kKeepBytes) {
    return;
  }
  H2StreamState& s = *st;
  s.id = 0;
  s.out = {};
  s.out_end = s.send_deferred = s.local_done = false;
  s.heads.clear();
  s.in.clear();
  s.held.clear();
  s.trailers.clear();
  s.has_trailers = s.remote_done = s.closed = s.lost = s.cancelled = s.timed_out = false;
  s.rst_sent = false;
  s.close = {};
  spare_.push_back(std::move(st));
}

H2StreamState* H2Connection::find(int32_t id) noexcept {
  H2StreamState** slot = streams_.find(id);
  return slot == nullptr ? nullptr : *slot;
}

void H2Connection::forget_stream(H2StreamState* st) noexcept {
  H2StreamState** slot = streams_.find(st->id);
  if (slot != nullptr && *slot == st) streams_.erase(st->id);
  note_idle();
}

void H2Connection::note_idle() noexcept {
  if (transport_closed_ || !streams_.empty() || active_streams() != 0) return;
  idle_since_ = Clock::now();
  if (close_when_idle_) {
    close();
    return;
  }
  kick();  // the writer re-arms its idle deadline
}

// ---- codec events (called from inside feed() and pending_output()) ----

void H2Connection::on_response(int32_t stream, const h2::Response& response) {
  H2StreamState* st = find(stream);
  if (st == nullptr) return;
  H2ResponseHead h;
  h.status = response.status;
  // The fields without a copy: the session's block is :status, then response.headers.
  session_->swap_header_block(&h.fields);
  h.fields.drop_front(h.fields.size() - response.headers.size());
  h.content_length = response.content_length;
  h.end_stream = response.end_stream;
  st->heads.push_back(std::move(h));
  st->read_timer.cancel();
}

void H2Connection::on_informational(int32_t stream, const h2::Response& response) {
  on_response(stream, response);
}

void H2Connection::on_data(int32_t stream, std::span<const uint8_t> data) {
  H2StreamState* st = find(stream);
  if (st == nullptr) return;  // reset by its caller: the codec returns the window at close
  st->in.insert(st->in.end(), data.begin(), data.end());
  st->read_timer.cancel();
}

void H2Connection::on_trailers(int32_t stream, std::span<const h2::Field> trailers) {
  H2StreamState* st = find(stream);
  if (st == nullptr) return;
  st->trailers.clear();
  for (const h2::Field& f : trailers) st->trailers.add_lower(f.name, f.value);
  st->has_trailers = true;
}

void H2Connection::on_end_stream(int32_t stream) {
  H2StreamState* st = find(stream);
  if (st == nullptr) return;
  st->remote_done = true;
  st->read_timer.cancel();
}

void H2Connection::on_stream_close(int32_t stream, const h2::CloseInfo& info) {
  if (info.unprocessed) {
    ++counters_->streams_unprocessed;
  } else if (info.reset_by_peer && info.error_code != h2::kNoError) {
    ++counters_->streams_reset_by_peer;
  }
  if (H2StreamState* st = find(stream)) {
    st->closed = true;
    st->close = info;
    st->out = {};
    st->read_timer.cancel();
    st->write_timer.cancel();
  }
  notify_pool();  // a slot is free
  note_idle();
}

h2::BodyRead H2Connection::on_body_read(int32_t stream, std::span<uint8_t> out) {
  H2StreamState* st = find(stream);
  if (st == nullptr || st->cancelled) return {0, h2::BodyRead::Status::kDeferred};
  const size_t n = std::min(out.size(), st->out.size());
  if (n > 0) std::memcpy(out.data(), st->out.data(), n);
  st->out = st->out.subspan(n);
  if (st->out.empty() && st->out_end) {
    st->local_done = true;
    st->write_timer.cancel();
    return {n, h2::BodyRead::Status::kEnd};
  }
  if (st->out.empty()) st->write_timer.cancel();
  if (n > 0) return {n, h2::BodyRead::Status::kData};
  st->send_deferred = true;
  return {0, h2::BodyRead::Status::kDeferred};
}

void H2Connection::on_goaway(int32_t last_stream_id, uint32_t error_code) {
  ++counters_->goaways_received;
  if (error_code != h2::kNoError && error_.empty()) {
    error_ = "GOAWAY ";
    error_ += h2::error_code_name(error_code);
  }
  if (state_ == State::kReady) set_state(State::kDraining);
}

// ---------------------------------------------------------------------------------------------
// H2Pool

H2Pool::H2Pool(asio::io_context& io, H2PoolOptions options)
    : io_(io),
      options_(std::move(options)),
      counters_(std::make_shared<H2Counters>()),
      waiters_(std::make_shared<WaitList>()) {}

H2Pool::~H2Pool() {
  waiters_->pool_alive = false;
  for (auto* t : waiters_->timers) t->cancel();
  auto conns = std::move(conns_);
  conns_.clear();
  for (auto& c : conns) {
    c->pool_ = nullptr;
    c->close();
  }
  if (stats_) stats_->cx_active.sub(static_cast<int64_t>(conns.size()));
}

size_t H2Pool::ready_connections(const tcp::endpoint& ep) const noexcept {
  size_t n = 0;
  for (const auto& c : conns_) n += c->endpoint() == ep && c->ready() ? 1 : 0;
  return n;
}

void H2Pool::wake_all() noexcept {
  for (auto* t : waiters_->timers) t->cancel();
}

void H2Pool::remove(H2Connection* c) noexcept {
  auto it = std::find_if(conns_.begin(), conns_.end(), [c](const auto& p) { return p.get() == c; });
  if (it == conns_.end()) return;
  (*it)->pool_ = nullptr;
  conns_.erase(it);
  if (stats_) stats_->cx_active.sub();
}

void H2Pool::on_connection_changed(H2Connection* c) noexcept {
  if (c->state() == H2Connection::State::kClosed) remove(c);
  wake_all();
}

bool H2Pool::make_room() noexcept {
  if (conns_.size() < options_.max_connections) return true;
  // Close a ready connection without streams (to whatever endpoint) to make room.
  for (auto& c : conns_) {
    if (c->ready() && c->streams_.empty() && c->active_streams() == 0) {
      std::shared_ptr<H2Connection> victim = c;
      remove(victim.get());
      victim->close();
      return conns_.size() < options_.max_connections;
    }
  }
  return false;
}

std::shared_ptr<H2Connection> H2Pool::start_connect(const tcp::endpoint& ep, const H2Tls& tls) {
  auto conn = std::make_unique<Connection>(io_);
  conn->endpoint = ep;
  conn->name = endpoint_name(ep);
  if (const auto& b = options_.connection.breaker) {
    if (b->try_acquire(Resource::kConnections) != Overflow::kNone) return nullptr;
    conn->breaker = b;
  }
  auto c = enlist(std::move(conn));
  asio::co_spawn(io_, H2Connection::run_connect(c, ep, tls, options_.connect_timeout),
                 asio::detached);
  return c;
}

std::shared_ptr<H2Connection> H2Pool::enlist(std::unique_ptr<Connection> conn) {
  auto c = std::make_shared<H2Connection>(H2Connection::Passkey{}, io_, std::move(conn),
                                          options_.connection, counters_);
  c->pool_ = this;
  c->stats_ = stats_;
  conns_.push_back(c);
  if (stats_) stats_->cx_active.add();
  return c;
}

void H2Pool::adopt(std::unique_ptr<Connection> conn) {
  if (conn->name.empty()) conn->name = endpoint_name(conn->endpoint);
  make_room();  // best effort: an idle connection gives way; else the pool runs one over
  asio::co_spawn(io_, H2Connection::run_adopted(enlist(std::move(conn)), options_.connect_timeout),
                 asio::detached);
}

std::optional<std::expected<H2Stream, H2Error>> H2Pool::open_on_ready(
    const tcp::endpoint& ep, std::span<const h2::Field> request_fields, bool has_body) {
  // The first ready connection with room (streams pack onto few connections, so the others can
  // idle out).
  for (size_t i = 0; i < conns_.size(); ++i) {
    H2Connection& c = *conns_[i];
    if (c.endpoint() != ep || !c.can_open_stream()) continue;
    auto s = c.open_stream(request_fields, has_body);
    if (s) return std::move(*s);
    if (s.error().code == H2Errc::kProtocol) return std::unexpected(s.error());
  }
  return std::nullopt;
}

asio::awaitable<std::expected<H2Stream, H2Error>> H2Pool::acquire_stream(
    const tcp::endpoint& ep, std::span<const h2::Field> request_fields, bool has_body,
    Clock::time_point deadline, const H2Tls* tls) {
  static const H2Tls kCleartext;
  std::shared_ptr<WaitList> wl = waiters_;
  std::shared_ptr<H2Connection> waiting_on;  // a connection being set up that should serve us
  bool pending = false;                      // counted as a pool wait (no room anywhere)
  struct PendingGuard {
    bool& pending;
    std::shared_ptr<WaitList>& wl;
    stats::ClusterStats* stats;
    ~PendingGuard() {
      if (pending && wl->pool_alive && stats) stats->rq_pending.sub();
    }
  } pending_guard{pending, wl, stats_};
  for (int round = 0; round < 1'000'000; ++round) {
    // 1. A ready connection with room.
    if (auto s = open_on_ready(ep, request_fields, has_body)) co_return std::move(*s);
    // 2. The connection we waited for could not be set up: that is our answer too.
    if (waiting_on && waiting_on->connect_error_)
      co_return std::unexpected(*waiting_on->connect_error_);
    // 3. Wait for a connection being set up, or start one when there is room.
    waiting_on = nullptr;
    for (auto& c : conns_) {
      if (c->endpoint() == ep && c->state() == H2Connection::State::kConnecting) {
        waiting_on = c;
        break;
      }
    }
    if (!waiting_on && make_room()) {
      waiting_on = start_connect(ep, tls != nullptr ? *tls : kCleartext);
      if (!waiting_on) {
        ++counters_->connect_failures;
        co_return err(H2Errc::kBreakerOpen, "circuit breaker open: max connections");
      }
    }
    if (Clock::now() >= deadline) {
      if (waiting_on) co_return err(H2Errc::kConnectTimeout, "upstream connect timeout");
      ++counters_->pool_timeouts;
      co_return err(H2Errc::kPoolTimeout, "upstream connection pool timeout");
    }
    if (!waiting_on && !pending) {
      pending = true;
      ++counters_->pool_waits;
      if (stats_) stats_->rq_pending.add();
    }
    asio::steady_timer t(io_, deadline);
    wl->timers.push_back(&t);
    struct Unregister {
      WaitList& wl;
      asio::steady_timer* t;
      ~Unregister() { std::erase(wl.timers, t); }
    } unregister{*wl, &t};
    (void)co_await t.async_wait(use_nothrow);
    if (!wl->pool_alive) co_return err(H2Errc::kCancelled, "pool closed");
  }
  co_return err(H2Errc::kPoolTimeout, "upstream connection pool timeout");
}

}  // namespace outrigger::upstream
