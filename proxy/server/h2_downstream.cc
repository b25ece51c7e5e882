// HTTP/2 downstream: one connection (ALPN h2, or cleartext with the h2c preface) multiplexes
// streams; each stream is served by a stream-mode DownstreamConnection that sees an HTTP/1.1
// exchange, so routing, authorization, retries, breakers, signing, TLS origination and the access
// log are the same code for both protocols.
//
// The bridge, per stream:
//   request  HEADERS/DATA/trailers -> an HTTP/1.1 request head (+ content-length or chunked body)
//            that the pipeline reads through StreamIo::read; DATA is acknowledged (WINDOW_UPDATE)
//            only as the pipeline takes it, so the client's flow control follows the upstream.
//   response HTTP/1.1 bytes the pipeline writes -> parsed back (HeadParser, ChunkedDecoder) into
//            HEADERS, DATA (through nghttp2's deferred data source) and trailers; the pipeline's
//            writes wait while more than kMaxBufferedResponse bytes are queued for the client.
//   gRPC     a local error (x-outrigger-reason) on a gRPC request becomes a trailers-only gRPC
//            error (HTTP 200, grpc-status, grpc-message); grpc-timeout bounds the request.
//
// Thread affinity: worker-local; the session, its streams and their connections share one thread.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstring>
#include <optional>

#include "proxy/base/id_table.h"
#include "proxy/h2/grpc.h"
#include "proxy/h2/session.h"
#include "proxy/h2/translate.h"
#include "proxy/net/send_now.h"
#include "proxy/server/connection.h"
#include "proxy/server/worker.h"

namespace outrigger::server {

namespace asio = boost::asio;
namespace {
constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);
constexpr size_t kMaxBufferedResponse = 1 << 20;  // per stream, queued for the client
// A wake-up for one waiting coroutine: wait() suspends it until notify(), which resumes it on a
// later turn of the loop (posted, never inside the notifier). A notify() with no waiter is lost,
// as with a cancelled timer: waiters look at their state again before they wait. It replaces a
// timer that never expired and was cancelled to wake: that cost a timer-queue insert and removal
// under the reactor's mutex and a coroutine frame per wait, about 1,400 instructions per request
// at a low request rate (callgrind). Pending, it counts as work for the io_context, as the
// timer's wait did; destroyed with a waiter, it resumes it (as the timer's destructor did).
class Wake {
 public:
  explicit Wake(asio::io_context& io) : io_(io) {}
  ~Wake() { notify(); }
  Wake(const Wake&) = delete;
  Wake& operator=(const Wake&) = delete;

  // co_await wake.wait(): at most one waiter at a time.
  auto wait() {
    return asio::async_initiate<const asio::use_awaitable_t<>&, void()>(
        [this](auto handler) {
          waiter_ = std::make_unique<Waiter<decltype(handler)>>(std::move(handler), io_);
        },
        asio::use_awaitable);
  }
  void notify() {
    if (waiter_) std::exchange(waiter_, nullptr)->resume(io_);
  }

 private:
  struct WaiterBase {
    virtual ~WaiterBase() = default;
    virtual void resume(asio::io_context& io) = 0;
  };
  template <class Handler>
  struct Waiter final : WaiterBase {
    Waiter(Handler&& h, asio::io_context& io) : handler(std::move(h)), work(io.get_executor()) {}
    void resume(asio::io_context& io) override { asio::post(io, std::move(handler)); }
    Handler handler;
    asio::executor_work_guard<asio::io_context::executor_type> work;
  };
  asio::io_context& io_;
  std::unique_ptr<WaiterBase> waiter_;
};
}  // namespace

class H2Session;

// One HTTP/2 stream as the HTTP/1.1 exchange its DownstreamConnection serves.
class H2Stream final : public StreamIo {
 public:
  H2Stream(H2Session* owner, int32_t id, asio::io_context& io)
      : id_(id), owner_(owner), wake_(io) {}
  ~H2Stream();

