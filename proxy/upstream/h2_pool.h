// Per-worker HTTP/2 upstream pool: requests are multiplexed as streams over few connections.
//
//   H2Connection  one upstream connection (TCP, optional TLS with ALPN h2) driving an
//                 h2::ClientSession with a reader and a writer coroutine on the worker's
//                 io_context; streams are opened on it synchronously.
//   H2Stream      the caller's handle on one stream (the "StreamRef"): awaitable body writes with
//                 flow-control backpressure, trailers, the response head, body reads that re-open
//                 the upstream's window only as the caller takes the bytes, and reset on abort.
//   H2Pool        per worker per cluster: picks a ready connection with room (the peer's
//                 MAX_CONCURRENT_STREAMS), else opens another (max_connections, then waits until
//                 the caller's deadline); connections that got GOAWAY take no new streams and
//                 close after their last stream; idle ones expire; dead ones are dropped.
//
// Thread affinity: worker-local. Everything (pool, connections, streams) belongs to one
// io_context run by one thread; nothing here is safe to touch from another thread.
// Lifetime: an H2Stream keeps its connection alive; a connection outlives its pool if streams
// still use it (the pool's destructor closes every connection). Do not destroy an H2Stream while
// one of its awaitables is pending in another coroutine: call reset() instead, which wakes it.
// Errors are values (H2Error); nothing throws.
// See proxy/upstream/README.md ("h2_pool") for how the data path drives it.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <expected>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/base/id_table.h"
#include "proxy/h2/fields.h"
#include "proxy/h2/session.h"
#include "proxy/tls/context.h"
#include "proxy/upstream/circuit_breaker.h"
#include "proxy/upstream/pool.h"
#include "proxy/upstream/retry.h"

namespace outrigger::stats {
struct ClusterStats;
}

namespace outrigger::upstream {

// What went wrong, as the attempt loop needs to tell it.
enum class H2Errc : uint8_t {
  // No connection; nothing was sent (AttemptResult::kConnectFailure).
  kConnectRefused,
  kConnectTimeout,  // TCP connect, TLS handshake or the server's SETTINGS not within the timeout
  kConnectFailed,   // other socket errors
  kTlsHandshake,    // H2Error::tls_reason says why (tls::handshake_failure_reason)
  kNotH2,           // ALPN did not select h2, or the server's first bytes were not HTTP/2
  kBreakerOpen,     // the cluster's max_connections circuit breaker refused a new connection
  kPoolTimeout,     // max_connections reached and no stream slot freed before the deadline
  // open_stream() on one connection (the pool handles these itself).
  kGoaway,       // the connection received GOAWAY or is closing: use another connection
  kStreamLimit,  // the peer's MAX_CONCURRENT_STREAMS is reached: use another connection
  // A stream that was opened.
  kRefused,         // unprocessed: REFUSED_STREAM or above GOAWAY's last stream id; safe to retry
  kReset,           // the peer reset the stream (h2_code) before it completed
  kConnectionLost,  // the connection died (read/write error, peer close, protocol error)
  kTimeout,         // the caller's deadline passed
  kCancelled,       // reset() by the caller, or the pool was destroyed
  kProtocol,        // a local error: fields nghttp2 refused, a body write after the end, ...
};
std::string_view h2_errc_name(H2Errc e) noexcept;

struct H2Error {
  H2Errc code = H2Errc::kProtocol;
  uint32_t h2_code = 0;         // RST_STREAM / GOAWAY error code where there was one
  std::string detail;           // for logs
  std::string_view tls_reason;  // kTlsHandshake: "unknown_ca", "san_mismatch", ... (static)

