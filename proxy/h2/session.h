// Sans-IO HTTP/2 sessions over nghttp2: ServerSession (downstream clients) and ClientSession
// (upstream h2 servers). No sockets here: bytes in through feed(), bytes out through
// pending_output()/consume_output(), events out through a small virtual interface.
//
// Thread affinity: none; a session is a plain object owned by one connection (worker-local).
// Re-entrancy: events are called from inside feed() (receive side) and pending_output() (the body
// read hook and stream closes caused by sending). An event may call submit_*, resume(), consume(),
// reset_stream() and the drain calls; it must not destroy the session.
// Output ownership: only pending_output() and consume_output() touch the output buffer, so a write
// may hold the span pending_output() returned across an async write while feed() and submit_*
// run; the span stays valid until the next pending_output()/consume_output() call.
// See proxy/h2/README.md for how the asio data path drives a session.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proxy/base/id_table.h"
#include "proxy/h2/fields.h"

struct nghttp2_session;

namespace outrigger::h2 {

// HTTP/2 error codes (RFC 9113 section 7), as carried by RST_STREAM and GOAWAY.
enum ErrorCode : uint32_t {
  kNoError = 0x0,
  kProtocolError = 0x1,
  kInternalError = 0x2,
  kFlowControlError = 0x3,
  kSettingsTimeout = 0x4,
  kStreamClosed = 0x5,
  kFrameSizeError = 0x6,
  kRefusedStream = 0x7,
  kCancel = 0x8,
  kCompressionError = 0x9,
  kConnectError = 0xa,
  kEnhanceYourCalm = 0xb,
  kInadequateSecurity = 0xc,
  kHttp11Required = 0xd,
};
std::string_view error_code_name(uint32_t code) noexcept;

// Cleartext sniffing for h2c prior knowledge: do the first bytes of a connection start the
// HTTP/2 client preface ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24 bytes)?
enum class Preface : uint8_t { kH2, kNotH2, kNeedMore };
Preface check_preface(std::span<const uint8_t> first_bytes) noexcept;

// Per-connection limits. Defaults suit a sidecar; every one is enforced and counted.
struct Limits {
  // SETTINGS_MAX_CONCURRENT_STREAMS we advertise (server) and enforce.
  uint32_t max_concurrent_streams = 100;
  // SETTINGS_MAX_HEADER_LIST_SIZE we advertise and enforce (RFC 9113 6.5.2 accounting: name +
  // value + 32 per field). A request head over it gets a 431 response; trailers or a response
  // head over it reset the stream (ENHANCE_YOUR_CALM).
  uint32_t max_header_list_size = 64 * 1024;
  // Receive windows. Data delivered by on_data() counts against them until consume().
  uint32_t initial_stream_window = 256 * 1024;
  uint32_t connection_window = 1024 * 1024;
  // CONTINUATION frames after one HEADERS frame, and HPACK bytes in one header block, before the
  // connection ends with GOAWAY ENHANCE_YOUR_CALM.
  uint32_t max_continuations = 32;
  uint32_t max_header_block_bytes = 128 * 1024;
  // Rapid reset (CVE-2023-44487): streams the peer resets before their response completed, at
  // most this many in the sliding window (server only).
  uint32_t max_rapid_resets = 200;
  uint32_t rapid_reset_window_ms = 10'000;
  // SETTINGS and PING ACKs queued but not written (nghttp2 max_outbound_ack): above it the peer
  // floods while not reading.
  uint32_t max_outbound_ack = 1000;
  // Entries in one SETTINGS frame (checked by us, before nghttp2 parses the frame).
  uint32_t max_settings = 32;
  // Consecutive DATA/HEADERS/CONTINUATION frames without payload and without END_STREAM
  // (CVE-2019-9518 "empty frames flood").
  uint32_t max_empty_frames = 16;
  // Header blocks we send (nghttp2 max_send_header_block_length) and our HPACK encoder table.
  uint32_t max_send_header_block = 64 * 1024;
  uint32_t max_deflate_table = 4096;
  // Output bytes pulled from nghttp2 into our buffer before pending_output() stops pulling: the
  // rest stays queued in nghttp2, where the outbound ACK limit sees it.
  uint32_t output_buffer_bytes = 64 * 1024;
};

// Plain counters; a worker sums its sessions' counters into its stats.
struct Counters {
  uint64_t streams_opened = 0;         // requests delivered (server) or submitted (client)
  uint64_t invalid_headers = 0;        // stream reset PROTOCOL_ERROR: RFC 9113 8.2/8.3 violations
  uint64_t header_list_too_large = 0;  // 431 response (request head) or reset (trailers/response)
  uint64_t refused_streams = 0;        // over our MAX_CONCURRENT_STREAMS (see README)
  uint64_t peer_resets = 0;            // RST_STREAM from the peer on a stream still in progress
  uint64_t rapid_reset = 0;            // GOAWAY ENHANCE_YOUR_CALM: rapid reset limit
  uint64_t continuation_flood = 0;     // GOAWAY ENHANCE_YOUR_CALM: CONTINUATION count/bytes
  uint64_t settings_flood = 0;         // GOAWAY ENHANCE_YOUR_CALM: SETTINGS ACK queue or entries
  uint64_t ping_flood = 0;             // GOAWAY ENHANCE_YOUR_CALM: PING ACK queue
  uint64_t empty_frame_flood = 0;      // GOAWAY ENHANCE_YOUR_CALM: empty frames
  uint64_t connection_errors = 0;      // GOAWAY with an error code sent (any cause)
  uint64_t goaway_received = 0;
  uint64_t body_length_mismatch = 0;  // stream reset PROTOCOL_ERROR: DATA against content-length