  asio::awaitable<net::IoResult> read(asio::mutable_buffer b) override;
  size_t read_ready(asio::mutable_buffer b) override;
  bool request_head(http::RequestHead* out, size_t* size) override {
    *size = head_size_;
    return h2::to_h1_request_head(head_, out, &cookies_);
  }
  // Keeps the request's fields as head_: takes the session's header block (no copy).
  void keep_head(h2::ServerSession& session, const h2::Request& rq);
  asio::awaitable<net::IoResult> write(std::span<const asio::const_buffer> b) override;
  std::optional<net::IoResult> write_now(std::span<const asio::const_buffer> b) override;
  asio::awaitable<net::IoResult> write(asio::const_buffer b) override {
    co_return co_await write(std::span<const asio::const_buffer>(&b, 1));
  }
  void cancel() override {
    cancelled_ = true;
    wake_.notify();
  }
  bool write_head(int status, std::span<const h2::Field> fields, http::BodyKind body,
                  uint64_t content_length) override;
  void finish() override;

  // Session side.
  void on_data(std::span<const uint8_t> d);
  void on_trailers(std::span<const h2::Field> t);
  void on_end_stream();
  void on_closed(bool aborted);
  h2::BodyRead on_body_read(std::span<uint8_t> out);
  // The session ends: from now on the stream does not touch it.
  void detach(bool wake) {
    owner_ = nullptr;
    live_prev_ = live_next_ = nullptr;
    closed_ = true;
    if (wake) wake_.notify();
  }

  int32_t id_;
  h2::FieldList head_fields_;  // the request's header block as received (the session's)
  h2::Request head_;           // views into head_fields_
  size_t head_size_ = 0;
  std::string cookies_;  // cookie fields joined for the HTTP/1.1 side
  std::string in_;       // request body bytes (HTTP/1.1-framed) not yet read by the pipeline
  size_t in_pos_ = 0;
  size_t unconsumed_ = 0;  // DATA bytes received and not yet acknowledged
  bool chunked_ = false;
  bool in_end_ = false;
  bool grpc_ = false;
  bool head_request_ = false;
  DownstreamConnection* conn_ = nullptr;

 private:
  void feed_response(const char* p, size_t n);
  net::IoResult feed_all(std::span<const asio::const_buffer> b);
  size_t take_plain_body(std::string_view b);
  void body_moved(size_t queued_before);
  bool start_response(int status, std::span<const h2::Field> fields, http::BodyKind body,
                      uint64_t content_length);
  void answer_grpc_error(int status, std::string_view reason);
  void fail();

  H2Session* owner_;
  // The session's list of every stream object still alive (closed ones too: their exchange may
  // still be finishing), so that the session detaches them all when it ends.
  H2Stream* live_prev_ = nullptr;
  H2Stream* live_next_ = nullptr;
  friend class H2Session;
  Wake wake_;
  bool cancelled_ = false;
  bool closed_ = false;  // the client side of the stream is gone
  // response translation
  std::string raw_;  // HTTP/1.1 response bytes not yet translated
  http::ChunkedDecoder chunks_;
  bool head_done_ = false;
  bool resp_done_ = false;
  bool ignore_rest_ = false;
  http::BodyKind body_ = http::BodyKind::kNone;
  uint64_t left_ = 0;
  std::string out_;  // DATA bytes queued for the client
  size_t out_pos_ = 0;
};

class H2Session final : public h2::ServerEvents {
 public:
  H2Session(DownstreamConnection& conn, const ListenerState& ls)
      : conn_(conn), writer_wake_(conn.worker_.io()), writer_done_(conn.worker_.io()), ls_(ls) {}
  // run() detaches every stream when it ends; a session torn down without finishing run() (its
  // coroutine destroyed at shutdown) still leaves no stream pointing at it.
  ~H2Session() { detach_all(false); }
  H2Session(const H2Session&) = delete;
  H2Session& operator=(const H2Session&) = delete;

