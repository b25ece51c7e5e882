#include "proxy/server/connection.h"

#include <netinet/tcp.h>
#include <openssl/evp.h>

#include <array>
#include <cassert>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <charconv>
#include <cstring>
#include <functional>
#include <span>

#include "proxy/aws/sigv4.h"
#include "proxy/base/log.h"
#include "proxy/base/uuid.h"
#include "proxy/h2/session.h"
#include "proxy/h2/translate.h"
#include "proxy/net/drain_read.h"
#include "proxy/net/send_now.h"
#include "proxy/server/worker.h"
#include "proxy/tls/identity.h"

namespace outrigger::server {

using namespace std::string_view_literals;

namespace asio = boost::asio;
using std::chrono::milliseconds;
namespace {
constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);
// An idle keep-alive connection keeps its read buffer this long, so a busy client never pays for
// re-registering interest; after that the buffer goes back to the pool (10k idle clients ~ 0 B).
constexpr auto kLeanAfter = std::chrono::seconds(2);
// How long we wait for an upstream's "100 Continue" before sending the body anyway (as curl does).
constexpr milliseconds kExpectWait{1000};
// While draining, an idle keep-alive connection is closed once it has been quiet this long.
constexpr auto kDrainIdleGrace = std::chrono::milliseconds(500);

void append_uint(std::string& out, uint64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, end);
}

constexpr uint32_t bit(http::HeaderKind k) { return 1u << static_cast<uint32_t>(k); }

std::string sha256_hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), md, &n, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(2 * n, '0');
  for (unsigned int i = 0; i < n; ++i) {
    out[2 * i] = kHex[md[i] >> 4];
    out[2 * i + 1] = kHex[md[i] & 0xf];
  }
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    const char x = a[i] >= 'A' && a[i] <= 'Z' ? static_cast<char>(a[i] + 32) : a[i];
    if (x != b[i]) return false;  // b is lower case
  }
  return true;
}

// Headers a SigV4 signature replaces: a client's copies are never forwarded with ours.
bool is_signature_header(std::string_view name) {
  return iequals(name, "authorization") || iequals(name, "x-amz-date") ||
         iequals(name, "x-amz-security-token") || iequals(name, "x-amz-content-sha256") ||
         iequals(name, "x-amz-region-set");
}

// A WebSocket opening handshake (RFC 6455 4.1): an HTTP/1.1 request whose Connection names
// "upgrade" and whose Upgrade names "websocket" (any version suffix). Its Upgrade and Connection
// are hop-by-hop: forward() sends its own, and a 101 answer turns the exchange into a tunnel.
bool asks_websocket(const http::RequestHead& rq) {
  if (rq.version_minor != 1) return false;  // Upgrade is HTTP/1.1's
  bool upgrade = false;
  for (size_t i = 0; i < rq.connection_token_count && !upgrade; ++i) {
    upgrade = iequals(rq.connection_tokens[i], "upgrade");
  }
  if (!upgrade) return false;
  for (size_t i = 0; i < rq.header_count; ++i) {
    if (rq.headers[i].kind != http::HeaderKind::kUpgrade) continue;
    std::string_view rest = rq.headers[i].value;
    while (!rest.empty()) {
      const size_t comma = rest.find(',');
      std::string_view tok = http::trim_ows(rest.substr(0, comma));
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      if (iequals(tok.substr(0, tok.find('/')), "websocket")) return true;
    }
  }
  return false;
}

// Writes pieces into room a string made for them (std::string::resize_and_overwrite: no
// zero-fill, no capacity check per piece). The caller sizes the room from the same pieces, and
// the operation returns that size, never the one it is handed: libstdc++ 12 hands it the new
// capacity when the string grows (fixed in GCC 13), and the rest would be garbage.
struct Pieces {
  char* p;
  Pieces& operator<<(std::string_view v) {
    if (!v.empty()) std::memcpy(p, v.data(), v.size());  // (an empty view may hold nullptr)
    p += v.size();
    return *this;
  }
};

// Appends the header lines of a message that may be forwarded: never hop-by-hop ones, nor the
// kinds in skip (headers the caller writes itself), nor a header named `strip` (lower case), nor
// (strip_signature) the headers a SigV4 signature replaces.
void append_forwardable(std::string& out, const http::MessageHead& h, uint32_t skip = 0,
                        std::string_view strip = {}, bool strip_signature = false) {
  for (size_t i = 0; i < h.header_count; ++i) {
    const http::Header& f = h.headers[i];
    if (f.hop || (skip & bit(f.kind)) != 0) continue;
    if (!strip.empty() && iequals(f.name, strip)) continue;
    if (strip_signature && is_signature_header(f.name)) continue;
    http::append_field(out, f.name, f.value);
  }
}

std::string_view tls_failure_text(stats::TlsError e) {
  switch (e) {
    case stats::TlsError::kExpired:
      return "upstream tls: certificate expired";
    case stats::TlsError::kNotYetValid:
      return "upstream tls: certificate not yet valid";
    case stats::TlsError::kUnknownCa:
      return "upstream tls: certificate not from a trusted ca";
    case stats::TlsError::kSanMismatch:
      return "upstream tls: certificate name mismatch";
    case stats::TlsError::kHandshakeTimeout:
      return "upstream tls: handshake timeout";
    case stats::TlsError::kPeerAlert:
      return "upstream tls: refused by the upstream";
    case stats::TlsError::kProtocolVersion:
      return "upstream tls: protocol version";
    case stats::TlsError::kNoSharedCipher:
      return "upstream tls: no shared cipher";
    case stats::TlsError::kEof:
      return "upstream tls: closed during handshake";
    default:
      return "upstream tls: handshake failed";
  }
}

}  // namespace

// Per-request state, taken from a small free list so an idle connection holds none of it.
struct Exchange {
  http::HeadParser parser;
  http::RequestHead req;
  http::ResponseHead resp;
  http::ChunkedDecoder chunked;
  std::string out;      // the head we write (upstream request, then downstream response)
  std::string scratch;  // chunk framing
  char request_id[36];
  std::string_view request_id_view;
  bool generated_id = false;
  bool id_in_response = true;  // the listener's request_id_in_response
  // When forward() finished the exchange (its last clock read, reused for the route's duration
  // and the access log: a clock read costs ~28 ns here); unset when it ended another way.
  Clock::time_point done_at{};
  // response side
  base::Buffer* ubuf = nullptr;
  size_t ubeg = 0, uend = 0;
  // accounting
  int status = 0;
  uint64_t bytes_received = 0, bytes_sent = 0;
  std::string_view route_name = "";
  std::string upstream_name;  // reused across requests: assignment keeps its capacity
  std::string replay;         // the request body as sent, kept for retries (bounded)
  uint32_t attempts = 0;
  bool upstream_h2 = false;
  bool websocket = false;  // a WebSocket handshake proxy() accepted: a 101 opens a tunnel
  std::string_view cluster_name;
  // HTTP/2 upstreams: the request head re-read from `out`, and its HTTP/2 fields.
  std::unique_ptr<http::ResponseHead> h2_resp_view;  // an HTTP/2 response head for the retry policy
  std::vector<h2::Field> h2_fields;  // request views kept while an attempt waits for a stream
  char attempts_text[12];            // numbers the response views (response_views()) may point to
  char length_text[24];
  const router::CompiledRoute* route = nullptr;
};

namespace {
thread_local std::vector<std::unique_ptr<Exchange>> t_exchanges;

// Field views handed on at once, one vector per worker: it stays warm in cache, where one per
// exchange was cold with hundreds of streams in flight. Request views: an HTTP/2 upstream's
// request, submitted without a co_await in between unless the attempt must wait for a stream,
// when forward() copies them into the exchange first. Response views: response_views()
// (connection.h).
std::vector<h2::Field>& request_views() {
  thread_local std::vector<h2::Field> v;
  return v;
}

}  // namespace

std::vector<h2::Field>& response_views() {
  thread_local std::vector<h2::Field> v;
  v.clear();
  return v;
}

namespace {

std::unique_ptr<Exchange> take_exchange() {
  if (t_exchanges.empty()) return std::make_unique<Exchange>();
  auto e = std::move(t_exchanges.back());
  t_exchanges.pop_back();
  return e;
}
void give_exchange(std::unique_ptr<Exchange> e) {
  e->upstream_name.clear();
  if (e->replay.capacity() > (16u << 10)) std::string().swap(e->replay);
  e->route = nullptr;
  e->route_name = "";
  e->status = 0;
  e->bytes_received = e->bytes_sent = 0;
  e->generated_id = false;
  e->id_in_response = true;
  e->attempts = 0;
  e->upstream_h2 = false;
  e->websocket = false;
  e->cluster_name = {};
  // Enough for the requests an HTTP/2 connection keeps in flight (8 x 32 streams in the bench):
  // a miss allocates and zeroes a whole Exchange.
  if (t_exchanges.size() < 256) t_exchanges.push_back(std::move(e));
}
}  // namespace

namespace {
// Upstream I/O, TLS or plain. Plain returns Asio's own awaitable (no extra coroutine frame).
asio::awaitable<net::IoResult> us_read(upstream::Connection& c, asio::mutable_buffer b) {
  return c.tls ? net::read_some(*c.tls, b) : net::async_read_drain(c.socket, b, use_nothrow);
}
asio::awaitable<net::IoResult> us_write(upstream::Connection& c,
                                        std::span<const asio::const_buffer> b) {
  return c.tls ? net::write(*c.tls, b) : asio::async_write(c.socket, b, use_nothrow);
}
asio::awaitable<net::IoResult> us_write(upstream::Connection& c, asio::const_buffer b) {
  return c.tls ? net::write(*c.tls, b) : asio::async_write(c.socket, b, use_nothrow);
}
}  // namespace

asio::awaitable<net::IoResult> DownstreamConnection::ds_read(asio::mutable_buffer b) {
  if (sio_ != nullptr) return sio_->read(b);
  return tls_ ? net::read_some(*tls_, b) : net::async_read_drain(*socket_, b, use_nothrow);
}

asio::awaitable<net::IoResult> DownstreamConnection::ds_write(
    std::span<const asio::const_buffer> b) {
  if (sio_ != nullptr) return sio_->write(b);
  return tls_ ? net::write(*tls_, b) : asio::async_write(*socket_, b, use_nothrow);
}

asio::awaitable<net::IoResult> DownstreamConnection::ds_write(asio::const_buffer b) {
  if (sio_ != nullptr) return sio_->write(b);
  return tls_ ? net::write(*tls_, b) : asio::async_write(*socket_, b, use_nothrow);
}

DownstreamConnection::DownstreamConnection(Worker& worker, size_t listener_index,
                                           tcp::socket socket)
    : worker_(worker), listener_index_(listener_index), socket_(std::move(socket)) {
  boost::system::error_code ec;
  socket_->set_option(tcp::no_delay(true), ec);
  net::enable_read_hints(*socket_);
  auto ep = socket_->remote_endpoint(ec);
  if (!ec) {
    auto addr = ep.address();
    if (addr.is_v6() && addr.to_v6().is_v4_mapped())
      addr = asio::ip::make_address_v4(asio::ip::v4_mapped, addr.to_v6());  // dual-stack
    client_ip_ = addr.to_string();
  }
  worker_.link(this);
}

DownstreamConnection::DownstreamConnection(Worker& worker, size_t listener_index, StreamIo* io,
                                           std::shared_ptr<const Peer> peer, std::string client_ip)
    : worker_(worker),
      listener_index_(listener_index),
      peer_(std::move(peer)),
      sio_(io),
      client_ip_(std::move(client_ip)) {
  worker_.link(this);
}

DownstreamConnection::~DownstreamConnection() {
  release_buffer();
  worker_.unlink(this);
}

asio::awaitable<void> DownstreamConnection::serve(std::unique_ptr<DownstreamConnection> self) {
  co_await self->run();
  if (self->tls_ && !self->timed_out_) {
    // A clean TLS close (close_notify), waiting at most a moment for the client's.
    self->arm(Timeout::kStream, milliseconds(200));
    co_await net::shutdown(*self->tls_);
    self->disarm();
  }
  boost::system::error_code ec;
  self->socket_->shutdown(tcp::socket::shutdown_send, ec);
  self->socket_->close(ec);
}

void DownstreamConnection::finish_stream() {
  if (sio_ != nullptr) sio_->finish();
}

// The countdown starts at the first worker tick that sees the timeout armed, so arm() reads no
// clock (~28 ns a read here, several arm() per request, most disarmed before any tick): a
// timeout ends between d and d plus two ticks (100 ms) after arm(), never before d. Checking at
// ticks alone already made it up to one tick late.
void DownstreamConnection::arm(Timeout kind, milliseconds d) {
  timeout_ = kind;
  timed_out_ = false;
  arm_for_ = d;
  deadline_ = Clock::time_point::max();
}

void DownstreamConnection::cancel_io() {
  boost::system::error_code ec;
  if (sio_ != nullptr) sio_->cancel();
  if (socket_) socket_->cancel(ec);
  if (active_upstream_ != nullptr) active_upstream_->socket.cancel(ec);
  if (wait_timer_ != nullptr) wait_timer_->cancel();
}

void DownstreamConnection::on_tick(Clock::time_point now) {
  if (h2_ != nullptr) h2_tick(now);
  if (timeout_ != Timeout::kNone && !timed_out_) {
    // Armed since the last tick: the countdown starts now.
    if (deadline_ == Clock::time_point::max()) deadline_ = now + arm_for_;
    if (now >= deadline_) {
      timed_out_ = true;
      cancel_io();
      return;
    }
  }
  if (idle_ && rbuf_ != nullptr && !lean_requested_ && now - idle_since_ >= kLeanAfter) {
    lean_requested_ = true;
    boost::system::error_code ec;
    if (socket_) socket_->cancel(ec);
  } else if (idle_ && close_ && now - idle_since_ >= kDrainIdleGrace) {
    boost::system::error_code ec;
    if (socket_) socket_->cancel(ec);  // wait_for_request sees close_ and ends the connection
  }
}

