#include "proxy/net/tls_stream.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <string>

namespace outrigger::net {

namespace asio = boost::asio;
namespace {
constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);
}  // namespace

struct TlsStream {
  TlsStream(asio::ip::tcp::socket& socket, std::shared_ptr<const tls::ServerTls> m)
      : stream(socket, m->asio_context()), server(std::move(m)) {}
  TlsStream(asio::ip::tcp::socket& socket, tls::SslPtr ssl, std::shared_ptr<const tls::ClientTls> m)
      : stream(socket, ssl.release()), client(std::move(m)) {}
  asio::ssl::stream<asio::ip::tcp::socket&> stream;
  std::string wbuf;  // gathered plaintext of one write
  std::shared_ptr<const tls::ServerTls> server;
  std::shared_ptr<const tls::ClientTls> client;
};

void TlsStreamDeleter::operator()(TlsStream* s) const noexcept { delete s; }

TlsStreamPtr make_server_stream(asio::ip::tcp::socket& socket,
                                std::shared_ptr<const tls::ServerTls> material) {
  return TlsStreamPtr(new TlsStream(socket, std::move(material)));
}

TlsStreamPtr make_client_stream(asio::ip::tcp::socket& socket, tls::SslPtr ssl,
                                std::shared_ptr<const tls::ClientTls> material) {
  return TlsStreamPtr(new TlsStream(socket, std::move(ssl), std::move(material)));
}

SSL* native(TlsStream& s) noexcept { return s.stream.native_handle(); }

size_t pending(TlsStream& s) noexcept {
  const int n = SSL_pending(s.stream.native_handle());
  return n > 0 ? static_cast<size_t>(n) : 0;
}

asio::awaitable<boost::system::error_code> handshake(TlsStream& s, bool as_server) {
  auto [ec] = co_await s.stream.async_handshake(
      as_server ? asio::ssl::stream_base::server : asio::ssl::stream_base::client, use_nothrow);
  co_return ec;
}

asio::awaitable<void> shutdown(TlsStream& s) {
  auto [ec] = co_await s.stream.async_shutdown(use_nothrow);
  (void)ec;  // the peer may be gone already: nothing to do about it
}

asio::awaitable<IoResult> read_some(TlsStream& s, asio::mutable_buffer b) {
  co_return co_await s.stream.async_read_some(b, use_nothrow);
}

asio::awaitable<IoResult> write(TlsStream& s, asio::const_buffer b) {
  co_return co_await asio::async_write(s.stream, b, use_nothrow);
}

asio::awaitable<IoResult> write(TlsStream& s, std::span<const asio::const_buffer> b) {
  if (b.size() == 1) co_return co_await asio::async_write(s.stream, b[0], use_nothrow);
  s.wbuf.clear();
  for (const auto& x : b) s.wbuf.append(static_cast<const char*>(x.data()), x.size());
  auto [ec, n] = co_await asio::async_write(s.stream, asio::buffer(s.wbuf), use_nothrow);
  // Large bodies pass through here; do not keep a big allocation per idle connection.
  if (s.wbuf.capacity() > (256u << 10)) std::string().swap(s.wbuf);
  co_return IoResult{ec, n};
}

}  // namespace outrigger::net