  void on_request(int32_t stream, const h2::Request& rq) override;
  void on_local_answer(int32_t stream, int status, std::string_view reason,
                       std::span<const h2::Field> fields) override;
  void on_data(int32_t stream, std::span<const uint8_t> data) override {
    if (auto* s = find(stream)) s->on_data(data);
  }
  void on_trailers(int32_t stream, std::span<const h2::Field> t) override {
    if (auto* s = find(stream)) s->on_trailers(t);
  }
  void on_end_stream(int32_t stream) override {
    if (auto* s = find(stream)) s->on_end_stream();
  }
  void on_stream_close(int32_t stream, const h2::CloseInfo& info) override {
    std::shared_ptr<H2Stream>* slot = streams_.find(stream);
    if (slot == nullptr) return;
    const std::shared_ptr<H2Stream> s = *slot;  // the slot may move if on_closed changes the table
    s->on_closed(info.error_code != h2::kNoError || info.reset_by_peer);
    streams_.erase(stream);
  }
  h2::BodyRead on_body_read(int32_t stream, std::span<uint8_t> out) override {
    if (auto* s = find(stream)) return s->on_body_read(out);
    return {0, h2::BodyRead::Status::kEnd};
  }

  asio::awaitable<void> run(std::span<const uint8_t> first);
  asio::awaitable<void> writer();
  // Wakes the writer when it has something to do: output queued, or the session over (a read of
  // a request without a body, the most common, queues nothing: no wake-up for it).
  void wake_writer() {
    if (dead_ || !session_ || session_->want_write() || session_->done()) writer_wake_.notify();
  }
  void tick(Clock::time_point now);

  std::unique_ptr<h2::ServerSession> session_;
  bool dead_ = false;
  // One response-head parser for all streams (a head is parsed within one call; a stream whose
  // head is not complete yet parses again from its start when more arrives).
  http::HeadParser head_parser_{http::HeadParser::Limits{base::kBufferSize, http::kMaxHeaders}};
  std::unique_ptr<http::ResponseHead> head_scratch_;

  // Header-block buffers of finished streams, for the next requests' blocks: two allocations
  // (field buffer and views) less per request. At most kSpareHeads of at most 4 KiB, about 1 KiB
  // each for a usual head; freed at a tick that finds the connection without streams, so an idle
  // connection holds none.
  h2::FieldList take_head() {
    if (spare_heads_.empty()) return {};
    h2::FieldList f = std::move(spare_heads_.back());
    spare_heads_.pop_back();
    return f;
  }
  void give_head(h2::FieldList&& f) {
    if (spare_heads_.size() >= kSpareHeads || f.capacity_bytes() > 4096) return;
    f.clear();
    spare_heads_.push_back(std::move(f));
  }
  void link(H2Stream* st) {
    st->live_next_ = live_;
    if (live_ != nullptr) live_->live_prev_ = st;
    live_ = st;
  }
  // Every stream still alive, open or closed, forgets the session; wake: its waits end (not from
  // the destructor, which may run while the io_context shuts down).
  void detach_all(bool wake) {
    for (H2Stream* st = live_; st != nullptr;) {
      H2Stream* next = st->live_next_;
      st->detach(wake);
      st = next;
    }
    live_ = nullptr;
  }
  void unlink(H2Stream* st) {
    if (st->live_prev_ != nullptr) st->live_prev_->live_next_ = st->live_next_;
    if (st->live_next_ != nullptr) st->live_next_->live_prev_ = st->live_prev_;
    if (live_ == st) live_ = st->live_next_;
    st->live_prev_ = st->live_next_ = nullptr;
  }

 private:
  static constexpr size_t kSpareHeads = 16;
  std::vector<h2::FieldList> spare_heads_;
  H2Stream* live_ = nullptr;