void DownstreamConnection::on_drain() { close_ = true; }

void DownstreamConnection::abort() {
  close_ = true;
  timed_out_ = true;
  boost::system::error_code ec;
  if (sio_ != nullptr) sio_->cancel();
  if (socket_) socket_->close(ec);
  if (active_upstream_ != nullptr) active_upstream_->socket.close(ec);
  if (wait_timer_ != nullptr) wait_timer_->cancel();
}

// Moves unread bytes down to pin_ (0, or the end of the head of the request being forwarded, so
// the head's string_views stay valid while its body streams through the buffer).
void DownstreamConnection::compact() noexcept {
  if (rbeg_ == rend_) {
    rbeg_ = rend_ = pin_;
  } else if (rbeg_ > pin_) {
    std::memmove(rbuf_->data + pin_, rbuf_->data + rbeg_, rend_ - rbeg_);
    rend_ = pin_ + (rend_ - rbeg_);
    rbeg_ = pin_;
  }
}

void DownstreamConnection::release_buffer() noexcept {
  if (rbuf_ != nullptr) {
    worker_.buffers().put(rbuf_);
    rbuf_ = nullptr;
    rbeg_ = rend_ = 0;
  }
}

// Reads more request bytes into rbuf_; false on EOF, error or the given deadline.
asio::awaitable<bool> DownstreamConnection::read_downstream(Timeout kind, milliseconds d) {
  if (rbuf_ == nullptr) rbuf_ = worker_.buffers().get();
  compact();
  if (rend_ == base::kBufferSize) co_return true;  // caller decides (head too large)
  arm(kind, d);
  auto [ec, n] = co_await ds_read(asio::buffer(rbuf_->data + rend_, base::kBufferSize - rend_));
  disarm();
  if (ec || n == 0) co_return false;
  rend_ += n;
  co_return true;
}

// A stream's buffered request bytes (body only: its head is typed), taken without a wait.
void DownstreamConnection::take_stream_bytes() {
  if (rbuf_ == nullptr) rbuf_ = worker_.buffers().get();
  rend_ += sio_->read_ready(asio::buffer(rbuf_->data + rend_, base::kBufferSize - rend_));
}

// TLS lean wait: the session may hold decrypted bytes already, so wait by reading one byte; the
// rest of the record stays inside the session until the buffer is there. 1: got bytes, 0: look
// again (cancelled by the tick), -1: closed or failed.
asio::awaitable<int> DownstreamConnection::wait_tls_lean() {
  char first = 0;
  auto [ec, n] = co_await net::read_some(*tls_, asio::buffer(&first, 1));
  if (ec || n == 0) co_return (ec != asio::error::operation_aborted || timed_out_) ? -1 : 0;
  rbuf_ = worker_.buffers().get();
  rbuf_->data[0] = first;
  rend_ = 1;
  if (net::pending(*tls_) > 0) {
    auto [ec2, n2] = co_await net::read_some(
        *tls_, asio::buffer(rbuf_->data + rend_, base::kBufferSize - rend_));
    if (!ec2) rend_ += n2;
  }
  co_return 1;
}

// A socket or TLS connection's wait (an HTTP/2 stream never waits for its head). Kept small on
// purpose: its frame is allocated for as long as a keep-alive connection is idle (the TLS case
// is a coroutine of its own).
asio::awaitable<bool> DownstreamConnection::wait_for_request() {
  const auto& ls = worker_.snapshot()->listeners[listener_index_];
  idle_ = true;
  idle_since_ = Clock::now();
  lean_requested_ = false;
  arm(Timeout::kIdle, ls.listener->limits.idle_timeout);
  // A connection that has not proven busy (fewer than two requests) waits without a buffer, so
  // thousands of mostly idle clients cost almost nothing; a busy one keeps its buffer (see
  // on_tick).
  if (requests_ < 2) release_buffer();
  bool ok = false;
  for (int spins = 0; spins < 4; ++spins) {
    if (close_ && requests_ > 0 && Clock::now() - idle_since_ >= kDrainIdleGrace) break;
    if (rbuf_ != nullptr && !lean_requested_) {
      compact();
      auto [ec, n] = co_await ds_read(asio::buffer(rbuf_->data + rend_, base::kBufferSize - rend_));
      if (!ec && n > 0) {
        rend_ += n;
        ok = true;
        break;
      }
      if (ec != asio::error::operation_aborted || timed_out_) break;
      continue;  // cancelled by the tick: lean or drain, look again
    }
    // Lean wait: no buffer while nothing arrives.
    release_buffer();
    if (tls_) {
      const int got = co_await wait_tls_lean();
      if (got < 0) break;
      if (got == 0) continue;
      ok = true;
      break;
    }
    auto [ec] = co_await socket_->async_wait(tcp::socket::wait_read, use_nothrow);
    if (ec) {
      if (ec != asio::error::operation_aborted || timed_out_) break;
      continue;
    }
    rbuf_ = worker_.buffers().get();
    lean_requested_ = false;
    auto [ec2, n] = co_await net::async_read_drain(
        *socket_, asio::buffer(rbuf_->data + rend_, base::kBufferSize - rend_), use_nothrow);
    if (!ec2 && n > 0) {
      rend_ += n;
      ok = true;
    }
    break;
  }
  disarm();
  idle_ = false;
  if (timed_out_ && !ok) worker_.stats().limit(stats::Limit::kIdleTimeout).inc();
  co_return ok;
}

// The server side of the TLS handshake, bounded by the header timeout. Failures are counted by
// reason (a plaintext client shows as not_tls) and end the connection quietly.
asio::awaitable<bool> DownstreamConnection::tls_accept(const ListenerState& ls) {
  stats::TlsStats& ts = worker_.stats().listener(ls.stats_id).tls;
  std::shared_ptr<const tls::ServerTls> material = ls.tls->current.load();
  tls_ = net::make_server_stream(*socket_, material);
  arm(Timeout::kHandshake, ls.listener->limits.header_timeout);
  const boost::system::error_code ec = co_await net::handshake(*tls_, true);
  disarm();
  SSL* ssl = net::native(*tls_);
  if (ec) {
    const std::string_view reason =
        timed_out_ ? std::string_view("handshake_timeout") : tls::handshake_failure_reason(ssl, ec);
    ts.errors[static_cast<size_t>(stats::tls_error_from_reason(reason))].inc();
    co_return false;
  }
  ts.handshakes.inc();
  if (SSL_session_reused(ssl) != 0) ts.resumed.inc();
  auto peer = std::make_shared<Peer>();
  peer->identity = tls::extract_identity(ssl, ls.identity_rules);
  if (peer->identity.known()) peer->caller = peer->identity.account + "/" + peer->identity.service;
  if (ls.inbound) {
    peer->xfcc =
        tls::xfcc_value(peer->identity, SSL_get0_peer_certificate(ssl), material->uri_san());
  }
  peer_ = std::move(peer);
  co_return true;
}

// What a connection speaks, decided before its first HTTP/1.1 request: a coroutine of its own, so
// that its locals (TLS handshake, HTTP/2 preface) are not part of run()'s frame, which stays
// allocated for as long as the connection is idle.
asio::awaitable<DownstreamConnection::Opening> DownstreamConnection::open() {
  {
    // The snapshot stays alive across the handshake: a reload or a health transition may
    // replace the worker's while we wait.
    const std::shared_ptr<const Snapshot> snap = worker_.snapshot();
    const ListenerState& ls = snap->listeners[listener_index_];
    if (sio_ == nullptr && ls.tls && !co_await tls_accept(ls)) co_return Opening::kClosed;
    if (tls_ && tls::negotiated_alpn(net::native(*tls_)) == "h2") {
      co_await serve_h2({});
      co_return Opening::kClosed;
    }
    if (sio_ == nullptr && !tls_ && ls.listener->h2c) {
      // Prior knowledge: a connection that opens with the HTTP/2 preface speaks HTTP/2.
      if (!co_await wait_for_request()) co_return Opening::kClosed;
      for (int i = 0; i < 4; ++i) {
        const auto p = h2::check_preface(
            {reinterpret_cast<const uint8_t*>(rbuf_->data + rbeg_), rend_ - rbeg_});
        if (p == h2::Preface::kH2) {
          const std::vector<uint8_t> first(rbuf_->data + rbeg_, rbuf_->data + rend_);
          rbeg_ = rend_;
          co_await serve_h2(first);
          co_return Opening::kClosed;
        }
        if (p == h2::Preface::kNotH2) break;
        if (!co_await read_downstream(Timeout::kHeader, ls.listener->limits.header_timeout)) {
          co_return Opening::kClosed;
        }
      }
    }
  }
  co_return Opening::kHttp1;
}

asio::awaitable<void> DownstreamConnection::run() {
  // (An HTTP/2 stream has nothing to open: two coroutine frames less per stream.)
  if (sio_ == nullptr) {
    if (co_await open() == Opening::kClosed) co_return;
  }
  for (;;) {
    if (sio_ != nullptr) {
      // A stream's head is ready when its exchange starts (typed, see proxy()); body bytes
      // already there are taken now.
      take_stream_bytes();
    } else if (rbeg_ == rend_) {
      // While draining, a quiet keep-alive connection still gets a short grace: a request the
      // client sent in the same instant is answered (with Connection: close), not reset.
      if (!co_await wait_for_request()) co_return;
    }
    std::shared_ptr<const Snapshot> snap = worker_.snapshot();  // kept for the whole request
    auto ex = take_exchange();
    const bool keep = co_await proxy(*ex, *snap);
    give_exchange(std::move(ex));
    ++requests_;
    if (!keep || sio_ != nullptr) co_return;  // a stream carries one exchange
  }
}

asio::awaitable<void> DownstreamConnection::send_local(Exchange& ex, int status,
                                                       std::string_view reason, bool close,
                                                       std::string_view extra_headers) {
  const std::string body = "outrigger: " + std::string(reason) + "\n";
  std::string& o = ex.out;
  o.clear();
  o += "HTTP/1.1 "sv;
  append_uint(o, static_cast<uint64_t>(status));
  o += ' ';
  o += http::reason_phrase(status);
  o += "\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: "sv;
  append_uint(o, body.size());
  o += "\r\nx-outrigger-reason: "sv;
  o += reason;
  if (ex.id_in_response && !ex.request_id_view.empty()) {
    o += "\r\nx-request-id: "sv;
    o += ex.request_id_view;
  }
  if (close) o += "\r\nconnection: close"sv;
  o += "\r\n"sv;
  o += extra_headers;  // complete lines
  o += "\r\n"sv;
  if (!ex.req.is_head) o += body;
  ex.status = status;
  arm(Timeout::kStream,
      worker_.snapshot()->listeners[listener_index_].listener->limits.idle_timeout);
  auto [ec, n] = co_await ds_write(asio::buffer(o));
  disarm();
  ex.bytes_sent += n;
  if (close) close_ = true;
}

// The upstream-to-client half of a tunnel runs in its own coroutine; tunnel() waits for it.
// A half that ends for good (an error, a timeout, a TLS side) cancels the other's pending I/O
// and sets its stop flag, which the other checks between operations: a cancel reaches only an
// operation already pending.
struct DownstreamConnection::TunnelBack {
  explicit TunnelBack(asio::io_context& io) : wake(io) {}
  asio::steady_timer wake;
  bool done = false;
  bool stop_forth = false;  // client to upstream (tunnel())
  bool stop_back = false;   // upstream to client (tunnel_back())
  uint64_t bytes = 0;       // written to the client
};

asio::awaitable<void> DownstreamConnection::tunnel(Exchange& ex, upstream::Connection& up,
                                                   milliseconds idle, size_t from_client) {
  auto& gauge = worker_.stats().listener(
      worker_.snapshot()->listeners[listener_index_].stats_id).tunnels_active;
  gauge.add();
  active_upstream_ = &up;  // cancel_io() and abort() reach it: the idle timeout, the drain's end
  arm(Timeout::kStream, idle);
  auto back = std::make_shared<TunnelBack>(worker_.io());
  asio::co_spawn(worker_.io(), tunnel_back(ex, up, idle, back), [back](std::exception_ptr) {
    back->done = true;
    back->wake.cancel();
  });
  // Client to upstream, here: first what came after the handshake, then reads behind the
  // request head (its views stay valid for the access log).
  const size_t at = std::min(rend_ - from_client, base::kBufferSize - 1);
  size_t n = from_client;
  bool clean_end = false;
  for (;;) {
    if (n > 0) {
      auto [ec, w] = co_await us_write(up, asio::buffer(rbuf_->data + at, n));
      if (ec || back->stop_forth || timed_out_) break;
      ex.bytes_received += n;
      arm(Timeout::kStream, idle);
    }
    auto [ec, r] = co_await ds_read(asio::buffer(rbuf_->data + at, base::kBufferSize - at));
    if (ec || r == 0 || back->stop_forth || timed_out_) {
      clean_end = !ec && r == 0 && !back->stop_forth && !timed_out_;
      break;
    }
    n = r;
    arm(Timeout::kStream, idle);
  }
  rbeg_ = rend_ = at;
  boost::system::error_code ec;
  if (clean_end && !up.tls) {
    up.socket.shutdown(tcp::socket::shutdown_send, ec);  // the client's half-close, passed on
  } else {
    back->stop_back = true;  // ends the other half too
    up.socket.cancel(ec);
  }
  for (int waits = 0; !back->done && waits < 1'000'000; ++waits) {
    back->wake.expires_at(Clock::time_point::max());
    co_await back->wake.async_wait(use_nothrow);
  }
  ex.bytes_sent += back->bytes;
  disarm();
  gauge.sub();
}