  // The attempt loop's view (proxy/upstream/retry.h): connect failures (nothing sent),
  // kRefusedStream (unprocessed), kPerTryTimeout (kTimeout), kReset for the rest.
  AttemptResult attempt_result() const noexcept;
  // Nothing reached the upstream's application: safe to send again, whatever the method.
  bool unprocessed() const noexcept;
};

// TLS origination for new connections (material null: cleartext h2c with prior knowledge).
// The material's ALPN list must offer "h2"; a server that picks anything else fails with kNotH2.
struct H2Tls {
  std::shared_ptr<const tls::ClientTls> material;
  std::string sni;                              // "" -> the material's default SNI
  tls::ClientSessionCache* sessions = nullptr;  // worker-local resumption cache (optional)
  // protocol auto-by-alpn: count the protocol each handshake negotiated (stats ClusterStats::alpn).
  bool count_alpn = false;
};

struct H2ConnectionOptions {
  h2::Limits limits;  // codec limits (receive windows, header sizes, abuse limits)
  // A connection without streams for this long is closed (GOAWAY NO_ERROR). 0: never.
  std::chrono::milliseconds idle_timeout{60'000};
  // Optional cluster-wide max_connections circuit breaker: a slot per connection while it lives
  // (a new connection beyond it fails with kBreakerOpen).
  std::shared_ptr<CircuitBreaker> breaker;
};

// Worker-local counters of a pool (or of one connection used without a pool).
struct H2Counters {
  uint64_t connections_opened = 0;  // ready (SETTINGS received)
  uint64_t connect_failures = 0;    // TCP/TLS/preface failures
  uint64_t connections_closed = 0;  // any end, graceful or not
  uint64_t connections_lost = 0;    // died with streams in flight (read/write error, bad frames)
  uint64_t idle_closed = 0;         // closed by idle_timeout
  uint64_t streams_opened = 0;
  uint64_t goaways_received = 0;
  uint64_t streams_unprocessed = 0;  // REFUSED_STREAM or above GOAWAY's last stream id
  uint64_t streams_reset_by_peer = 0;
  uint64_t pool_waits = 0;  // acquire_stream calls that had to wait
  uint64_t pool_timeouts = 0;
  uint64_t tls_handshakes = 0;
  uint64_t tls_resumed = 0;
};

// A response head as received (final or 1xx).
struct H2ResponseHead {
  int status = 0;
  h2::FieldList fields;  // regular fields, lower-case names, in order
  int64_t content_length = -1;
  bool end_stream = false;  // no body follows
};

// An http::ResponseHead view of an h2 head, for code written against HTTP/1.1 heads (the retry
// policy's retriable-headers and Retry-After, AttemptOutcome::headers, logs): status, fields by
// name (kind kOther), body kNone (END_STREAM on the head) / kContentLength / kChunked (delimited by
// END_STREAM, as h2::h1_framing says). Views into `h`; fields beyond http::kMaxHeaders are left
// out.
void to_h1_view(const H2ResponseHead& h, http::ResponseHead* out) noexcept;

// What read_body() produced.
struct H2BodyChunk {
  // Valid until the next read_body(), reset() or the stream's destruction. These bytes hold
  // upstream flow-control window until the next read_body() call (that is the backpressure).
  std::span<const uint8_t> data;
  bool end = false;                         // the response is complete (data may be non-empty)
  const h2::FieldList* trailers = nullptr;  // with end: the trailers, when there were any
};

class H2Connection;
class H2Pool;
struct H2StreamState;

// The caller's handle on one stream (move-only). Destroying it before the stream completed
// resets the stream (CANCEL).
class H2Stream {
 public:
  using Clock = std::chrono::steady_clock;
  H2Stream() = default;
  H2Stream(H2Stream&&) noexcept;
  H2Stream& operator=(H2Stream&&) noexcept;
  H2Stream(const H2Stream&) = delete;
  H2Stream& operator=(const H2Stream&) = delete;
  ~H2Stream();

  explicit operator bool() const noexcept { return st_ != nullptr; }
  int32_t id() const noexcept;
  H2Connection& connection() const noexcept { return *conn_; }