  H2Stream* find(int32_t id) {
    std::shared_ptr<H2Stream>* slot = streams_.find(id);
    return slot == nullptr ? nullptr : slot->get();
  }

  DownstreamConnection& conn_;
  Wake writer_wake_;
  Wake writer_done_;
  bool writer_running_ = false;
  bool draining_ = false;
  const ListenerState& ls_;
  base::IdTable<std::shared_ptr<H2Stream>> streams_;
  h2::Counters reported_;
};

// ---- request side ----

void H2Session::on_request(int32_t id, const h2::Request& rq) {
  auto s = std::make_shared<H2Stream>(this, id, conn_.worker_.io());
  const h2::H1Framing framing = h2::h1_framing(rq.end_stream, rq.content_length);
  s->chunked_ = framing == h2::H1Framing::kChunked;
  s->in_end_ = rq.end_stream;
  s->head_request_ = rq.method == "HEAD";
  s->grpc_ = h2::is_grpc_request(rq.headers);
  s->keep_head(*session_, rq);
  std::optional<std::chrono::milliseconds> grpc_timeout;
  if (s->grpc_) {
    for (const h2::Field& f : rq.headers) {
      if (f.name != "grpc-timeout") continue;
      if (auto t = h2::parse_grpc_timeout(f.value)) {
        grpc_timeout = std::chrono::ceil<std::chrono::milliseconds>(*t);
      }
    }
  }
  auto c = std::make_unique<DownstreamConnection>(conn_.worker_, conn_.listener_index_, s.get(),
                                                  conn_.peer_, conn_.client_ip_);
  c->grpc_timeout_ = grpc_timeout;
  s->conn_ = c.get();
  link(s.get());
  streams_[id] = s;
  conn_.worker_.stats().listener(ls_.stats_id).h2[0].inc();
  conn_.worker_.spawn_stream(std::move(c), s);
}

// The session answered a request itself: counted and logged as the HTTP/1.1 side counts and logs
// its own 400s and 431s (DownstreamConnection::proxy).
void H2Session::on_local_answer(int32_t, int status, std::string_view reason,
                                std::span<const h2::Field> fields) {
  if (status == 431) {
    conn_.worker_.stats().limit(stats::Limit::kHeaderBytes).inc();
  } else {
    conn_.worker_.stats()
        .listener(ls_.stats_id)
        .bad_requests[static_cast<size_t>(stats::BadRequest::kMalformed)]
        .inc();
  }
  if (!conn_.worker_.access_log().enabled()) return;
  AccessLogEntry e;
  e.listener = ls_.listener->name;
  e.protocol = "HTTP/2";
  for (const h2::Field& f : fields) {
    if (f.name == ":method") e.method = f.value;
    else if (f.name == ":path") e.path = f.value;
    else if (f.name == ":authority" || (f.name == "host" && e.authority.empty())) e.authority = f.value;
  }
  if (conn_.peer_ && conn_.peer_->identity.known()) e.caller = conn_.peer_->caller;
  e.status = status;
  e.bytes_sent = reason.size() + 12;  // the body, "outrigger: REASON\n"
  conn_.worker_.access_log().append(e);
}

H2Stream::~H2Stream() {
  if (owner_ == nullptr) return;
  owner_->unlink(this);
  owner_->give_head(std::move(head_fields_));
}

void H2Stream::keep_head(h2::ServerSession& session, const h2::Request& rq) {
  if (owner_ != nullptr) head_fields_ = owner_->take_head();  // becomes the session's next one
  session.swap_header_block(&head_fields_);  // rq's views now point into head_fields_
  head_ = rq;
  head_size_ = rq.method.size() + rq.scheme.size() + rq.authority.size() + rq.path.size();
  for (const h2::Field& f : rq.headers) head_size_ += f.name.size() + f.value.size();
}