asio::awaitable<void> DownstreamConnection::tunnel_back(Exchange& ex, upstream::Connection& up,
                                                        milliseconds idle,
                                                        std::shared_ptr<TunnelBack> back) {
  // What came with the 101 head first.
  const char* p = ex.ubuf->data + ex.ubeg;
  size_t n = ex.uend - ex.ubeg;
  bool clean_end = false;
  for (;;) {
    if (n > 0) {
      auto [ec, w] = co_await ds_write(asio::buffer(p, n));
      if (ec || back->stop_back || timed_out_) break;
      back->bytes += n;
      arm(Timeout::kStream, idle);
    }
    auto [ec, r] = co_await us_read(up, asio::buffer(ex.ubuf->data, base::kBufferSize));
    if (ec || r == 0 || back->stop_back || timed_out_) {
      clean_end = !ec && r == 0 && !back->stop_back && !timed_out_;
      break;
    }
    p = ex.ubuf->data;
    n = r;
    arm(Timeout::kStream, idle);
  }
  ex.ubeg = ex.uend = 0;
  boost::system::error_code ec;
  if (clean_end && !tls_) {
    socket_->shutdown(tcp::socket::shutdown_send, ec);  // the upstream's half-close, passed on
  } else {
    back->stop_forth = true;  // ends the other half too
    socket_->cancel(ec);
  }
}

}  // namespace outrigger::server

