// A TLS stream of our own instead of asio::ssl::stream: OpenSSL reads ciphertext from, and writes
// it to, two plain buffers of ours through a small custom BIO, and the socket I/O is Asio's own
// (so reads keep Asio's speculative-read bookkeeping and writes go out in one syscall).
//
// What this saves against asio::ssl::stream (bench h1-mtls-upstream, callgrind): its engine runs
// a failing SSL_read before every socket read, clears the error queue three times per operation,
// copies every byte twice through a BIO pair, and composes each operation from several handlers.
// Here: one SSL_read_ex after each socket read, one SSL_write_ex per write, the error queue is
// touched only when an error happened, and the ciphertext is copied once each way.
#include "proxy/net/tls_stream.h"

#include <openssl/bio.h>
#include <openssl/err.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cstring>
#include <string>

#include "proxy/net/drain_read.h"
#include "proxy/net/send_now.h"

namespace outrigger::net {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {
constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);
// Room for one whole TLS record (16 KiB of plaintext plus header, padding and tag): a record
// never has to be read in more than one socket read when the kernel has it all.
constexpr size_t kReadBufferSize = 16 * 1024 + 512;
// A gathered write larger than this is handed to OpenSSL buffer by buffer instead of copied.
constexpr size_t kGatherLimit = 16 * 1024;
}  // namespace

struct TlsStream {
  TlsStream(asio::ip::tcp::socket& s, SSL* ssl_in) : socket(s), ssl(ssl_in) {}
  ~TlsStream() { SSL_free(ssl); }  // frees the BIO too
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  asio::ip::tcp::socket& socket;
  SSL* ssl;
  // Ciphertext received and not yet taken by OpenSSL: rbuf[rpos, rend).
  std::unique_ptr<char[]> rbuf;
  size_t rpos = 0;
  size_t rend = 0;
  bool eof = false;
  // Ciphertext OpenSSL produced and that is not sent yet; `sending` is the part in flight.
  std::string out;
  std::string sending;
  bool flushing = false;
  std::string gather;  // plaintext of one gathered write
  std::shared_ptr<const tls::ServerTls> server;
  std::shared_ptr<const tls::ClientTls> client;
};

namespace {

int bio_write(BIO* b, const char* data, size_t len, size_t* written) {
  auto* s = static_cast<TlsStream*>(BIO_get_data(b));
  s->out.append(data, len);
  *written = len;
  return 1;
}

int bio_read(BIO* b, char* data, size_t len, size_t* read) {
  auto* s = static_cast<TlsStream*>(BIO_get_data(b));
  const size_t avail = s->rend - s->rpos;
  if (avail == 0) {
    *read = 0;
    if (s->eof) {
      BIO_clear_retry_flags(b);
      return 0;
    }
    BIO_set_retry_read(b);
    return 0;
  }
  const size_t n = len < avail ? len : avail;
  std::memcpy(data, s->rbuf.get() + s->rpos, n);
  s->rpos += n;
  *read = n;
  return 1;
}

long bio_ctrl(BIO* b, int cmd, long num, void* ptr) {
  auto* s = static_cast<TlsStream*>(BIO_get_data(b));
  switch (cmd) {
    case BIO_CTRL_FLUSH:
      return 1;  // the owner flushes after every OpenSSL call that may write
    case BIO_CTRL_PENDING:
      return static_cast<long>(s->rend - s->rpos);
    case BIO_CTRL_WPENDING:
      return static_cast<long>(s->out.size());
    case BIO_CTRL_EOF:
      return s->eof && s->rpos == s->rend ? 1 : 0;
    default:
      return 0;
  }
}

int bio_create(BIO* b) {
  BIO_set_init(b, 1);
  return 1;
}

const BIO_METHOD* stream_bio_method() {
  static const BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "outrigger-stream");
    BIO_meth_set_write_ex(m, bio_write);
    BIO_meth_set_read_ex(m, bio_read);
    BIO_meth_set_ctrl(m, bio_ctrl);
    BIO_meth_set_create(m, bio_create);
    return m;
  }();
  return method;
}

TlsStreamPtr make_stream(asio::ip::tcp::socket& socket, SSL* ssl) {
  TlsStreamPtr s(new TlsStream(socket, ssl));
  BIO* bio = BIO_new(stream_bio_method());
  BIO_set_data(bio, s.get());
  SSL_set_bio(ssl, bio, bio);  // one reference, taken by the SSL
  // A record is built in OpenSSL's own buffer and copied out at once, so its buffers can be
  // released between records: an idle TLS connection then holds no 34 KiB of OpenSSL buffers.
  SSL_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
  return s;
}