void H2Stream::on_data(std::span<const uint8_t> d) {
  if (in_pos_ == in_.size()) {
    in_.clear();
    in_pos_ = 0;
  }
  if (chunked_ && !d.empty()) {
    char hex[20];
    const int n = std::snprintf(hex, sizeof hex, "%zx\r\n", d.size());
    in_.append(hex, static_cast<size_t>(n));
  }
  in_.append(reinterpret_cast<const char*>(d.data()), d.size());
  if (chunked_ && !d.empty()) in_ += "\r\n";
  unconsumed_ += d.size();
  wake_.notify();
}

void H2Stream::on_trailers(std::span<const h2::Field> t) {
  if (!chunked_) return;  // a content-length body has no place for trailers in HTTP/1.1
  h2::append_h1_last_chunk(t, &in_);
  chunked_ = false;  // the last chunk is written
}

void H2Stream::on_end_stream() {
  if (chunked_) {
    h2::append_h1_last_chunk({}, &in_);
    chunked_ = false;
  }
  in_end_ = true;
  wake_.notify();
}

size_t H2Stream::read_ready(asio::mutable_buffer b) {
  if (in_pos_ >= in_.size()) return 0;
  const size_t n = std::min(b.size(), in_.size() - in_pos_);
  std::memcpy(b.data(), in_.data() + in_pos_, n);
  in_pos_ += n;
  // The pipeline took the bytes: let the client send more.
  if (unconsumed_ > 0 && owner_ != nullptr && owner_->session_) {
    owner_->session_->consume(id_, unconsumed_);
    unconsumed_ = 0;
    owner_->wake_writer();
  }
  return n;
}

asio::awaitable<net::IoResult> H2Stream::read(asio::mutable_buffer b) {
  for (int spins = 0; spins < 1'000'000; ++spins) {
    if (cancelled_) {
      cancelled_ = false;
      co_return net::IoResult{asio::error::operation_aborted, 0};
    }
    if (const size_t n = read_ready(b); n > 0) {
      co_return net::IoResult{boost::system::error_code(), n};
    }
    if (in_end_) co_return net::IoResult{asio::error::eof, 0};
    if (closed_) co_return net::IoResult{asio::error::connection_reset, 0};
    co_await wake_.wait();
  }
  co_return net::IoResult{asio::error::operation_aborted, 0};
}

// ---- response side ----

net::IoResult H2Stream::feed_all(std::span<const asio::const_buffer> b) {
  size_t total = 0;
  for (const auto& x : b) {
    if (closed_) return net::IoResult{asio::error::connection_reset, total};
    feed_response(static_cast<const char*>(x.data()), x.size());
    total += x.size();
  }
  return net::IoResult{boost::system::error_code(), total};
}

std::optional<net::IoResult> H2Stream::write_now(std::span<const asio::const_buffer> b) {
  if (out_.size() - out_pos_ + asio::buffer_size(b) > kMaxBufferedResponse) return std::nullopt;
  return feed_all(b);
}

asio::awaitable<net::IoResult> H2Stream::write(std::span<const asio::const_buffer> b) {
  const auto [fed_ec, total] = feed_all(b);
  if (fed_ec) co_return net::IoResult{fed_ec, total};
  // Backpressure: the client reads slower than the upstream sends.
  for (int spins = 0; spins < 1'000'000 && out_.size() - out_pos_ > kMaxBufferedResponse; ++spins) {
    if (closed_) co_return net::IoResult{asio::error::connection_reset, total};
    if (cancelled_) {
      cancelled_ = false;
      co_return net::IoResult{asio::error::operation_aborted, total};
    }
    co_await wake_.wait();
  }
  co_return net::IoResult{boost::system::error_code(), total};
}