namespace outrigger::server {

namespace {

enum class ReadHead : uint8_t { kGot, kTimeout, kClosed, kMalformed, kTooLarge };

struct ChunkFrame {
  char hdr[24];
  size_t hdr_len = 0;
  void set(size_t n) {
    auto [end, ec] = std::to_chars(hdr, hdr + 16, n, 16);
    end[0] = '\r';
    end[1] = '\n';
    hdr_len = static_cast<size_t>(end - hdr) + 2;
  }
};

}  // namespace

// The request head is parsed; route it and forward it.
asio::awaitable<bool> DownstreamConnection::proxy(Exchange& ex, const Snapshot& snap) {
  const ListenerState& ls = snap.listeners[listener_index_];
  const config::Limits& limits = ls.listener->limits;
  stats::ListenerStats& lstats = worker_.stats().listener(ls.stats_id);
  const auto start = Clock::now();
  ex.done_at = {};
  ex.request_id_view = {};
  ex.parser.set_limits(ls.head_limits);
  ex.parser.reset();
  ex.req.is_head = false;
  ex.req.method = ex.req.path = ex.req.authority = {};

  auto finish = [&](bool keep) {
    const auto done = ex.done_at != Clock::time_point{} ? ex.done_at : Clock::now();
    if (ex.route != nullptr) {
      auto& rs = worker_.stats().route(ex.route->stats_id);
      rs.rq[static_cast<size_t>(stats::code_class(ex.status))].inc();
      rs.duration.observe(done - start);
    }
    if (worker_.access_log().enabled()) {
      AccessLogEntry e;
      e.listener = ls.listener->name;
      e.route = ex.route != nullptr ? std::string_view(ex.route->route->name) : std::string_view();
      e.method = ex.req.method;
      e.authority = ex.req.authority;
      e.path = ex.req.target;
      e.protocol = sio_ != nullptr ? "HTTP/2" : ex.req.version_minor == 0 ? "HTTP/1.0" : "HTTP/1.1";
      e.upstream = ex.upstream_name;
      e.cluster = ex.cluster_name;
      e.attempts = ex.attempts;
      if (ex.attempts > 0) e.upstream_protocol = ex.upstream_h2 ? "HTTP/2" : "HTTP/1.1";
      if (peer_ && peer_->identity.known()) e.caller = peer_->caller;
      e.request_id = ex.request_id_view;
      e.status = ex.status;
      e.bytes_received = ex.bytes_received;
      e.bytes_sent = ex.bytes_sent;
      e.duration_ms = std::chrono::duration<double, std::milli>(done - start).count();
      worker_.access_log().append(e);
    }
    return keep;
  };

  // 1. The head, bounded in size and time (the header timeout runs from the first byte). An
  // HTTP/2 stream's comes ready-made from its fields (nghttp2 and h2::validate_request have
  // checked them; no HTTP/1.1 text to build and parse), within the same limits.
  http::Error head_error = http::Error::kNone;
  bool head_failed = false;  // answered below, the same way for both
  size_t stream_head_size = 0;
  if (sio_ != nullptr) {
    const bool fits = sio_->request_head(&ex.req, &stream_head_size);
    if (!fits || ex.req.header_count > ls.head_limits.max_headers) {
      head_error = http::Error::kTooManyHeaders;
    } else if (stream_head_size > ls.head_limits.max_head_bytes) {
      head_error = http::Error::kHeadTooLarge;
    }
    head_failed = head_error != http::Error::kNone;
  } else {
    const auto head_deadline = start + limits.header_timeout;
    for (;;) {
      const auto r = ex.parser.parse_request({rbuf_->data + rbeg_, rend_ - rbeg_}, &ex.req);
      if (r == http::ParseResult::kDone) break;
      head_error = ex.parser.error();
      if (r == http::ParseResult::kNeedMore && rend_ - rbeg_ >= base::kBufferSize) {
        head_error = http::Error::kHeadTooLarge;
      }
      if (r != http::ParseResult::kNeedMore || head_error != http::Error::kNone) {
        head_failed = true;
        break;
      }
      const auto left = std::chrono::duration_cast<milliseconds>(head_deadline - Clock::now());
      const bool ok = left.count() > 0 &&
                      co_await read_downstream(Timeout::kHeader, std::max(left, milliseconds(1)));
      if (ok) continue;
      if (timed_out_ || left.count() <= 0) {
        worker_.stats().limit(stats::Limit::kHeaderTimeout).inc();
        co_await send_local(ex, 408, "request header timeout", true);
        co_return finish(false);
      }
      co_return false;  // the client went away mid-head: nothing to answer
    }
  }
  if (head_failed) {
    int status = 400;
    if (head_error == http::Error::kHeadTooLarge || head_error == http::Error::kTooManyHeaders) {
      status = 431;
      worker_.stats()
          .limit(head_error == http::Error::kHeadTooLarge ? stats::Limit::kHeaderBytes
                                                          : stats::Limit::kHeaderCount)
          .inc();
    } else if (head_error == http::Error::kBadVersion) {
      status = 505;
      lstats.bad_requests[static_cast<size_t>(stats::BadRequest::kBadVersion)].inc();
    } else {
      lstats
          .bad_requests[static_cast<size_t>(http::is_smuggling_shape(head_error)
                                                ? stats::BadRequest::kSmuggling
                                                : stats::BadRequest::kMalformed)]
          .inc();
    }
    ex.req.method = ex.req.path = ex.req.authority = ex.req.target = {};
    co_await send_local(ex, status, http::error_reason(head_error), true);
    co_return finish(false);
  }
  const http::RequestHead& rq = ex.req;
  ex.bytes_received = sio_ != nullptr ? stream_head_size : rq.head_bytes;
  const bool has_body = rq.body != http::BodyKind::kNone;

  // 2. Request id: a sane incoming one is kept, otherwise we mint one.
  if (const http::Header* h = rq.find(http::HeaderKind::kXRequestId);
      h != nullptr && !h->value.empty() && h->value.size() <= 200) {
    ex.request_id_view = h->value;
  } else {
    base::format_uuid_v4(worker_.random(), worker_.random(), ex.request_id);
    ex.request_id_view = {ex.request_id, 36};
    ex.generated_id = true;
  }
  ex.id_in_response = ls.listener->request_id_in_response;

  // 3. Limits that need no upstream, then the route.
  if (limits.max_request_body_bytes != 0 && rq.body == http::BodyKind::kContentLength &&
      rq.content_length > limits.max_request_body_bytes) {
    worker_.stats().limit(stats::Limit::kBodyBytes).inc();
    co_await send_local(ex, 413, "request body too large", true);
    co_return finish(false);
  }
  ex.route = ls.routes.match(rq.authority, rq.path);
  if (ex.route == nullptr) {
    lstats.no_route.inc();
    rbeg_ += rq.head_bytes;
    co_await send_local(ex, 404, "no route for host and path", has_body);
    co_return finish(!has_body);
  }
  if (const auto& policy = ls.authz[ex.route->index]; policy) {
    static const tls::Identity kAnonymous{};
    const tls::AuthzDecision d = tls::authorize(peer_ ? peer_->identity : kAnonymous, *policy);
    if (!d.allowed) {
      const bool anonymous = d.reason == "no_verified_identity";
      worker_.stats()
          .route(ex.route->stats_id)
          .authz_denied[static_cast<size_t>(anonymous ? stats::AuthzDenial::kNoVerifiedIdentity
                                                      : stats::AuthzDenial::kNotAllowed)]
          .inc();
      rbeg_ += rq.head_bytes;
      co_await send_local(ex, 403,
                          anonymous ? "caller has no verified client certificate"
                                    : "caller identity not allowed on this route",
                          has_body);
      co_return finish(!has_body);
    }
  }
  // Failover: the first cluster of the route's priority list with an endpoint that may serve.
  uint32_t target = ex.route->cluster;
  if (const auto& failover = ls.failover[ex.route->index]; !failover.empty()) {
    const auto now = Clock::now();
    auto usable = [&](uint32_t k) {
      const ClusterState& c = snap.clusters[k];
      return !c.endpoints.empty() && worker_.runtime(c, now).lb.available_count() > 0;
    };
    if (!usable(target)) {
      for (uint32_t k : failover) {
        if (usable(k)) {
          target = k;
          worker_.stats().cluster(snap.clusters[k].stats_id).failover.inc();
          break;
        }
      }
    }
  }
  const ClusterState& chosen = snap.clusters[target];
  // A WebSocket handshake (the common request names no Connection token at all: one test of a
  // count). It goes through only to an HTTP/1.1 cluster, the only kind that can switch protocols
  // (an HTTP/2 upstream would need RFC 8441's extended CONNECT).
  if (rq.connection_token_count != 0 && asks_websocket(rq)) [[unlikely]] {
    const std::string_view why = has_body ? "websocket handshake with a body"
                                 : chosen.h2 || chosen.auto_alpn
                                     ? "websocket upgrade needs an http1 cluster"
                                     : std::string_view();
    if (!why.empty()) {
      lstats.upgrade_refused.inc();
      rbeg_ += rq.head_bytes;
      co_await send_local(ex, has_body ? 400 : 501, why, has_body);
      co_return finish(!has_body);
    }
    ex.websocket = true;
  }
  const bool keep = co_await forward(ex, snap, ls, chosen);
  co_return finish(keep);
}

asio::awaitable<bool> DownstreamConnection::forward(Exchange& ex, const Snapshot& snap,
                                                    const ListenerState& ls,
                                                    const ClusterState& cluster) {
  const http::RequestHead& rq = ex.req;
  const config::Cluster& cc = *cluster.cluster;
  const config::Limits& limits = ls.listener->limits;
  const config::Route& route = *ex.route->route;
  // How long the request's stream may sit idle (no bytes either way): the route's, else the
  // listener's.
  const milliseconds stream_idle = route.idle_timeout.value_or(limits.idle_timeout);
  upstream::ClusterPool& pool = worker_.pool(cluster);
  stats::ClusterStats& cs = pool.stats();
  const size_t head_end = rbeg_ + rq.head_bytes;
  const bool has_body = rq.body != http::BodyKind::kNone;
  const auto routed_at = Clock::now();
  // The head (method, target, headers) is read again after the body has streamed (retries,
  // signing, the access log): body reads must not overwrite it. A head over half the buffer is
  // not pinned (the body needs room); its views are then not used after the body.
  struct PinGuard {
    size_t& pin;
    ~PinGuard() { pin = 0; }
  } pin_guard{pin_};
  if (head_end <= base::kBufferSize / 2) pin_ = head_end;
  ClusterRuntime& rt = worker_.runtime(cluster, routed_at);
  upstream::CircuitBreaker& breaker = cluster.shared->breaker;
  const auto& policy_slot = ls.retry[ex.route->index];
  const upstream::RetryPolicy* policy = policy_slot ? &*policy_slot : nullptr;
  const bool may_retry = policy != nullptr && policy->retry_on != 0 && policy->num_retries > 0;
  auto count_error = [&](stats::UpstreamError e) { cs.errors[static_cast<size_t>(e)].inc(); };
  auto count_overflow = [&](upstream::Overflow o) {
    cs.overflows[static_cast<size_t>(o) - 1].inc();
  };
  auto count_retry = [&](stats::RetryOutcome r) { cs.retries[static_cast<size_t>(r)].inc(); };
  // A local answer before any body byte was read: the connection survives only without a body.
  auto fail_early = [&](int status, std::string_view reason,
                        std::string_view extra = {}) -> asio::awaitable<bool> {
    rbeg_ = head_end;
    co_await send_local(ex, status, reason, has_body, extra);
    co_return !has_body;
  };

  if (cluster.endpoints.empty()) {
    count_error(stats::UpstreamError::kNoEndpoint);
    co_return co_await fail_early(503, "no upstream endpoint");
  }
  // Envoy's max_requests: refused at once, never queued.
  upstream::BreakerSlot request_slot(breaker, upstream::Resource::kRequests);
  if (!request_slot) {
    count_overflow(upstream::Overflow::kRequests);
    co_return co_await fail_early(503, "circuit breaker open: max requests",
                                  "x-outrigger-overflow: requests\r\n");
  }
  struct BudgetGuard {
    upstream::RetryBudget& b;
    ~BudgetGuard() { b.request_finished(); }
  } budget_guard{rt.budget};
  rt.budget.request_started();

  // The deadline for the response head over every attempt and backoff.
  auto request_deadline = routed_at + route.timeout;
  if (grpc_timeout_ && routed_at + *grpc_timeout_ < request_deadline) {
    request_deadline = routed_at + *grpc_timeout_;  // the gRPC caller's deadline
  }
  if (route.allow_timeout_header) {
    for (size_t i = 0; i < rq.header_count; ++i) {
      if (iequals(rq.headers[i].name, "x-outrigger-timeout-ms")) {
        if (auto t = upstream::parse_timeout_ms(rq.headers[i].value)) {
          request_deadline = routed_at + *t;
        }
        break;
      }
    }
  }

  // The upstream request head.
  std::string& o = ex.out;
  o.clear();
  // Host: the cluster's rewrite, else the client's; an HTTP/1.0 request may have none: then the
  // name the upstream is reached by (SNI), else its address.
  std::string fallback_host;
  if (!cc.host_rewrite && rq.authority.empty()) {
    fallback_host = !cluster.sni.empty() ? cluster.sni
                                         : cluster.endpoints[0].address().to_string() + ":" +
                                               std::to_string(cluster.endpoints[0].port());
  }
  const std::string_view upstream_host = cc.host_rewrite ? std::string_view(*cc.host_rewrite)
                                         : !rq.authority.empty() ? rq.authority
                                                                 : std::string_view(fallback_host);
  // The head is written in a few runs of pieces, each into room made for it at once (an
  // out-of-line append per piece cost ~30 instructions, ~25 pieces per request).
  constexpr std::string_view kVersionHost = " HTTP/1.1\r\nhost: ";
  const size_t line_size = rq.method.size() + 1 + cluster.path_prefix.size() + rq.target.size() +
                           kVersionHost.size() + upstream_host.size() + 2;
  o.resize_and_overwrite(line_size, [&](char* p, size_t) {
    Pieces w{p};  // (o was cleared above)
    w << rq.method << " "sv << cluster.path_prefix  // an API Gateway stage
      << rq.target << kVersionHost << upstream_host << "\r\n"sv;
    assert(static_cast<size_t>(w.p - p) == line_size);
    return line_size;
  });
  // Inbound, the identity header is ours alone: a client's copy never reaches the app.
  const std::string_view identity_header =
      ls.inbound ? std::string_view(ls.listener->identity.header) : std::string_view();
  append_forwardable(o, rq,
                     bit(http::HeaderKind::kHost) | bit(http::HeaderKind::kXForwardedFor) |
                         bit(http::HeaderKind::kXForwardedProto) |
                         (ex.generated_id ? bit(http::HeaderKind::kXRequestId) : 0),
                     identity_header, cluster.signing != nullptr);
  {
    const bool identity = !identity_header.empty() && peer_ && !peer_->xfcc.empty();
    size_t n = identity ? identity_header.size() + peer_->xfcc.size() + 4 : 0;
    for (size_t i = 0; i < rq.header_count; ++i) {
      if (rq.headers[i].kind == http::HeaderKind::kXForwardedFor && !rq.headers[i].value.empty()) {
        n += rq.headers[i].value.size() + 2;
      }
    }
    constexpr std::string_view kXff = "x-forwarded-for: ", kXfp = "\r\nx-forwarded-proto: ",
                               kId = "x-request-id: ", kChunked = "transfer-encoding: chunked\r\n",
                               kUpgrade = "connection: upgrade\r\nupgrade: ";
    const std::string_view upgrade = ex.websocket
                                         ? rq.find(http::HeaderKind::kUpgrade)->value  // (found)
                                         : std::string_view();
    n += kXff.size() + client_ip_.size() + kXfp.size() + ls.scheme.size() + 2;
    if (ex.generated_id) n += kId.size() + 36 + 2;
    if (rq.body == http::BodyKind::kChunked) n += kChunked.size();
    if (ex.websocket) n += kUpgrade.size() + upgrade.size() + 2;
    const size_t at = o.size();
    o.resize_and_overwrite(at + n, [&](char* p, size_t) {
      Pieces w{p + at};
      if (identity) w << identity_header << ": "sv << peer_->xfcc << "\r\n"sv;
      w << kXff;
      for (size_t i = 0; i < rq.header_count; ++i) {
        if (rq.headers[i].kind == http::HeaderKind::kXForwardedFor &&
            !rq.headers[i].value.empty()) {
          w << rq.headers[i].value << ", "sv;
        }
      }
      w << client_ip_ << kXfp << ls.scheme << "\r\n"sv;
      if (ex.generated_id) w << kId << std::string_view(ex.request_id, 36) << "\r\n"sv;
      if (rq.body == http::BodyKind::kChunked) w << kChunked;
      if (ex.websocket) w << kUpgrade << upgrade << "\r\n"sv;
      assert(static_cast<size_t>(w.p - p) == at + n);
      return at + n;
    });
  }
  const size_t head_base = o.size();  // signing appends its headers here, per attempt
  o += "\r\n"sv;

  // SigV4: every attempt is signed afresh (its own x-amz-date). Lattice takes UNSIGNED-PAYLOAD;
  // execute-api needs the body's hash, so its body must have arrived whole with the head.
  std::string payload_hash;
  if (cluster.signing) {
    const SigningState& sg = *cluster.signing;
    if (sg.credentials->current.load() == nullptr) {
      auto why = sg.credentials->error.load();
      count_error(stats::UpstreamError::kSigning);
      log::warn("request not signed: no AWS credentials",
                {{"cluster", cc.name}, {"error", why ? *why : std::string("not fetched yet")}});
      co_return co_await fail_early(503, "no AWS credentials to sign the request");
    }
    if (sg.region.empty() && !sg.sigv4a) {
      count_error(stats::UpstreamError::kSigning);
      co_return co_await fail_early(503, "no AWS region to sign the request");
    }
    if (sg.service != aws::kLatticeService) {
      if (!has_body) {
        payload_hash = aws::kEmptyPayloadHash;
      } else if (rq.body == http::BodyKind::kContentLength && pin_ == head_end &&
                 rq.content_length <= base::kBufferSize - head_end) {
        // The whole body is needed for its hash: wait for it (clients often send the head and
        // the body in separate writes). It stays in the buffer behind the pinned head.
        for (int reads = 0; rend_ - head_end < rq.content_length && reads < 1'000'000; ++reads) {
          if (!co_await read_downstream(Timeout::kBody, stream_idle)) {
            if (timed_out_) {
              worker_.stats().limit(stats::Limit::kHeaderTimeout).inc();
              co_await send_local(ex, 408, "request body timeout", true);
            }
            co_return false;
          }
        }
        payload_hash = sha256_hex({rbuf_->data + head_end, static_cast<size_t>(rq.content_length)});
      } else {
        count_error(stats::UpstreamError::kSigning);
        co_return co_await fail_early(
            413, "request body must arrive with its head and fit one buffer to be signed");
      }
    }
  }
  auto sign_head = [&]() -> bool {
    if (!cluster.signing) return true;
    const SigningState& sg = *cluster.signing;
    auto creds = sg.credentials->current.load();
    if (!creds) return false;
    std::array<aws::Header, 2> hs;
    size_t nh = 0;
    hs[nh++] = {"host", upstream_host};
    for (size_t i = 0; i < rq.header_count; ++i) {
      if (iequals(rq.headers[i].name, "content-type")) {
        hs[nh++] = {"content-type", rq.headers[i].value};
        break;
      }
    }
    const std::string_view target(rq.target);
    const size_t q = target.find('?');
    std::string path = cluster.path_prefix;
    path += target.substr(0, q);
    aws::SignRequest sr;
    sr.method = rq.method;
    sr.path = path;
    sr.query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
    sr.headers = std::span<const aws::Header>(hs.data(), nh);
    sr.payload_hash = payload_hash.empty() ? aws::kUnsignedPayload : std::string_view(payload_hash);
    sr.service = sg.service;
    sr.region = sg.region;
    sr.time = std::chrono::system_clock::now();
    aws::SignOptions so;
    so.algorithm = sg.sigv4a ? aws::Algorithm::kSigV4A : aws::Algorithm::kSigV4;
    so.sign_x_amz_headers = false;  // the client's x-amz-* headers are not ours to vouch for
    so.add_content_sha256 = sg.service == aws::kLatticeService;
    aws::SignedHeaders out;
    if (!worker_.signer().sign(sr, *creds, so, out)) return false;
    o.resize(head_base);
    out.for_each([&](std::string_view k, std::string_view v) {
      o += k;
      o += ": "sv;
      o += v;
      o += "\r\n"sv;
    });
    o += "\r\n"sv;
    return true;
  };

  // A connection to `ep`: pooled, or new within the cluster's bounds and connect timeout.
  std::unique_ptr<upstream::Connection> up;
  bool reused = false;
  int fail_status = 0;
  std::string_view fail_reason;
  std::string_view fail_extra;
  bool fail_connect = false;  // the failure is the endpoint's (connect, TLS): retriable, ejectable
  bool adopted_h2 = false;    // auto-by-alpn: acquire() handed its h2 connection to the H2Pool
  auto drop_upstream = [&](bool reusable, Clock::time_point now = {}) {
    if (up) pool.release(std::move(up), reusable, now != Clock::time_point{} ? now : Clock::now());
  };
  // A pooled connection to `ep`, when one is idle and alive; `now`: the caller's clock reading,
  // taken just before (for the idle check). A plain call: the common case needs no coroutine
  // (acquire()'s frame and resumption cost about 300 instructions; bench/RESULTS.md, session 14).
  // This and the small helpers of the response head's loop are forced inline: called out of
  // line from the coroutine they cost about 1 % of an HTTP/1.1 request.
  auto take_pooled = [&](const tcp::endpoint& ep,
                         Clock::time_point now) __attribute__((always_inline)) -> bool {
    fail_connect = false;
    fail_extra = {};
    adopted_h2 = false;
    up = pool.take_idle(ep, now);
    reused = up != nullptr;
    if (reused) cs.cx_reused.inc();
    return reused;
  };
  // A new connection to `ep` (or a pooled one that comes back while waiting for room).
  // adopt_h2: with protocol auto-by-alpn, a new connection to an endpoint of unknown protocol
  // that negotiates h2 goes to the H2Pool (returns true with adopted_h2 set and up null).
  // Without it the endpoint is taken to speak HTTP/1.1.
  auto acquire = [&](const tcp::endpoint& ep, bool adopt_h2) -> asio::awaitable<bool> {
    fail_connect = false;
    fail_extra = {};
    adopted_h2 = false;
    reused = false;
    if (!pool.reserve_new()) {
      // Waiting for a pooled connection is Envoy's "pending request".
      upstream::BreakerSlot pending(breaker, upstream::Resource::kPending);
      if (!pending) {
        count_overflow(upstream::Overflow::kPending);
        fail_status = 503;
        fail_reason = "circuit breaker open: max pending requests";
        fail_extra = "x-outrigger-overflow: pending\r\n";
        co_return false;
      }
      worker_.stats().limit(stats::Limit::kPoolWait).inc();
      cs.rq_pending.add();
      asio::steady_timer t(worker_.io());
      wait_timer_ = &t;
      arm(Timeout::kPoolWait, cc.connect_timeout);
      bool got = false;
      for (int spins = 0; spins < 1'000'000 && !timed_out_; ++spins) {
        t.expires_at(Clock::time_point::max());
        pool.add_waiter(&t);
        co_await t.async_wait(use_nothrow);
        pool.remove_waiter(&t);
        if (timed_out_) break;
        // Woken because a connection came back: reuse it rather than replace it.
        up = pool.take_idle(ep, Clock::now());
        if (up) break;
        if (pool.reserve_new()) {
          got = true;
          break;
        }
      }
      wait_timer_ = nullptr;
      disarm();
      cs.rq_pending.sub();
      if (up) {
        reused = true;
        cs.cx_reused.inc();
        co_return true;
      }
      if (!got) {
        count_error(stats::UpstreamError::kPoolTimeout);
        fail_status = 503;
        fail_reason = "upstream connection pool timeout";
        co_return false;
      }
    }
    // Envoy's max_connections, cluster-wide.
    if (breaker.try_acquire(upstream::Resource::kConnections) != upstream::Overflow::kNone) {
      pool.unreserve();
      count_overflow(upstream::Overflow::kConnections);
      fail_status = 503;
      fail_reason = "circuit breaker open: max connections";
      fail_extra = "x-outrigger-overflow: connections\r\n";
      co_return false;
    }
    up = pool.make_connection();
    up->breaker = std::shared_ptr<upstream::CircuitBreaker>(cluster.shared, &breaker);
    up->endpoint = ep;
    up->name = ep.address().to_string() + ":" + std::to_string(ep.port());
    active_upstream_ = up.get();
    arm(Timeout::kConnect, cc.connect_timeout);
    auto [ec] = co_await up->socket.async_connect(ep, use_nothrow);
    disarm();
    active_upstream_ = nullptr;
    if (ec) {
      const bool to = timed_out_;
      ex.upstream_name = up->name;
      up.reset();
      pool.unreserve();
      fail_connect = true;
      if (to) {
        count_error(stats::UpstreamError::kConnectTimeout);
        fail_status = 503;
        fail_reason = "upstream connect timeout";
        co_return false;
      }
      const bool refused = ec == asio::error::connection_refused;
      count_error(refused ? stats::UpstreamError::kConnectRefused
                          : stats::UpstreamError::kConnectFailed);
      fail_status = 502;
      fail_reason = refused ? "upstream connection refused" : "upstream connect error";
      co_return false;
    }
    boost::system::error_code ignored;
    up->socket.set_option(tcp::no_delay(true), ignored);
    net::enable_read_hints(up->socket);
    if (cluster.tls) {
      // Origination: chain and name verified inside the handshake, session resumed when the
      // worker holds one for this endpoint. A failure is a 503 with its reason, never plaintext.
      std::shared_ptr<const tls::ClientTls> material = cluster.tls->current.load();
      auto ssl = material->new_ssl(cluster.sni, &worker_.tls_sessions(), up->name);
      stats::TlsError failure = stats::TlsError::kCount;
      std::string detail;
      if (!ssl) {
        failure = stats::TlsError::kHandshakeFailed;
        detail = ssl.error();
      } else {
        up->tls = net::make_client_stream(up->socket, std::move(*ssl), std::move(material));
        active_upstream_ = up.get();
        arm(Timeout::kConnect, cc.connect_timeout);
        const boost::system::error_code hec = co_await net::handshake(*up->tls, false);
        disarm();
        active_upstream_ = nullptr;
        if (hec) {
          failure = timed_out_ ? stats::TlsError::kHandshakeTimeout
                               : stats::tls_error_from_reason(
                                     tls::handshake_failure_reason(net::native(*up->tls), hec));
          detail = hec.message();
        }
      }
      if (failure != stats::TlsError::kCount) {
        cs.tls.errors[static_cast<size_t>(failure)].inc();
        count_error(stats::UpstreamError::kTlsHandshake);
        worker_.tls_sessions().forget(up->name, cluster.sni);
        log::warn("upstream tls handshake failed",
                  {{"cluster", cc.name},
                   {"endpoint", up->name},
                   {"sni", cluster.sni},
                   {"reason", std::string(stats::tls_error_name(failure))},
                   {"detail", detail}});
        ex.upstream_name = up->name;
        up.reset();
        pool.unreserve();
        fail_status = 503;
        fail_reason = tls_failure_text(failure);
        fail_connect = true;
        co_return false;
      }
      cs.tls.handshakes.inc();
      if (SSL_session_reused(net::native(*up->tls)) != 0) cs.tls.resumed.inc();
      if (cluster.auto_alpn) {
        // protocol auto-by-alpn: the handshake offered h2 and http/1.1; the endpoint's choice
        // decides the pool. A choice other than the one remembered is a failed connect (the
        // server changed): forget it, and let the retry policy take the next attempt.
        const std::string_view alpn = tls::negotiated_alpn(net::native(*up->tls));
        const AlpnSeen now = alpn == "h2" ? AlpnSeen::kHttp2 : AlpnSeen::kHttp1;
        cs.alpn[alpn == "h2" ? 0 : alpn.empty() ? 2 : 1].inc();
        const AlpnSeen before = adopt_h2 ? rt.alpn_of(ep) : AlpnSeen::kHttp1;
        if (before != AlpnSeen::kUnknown && before != now) {
          rt.set_alpn(ep, AlpnSeen::kUnknown);
          count_error(stats::UpstreamError::kAlpnChanged);
          log::warn("upstream alpn changed",
                    {{"cluster", cc.name},
                     {"endpoint", up->name},
                     {"alpn", alpn.empty() ? std::string("none") : std::string(alpn)}});
          ex.upstream_name = up->name;
          up.reset();
          pool.unreserve();
          fail_status = 503;
          fail_reason = now == AlpnSeen::kHttp2 ? "upstream alpn changed: now negotiates h2"
                                                : "upstream alpn changed: no longer negotiates h2";
          fail_connect = true;
          co_return false;
        }
        rt.set_alpn(ep, now);
        if (now == AlpnSeen::kHttp2) {
          // No second handshake: the H2Pool speaks HTTP/2 on this very connection (and counts it
          // in cx_total once the server's SETTINGS arrive).
          ex.upstream_name = up->name;
          worker_.h2_pool(cluster).adopt(std::move(up));
          pool.unreserve();
          adopted_h2 = true;
          co_return true;
        }
      }
    }
    cs.cx_total.inc();
    co_return true;
  };

  // Request body state. The first attempt that gets a connection streams the body from the
  // client; with retries on, what it sends is also kept (up to the policy's bound) for replay.
  uint64_t body_left = rq.body == http::BodyKind::kContentLength ? rq.content_length : 0;
  bool body_done = !has_body;
  uint64_t body_total = 0;
  if (rq.body == http::BodyKind::kChunked) ex.chunked.reset();
  size_t pos = head_end;
  ChunkFrame frame;
  bool body_consumed = false;  // the client's body has been (partly) read and sent
  bool keep_replay = may_retry && has_body;
  ex.replay.clear();
  auto remember = [&](const std::array<asio::const_buffer, 4>& bufs, size_t from, size_t nb) {
    if (!keep_replay) return;
    for (size_t i = from; i < nb; ++i) {
      if (ex.replay.size() + bufs[i].size() > policy->max_replay_body_bytes) {
        keep_replay = false;
        std::string().swap(ex.replay);
        return;
      }
      ex.replay.append(static_cast<const char*>(bufs[i].data()), bufs[i].size());
    }
  };

  // Body bytes buffered at rbuf_[pos, rend_) become up to three write buffers.
  auto take_body = [&](std::array<asio::const_buffer, 4>& bufs, size_t& nb) -> int {
    const size_t avail = rend_ - pos;
    if (rq.body == http::BodyKind::kContentLength) {
      const size_t k = static_cast<size_t>(std::min<uint64_t>(avail, body_left));
      if (k > 0) bufs[nb++] = asio::buffer(rbuf_->data + pos, k);
      pos += k;
      body_left -= k;
      body_total += k;
      body_done = body_left == 0;
    } else if (rq.body == http::BodyKind::kChunked && avail > 0) {
      char* p = rbuf_->data + pos;
      const auto r = ex.chunked.decode(p, avail);
      if (r.status == http::ChunkedDecoder::Status::kError) return -1;
      if (r.data > 0) {
        frame.set(r.data);
        bufs[nb++] = asio::buffer(frame.hdr, frame.hdr_len);
        bufs[nb++] = asio::buffer(p, r.data);
      }
      pos += r.consumed;
      body_total += r.data;
      ex.scratch.clear();
      if (r.data > 0) ex.scratch += "\r\n"sv;
      if (r.status == http::ChunkedDecoder::Status::kDone) {
        body_done = true;
        ex.scratch += "0\r\n"sv;
        ex.scratch += ex.chunked.trailers();
        ex.scratch += "\r\n"sv;
      }
      if (!ex.scratch.empty()) bufs[nb++] = asio::buffer(ex.scratch);
    }
    if (limits.max_request_body_bytes != 0 && body_total > limits.max_request_body_bytes) return -2;
    return 0;
  };
  auto body_error = [&](int rc) -> asio::awaitable<bool> {
    rbeg_ = rend_;
    if (rc == -2) {
      worker_.stats().limit(stats::Limit::kBodyBytes).inc();
      active_upstream_ = nullptr;
      drop_upstream(false);
      co_await send_local(ex, 413, "request body too large", true);
      co_return false;
    }
    worker_.stats()
        .listener(ls.stats_id)
        .bad_requests[static_cast<size_t>(stats::BadRequest::kSmuggling)]
        .inc();
    active_upstream_ = nullptr;
    drop_upstream(false);
    co_await send_local(ex, 400, "malformed chunked body", true);
    co_return false;
  };

  // Reads the next response head from the upstream into ex.resp.
  // Reading a response head is head_begin(), then a loop of head_step() and reads. head_step()
  // parses what the buffer holds and returns the outcome, or nullopt when more bytes are needed:
  // then there is room for them, time left before `deadline`, and the `kind` timeout is armed.
  auto head_begin = [&] {
    if (ex.ubuf == nullptr) {
      ex.ubuf = worker_.buffers().get();
      ex.ubeg = ex.uend = 0;
    }
    ex.parser.reset();
    ex.parser.set_limits({base::kBufferSize, http::kMaxHeaders});
  };
  auto head_step = [&](Timeout kind, Clock::time_point deadline)
                       __attribute__((always_inline)) -> std::optional<ReadHead> {
    if (ex.uend > ex.ubeg) {
      const auto r = ex.parser.parse_response({ex.ubuf->data + ex.ubeg, ex.uend - ex.ubeg},
                                              rq.is_head, &ex.resp);
      if (r == http::ParseResult::kDone) return ReadHead::kGot;
      if (r == http::ParseResult::kError) {
        return ex.parser.error() == http::Error::kHeadTooLarge ? ReadHead::kTooLarge
                                                               : ReadHead::kMalformed;
      }
    }
    if (ex.ubeg > 0) {
      std::memmove(ex.ubuf->data, ex.ubuf->data + ex.ubeg, ex.uend - ex.ubeg);
      ex.uend -= ex.ubeg;
      ex.ubeg = 0;
    }
    if (ex.uend == base::kBufferSize) return ReadHead::kTooLarge;
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return ReadHead::kTimeout;
    arm(kind, left);
    return std::nullopt;
  };
  // After a read: the outcome when it ended the head's reading, else nullopt (bytes added).
  auto head_read = [&](const boost::system::error_code& ec, size_t n)
                       __attribute__((always_inline)) -> std::optional<ReadHead> {
    disarm();
    if (ec || n == 0) return timed_out_ ? ReadHead::kTimeout : ReadHead::kClosed;
    ex.uend += n;
    return std::nullopt;
  };
  // The whole loop as a coroutine, for the rare waits (100-continue). The response head's own
  // loop is written out where it is read: a coroutine call per response cost ~250 instructions.
  auto read_head = [&](Timeout kind, Clock::time_point deadline) -> asio::awaitable<ReadHead> {
    head_begin();
    for (;;) {
      if (const auto r = head_step(kind, deadline)) co_return *r;
      auto [ec, n] =
          co_await us_read(*up, asio::buffer(ex.ubuf->data + ex.uend, base::kBufferSize - ex.uend));
      if (const auto r = head_read(ec, n)) co_return *r;
    }
  };
  // The response buffer goes back to the pool on every exit path.
  struct UbufGuard {
    Exchange& ex;
    base::BufferPool& pool;
    ~UbufGuard() {
      pool.put(ex.ubuf);
      ex.ubuf = nullptr;
    }
  } ubuf_guard{ex, worker_.buffers()};

  // The attempts. Each picks an endpoint (never the one that just failed while another can
  // serve), sends the request and reads the response head; the policy decides whether a failed
  // attempt is retried. Connect and TLS failures and resets feed outlier detection.
  uint32_t retries = 0;
  uint32_t avoid = upstream::LoadBalancer::kNone;
  bool skip_body = false;  // the upstream answered before we sent the body (Expect)
  bool request_complete = !has_body;
  bool have_head = false;
  upstream::BreakerSlot retry_slot;
  bool retry_budget_held = false;
  auto release_retry = [&] {
    retry_slot.release();
    if (retry_budget_held) {
      rt.budget.release();
      retry_budget_held = false;
    }
  };
  upstream::LbPick pick;
  ex.cluster_name = cc.name;
  ex.upstream_h2 = cluster.h2;
  // The attempts so far (1 + retries), counted in the exchange and written in its attempts_text,
  // which views may point to until the head is written.
  auto attempts_text = [&]() __attribute__((always_inline)) -> std::string_view {
    ex.attempts = retries + 1;
    char* const n = ex.attempts_text;
    const auto end = std::to_chars(n, n + sizeof ex.attempts_text, ex.attempts).ptr;
    return {n, static_cast<size_t>(end - n)};
  };
  auto attempts_header = [&](std::string& out) {
    out += "x-outrigger-attempts: "sv;
    out += attempts_text();
    out += "\r\n"sv;
  };
  // The same two fields for a head handed to an HTTP/2 stream as fields: x-request-id unless
  // the upstream gave one, and x-outrigger-attempts.
  // Views: the bytes stay valid until the head is written (attempts_text is the exchange's).
  auto add_id_and_attempts = [&](std::vector<h2::Field>& f, bool upstream_gave_id) {
    if (!upstream_gave_id && ex.id_in_response) f.push_back({"x-request-id", ex.request_id_view});
    f.push_back({"x-outrigger-attempts", attempts_text()});
  };
  // A local error after at least one attempt: the failure of the last one.
  auto fail_final = [&](int status, std::string_view reason,
                        std::string_view extra = {}) -> asio::awaitable<bool> {
    release_retry();
    std::string hdrs(extra);
    attempts_header(hdrs);
    active_upstream_ = nullptr;
    drop_upstream(false);
    if (!body_consumed) {
      rbeg_ = head_end;
      co_await send_local(ex, status, reason, has_body, hdrs);
      co_return !has_body;
    }
    co_await send_local(ex, status, reason, !request_complete, hdrs);
    co_return request_complete;
  };

  // After a failed attempt: the wait before the next one, or nullopt when the failure stands
  // (not retriable, retries used up, a body that cannot be replayed, the budget or breaker
  // full, a Retry-After too long). Counts the outcome; holds the retry slot when it retries.
  // The next endpoint (never the one that just failed while another can serve); false when
  // none may serve. Panic and cross-zone picks are counted.
  auto pick_endpoint = [&]() -> bool {
    pick = rt.lb.pick(avoid, worker_.random());
    if (!pick) {
      count_error(stats::UpstreamError::kNoEndpoint);
      return false;
    }
    if (pick.panic) cs.lb_panic.inc();
    if (pick.cross_zone) cs.lb_cross_zone.inc();
    return true;
  };
  // Outlier detection learns from every attempt: the response's status, or (status 0) a
  // local-origin failure (connect, TLS, reset, timeout). Ejections are counted by reason.
  auto record_attempt = [&](int status, Clock::time_point now) {
    if (!rt.od) return;
    const auto why = status != 0 ? rt.od->record_response(pick.index, status, now)
                                 : rt.od->record_local_origin_failure(pick.index, now);
    if (why != upstream::EjectReason::kNone) cs.ejections[static_cast<size_t>(why) - 1].inc();
  };
  auto next_attempt_delay =
      [&](const upstream::AttemptOutcome& outcome) -> std::optional<milliseconds> {
    const bool replayable = !body_consumed || (keep_replay && request_complete);
    const auto decision = policy->should_retry(outcome, rq.method, retries, replayable);
    if (decision != upstream::RetryDecision::kRetry) {
      if (decision == upstream::RetryDecision::kExhausted)
        count_retry(stats::RetryOutcome::kExhausted);
      if (decision == upstream::RetryDecision::kNotIdempotent)
        count_retry(stats::RetryOutcome::kNotIdempotent);
      if (decision == upstream::RetryDecision::kBodyNotReplayable)
        count_retry(stats::RetryOutcome::kBodyNotReplayable);
      return std::nullopt;
    }
    // Retries may never multiply a failure: the budget (or the max_retries breaker) decides.
    const bool slot =
        rt.has_budget
            ? (retry_budget_held = rt.budget.try_acquire())
            : bool(retry_slot = upstream::BreakerSlot(breaker, upstream::Resource::kRetries));
    if (!slot) {
      count_retry(stats::RetryOutcome::kBudgetExhausted);
      count_overflow(upstream::Overflow::kRetries);
      return std::nullopt;
    }
    const auto delay = policy->retry_delay(outcome, retries + 1, std::chrono::system_clock::now(),
                                           worker_.random());
    if (!delay || Clock::now() + *delay >= request_deadline) {
      release_retry();
      count_retry(stats::RetryOutcome::kRetryAfterTooLong);
      return std::nullopt;
    }
    count_retry(stats::RetryOutcome::kRetried);
    return delay;
  };
  // The backoff wait; false when the worker stops meanwhile.
  auto backoff = [&](milliseconds delay) -> asio::awaitable<bool> {
    if (delay.count() <= 0) co_return true;
    asio::steady_timer t(worker_.io());
    wait_timer_ = &t;
    t.expires_after(delay);
    co_await t.async_wait(use_nothrow);
    wait_timer_ = nullptr;
    if (close_ && timed_out_) {
      release_retry();
      co_return false;
    }
    co_return true;
  };

  // protocol auto-by-alpn: an attempt moves between the two paths below, its endpoint already
  // picked, when that endpoint is known to speak the other protocol, or when the HTTP/1.1 path's
  // new connection negotiated h2 (the H2Pool adopted it). http1/http2 clusters never move.
  bool use_h2 = cluster.h2;
  bool picked = false;  // the next attempt takes `pick` as it is
protocol_chosen:
  // ---- HTTP/2 upstream (protocol: http2): the same attempts over multiplexed streams ----
  if (use_h2) {
    if (cluster.auto_alpn) {
      ex.upstream_h2 = true;
      // A chunked body an HTTP/1.1 attempt sent is kept with its HTTP/1.1 framing.
      if (body_consumed && rq.body != http::BodyKind::kContentLength) {
        co_return co_await fail_final(503, "upstream alpn changed: body not replayable as HTTP/2");
      }
    }
    upstream::H2Pool& h2p = worker_.h2_pool(cluster);
    std::optional<upstream::H2Tls> h2tls;
    if (cluster.tls) {
      h2tls = upstream::H2Tls{cluster.tls->current.load(), cluster.sni, &worker_.tls_sessions(),
                              cluster.auto_alpn};
    }
    // A retry replays the body's data bytes: the loop below keeps them without chunk framing
    // (gRPC bodies come chunked from the HTTP/2 bridge). A chunked body an HTTP/1.1 attempt
    // already sent was kept framed, so it is not replayed here.
    keep_replay = keep_replay && (rq.body == http::BodyKind::kContentLength || !body_consumed);
    // Views into `o`, rebuilt for every attempt right before use: one vector per worker (warm in
    // cache); copied into the exchange only when the attempt has to wait for a stream.
    std::vector<h2::Field>& fields = request_views();
    int last_status = 0;
    std::string_view last_reason;
    std::optional<upstream::H2Stream> hs;  // destroying an unfinished stream resets it
    upstream::H2ResponseHead rh;
    h2::FieldList req_trailers;  // of a chunked request body, once it has been read
    for (;;) {
      hs.reset();
      if (!picked && !pick_endpoint()) {
        co_return co_await fail_final(503, "no healthy upstream endpoint");
      }
      picked = false;
      const tcp::endpoint ep = rt.lb.address(pick.index);
      if (cluster.auto_alpn && rt.alpn_of(ep) != AlpnSeen::kHttp2) {
        use_h2 = false;  // unknown (the HTTP/1.1 path probes it) or HTTP/1.1
        picked = true;
        ex.upstream_h2 = false;
        goto protocol_chosen;
      }
      if (!sign_head()) {
        count_error(stats::UpstreamError::kSigning);
        co_return co_await fail_final(503, "request signing failed");
      }
      // The HTTP/2 request from the HTTP/1.1 head built above: one set of header rules.
      if (!h2::own_h1_request_to_h2(&o, cluster.tls ? "https" : "http", &fields)) {
        count_error(stats::UpstreamError::kProtocol);
        co_return co_await fail_final(502, "request not translatable to HTTP/2");
      }
      // te is hop-by-hop in HTTP/1.1, but "te: trailers" must reach an HTTP/2 upstream (gRPC
      // servers insist on it).
      for (size_t i = 0; i < rq.header_count; ++i) {
        if (iequals(rq.headers[i].name, "te") &&
            rq.headers[i].value.find("trailers") != std::string_view::npos) {
          fields.push_back({"te", "trailers"});
          break;
        }
      }
      upstream::AttemptOutcome outcome;
      bool have_response = false;
      const auto attempt_start = Clock::now();
      // The usual case needs no wait: no coroutine then. (co_await is kept out of ?: on
      // purpose: GCC 12 destroys such temporaries twice.)
      auto acquired = h2p.open_on_ready(ep, fields, has_body);
      if (!acquired) {
        ex.h2_fields.assign(fields.begin(), fields.end());  // other streams use `fields` meanwhile
        acquired = co_await h2p.acquire_stream(ep, ex.h2_fields, has_body,
                                               attempt_start + cc.connect_timeout,
                                               h2tls ? &*h2tls : nullptr);
      }
      auto& sr = *acquired;
      if (!sr) {
        const upstream::H2Error& e = sr.error();
        ex.upstream_name = ep.address().to_string() + ":" + std::to_string(ep.port());
        switch (e.code) {
          case upstream::H2Errc::kBreakerOpen:
            count_overflow(upstream::Overflow::kConnections);
            co_return co_await fail_final(503, "circuit breaker open: max connections",
                                          "x-outrigger-overflow: connections\r\n");
          case upstream::H2Errc::kPoolTimeout:
            count_error(stats::UpstreamError::kPoolTimeout);
            co_return co_await fail_final(503, "upstream connection pool timeout");
          case upstream::H2Errc::kTlsHandshake:
            cs.tls.errors[static_cast<size_t>(stats::tls_error_from_reason(e.tls_reason))].inc();
            count_error(stats::UpstreamError::kTlsHandshake);
            last_status = 503;
            last_reason = tls_failure_text(stats::tls_error_from_reason(e.tls_reason));
            break;
          case upstream::H2Errc::kConnectTimeout:
            count_error(stats::UpstreamError::kConnectTimeout);
            last_status = 503;
            last_reason = "upstream connect timeout";
            break;
          case upstream::H2Errc::kConnectRefused:
            count_error(stats::UpstreamError::kConnectRefused);
            last_status = 502;
            last_reason = "upstream connection refused";
            break;
          case upstream::H2Errc::kNotH2:
            if (cluster.auto_alpn) {
              // The endpoint no longer negotiates h2 (or did not speak HTTP/2 after it): the next
              // attempt to it probes again.
              rt.set_alpn(ep, AlpnSeen::kUnknown);
              count_error(stats::UpstreamError::kAlpnChanged);
              last_status = 503;
              last_reason = "upstream alpn changed: no longer negotiates h2";
              break;
            }
            count_error(stats::UpstreamError::kProtocol);
            last_status = 502;
            last_reason = "upstream does not speak HTTP/2";
            break;
          default:
            count_error(stats::UpstreamError::kConnectFailed);
            last_status = 502;
            last_reason = "upstream connect error";
            break;
        }
        outcome.result = e.attempt_result();
        if (outcome.result == upstream::AttemptResult::kConnectFailure) {
          record_attempt(0, attempt_start);
        }
      } else {
        hs.emplace(std::move(*sr));
        upstream::H2Stream& st = *hs;
        // The head is taken (as the HTTP/1.1 path does once it is written): else a bodiless
        // request's head would be read again as the connection's next request.
        if (!body_consumed && rbeg_ < head_end) rbeg_ = head_end;
        ex.upstream_name = st.connection().name();
        cs.rq_total.inc();
        rt.lb.on_request_start(pick);
        // The body: streamed from the client on the first attempt (and kept for a retry when it
        // fits), replayed from the kept copy afterwards.
        bool body_ok = true;
        if (has_body && !body_consumed) {
          body_consumed = true;
          for (int guard = 0; body_ok; ++guard) {
            std::array<asio::const_buffer, 4> bufs;
            size_t nb = 0;
            const int rc = take_body(bufs, nb);
            if (rc != 0) {
              rt.lb.on_request_end(pick);
              hs.reset();
              co_return co_await body_error(rc);
            }
            // Only the bytes inside rbuf_ are body data (chunk framing lives elsewhere).
            for (size_t i = 0; i < nb && body_ok; ++i) {
              const char* d = static_cast<const char*>(bufs[i].data());
              if (d < rbuf_->data || d >= rbuf_->data + base::kBufferSize) continue;
              if (keep_replay) {
                if (ex.replay.size() + bufs[i].size() > policy->max_replay_body_bytes) {
                  keep_replay = false;
                  std::string().swap(ex.replay);
                } else {
                  ex.replay.append(d, bufs[i].size());
                }
              }
              auto w = co_await st.write_body({reinterpret_cast<const uint8_t*>(d), bufs[i].size()},
                                              false, Clock::now() + stream_idle);
              body_ok = w.has_value();
            }
            ex.bytes_received += pos - rbeg_;
            rbeg_ = pos;
            if (body_done || !body_ok) break;
            if (!co_await read_downstream(Timeout::kBody, stream_idle)) {
              rt.lb.on_request_end(pick);
              hs.reset();
              if (timed_out_) co_await send_local(ex, 408, "request body timeout", true);
              co_return false;
            }
            pos = rbeg_;
          }
          // A chunked body's trailers (an HTTP/1.1 client's, or an HTTP/2 client's through the
          // bridge) end the stream as a trailing HEADERS frame; they are kept for a replay.
          if (body_done && rq.body == http::BodyKind::kChunked && !ex.chunked.trailers().empty()) {
            h2::h1_trailers_to_h2(ex.chunked.trailers(), &req_trailers);
          }
          if (body_ok && req_trailers.empty()) {  // (no co_await inside ?:, see RESULTS.md)
            body_ok = (co_await st.write_body({}, true, Clock::now() + stream_idle)).has_value();
          } else if (body_ok) {
            body_ok = st.write_trailers(req_trailers.fields()).has_value();
          }
          request_complete = body_done;
        } else if (has_body) {
          auto w = co_await st.write_body(
              {reinterpret_cast<const uint8_t*>(ex.replay.data()), ex.replay.size()},
              req_trailers.empty(), Clock::now() + stream_idle);
          body_ok = w.has_value();
          if (body_ok && !req_trailers.empty()) {
            body_ok = st.write_trailers(req_trailers.fields()).has_value();
          }
        }
        const auto deadline = upstream::attempt_deadline(
            Clock::now(), request_deadline,
            policy != nullptr ? policy->per_try_timeout : milliseconds(0));
        auto head = co_await st.read_response_head(deadline);
        // Interim responses (100, 103) are not relayed from HTTP/2 upstreams: wait for the final.
        for (int interim = 0; head && head->status < 200 && interim < 16; ++interim) {
          head = co_await st.read_response_head(deadline);
        }
        rt.lb.on_request_end(pick);
        if (head) {
          rh = std::move(*head);
          have_response = true;
          outcome.result = upstream::AttemptResult::kResponse;
          outcome.status = rh.status;
          if (may_retry) {
            // rh as an HTTP/1.1 head for the retry policy (retriable-headers, Retry-After, gRPC
            // status). Kept in the pooled exchange: a ResponseHead is ~10 KiB to zero.
            if (!ex.h2_resp_view) ex.h2_resp_view = std::make_unique<http::ResponseHead>();
            upstream::to_h1_view(rh, ex.h2_resp_view.get());
            outcome.headers = ex.h2_resp_view.get();
          }
        } else {
          const upstream::H2Error& e = head.error();
          if (e.code == upstream::H2Errc::kTimeout) {
            count_error(stats::UpstreamError::kResponseTimeout);
            const bool per_try = deadline < request_deadline;
            if (!per_try) {
              hs.reset();
              record_attempt(0, Clock::now());  // as on the HTTP/1.1 path: the endpoint timed out
              co_return co_await fail_final(504, "upstream response timeout");
            }
            outcome.result = upstream::AttemptResult::kPerTryTimeout;
            last_status = 504;
            last_reason = "upstream per-try timeout";
          } else {
            count_error(stats::UpstreamError::kReset);
            outcome.result = e.attempt_result();
            last_status = e.unprocessed() ? 503 : 502;
            last_reason = e.unprocessed() ? "upstream refused the stream" : "upstream reset";
          }
          hs.reset();
        }
        record_attempt(have_response ? rh.status : 0, Clock::now());
      }
      release_retry();
      // Done, or another attempt?
      const bool success = have_response && !(may_retry && policy->retriable(outcome));
      if (success || !may_retry) {
        if (have_response) break;
        co_return co_await fail_final(last_status, last_reason);
      }
      const auto delay = next_attempt_delay(outcome);
      if (!delay) {
        if (have_response) break;
        co_return co_await fail_final(last_status, last_reason);
      }
      hs.reset();
      if (!co_await backoff(*delay)) co_return false;
      avoid = pick.index;
      ++retries;
    }
    release_retry();
    // The response, re-framed for the HTTP/1.1 side: content-length when the upstream gave one,
    // else chunked (which carries trailers, e.g. gRPC's grpc-status).
    ex.status = rh.status;
    cs.rq[static_cast<size_t>(stats::code_class(rh.status))].inc();
    const bool client_11 = rq.version_minor == 1;
    const bool no_body = rh.end_stream || rq.is_head || rh.status == 204 || rh.status == 304;
    const bool length = !no_body && rh.content_length >= 0;
    const bool chunk_out = !no_body && !length && client_11;
    bool downstream_keep =
        rq.keep_alive && !close_ && request_complete && (no_body || length || chunk_out);
    std::string& h = ex.out;
    h.clear();
    // The upstream's fields as the client gets them, to emit(name, value): content-length only
    // with a known length (added when the upstream left it out). True when it gave x-request-id.
    auto each_response_field = [&](auto&& emit) {
      bool has_request_id = false;
      for (const h2::Field& x : rh.fields.fields()) {
        if (x.name == "content-length" && !length) continue;
        if (x.name == "x-request-id") has_request_id = true;
        emit(x.name, x.value);
      }
      if (length && !rh.fields.get("content-length")) {
        char* const n = ex.length_text;  // emit() may keep a view
        const auto end = std::to_chars(n, n + sizeof ex.length_text, rh.content_length).ptr;
        emit("content-length", std::string_view(n, static_cast<size_t>(end - n)));
      }
      return has_request_id;
    };
    if (sio_ != nullptr) {
      // HTTP/2 to HTTP/2: the upstream's fields go to the stream as they are (no HTTP/1.1 text
      // between the two sides for the head), as views: the stream copies them before
      // write_head() returns.
      std::vector<h2::Field>& f = response_views();
      const bool has_request_id = each_response_field([&](std::string_view n, std::string_view v) {
        f.push_back({n, v});
      });
      add_id_and_attempts(f, has_request_id);
      const http::BodyKind framing = no_body  ? http::BodyKind::kNone
                                     : length ? http::BodyKind::kContentLength
                                              : http::BodyKind::kChunked;
      if (!sio_->write_head(rh.status, f, framing,
                            length ? static_cast<uint64_t>(rh.content_length) : 0)) {
        hs.reset();
        co_return false;
      }
    } else {
      h += "HTTP/1.1 "sv;
      append_uint(h, static_cast<uint64_t>(rh.status));
      h += ' ';
      h += http::reason_phrase(rh.status);
      h += "\r\n"sv;
      const bool has_request_id = each_response_field([&](std::string_view n, std::string_view v) {
        h += n;
        h += ": "sv;
        h += v;
        h += "\r\n"sv;
      });
      if (no_body && !rq.is_head && rh.status != 204 && rh.status != 304)
        h += "content-length: 0\r\n"sv;
      if (chunk_out) h += "transfer-encoding: chunked\r\n"sv;
      if (!has_request_id && ex.id_in_response) {
        h += "x-request-id: "sv;
        h += ex.request_id_view;
        h += "\r\n"sv;
      }
      attempts_header(h);
      if (!downstream_keep) h += "connection: close\r\n"sv;
      h += "\r\n"sv;
      arm(Timeout::kStream, stream_idle);
      auto [hec, hn] = co_await ds_write(asio::buffer(h));
      disarm();
      ex.bytes_sent += hn;
      if (hec) {
        hs.reset();
        co_return false;
      }
    }
    bool truncated = false;
    for (int rounds = 0; !no_body; ++rounds) {
      auto got = hs->read_body_now();  // often there already: no coroutine then
      if (!got) got = co_await hs->read_body(Clock::now() + stream_idle);
      auto& chunk = *got;
      if (!chunk) {
        count_error(stats::UpstreamError::kReset);
        truncated = true;
        break;
      }
      std::array<asio::const_buffer, 3> bufs;
      size_t nb = 0;
      if (!chunk->data.empty()) {
        if (chunk_out) {
          frame.set(chunk->data.size());
          bufs[nb++] = asio::buffer(frame.hdr, frame.hdr_len);
        }
        bufs[nb++] = asio::buffer(chunk->data.data(), chunk->data.size());
      }
      ex.scratch.clear();
      if (chunk_out && !chunk->data.empty()) ex.scratch += "\r\n"sv;
      if (chunk->end && chunk_out) {
        ex.scratch += "0\r\n"sv;
        if (chunk->trailers != nullptr) {
          for (const h2::Field& f : chunk->trailers->fields()) {
            ex.scratch += f.name;
            ex.scratch += ": "sv;
            ex.scratch += f.value;
            ex.scratch += "\r\n"sv;
          }
        }
        ex.scratch += "\r\n"sv;
      }
      if (!ex.scratch.empty()) bufs[nb++] = asio::buffer(ex.scratch);
      if (nb > 0) {
        arm(Timeout::kStream, stream_idle);
        const std::span<const asio::const_buffer> out(bufs.data(), nb);
        auto wrote = sio_ != nullptr ? sio_->write_now(out) : std::nullopt;  // seldom must wait
        if (!wrote) wrote = co_await ds_write(out);
        auto [ec, n] = *wrote;
        disarm();
        ex.bytes_sent += n;
        if (ec) {
          hs.reset();
          co_return false;
        }
      }
      if (chunk->end) break;
    }
    ex.done_at = Clock::now();
    cs.duration.observe(ex.done_at - routed_at);
    if (truncated) {
      hs.reset();
      co_return false;
    }
    if (!downstream_keep) close_ = true;
    co_return downstream_keep;
  }

  bool upstream_write_failed = false;
  int last_status = 0;  // the local answer if the last attempt fails without a response
  std::string_view last_reason;
  // An interim response (100 Continue, or one relayed from the upstream) to the client; when the
  // client is gone, the exchange ends here and the upstream connection is not reused.
  auto send_interim = [&](asio::const_buffer b) -> asio::awaitable<bool> {
    arm(Timeout::kStream, stream_idle);
    auto [ec, n] = co_await ds_write(b);
    disarm();
    if (!ec) co_return true;
    rt.lb.on_request_end(pick);
    active_upstream_ = nullptr;
    drop_upstream(false);
    co_return false;
  };
  for (;;) {
    // 1. An endpoint and a connection.
    if (!picked && !pick_endpoint()) {
      co_return co_await fail_final(503, "no healthy upstream endpoint");
    }
    picked = false;
    const tcp::endpoint ep = rt.lb.address(pick.index);
    if (cluster.auto_alpn && rt.alpn_of(ep) == AlpnSeen::kHttp2) {
      use_h2 = true;
      picked = true;
      goto protocol_chosen;
    }
    upstream::AttemptOutcome outcome;
    int& local_status = last_status;
    std::string_view& local_reason = last_reason;
    const auto attempt_start = Clock::now();
    bool acquired = take_pooled(ep, attempt_start);
    if (!acquired) acquired = co_await acquire(ep, true);
    if (!acquired) {
      if (!fail_connect) co_return co_await fail_final(fail_status, fail_reason, fail_extra);
      outcome.result = upstream::AttemptResult::kConnectFailure;
      local_status = fail_status;
      local_reason = fail_reason;
      record_attempt(0, attempt_start);
    } else if (adopted_h2) {
      // auto-by-alpn: the endpoint negotiated h2; this attempt goes out on that connection.
      use_h2 = true;
      picked = true;
      goto protocol_chosen;
    } else {
      ex.upstream_name = up->name;
      active_upstream_ = up.get();
      cs.rq_total.inc();
      ++up->requests;
      rt.lb.on_request_start(pick);
      upstream_write_failed = false;
      bool expect_wait = false;
      // 2. Send the head (signed for this attempt) and the body.
      if (!sign_head()) {
        rt.lb.on_request_end(pick);
        count_error(stats::UpstreamError::kSigning);
        co_return co_await fail_final(503, "request signing failed");
      }
      if (!body_consumed) {
        expect_wait = rq.expect_continue && has_body && rend_ == head_end;
        std::array<asio::const_buffer, 4> bufs;
        size_t nb = 0;
        if (!o.empty()) bufs[nb++] = asio::buffer(o);
        if (!expect_wait) {
          const int rc = take_body(bufs, nb);
          if (rc != 0) {
            rt.lb.on_request_end(pick);
            co_return co_await body_error(rc);
          }
          remember(bufs, 1, nb);
          body_consumed = has_body;
        }
        if (nb > 0) {
          arm(Timeout::kStream, stream_idle);
          // A pooled plain connection usually takes the request at once (net::send_now).
          const std::span<const asio::const_buffer> out(bufs.data(), nb);
          size_t sent = 0;
          std::optional<net::IoResult> wrote;
          if (!up->tls) wrote = net::send_now(up->socket, out, &sent);
          if (!wrote) {
            std::array<asio::const_buffer, 4> rest;
            wrote = co_await us_write(*up, net::skip_bytes(out, sent, rest));
          }
          disarm();
          if (std::get<0>(*wrote)) upstream_write_failed = true;
        }
        rbeg_ = pos;
        ex.bytes_received += pos - head_end;
        // Expect: 100-continue: let the upstream decide before the client sends its body.
        if (expect_wait && !upstream_write_failed) {
          const ReadHead rh = co_await read_head(Timeout::kExpect, Clock::now() + kExpectWait);
          if (rh == ReadHead::kGot && ex.resp.status == 100) {
            ex.ubeg += ex.resp.head_bytes;
          } else if (rh == ReadHead::kGot && ex.resp.status >= 200) {
            have_head = true;
            skip_body = true;
          } else if (rh == ReadHead::kGot) {
            ex.ubeg += ex.resp.head_bytes;  // another 1xx: keep waiting like a timeout
          } else if (rh != ReadHead::kTimeout) {
            rt.lb.on_request_end(pick);
            count_error(stats::UpstreamError::kReset);
            co_return co_await fail_final(502, "upstream closed before continue");
          }
          if (!skip_body) {
            static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
            if (!co_await send_interim(asio::buffer(kContinue))) co_return false;
          }
        }
        // Stream the rest of the request body, chunk by chunk, as fast as the upstream takes it.
        for (int guard = 0; !body_done && !skip_body && !upstream_write_failed; ++guard) {
          body_consumed = true;
          pos = rbeg_;
          if (!co_await read_downstream(Timeout::kBody, stream_idle)) {
            const bool to = timed_out_;
            rt.lb.on_request_end(pick);
            active_upstream_ = nullptr;
            drop_upstream(false);
            if (to) {
              worker_.stats().limit(stats::Limit::kHeaderTimeout).inc();
              co_await send_local(ex, 408, "request body timeout", true);
            }
            co_return false;
          }
          pos = rbeg_;
          std::array<asio::const_buffer, 4> bufs;
          size_t nb = 0;
          const int rc = take_body(bufs, nb);
          if (rc != 0) {
            rt.lb.on_request_end(pick);
            co_return co_await body_error(rc);
          }
          remember(bufs, 0, nb);
          ex.bytes_received += pos - rbeg_;
          rbeg_ = pos;
          if (nb == 0) continue;
          arm(Timeout::kStream, stream_idle);
          auto [ec, n] = co_await us_write(*up, std::span(bufs.data(), nb));
          disarm();
          if (ec) upstream_write_failed = true;
        }
        request_complete = body_done && !skip_body;
      } else {
        // A retry: the head again, then the kept body.
        std::array<asio::const_buffer, 2> bufs{asio::buffer(o), asio::buffer(ex.replay)};
        arm(Timeout::kStream, stream_idle);
        auto [ec, n] = co_await us_write(*up, std::span(bufs.data(), ex.replay.empty() ? 1 : 2));
        disarm();
        if (ec) upstream_write_failed = true;
      }

      // 3. The response head (after any 1xx), within the attempt's deadline.
      const auto deadline =
          upstream::attempt_deadline(Clock::now(), request_deadline,
                                     policy != nullptr ? policy->per_try_timeout : milliseconds(0));
      bool stale_replayed = false;
      for (int interim = 0; !have_head; ++interim) {
        // read_head()'s loop, written out: a coroutine call per response cost ~250 instructions.
        std::optional<ReadHead> got;
        head_begin();
        while (!got) {
          got = head_step(Timeout::kResponse, deadline);
          if (got) break;
          auto [ec, n] = co_await us_read(
              *up, asio::buffer(ex.ubuf->data + ex.uend, base::kBufferSize - ex.uend));
          got = head_read(ec, n);
        }
        const ReadHead rh = *got;
        if (rh == ReadHead::kTimeout) {
          const bool per_try = deadline < request_deadline;
          outcome.result = upstream::AttemptResult::kPerTryTimeout;
          local_status = 504;
          local_reason = per_try ? "upstream per-try timeout" : "upstream response timeout";
          count_error(stats::UpstreamError::kResponseTimeout);
          if (!per_try) {
            rt.lb.on_request_end(pick);
            record_attempt(0, Clock::now());
            co_return co_await fail_final(504, local_reason);
          }
          break;
        }
        if (rh == ReadHead::kClosed && reused && !has_body && !stale_replayed && ex.uend == 0) {
          // The pooled connection had been closed by the upstream: replay the bodiless request
          // once on a fresh connection (not a retry: the upstream never saw it).
          stale_replayed = true;
          active_upstream_ = nullptr;
          drop_upstream(false);
          if (!co_await acquire(ep, false)) {
            rt.lb.on_request_end(pick);
            co_return co_await fail_final(fail_status, fail_reason, fail_extra);
          }
          ex.upstream_name = up->name;
          active_upstream_ = up.get();
          arm(Timeout::kStream, stream_idle);
          auto [ec, n] = co_await us_write(*up, asio::buffer(ex.out));
          disarm();
          if (ec) upstream_write_failed = true;
          continue;
        }
        if (rh == ReadHead::kClosed) {
          outcome.result = upstream::AttemptResult::kReset;
          local_status = 502;
          local_reason =
              upstream_write_failed ? "upstream reset" : "upstream closed without response";
          count_error(stats::UpstreamError::kReset);
          break;
        }
        if (rh == ReadHead::kTooLarge || rh == ReadHead::kMalformed ||
            (ex.resp.status == 101 && !ex.websocket)) {
          if (rh == ReadHead::kTooLarge)
            worker_.stats().limit(stats::Limit::kUpstreamHeaderBytes).inc();
          count_error(stats::UpstreamError::kProtocol);
          rt.lb.on_request_end(pick);
          co_return co_await fail_final(502, rh == ReadHead::kTooLarge
                                                 ? "upstream response head too large"
                                                 : "malformed upstream response");
        }
        if (ex.resp.status >= 200 || ex.resp.status == 101) {  // (101: a WebSocket's)
          have_head = true;
          break;
        }
        // Interim (1xx) responses go through to HTTP/1.1 clients; 100 only if they asked for it.
        const bool pass =
            rq.version_minor == 1 && (ex.resp.status != 100 || rq.expect_continue) && interim < 16;
        if (pass && !(ex.resp.status == 100 && expect_wait)) {
          std::string& h = ex.scratch;
          h.clear();
          h += "HTTP/1.1 "sv;
          append_uint(h, static_cast<uint64_t>(ex.resp.status));
          h += ' ';
          h += ex.resp.reason;
          h += "\r\n"sv;
          append_forwardable(h, ex.resp);
          h += "\r\n"sv;
          if (!co_await send_interim(asio::buffer(h))) co_return false;
        }
        ex.ubeg += ex.resp.head_bytes;
      }
      rt.lb.on_request_end(pick);
      if (have_head) {
        outcome.result = upstream::AttemptResult::kResponse;
        outcome.status = ex.resp.status;
        outcome.headers = &ex.resp;
      }
      record_attempt(have_head ? ex.resp.status : 0, Clock::now());
    }
    release_retry();  // the retry that led to this attempt is over

    // 4. Done, or another attempt?
    const bool success = have_head && !(may_retry && policy->retriable(outcome));
    if (success || !may_retry || skip_body) break;
    const auto delay = next_attempt_delay(outcome);
    if (!delay) break;
    // The failed attempt's connection (and any response it started) is discarded.
    active_upstream_ = nullptr;
    drop_upstream(false);
    ex.ubeg = ex.uend = 0;
    have_head = false;
    if (!co_await backoff(*delay)) co_return false;  // the worker is stopping
    avoid = pick.index;
    ++retries;
    continue;
  }
  release_retry();
  if (!have_head) {
    // The last attempt failed without a response: answer its failure.
    co_return co_await fail_final(last_status, last_reason);
  }
  const http::ResponseHead& rs = ex.resp;
  ex.status = rs.status;
  cs.rq[static_cast<size_t>(stats::code_class(rs.status))].inc();
  ex.ubeg += rs.head_bytes;

  // 7. The downstream response head.
  const bool client_11 = rq.version_minor == 1;
  bool downstream_keep = rq.keep_alive && !close_ && request_complete;
  bool chunk_out = false;  // we frame the body as chunked for the client
  if (rs.body == http::BodyKind::kChunked || rs.body == http::BodyKind::kUntilClose) {
    if (client_11) {
      chunk_out = true;
    } else {
      downstream_keep = false;  // an HTTP/1.0 client reads to EOF
    }
  }
  std::string& h = ex.out;
  h.clear();
  bool head_sent = false;
  if (sio_ != nullptr) {
    // An HTTP/2 stream takes the head as fields: no HTTP/1.1 text for it to parse again. Views
    // into the upstream's head: the stream copies them before write_head() returns.
    std::vector<h2::Field>& f = response_views();
    h2::h1_response_to_h2(rs, &f);
    add_id_and_attempts(f, rs.find(http::HeaderKind::kXRequestId) != nullptr);
    const http::BodyKind framing = chunk_out ? http::BodyKind::kChunked
                                   : rs.body == http::BodyKind::kContentLength
                                       ? http::BodyKind::kContentLength
                                       : http::BodyKind::kNone;
    if (!sio_->write_head(rs.status, f, framing, rs.content_length)) {
      active_upstream_ = nullptr;
      drop_upstream(false);
      co_return false;
    }
    head_sent = true;
  } else {
    // In two runs of pieces, each written into room made for it at once (as the request head).
    const unsigned code = static_cast<unsigned>(rs.status);  // 100-999 (the parser's rule)
    const char status[3] = {static_cast<char>('0' + code / 100 % 10),
                            static_cast<char>('0' + code / 10 % 10),
                            static_cast<char>('0' + code % 10)};
    constexpr std::string_view kHttp = "HTTP/1.1 ";
    const size_t line_size = kHttp.size() + 4 + rs.reason.size() + 2;
    h.resize_and_overwrite(line_size, [&](char* p, size_t) {
      Pieces w{p};  // (h was cleared above)
      w << kHttp << std::string_view(status, 3) << " "sv << rs.reason << "\r\n"sv;
      assert(static_cast<size_t>(w.p - p) == line_size);
      return line_size;
    });
    append_forwardable(h, rs);
    const std::string_view attempts = attempts_text();
    constexpr std::string_view kChunked = "transfer-encoding: chunked\r\n",
                               kId = "x-request-id: ", kAttempts = "x-outrigger-attempts: ",
                               kUpgrade = "upgrade: ";
    // A 101 (only a WebSocket handshake's gets here) names the protocol switched to.
    const http::Header* upgrade =
        rs.status == 101 ? rs.find(http::HeaderKind::kUpgrade) : nullptr;
    const std::string_view connection = rs.status == 101  ? "connection: upgrade\r\n"sv
                                        : !downstream_keep ? "connection: close\r\n"sv
                                        : !client_11       ? "connection: keep-alive\r\n"sv
                                                           : std::string_view();
    const bool give_id =
        ex.id_in_response && rs.find(http::HeaderKind::kXRequestId) == nullptr;
    const size_t at = h.size();
    const size_t n = (chunk_out ? kChunked.size() : 0) +
                     (give_id ? kId.size() + ex.request_id_view.size() + 2 : 0) +
                     kAttempts.size() + attempts.size() + 2 + connection.size() +
                     (upgrade ? kUpgrade.size() + upgrade->value.size() + 2 : 0) + 2;
    h.resize_and_overwrite(at + n, [&](char* p, size_t) {
      Pieces w{p + at};
      if (chunk_out) w << kChunked;
      if (give_id) w << kId << ex.request_id_view << "\r\n"sv;
      w << kAttempts << attempts << "\r\n"sv << connection;
      if (upgrade) w << kUpgrade << upgrade->value << "\r\n"sv;
      w << "\r\n"sv;
      assert(static_cast<size_t>(w.p - p) == at + n);
      return at + n;
    });
  }

  // The upstream switched to the WebSocket protocol: the client gets the 101 head, then the two
  // connections are joined until they close. Neither is reused. (An HTTP/2 stream never gets
  // here: only an HTTP/1.1 handshake is let through with a 101.)
  if (rs.status == 101) {
    arm(Timeout::kStream, stream_idle);
    auto [ec, n] = co_await ds_write(asio::buffer(h));
    disarm();
    ex.bytes_sent += n;
    if (!ec) {
      const size_t from_client = rend_ > head_end ? rend_ - head_end : 0;
      co_await tunnel(ex, *up, stream_idle, from_client);
    }
    active_upstream_ = nullptr;
    drop_upstream(false);
    co_return false;
  }

  // 8. Stream the response body.
  uint64_t resp_left = rs.body == http::BodyKind::kContentLength ? rs.content_length : 0;
  bool resp_done = rs.body == http::BodyKind::kNone;
  bool upstream_clean = rs.keep_alive && request_complete && !upstream_write_failed;
  if (rs.body == http::BodyKind::kChunked) ex.chunked.reset();
  bool truncated = false;
  for (int rounds = 0;; ++rounds) {
    std::array<asio::const_buffer, 4> bufs;
    size_t nb = 0;
    if (!head_sent) bufs[nb++] = asio::buffer(h);
    const size_t avail = ex.uend - ex.ubeg;
    char* p = ex.ubuf->data + ex.ubeg;
    if (rs.body == http::BodyKind::kContentLength) {
      const size_t k = static_cast<size_t>(std::min<uint64_t>(avail, resp_left));
      if (k > 0) bufs[nb++] = asio::buffer(p, k);
      resp_left -= k;
      ex.ubeg += k;
      resp_done = resp_left == 0;
      if (resp_done && ex.uend > ex.ubeg) upstream_clean = false;  // bytes beyond the body
    } else if (rs.body == http::BodyKind::kChunked && avail > 0) {
      const auto r = ex.chunked.decode(p, avail);
      if (r.status == http::ChunkedDecoder::Status::kError) {
        count_error(stats::UpstreamError::kProtocol);
        truncated = true;
        break;
      }
      ex.scratch.clear();
      if (r.data > 0) {
        if (chunk_out) {
          frame.set(r.data);
          bufs[nb++] = asio::buffer(frame.hdr, frame.hdr_len);
          ex.scratch += "\r\n"sv;
        }
        bufs[nb++] = asio::buffer(p, r.data);
      }
      ex.ubeg += r.consumed;
      if (r.status == http::ChunkedDecoder::Status::kDone) {
        resp_done = true;
        if (chunk_out) {
          ex.scratch += "0\r\n"sv;
          ex.scratch += ex.chunked.trailers();
          ex.scratch += "\r\n"sv;
        }
        if (ex.uend > ex.ubeg) upstream_clean = false;
      }
      if (!ex.scratch.empty()) bufs[nb++] = asio::buffer(ex.scratch);
    } else if (rs.body == http::BodyKind::kUntilClose && avail > 0) {
      if (chunk_out) {
        frame.set(avail);
        bufs[nb++] = asio::buffer(frame.hdr, frame.hdr_len);
        bufs[nb++] = asio::buffer(p, avail);
        bufs[nb++] = asio::buffer("\r\n", 2);
      } else {
        bufs[nb++] = asio::buffer(p, avail);
      }
      ex.ubeg += avail;
    }
    if (nb > 0) {
      arm(Timeout::kStream, stream_idle);
      const std::span<const asio::const_buffer> out(bufs.data(), nb);
      // Seldom must wait: an HTTP/2 stream queues, a plain socket usually takes it all at once.
      size_t sent = 0;
      std::optional<net::IoResult> wrote;
      if (sio_ != nullptr) {
        wrote = sio_->write_now(out);
      } else if (!tls_) {
        wrote = net::send_now(*socket_, out, &sent);
      }
      if (!wrote) {
        std::array<asio::const_buffer, 4> rest;
        wrote = co_await ds_write(net::skip_bytes(out, sent, rest));
        std::get<1>(*wrote) += sent;
      }
      auto [ec, n] = *wrote;
      disarm();
      ex.bytes_sent += n;
      head_sent = true;
      if (ec) {
        // The client went away: the upstream connection is mid-body, so it cannot be reused.
        active_upstream_ = nullptr;
        drop_upstream(false);
        co_return false;
      }
    }
    if (resp_done) break;
    ex.ubeg = ex.uend = 0;
    arm(Timeout::kStream, stream_idle);
    auto [ec, n] = co_await us_read(*up, asio::buffer(ex.ubuf->data, base::kBufferSize));
    disarm();
    if (ec || n == 0) {
      if (rs.body == http::BodyKind::kUntilClose && !ec.failed() && n == 0) {
        resp_done = true;  // EOF ends a close-delimited body
      } else if (rs.body == http::BodyKind::kUntilClose && ec == asio::error::eof) {
        resp_done = true;
      } else {
        count_error(timed_out_ ? stats::UpstreamError::kResponseTimeout
                               : stats::UpstreamError::kReset);
        truncated = true;
        break;
      }
      if (chunk_out) {
        arm(Timeout::kStream, stream_idle);
        auto [ec2, n2] = co_await ds_write(asio::buffer("0\r\n\r\n", 5));
        disarm();
        ex.bytes_sent += n2;
        if (ec2) downstream_keep = false;
      }
      upstream_clean = false;
      break;
    }
    ex.uend = n;
  }
  active_upstream_ = nullptr;
  ex.done_at = Clock::now();
  cs.duration.observe(ex.done_at - routed_at);
  drop_upstream(upstream_clean && !truncated, ex.done_at);
  if (truncated) co_return false;  // the client sees a short body: never pretend it is complete
  if (!downstream_keep) close_ = true;
  co_return downstream_keep;
}

}  // namespace outrigger::server