// The error of a failed SSL call, as Asio's ssl::stream reported it (callers and
// tls::handshake_failure_reason compare against these), leaving the error queue empty.
error_code ssl_failure(int err) {
  if (err == SSL_ERROR_ZERO_RETURN) return asio::error::eof;
  const unsigned long first = ERR_get_error();
  ERR_clear_error();
  if (err == SSL_ERROR_SSL && first != 0 &&
      ERR_GET_REASON(first) != SSL_R_UNEXPECTED_EOF_WHILE_READING) {
    return error_code(static_cast<int>(first), asio::error::get_ssl_category());
  }
  return asio::ssl::error::stream_truncated;  // the peer closed without close_notify
}

// OpenSSL reads the error queue to classify a failure, so it must be empty before each call;
// peeking is cheaper than clearing, and the queue is almost always empty.
inline void clear_stale_errors() {
  if (ERR_peek_error() != 0) ERR_clear_error();
}

// Sends what OpenSSL produced. Only one flush runs at a time; a flush that finds another one
// running leaves its bytes to it (that one loops until `out` is empty), which keeps records in
// order when a read has to answer the peer while a write is on its way. So no other write is
// ever in flight on the socket, and a flush first tries one sendmsg itself (send_now): a record
// that fits the socket buffer, nearly every one, goes out without an Asio operation.
asio::awaitable<error_code> flush(TlsStream& s) {
  if (s.flushing) co_return error_code();
  s.flushing = true;
  error_code ec;
  while (!s.out.empty() && !ec) {
    s.sending.swap(s.out);
    s.out.clear();
    const asio::const_buffer all(s.sending.data(), s.sending.size());
    size_t sent = 0;
    if (const std::optional<IoResult> now = send_now(s.socket, {&all, 1}, &sent)) {
      ec = std::get<0>(*now);
      continue;
    }
    auto [wec, n] = co_await asio::async_write(s.socket, all + sent, use_nothrow);
    ec = wec;
  }
  s.flushing = false;
  // Large bodies pass through here; do not keep a big allocation per idle connection.
  if (s.sending.capacity() > (64u << 10)) std::string().swap(s.sending);
  co_return ec;
}

// Reads more ciphertext from the socket once OpenSSL has taken everything it had.
asio::awaitable<error_code> fill(TlsStream& s) {
  if (!s.rbuf) s.rbuf.reset(new char[kReadBufferSize]);
  s.rpos = s.rend = 0;
  auto [ec, n] =
      co_await async_read_drain(s.socket, asio::buffer(s.rbuf.get(), kReadBufferSize), use_nothrow);
  if (ec == asio::error::eof) {
    s.eof = true;  // OpenSSL sees it as the end of input and tells a clean close from a cut one
    co_return error_code();
  }
  s.rend = n;
  co_return ec;
}

}  // namespace

void TlsStreamDeleter::operator()(TlsStream* s) const noexcept { delete s; }

TlsStreamPtr make_server_stream(asio::ip::tcp::socket& socket,
                                std::shared_ptr<const tls::ServerTls> material) {
  TlsStreamPtr s = make_stream(socket, SSL_new(material->asio_context().native_handle()));
  SSL_set_accept_state(s->ssl);
  s->server = std::move(material);
  return s;
}

TlsStreamPtr make_client_stream(asio::ip::tcp::socket& socket, tls::SslPtr ssl,
                                std::shared_ptr<const tls::ClientTls> material) {
  TlsStreamPtr s = make_stream(socket, ssl.release());
  SSL_set_connect_state(s->ssl);
  s->client = std::move(material);
  return s;
}

SSL* native(TlsStream& s) noexcept { return s.ssl; }

size_t pending(TlsStream& s) noexcept {
  const int n = SSL_pending(s.ssl);
  return n > 0 ? static_cast<size_t>(n) : 0;
}