// A local error (ours, or another outrigger's passed on by an upstream: it carries
// x-outrigger-reason) to a gRPC caller: trailers-only, with the gRPC code for the status.
void H2Stream::answer_grpc_error(int status, std::string_view reason) {
  h2::FieldList f;
  // Our own 504 is the caller's deadline (grpc-timeout) or the route's: DEADLINE_EXCEEDED.
  const h2::GrpcStatus code =
      status == 504 ? h2::GrpcStatus::kDeadlineExceeded : h2::grpc_status_for_http(status);
  h2::grpc_error_fields(code, reason, &f);
  owner_->session_->submit_response(id_, 200, f.fields(), false);
  head_done_ = true;
  ignore_rest_ = true;
  resp_done_ = true;
  owner_->wake_writer();
}

bool H2Stream::write_head(int status, std::span<const h2::Field> fields, http::BodyKind body,
                          uint64_t content_length) {
  if (ignore_rest_ || resp_done_ || head_done_ || owner_ == nullptr || !raw_.empty()) {
    return false;
  }
  return start_response(status, fields, body, content_length);
}

// The final response head, given as fields (write_head) or parsed from HTTP/1.1 bytes
// (feed_response). A gRPC caller gets a local error (one carrying x-outrigger-reason) as a
// trailers-only status and the rest of the response is ignored; anything else is submitted with
// its body framing. False when the stream failed.
bool H2Stream::start_response(int status, std::span<const h2::Field> fields, http::BodyKind body,
                              uint64_t content_length) {
  head_done_ = true;
  if (grpc_) {
    for (const h2::Field& f : fields) {
      if (f.name == "x-outrigger-reason") {
        answer_grpc_error(status, f.value);
        return true;
      }
    }
  }
  body_ = body;
  left_ = content_length;
  const bool has_body = body != http::BodyKind::kNone;
  if (!owner_->session_->submit_response(id_, status, fields, has_body)) {
    fail();
    return false;
  }
  if (body_ == http::BodyKind::kChunked) chunks_.reset();
  if (!has_body) resp_done_ = true;
  owner_->wake_writer();
  return true;
}

void H2Stream::feed_response(const char* p, size_t n) {
  if (ignore_rest_ || resp_done_ || owner_ == nullptr) return;
  if (head_done_ && raw_.empty() && body_ != http::BodyKind::kChunked) {
    // Body bytes after a typed head (the usual case): straight to out_, without staging them.
    const size_t before = out_.size() - out_pos_;
    take_plain_body({p, n});
    body_moved(before);
    return;
  }
  raw_.append(p, n);
  while (!head_done_) {
    if (!owner_->head_scratch_) owner_->head_scratch_ = std::make_unique<http::ResponseHead>();
    http::HeadParser& parser = owner_->head_parser_;
    parser.reset();
    const auto r = parser.parse_response(raw_, head_request_, owner_->head_scratch_.get());
    if (r == http::ParseResult::kNeedMore) return;
    if (r == http::ParseResult::kError) {
      fail();
      return;
    }
    const http::ResponseHead& rs = *owner_->head_scratch_;
    if (rs.status < 200) {  // interim: not forwarded over HTTP/2
      raw_.erase(0, rs.head_bytes);
      continue;
    }
    std::vector<h2::Field>& f = response_views();  // views into raw_, copied at once
    h2::h1_response_to_h2(rs, &f);
    if (!start_response(rs.status, f, rs.body, rs.content_length) || ignore_rest_) {
      return;  // failed, or answered as a gRPC error
    }
    raw_.erase(0, rs.head_bytes);
  }
  if (resp_done_) return;
  const size_t before = out_.size() - out_pos_;
  if (body_ == http::BodyKind::kChunked) {
    const auto r = chunks_.decode(raw_.data(), raw_.size());
    if (r.status == http::ChunkedDecoder::Status::kError) {
      fail();
      return;
    }
    out_.append(raw_, 0, r.data);
    raw_.erase(0, r.consumed);
    if (r.status == http::ChunkedDecoder::Status::kDone) {
      h2::FieldList t;
      h2::h1_trailers_to_h2(chunks_.trailers(), &t);
      if (!t.empty()) owner_->session_->submit_trailers(id_, t.fields());
      resp_done_ = true;
    }
  } else {
    raw_.erase(0, take_plain_body(raw_));
  }
  body_moved(before);
}