  Counters& operator+=(const Counters& o) noexcept;
};

// How a stream ended, as told to on_stream_close().
struct CloseInfo {
  uint32_t error_code = kNoError;  // kNoError: both sides ended normally
  bool reset_by_peer = false;      // the peer sent RST_STREAM
  // Client only: the server never processed the stream (REFUSED_STREAM, or above the last stream
  // id of its GOAWAY): safe to retry on another connection.
  bool unprocessed = false;
};

// What a body read hook produced.
struct BodyRead {
  enum class Status : uint8_t {
    kData,               // n bytes copied (n > 0), more may follow
    kDeferred,           // nothing now; call resume(stream) when more is available
    kEnd,                // n bytes (maybe 0) and the body is complete; trailers queued by
                         // submit_trailers() before this go out, else END_STREAM is set
    kEndBeforeTrailers,  // as kEnd, but trailers follow later through submit_trailers()
  };
  size_t n = 0;
  Status status = Status::kDeferred;
};

// Events common to both sides.
class StreamEvents {
 public:
  // Body bytes of a stream. They count against flow control until consume(stream, n).
  virtual void on_data(int32_t stream, std::span<const uint8_t> data) = 0;
  // Trailers; the stream's receive side ended (on_end_stream follows).
  virtual void on_trailers(int32_t stream, std::span<const Field> trailers) = 0;
  // The peer finished sending this stream (END_STREAM).
  virtual void on_end_stream(int32_t stream) = 0;
  // The stream is gone (both sides ended, reset either way, or the connection is going away).
  // Last event of a stream; bytes not yet consumed are returned to the connection window.
  virtual void on_stream_close(int32_t stream, const CloseInfo& info) = 0;
  // Copy up to out.size() bytes of the body we send on `stream`.
  virtual BodyRead on_body_read(int32_t stream, std::span<uint8_t> out) = 0;
  // The peer sent GOAWAY. Client: streams above last_stream_id were not processed (they are also
  // closed with unprocessed = true); open no new streams on this connection.
  virtual void on_goaway(int32_t last_stream_id, uint32_t error_code) {}