  // Sends request body bytes (the span must stay valid until this completes). Completes when the
  // codec has taken all of them, i.e. suspends while the stream's or the connection's send window
  // is closed. end: the body ends with these bytes (END_STREAM). On kTimeout the stream is reset.
  // An error when the stream is gone (kReset with NO_ERROR after an early complete response: read
  // the response anyway).
  boost::asio::awaitable<std::expected<void, H2Error>> write_body(std::span<const uint8_t> bytes,
                                                                  bool end,
                                                                  Clock::time_point deadline);
  // Ends the request body with trailers (no pseudo-headers). Not awaitable: the trailers go out
  // after the bytes already written.
  std::expected<void, H2Error> write_trailers(std::span<const h2::Field> trailers);
  // The next response head: 1xx heads first (status < 200, call again), then the final one.
  // The stream is not reset on kTimeout (the caller decides).
  boost::asio::awaitable<std::expected<H2ResponseHead, H2Error>> read_response_head(
      Clock::time_point deadline);
  // Response body bytes as they arrive; {.end = true} once complete. Consumes (re-opens the
  // upstream's window for) the bytes the previous call returned.
  boost::asio::awaitable<std::expected<H2BodyChunk, H2Error>> read_body(Clock::time_point deadline);
  // read_body() when it would not wait: a chunk, the end or an error at once; nullopt when
  // nothing has arrived yet (then call read_body()).
  std::optional<std::expected<H2BodyChunk, H2Error>> read_body_now();
  // RST_STREAM(code) unless the stream already closed; pending calls return kCancelled.
  void reset(uint32_t code = h2::kCancel);

  // Received body bytes not yet consumed by read_body() (bounded by the receive window).
  size_t buffered_bytes() const noexcept;
  // The stream completed both ways (response complete, request sent).
  bool complete() const noexcept;