// Content-length or close-delimited body bytes to out_ (up to the length); returns how many.
size_t H2Stream::take_plain_body(std::string_view b) {
  size_t k = b.size();
  if (body_ == http::BodyKind::kContentLength) {
    k = static_cast<size_t>(std::min<uint64_t>(k, left_));
    left_ -= k;
    if (left_ == 0) resp_done_ = true;
  }
  out_.append(b.data(), k);  // until close: the pipeline ends the exchange to end the body
  return k;
}

// Data (or the end) was queued: let nghttp2 pull it.
void H2Stream::body_moved(size_t queued_before) {
  if (out_.size() - out_pos_ != queued_before || resp_done_) {
    owner_->session_->resume(id_);
    owner_->wake_writer();
  }
}

h2::BodyRead H2Stream::on_body_read(std::span<uint8_t> out) {
  const size_t avail = out_.size() - out_pos_;
  const size_t n = std::min(avail, out.size());
  std::memcpy(out.data(), out_.data() + out_pos_, n);
  out_pos_ += n;
  if (out_pos_ == out_.size()) {
    out_.clear();
    out_pos_ = 0;
  }
  if (avail - n <= kMaxBufferedResponse) wake_.notify();  // a waiting write may go on
  if (resp_done_ && out_pos_ == out_.size()) return {n, h2::BodyRead::Status::kEnd};
  if (n == 0) return {0, h2::BodyRead::Status::kDeferred};
  return {n, h2::BodyRead::Status::kData};
}

void H2Stream::fail() {
  ignore_rest_ = true;
  if (owner_ != nullptr && owner_->session_) {
    owner_->session_->reset_stream(id_, h2::kInternalError);
    owner_->wake_writer();
  }
}

void H2Stream::finish() {
  conn_ = nullptr;
  if (body_ == http::BodyKind::kUntilClose && head_done_ && !resp_done_ && owner_ != nullptr) {
    resp_done_ = true;  // the end of the exchange ends a close-delimited body
    owner_->session_->resume(id_);
    owner_->wake_writer();
    return;
  }
  if (!resp_done_ && !closed_) fail();
}

void H2Stream::on_closed(bool aborted) {
  closed_ = true;
  // The client reset the stream (or the connection failed it) before the response completed:
  // stop the work done for it.
  if (aborted && conn_ != nullptr && !resp_done_) conn_->abort();
  wake_.notify();
}

// ---- the connection ----

asio::awaitable<void> H2Session::writer() {
  writer_running_ = true;
  for (int rounds = 0;; ++rounds) {
    if (dead_) break;
    auto out = session_->pending_output();
    if (out.empty()) {
      if (session_->done()) break;
      co_await writer_wake_.wait();
      continue;
    }
    // No deadline of its own: the reader's idle timeout (armed while no stream is open) cancels a
    // write to a client that stopped reading, and each stream has its own deadlines.
    // In cleartext one non-blocking send first: an Asio write completes on a later turn of the
    // loop even when the socket took everything at once (net/send_now.h); only what the socket
    // did not take goes through it.
    const asio::const_buffer all(out.data(), out.size());
    size_t sent = 0;
    std::optional<net::IoResult> wrote;
    if (!conn_.tls_ && conn_.socket_) wrote = net::send_now(*conn_.socket_, {&all, 1}, &sent);
    if (!wrote) {
      wrote = co_await conn_.ds_write(asio::buffer(out.data() + sent, out.size() - sent));
      std::get<1>(*wrote) += sent;
    }
    auto [ec, n] = *wrote;
    if (ec) {
      dead_ = true;
      break;
    }
    session_->consume_output(n);
  }
  writer_running_ = false;
  // The reader may be blocked in a read: the connection is over.
  boost::system::error_code ignored;
  conn_.socket_->cancel(ignored);
  writer_done_.notify();
}