 protected:
  ~StreamEvents() = default;
};

// A request as received. All views are valid only during the on_request() call.
struct Request {
  std::string_view method;
  std::string_view scheme;
  std::string_view authority;      // :authority, or Host when :authority is absent
  std::string_view path;           // :path (target, with query)
  std::span<const Field> headers;  // regular fields in order, lower-case names
  int64_t content_length = -1;     // -1: absent
  bool end_stream = false;         // no body follows
};

// A regular field the sessions put on the wire from what the proxy submits: no pseudo-header
// (the caller's own go first), no connection-specific field, te only as "trailers".
bool sendable(const Field& f) noexcept;

// The Request of a request's fields that validate_request accepted (pseudo-headers first), as
// on_request gets it: :authority, else host; content-length when it is digits. Views into fields.
Request request_of(std::span<const Field> fields) noexcept;

// A response head as received. Views valid only during on_response().
struct Response {
  int status = 0;
  std::span<const Field> headers;
  int64_t content_length = -1;
  bool end_stream = false;
};

class ServerEvents : public StreamEvents {
 public:
  // A valid request head. The stream then delivers on_data/on_trailers/on_end_stream and always
  // ends with on_stream_close.
  virtual void on_request(int32_t stream, const Request& request) = 0;
  // A request the session answered itself (400 for a malformed head, 431 for one too large),
  // with the reason it sent; `fields` are the head as received (maybe malformed, maybe cut at
  // the size limit). No other event comes for the stream.
  virtual void on_local_answer(int32_t stream, int status, std::string_view reason,
                               std::span<const Field> fields) {}

 protected:
  ~ServerEvents() = default;
};

class ClientEvents : public StreamEvents {
 public:
  virtual void on_response(int32_t stream, const Response& response) = 0;
  // A 1xx head (100 Continue, 103 Early Hints); the final response follows.
  virtual void on_informational(int32_t stream, const Response& response) {}

 protected:
  ~ClientEvents() = default;
};

// The bytes of a head a stream submitted, which nghttp2 reads in place (session.cc, pin_head).
struct PinnedHead {
  std::unique_ptr<char[]> bytes;
  size_t cap = 0;
  bool pinned = false;  // holds a submitted head
};

// Shared machinery of both sides.
class Session {
 public:
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  virtual ~Session();

  // Bytes read from the transport. On an error the connection is ending: write what
  // pending_output() still gives (a GOAWAY), then close. Events are called from inside.
  std::expected<void, std::string> feed(std::span<const uint8_t> in);

  // Bytes to write now (pulls frames from nghttp2 up to Limits::output_buffer_bytes; calls
  // on_body_read for bodies). Empty when nothing is to be written.
  std::span<const uint8_t> pending_output();
  // n bytes of the last pending_output() were written.
  void consume_output(size_t n);
  // Something is (or may be) ready to write: call pending_output().
  bool want_write() const;
  // The connection is finished: nothing to read or write any more. Close the transport.
  bool done() const;

  // The proxy wrote n bytes of a stream's received body onwards: re-open the receive windows.
  // Unknown or closed streams are fine (their bytes are already returned).
  void consume(int32_t stream, size_t n);
  // More body is available for a stream whose on_body_read returned kDeferred.
  void resume(int32_t stream);
  // Only while on_request, on_response or on_informational runs: exchanges the received header
  // block, which the Request's or Response's views point into, with *other. The caller keeps the
  // fields without a copy (the views stay valid: the buffer moves with the list, pseudo-headers
  // first as received) and the session decodes the next block into other's old buffer.
  void swap_header_block(FieldList* other) noexcept { std::swap(hfields_, *other); }
  // Trailers for a stream whose body is being sent (see BodyRead::Status).
  std::expected<void, std::string> submit_trailers(int32_t stream, std::span<const Field> fields);
  // RST_STREAM with the given code; on_stream_close follows.
  void reset_stream(int32_t stream, uint32_t code);
  // Ends the connection now: GOAWAY(code) then done().
  void terminate(uint32_t code);