 private:
  friend class H2Connection;
  H2Stream(std::shared_ptr<H2Connection> c, std::unique_ptr<H2StreamState> s) noexcept;
  void release() noexcept;
  std::shared_ptr<H2Connection> conn_;
  std::unique_ptr<H2StreamState> st_;
};

class H2Connection final : public std::enable_shared_from_this<H2Connection>,
                           private h2::ClientEvents {
 public:
  using Clock = std::chrono::steady_clock;
  enum class State : uint8_t {
    kConnecting,  // TCP/TLS, then waiting for the server's SETTINGS
    kReady,       // streams may be opened (within the peer's MAX_CONCURRENT_STREAMS)
    kDraining,    // GOAWAY received, idle close or codec error: no new streams
    kClosed,      // the transport is gone
  };

  // Adopts a connected socket (TLS: handshaken with ALPN h2) and starts the reader and writer at
  // once. ready() turns true when the server's SETTINGS arrive (wait_ready()).
  static std::expected<std::shared_ptr<H2Connection>, H2Error> adopt(
      boost::asio::io_context& io, std::unique_ptr<Connection> conn,
      const H2ConnectionOptions& options);
  // Connects to ep (TCP_NODELAY; TLS when tls.material is set, with ALPN h2 checked), starts the
  // reader and writer and waits for the server's SETTINGS, all within `timeout`. With
  // options.breaker, a max_connections slot is held for the connection's lifetime.
  // (No defaulted class-type arguments on awaitables: g++ 12 destroys such temporaries twice.)
  static boost::asio::awaitable<std::expected<std::shared_ptr<H2Connection>, H2Error>> connect(
      boost::asio::io_context& io, const tcp::endpoint& ep, const H2Tls& tls,
      std::chrono::milliseconds timeout, const H2ConnectionOptions& options);
  // Waits until ready() (or the connection failed / the deadline passed).
  boost::asio::awaitable<std::expected<void, H2Error>> wait_ready(Clock::time_point deadline);

  // A new stream. request_fields: pseudo-headers first (:method, :scheme, :authority, :path),
  // then lower-case regular fields (h2::h1_request_to_h2). has_body: write_body()/write_trailers()
  // supply the body, else END_STREAM goes on the HEADERS. kGoaway / kStreamLimit: use another
  // connection.
  std::expected<H2Stream, H2Error> open_stream(std::span<const h2::Field> request_fields,
                                               bool has_body);

  State state() const noexcept { return state_; }
  bool ready() const noexcept { return state_ == State::kReady; }
  // Ready, no GOAWAY, below the peer's MAX_CONCURRENT_STREAMS.
  bool can_open_stream() const noexcept;
  // Streams the codec still tracks (not yet closed).
  size_t active_streams() const noexcept;
  uint32_t peer_max_concurrent_streams() const noexcept;
  const tcp::endpoint& endpoint() const noexcept { return conn_->endpoint; }
  const std::string& name() const noexcept { return conn_->name; }
  // Why the connection failed or ended badly ("" while healthy).
  const std::string& error() const noexcept { return error_; }
  // The codec's counters (add them into the worker's h2 stats when the connection closes).
  const h2::Counters& codec_counters() const noexcept;
  const H2Counters& counters() const noexcept { return *counters_; }

  // GOAWAY(NO_ERROR) now, then the transport closes once it is written; streams still in flight
  // end with kConnectionLost. close_when_idle() is the gentle form.
  void close() noexcept;
  // No new streams; the connection closes when its last stream ends.
  void close_when_idle() noexcept;
  // Closes the transport now; pending stream calls return kConnectionLost.
  void abort(std::string why = "aborted") noexcept;

  // Implementation detail (public for make_shared).
  struct Passkey {
    explicit Passkey() = default;
  };
  H2Connection(Passkey, boost::asio::io_context& io, std::unique_ptr<Connection> conn,
               const H2ConnectionOptions& options, std::shared_ptr<H2Counters> counters);
  ~H2Connection();

 private:
  friend class H2Stream;
  friend class H2Pool;

  bool start();  // codec + coroutines
  static boost::asio::awaitable<void> run_connect(std::shared_ptr<H2Connection> self,
                                                  tcp::endpoint ep, H2Tls tls,
                                                  std::chrono::milliseconds timeout);
  // adopt(): the codec on an established transport, then the server's SETTINGS within timeout.
  static boost::asio::awaitable<void> run_adopted(std::shared_ptr<H2Connection> self,
                                                  std::chrono::milliseconds timeout);
  static boost::asio::awaitable<void> reader(std::shared_ptr<H2Connection> self);
  static boost::asio::awaitable<void> writer(std::shared_ptr<H2Connection> self);
  void kick() noexcept;
  // Until the connection's state may have changed (SETTINGS, failure) or the deadline.
  boost::asio::awaitable<void> sleep_until_changed(Clock::time_point deadline);
  void wake_ready() noexcept;
  void fail(std::string why, bool lost) noexcept;
  void set_state(State s) noexcept;
  void notify_pool() noexcept;
  void close_transport() noexcept;
  void forget_stream(H2StreamState* st) noexcept;
  // A released stream's state, kept for the next stream (its buffers and timers are reused).
  void recycle(std::unique_ptr<H2StreamState> st) noexcept;
  void reset_stream(H2StreamState& st, uint32_t code) noexcept;
  void note_idle() noexcept;
  H2StreamState* find(int32_t id) noexcept;

  // h2::ClientEvents
  void on_response(int32_t stream, const h2::Response& response) override;
  void on_informational(int32_t stream, const h2::Response& response) override;
  void on_data(int32_t stream, std::span<const uint8_t> data) override;
  void on_trailers(int32_t stream, std::span<const h2::Field> trailers) override;
  void on_end_stream(int32_t stream) override;
  void on_stream_close(int32_t stream, const h2::CloseInfo& info) override;
  h2::BodyRead on_body_read(int32_t stream, std::span<uint8_t> out) override;
  void on_goaway(int32_t last_stream_id, uint32_t error_code) override;

  boost::asio::io_context& io_;
  std::unique_ptr<Connection> conn_;  // socket, TLS, endpoint, name, breaker slot
  H2ConnectionOptions options_;
  std::shared_ptr<H2Counters> counters_;
  std::unique_ptr<h2::ClientSession> session_;
  State state_ = State::kConnecting;
  bool started_ = false;
  bool ready_once_ = false;  // the server's SETTINGS arrived
  bool close_when_idle_ = false;
  bool transport_closed_ = false;
  bool lost_counted_ = false;
  std::string error_;
  std::optional<H2Error> connect_error_;                   // set when a connect failed
  boost::asio::steady_timer kick_timer_;                   // the writer's wake-up
  std::vector<boost::asio::steady_timer*> ready_waiters_;  // connect/wait_ready wake-ups
  base::IdTable<H2StreamState*> streams_;                  // owned by their H2Stream handles
  std::vector<std::unique_ptr<H2StreamState>> spare_;      // recycled, at most kSpareStates
  Clock::time_point idle_since_;
  // The server's first frame (SETTINGS) as it arrives: ready once all its bytes were fed.
  uint8_t first_frame_hdr_[9] = {};
  size_t first_bytes_ = 0;
  size_t first_payload_ = 0;
  H2Pool* pool_ = nullptr;
  stats::ClusterStats* stats_ = nullptr;
};

struct H2PoolOptions {
  uint32_t max_connections = 16;  // per pool (all endpoints), connecting ones included
  std::chrono::milliseconds connect_timeout{5'000};
  H2ConnectionOptions connection;  // codec limits, idle timeout, breaker
};

class H2Pool {
 public:
  using Clock = std::chrono::steady_clock;
  H2Pool(boost::asio::io_context& io, H2PoolOptions options);
  H2Pool(const H2Pool&) = delete;
  H2Pool& operator=(const H2Pool&) = delete;
  // Closes every connection; streams still held keep their connection object alive, but its
  // transport is gone (their calls return kConnectionLost). Pending acquire_stream() calls must
  // have returned (the worker destroys its io_context's coroutines after its pools: they no longer
  // touch the pool then).
  ~H2Pool();