void H2Session::tick(Clock::time_point now) {
  if (streams_.empty() && !spare_heads_.empty()) spare_heads_ = {};
  if (conn_.close_ && !draining_ && session_) {
    draining_ = true;  // graceful: GOAWAY(2^31-1) + PING, then the final GOAWAY
    session_->begin_drain();
    wake_writer();
  }
}

asio::awaitable<void> H2Session::run(std::span<const uint8_t> first) {
  h2::Limits limits;
  limits.max_header_list_size =
      std::max<uint32_t>(ls_.listener->limits.max_request_headers_bytes, 4096);
  auto created = h2::ServerSession::create(this, limits);
  if (!created) co_return;
  session_ = std::move(*created);
  auto& lstats = conn_.worker_.stats().listener(ls_.stats_id);
  lstats.h2_connections.inc();
  asio::co_spawn(conn_.worker_.io(), writer(), asio::detached);
  bool ok = !first.empty() ? session_->feed(first).has_value() : true;
  wake_writer();
  if (conn_.rbuf_ == nullptr) conn_.rbuf_ = conn_.worker_.buffers().get();
  bool flush = false;  // end with what is queued written (a GOAWAY)
  for (int rounds = 0; ok && !dead_ && !session_->done(); ++rounds) {
    // Idle (no stream open): the listener's idle timeout ends the connection with GOAWAY.
    if (streams_.empty()) {
      conn_.arm(DownstreamConnection::Timeout::kIdle, ls_.listener->limits.idle_timeout);
    }
    auto [ec, n] = co_await conn_.ds_read(asio::buffer(conn_.rbuf_->data, base::kBufferSize));
    conn_.disarm();
    if (ec || n == 0) {
      if (ec == asio::error::operation_aborted && conn_.timed_out_ && streams_.empty() && !dead_) {
        session_->goaway(h2::kNoError);  // idle: say goodbye, the writer flushes and ends
        flush = true;
        conn_.timed_out_ = false;
      }
      break;
    }
    ok = session_->feed({reinterpret_cast<const uint8_t*>(conn_.rbuf_->data), n}).has_value();
    wake_writer();
  }
  // Let the writer flush what is queued after an abuse limit (GOAWAY) or an idle timeout; when
  // the peer stopped sending (EOF, error), what is still owed cannot be delivered.
  if (!ok) flush = true;
  for (int spins = 0; spins < 1'000'000 && writer_running_; ++spins) {
    if (!flush || !session_->want_write()) dead_ = true;
    writer_wake_.notify();
    co_await writer_done_.wait();
  }
  dead_ = true;
  // Fold the session's counters into the listener's.
  const h2::Counters& c = session_->counters();
  const uint64_t v[] = {
      c.invalid_headers,   c.header_list_too_large, c.refused_streams, c.peer_resets,
      c.rapid_reset,       c.continuation_flood,    c.settings_flood,  c.ping_flood,
      c.empty_frame_flood, c.connection_errors,     c.goaway_received, c.body_length_mismatch};
  for (size_t i = 0; i < std::size(v); ++i) lstats.h2[i + 1].inc(v[i]);
  for (auto& [id, s] : streams_) {
    if (s->conn_ != nullptr) s->conn_->abort();
  }
  detach_all(true);
  streams_.clear();
}

asio::awaitable<void> DownstreamConnection::serve_h2(std::span<const uint8_t> first) {
  const std::shared_ptr<const Snapshot> snap = worker_.snapshot();
  H2Session session(*this, snap->listeners[listener_index_]);
  h2_ = &session;
  co_await session.run(first);
  h2_ = nullptr;
}

void DownstreamConnection::h2_tick(Clock::time_point now) { h2_->tick(now); }

}  // namespace outrigger::server