asio::awaitable<error_code> handshake(TlsStream& s, bool as_server) {
  (void)as_server;  // the role was set when the stream was made
  clear_stale_errors();
  for (int round = 0; round < 64; ++round) {
    const int r = SSL_do_handshake(s.ssl);
    const int err = r == 1 ? SSL_ERROR_NONE : SSL_get_error(s.ssl, r);
    error_code ec =
        err == SSL_ERROR_NONE || err == SSL_ERROR_WANT_READ ? error_code() : ssl_failure(err);
    // Flights (and alerts on failure) go out before waiting or returning.
    if (const error_code fec = co_await flush(s); fec && !ec) ec = fec;
    if (r == 1 || ec) co_return ec;
    if (s.eof) co_return asio::ssl::error::stream_truncated;
    if (const error_code rec = co_await fill(s)) co_return rec;
  }
  co_return asio::error::operation_aborted;  // a peer trickling handshake bytes without end
}

asio::awaitable<IoResult> read_some(TlsStream& s, asio::mutable_buffer b) {
  if (b.size() == 0) co_return IoResult{error_code(), 0};
  clear_stale_errors();
  // Nothing inside the session and nothing received: go to the socket first instead of a
  // failing SSL_read.
  if (s.rpos == s.rend && !s.eof && SSL_has_pending(s.ssl) == 0) {
    if (const error_code ec = co_await fill(s)) co_return IoResult{ec, 0};
  }
  for (;;) {
    size_t n = 0;
    const int r = SSL_read_ex(s.ssl, b.data(), b.size(), &n);
    if (r == 1) {
      // Reading may have made OpenSSL answer the peer (an alert or a key update).
      if (!s.out.empty()) co_await flush(s);
      co_return IoResult{error_code(), n};
    }
    const int err = SSL_get_error(s.ssl, r);
    if (err != SSL_ERROR_WANT_READ || s.eof) {
      const error_code ec = err == SSL_ERROR_WANT_READ
                                ? error_code(asio::ssl::error::stream_truncated)
                                : ssl_failure(err);
      if (!s.out.empty()) co_await flush(s);
      co_return IoResult{ec, 0};
    }
    if (!s.out.empty()) {
      if (const error_code ec = co_await flush(s)) co_return IoResult{ec, 0};
    }
    if (const error_code ec = co_await fill(s)) co_return IoResult{ec, 0};
  }
}

namespace {
// Encrypts into `out`; with our BIO a write never has to wait for the socket.
error_code encrypt(TlsStream& s, const void* data, size_t size) {
  size_t n = 0;
  if (size == 0) return error_code();
  const int r = SSL_write_ex(s.ssl, data, size, &n);
  if (r != 1) return ssl_failure(SSL_get_error(s.ssl, r));
  return error_code();
}
}  // namespace

asio::awaitable<IoResult> write(TlsStream& s, asio::const_buffer b) {
  clear_stale_errors();
  error_code ec = encrypt(s, b.data(), b.size());
  if (const error_code fec = co_await flush(s); fec && !ec) ec = fec;
  co_return IoResult{ec, ec ? 0 : b.size()};
}

asio::awaitable<IoResult> write(TlsStream& s, std::span<const asio::const_buffer> b) {
  clear_stale_errors();
  size_t total = 0;
  for (const auto& x : b) total += x.size();
  error_code ec;
  if (b.size() == 1 || total > kGatherLimit) {
    // Large: one record stream per buffer, no copy of the plaintext.
    for (const auto& x : b) {
      if ((ec = encrypt(s, x.data(), x.size()))) break;
    }
  } else {
    // Small: gathered, so a head and a short body become one record.
    s.gather.clear();
    for (const auto& x : b) s.gather.append(static_cast<const char*>(x.data()), x.size());
    ec = encrypt(s, s.gather.data(), s.gather.size());
  }
  if (const error_code fec = co_await flush(s); fec && !ec) ec = fec;
  co_return IoResult{ec, ec ? 0 : total};
}

asio::awaitable<void> shutdown(TlsStream& s) {
  clear_stale_errors();
  // close_notify out, then wait (a few reads at most) for the peer's.
  for (int round = 0; round < 8; ++round) {
    const int r = SSL_shutdown(s.ssl);
    const bool want_read = r == 0 || (r < 0 && SSL_get_error(s.ssl, r) == SSL_ERROR_WANT_READ);
    if (co_await flush(s) || !want_read || s.eof) break;
    // r == 0: ours is sent, the peer's not seen yet. Application data still arriving is read
    // and dropped by the next SSL_shutdown.
    if (co_await fill(s)) break;
  }
  ERR_clear_error();
}

}  // namespace outrigger::net