  const Counters& counters() const noexcept { return counters_; }
  const Limits& limits() const noexcept { return limits_; }
  // Why the connection ended badly (empty while healthy): our abuse limits, nghttp2's
  // connection errors (with its message), or a failed peer preface.
  const std::string& error() const noexcept { return error_; }
  // Streams open right now (those the proxy was told about), kept as a count: the pool asks
  // per request, and a walk of the table was O(streams in flight) each time.
  size_t open_streams() const noexcept { return known_count_; }
  bool goaway_received() const noexcept { return goaway_received_; }

  // Milliseconds on a monotonic clock; tests replace it to move time.
  using NowFn = int64_t (*)();
  void set_clock(NowFn now) noexcept { now_ = now; }

  // nghttp2 callbacks reach the session through this (implementation detail).
  struct Glue;

 protected:
  struct Stream;
  Session(StreamEvents* events, const Limits& limits, bool server);
  // Creates the nghttp2 session; false with error_ set on failure.
  bool init();
  Stream* find(int32_t id);
  Stream& add_stream(int32_t id);
  // A stream state from the free list (or a new one), not yet in streams_.
  std::unique_ptr<Stream> take_spare();
  Stream& insert_stream(int32_t id, std::unique_ptr<Stream> st);

  // A closed stream's state goes back to a small free list (one allocation less per stream).
  void recycle(std::unique_ptr<Stream> st);
  void fail(uint32_t code, std::string why);
  size_t known_count_ = 0;  // streams in streams_ with `known` set (open_streams())
  // Records one peer reset of an unfinished stream; true when the rapid reset limit is exceeded.
  bool note_reset();
  int send_trailers(Stream& st, std::span<const Field> fields);

  struct Stream {
    int32_t id = 0;
    bool known = false;           // the proxy was told (server: on_request; client: submitted)
    bool response_done = false;   // we sent END_STREAM (server: the response completed)
    bool oversized = false;       // the header block being received went over the limit
    bool got_final_head = false;  // client: a non-1xx response head arrived
    bool reset_by_peer = false;
    bool head_sent = false;           // client: the request HEADERS went out
    uint32_t local_reset = kNoError;  // we rejected the stream's headers with this code
    bool trailers_pending = false;    // our body ended with kEndBeforeTrailers
    bool head_request = false;        // client: the request is a HEAD (a response has no body)
    size_t header_bytes = 0;
    // The body being received against the message's content-length (RFC 9113 8.1.1): -1 when
    // there is none (or none applies), 0 when the message can have no body.
    int64_t body_expected = -1;
    int64_t body_received = 0;
    uint64_t unconsumed = 0;  // delivered by on_data, not yet consumed()
    FieldList trailers;       // queued by submit_trailers before the body ended
    bool has_trailers = false;
    PinnedHead head;  // its capacity is kept across recycle() up to 2 KiB
    // Server: a request the session answered itself (400 malformed, 431 too large), never shown
    // to the proxy; the answer's body and how much of it nghttp2 has taken.
    bool answered_locally = false;
    std::string local_body;
    size_t local_body_sent = 0;
  };

  StreamEvents* events_;
  Limits limits_;
  bool server_;
  nghttp2_session* ng_ = nullptr;
  base::IdTable<std::unique_ptr<Stream>> streams_;
  uint32_t heads_ = 0;  // response or request heads submitted (HPACK indexing of ids)
  // The stream the last find() or add_stream() returned: nghttp2's callbacks for one frame (begin
  // headers, one per field, frame received) ask for the same stream in a row. Cleared when that
  // stream leaves streams_.
  int32_t last_id_ = 0;
  Stream* last_ = nullptr;
  // A client session to a busy upstream has 100+ streams in flight (32 left most rebuilt).
  static constexpr size_t kSpareStreams = 128;
  std::vector<std::unique_ptr<Stream>> spare_;
  Counters counters_;
  std::string error_;
  std::string lib_message_;  // nghttp2's last error text, for error_
  NowFn now_;

