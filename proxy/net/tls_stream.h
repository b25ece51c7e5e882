// A TLS session over a TCP socket the caller owns, behind a small non-template interface, so the
// data path branches "TLS or plain" at each read and write without instantiating Asio's SSL
// templates in every file (they are compiled once, in tls_stream.cc).
//
// Thread affinity: the stream belongs to one connection on one worker; at most one read and one
// write may be outstanding at a time (Asio's rule for ssl::stream).
#pragma once

#include <openssl/ssl.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>
#include <cstddef>
#include <memory>
#include <span>
#include <tuple>

#include "proxy/tls/context.h"

namespace outrigger::net {

struct TlsStream;
struct TlsStreamDeleter {
  void operator()(TlsStream* s) const noexcept;
};
using TlsStreamPtr = std::unique_ptr<TlsStream, TlsStreamDeleter>;
using IoResult = std::tuple<boost::system::error_code, size_t>;

// Inbound: a server-side session using the listener's current material (kept alive by the stream).
TlsStreamPtr make_server_stream(boost::asio::ip::tcp::socket& socket,
                                std::shared_ptr<const tls::ServerTls> material);
// Outbound: adopts an SSL made by ClientTls::new_ssl (SNI, session and SAN checks already set).
TlsStreamPtr make_client_stream(boost::asio::ip::tcp::socket& socket, tls::SslPtr ssl,
                                std::shared_ptr<const tls::ClientTls> material);

SSL* native(TlsStream& s) noexcept;

// The handshake as the server (inbound) or the client (outbound). Cancelling the socket aborts it.
boost::asio::awaitable<boost::system::error_code> handshake(TlsStream& s, bool as_server);
// Like socket.async_read_some: (error, bytes). Returns buffered plaintext without socket I/O when
// the session already holds some.
boost::asio::awaitable<IoResult> read_some(TlsStream& s, boost::asio::mutable_buffer b);
// Writes all buffers (the span's storage must outlive the co_await); they are gathered into one TLS record stream (at most ~16 KiB per record)
// so a head and a body slice do not become separate records and separate syscalls.
boost::asio::awaitable<IoResult> write(TlsStream& s, std::span<const boost::asio::const_buffer> b);
boost::asio::awaitable<IoResult> write(TlsStream& s, boost::asio::const_buffer b);
// Sends close_notify and waits for the peer's (bounded by the caller cancelling the socket):
// without it OpenSSL 3 clients treat the close as an error, drop the session and cannot tell a
// complete response from a truncated one.
boost::asio::awaitable<void> shutdown(TlsStream& s);
// Plaintext bytes decrypted and waiting inside the session.
size_t pending(TlsStream& s) noexcept;

}  // namespace outrigger::net