  void set_options(const H2PoolOptions& options) { options_ = options; }
  // Optional cluster stats: cx_total, cx_active, rq_pending, tls handshakes/resumed/errors.
  void set_stats(stats::ClusterStats* stats) { stats_ = stats; }

  // A new stream to ep: on a ready connection with room, else on a new connection (counts against
  // max_connections; connect_timeout bounds the connect), else after waiting for room until
  // `deadline`. Requests waiting for a connection that fails to connect get its error. tls (null:
  // h2c) is used only when a new connection is opened: pass the cluster's current material.
  // acquire_stream() when it would not wait: a stream on a ready connection to `ep` with room,
  // or a protocol error; nullopt when there is none (then call acquire_stream()).
  std::optional<std::expected<H2Stream, H2Error>> open_on_ready(
      const boost::asio::ip::tcp::endpoint& ep, std::span<const h2::Field> request_fields,
      bool has_body);
  boost::asio::awaitable<std::expected<H2Stream, H2Error>> acquire_stream(
      const tcp::endpoint& ep, std::span<const h2::Field> request_fields, bool has_body,
      Clock::time_point deadline, const H2Tls* tls = nullptr);

  // Takes over `conn`: connected to conn->endpoint, TLS handshaken with ALPN "h2" negotiated
  // (the probe of protocol auto-by-alpn; there is no second handshake). The HTTP/2 preface goes
  // out at once; the connection takes streams once the server's SETTINGS arrive (acquire_stream()
  // to that endpoint waits for it), else it fails after connect_timeout like a connect would. It
  // keeps conn's breaker slot, and is kept even when the pool is full (max_connections + 1 then).
  void adopt(std::unique_ptr<Connection> conn);

  // Connections (any state) / ready ones to ep.
  size_t connections() const noexcept { return conns_.size(); }
  size_t ready_connections(const tcp::endpoint& ep) const noexcept;
  const H2Counters& counters() const noexcept { return *counters_; }
  const H2PoolOptions& options() const noexcept { return options_; }

 private:
  friend class H2Connection;
  // Shared with waiting acquire_stream() calls, so that they never touch a destroyed pool.
  struct WaitList {
    std::vector<boost::asio::steady_timer*> timers;
    bool pool_alive = true;
  };
  void remove(H2Connection* c) noexcept;
  void on_connection_changed(H2Connection* c) noexcept;
  void wake_all() noexcept;
  bool make_room() noexcept;
  std::shared_ptr<H2Connection> start_connect(const tcp::endpoint& ep, const H2Tls& tls);
  // Wraps conn (connecting or already connected) as one of the pool's connections.
  std::shared_ptr<H2Connection> enlist(std::unique_ptr<Connection> conn);

  boost::asio::io_context& io_;
  H2PoolOptions options_;
  stats::ClusterStats* stats_ = nullptr;
  std::shared_ptr<H2Counters> counters_;
  std::vector<std::shared_ptr<H2Connection>> conns_;
  std::shared_ptr<WaitList> waiters_;
};

}  // namespace outrigger::upstream