  // Output
  std::vector<uint8_t> out_;
  size_t out_off_ = 0;
  bool fatal_ = false;  // nghttp2 must not be used any more
  uint32_t fatal_code_ = kNoError;
  bool fatal_goaway_queued_ = false;
  bool fatal_goaway_written_ = false;
  // Our connection preface went out through nghttp2: the client's magic (the first bytes it
  // gives) and our SETTINGS (on_frame_send). A GOAWAY we write ourselves must follow them
  // (RFC 9113 3.4: a SETTINGS frame is the first frame either side sends).
  bool magic_sent_ = false;
  bool settings_sent_ = false;

  // Receive-side scratch: one header block at a time (blocks never interleave in HTTP/2).
  FieldList hfields_;  // names as nghttp2 checked them: lower case
  uint32_t block_continuations_ = 0;
  uint64_t block_bytes_ = 0;
  uint32_t empty_frames_ = 0;
  uint8_t last_frame_type_ = 0;
  bool goaway_received_ = false;

  // Rapid reset sliding window: kBuckets buckets of window/kBuckets ms.
  static constexpr int kBuckets = 10;
  std::array<uint32_t, kBuckets> reset_buckets_{};
  int64_t reset_slot_ = 0;

  friend struct Glue;
};

class ServerSession final : public Session {
 public:
  // Queues our SETTINGS (and the connection window update): pending_output() has them at once.
  // The client preface is expected first in feed() (prior knowledge h2c and ALPN h2 alike).
  static std::expected<std::unique_ptr<ServerSession>, std::string> create(ServerEvents* events,
                                                                           const Limits& limits);

  // Response head; has_body: on_body_read supplies the body (else END_STREAM on the head).
  std::expected<void, std::string> submit_response(int32_t stream, int status,
                                                   std::span<const Field> fields, bool has_body);
  // Graceful drain, step 1: GOAWAY(2^31-1, NO_ERROR) plus a PING; when the PING's ACK returns
  // (the client saw the notice) step 2 follows by itself. Idempotent.
  void begin_drain();
  // Step 2 (also callable directly, e.g. on a drain timer): GOAWAY(last stream, code). Streams up
  // to it finish; done() once they have.
  void goaway(uint32_t code = kNoError);
  bool draining() const noexcept { return drain_step_ > 0; }

 private:
  explicit ServerSession(ServerEvents* events, const Limits& limits)
      : Session(events, limits, true), sevents_(events) {}
  ServerEvents* sevents_;
  int drain_step_ = 0;  // 0 none, 1 notice sent, 2 final GOAWAY submitted
  friend struct Session::Glue;
};

class ClientSession final : public Session {
 public:
  // Queues the client preface and SETTINGS (push disabled).
  static std::expected<std::unique_ptr<ClientSession>, std::string> create(ClientEvents* events,
                                                                           const Limits& limits);

  // fields: pseudo-header fields first (:method, :scheme, :authority, :path), then the rest with
  // lower-case names (see h1_request_to_h2). has_body: on_body_read supplies the body.
  // Fails when can_open_stream() is false.
  std::expected<int32_t, std::string> submit_request(std::span<const Field> fields, bool has_body);
  // A new stream fits: the connection is healthy, no GOAWAY arrived, and the peer's
  // SETTINGS_MAX_CONCURRENT_STREAMS is not reached.
  bool can_open_stream() const;
  // The peer's SETTINGS_MAX_CONCURRENT_STREAMS (until its SETTINGS arrive: 100).
  uint32_t peer_max_concurrent_streams() const;
  // The last stream id of the peer's GOAWAY (-1 while none arrived).
  int32_t goaway_last_stream_id() const noexcept { return goaway_last_stream_id_; }

 private:
  explicit ClientSession(ClientEvents* events, const Limits& limits)
      : Session(events, limits, false), cevents_(events) {}
  ClientEvents* cevents_;
  int32_t goaway_last_stream_id_ = -1;
  friend struct Session::Glue;
};

}  // namespace outrigger::h2
