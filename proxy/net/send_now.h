// send_now: a plain TCP write done at once when the socket takes it, without an Asio operation.
//
// Asio completes even a write that went out at once by posting its handler: an operation
// allocated, queued and run on a later turn of the event loop, about 650 instructions per write
// (h1 bench case, callgrind), and each extra turn can cost an epoll_wait. Most writes of a proxy
// (a request head to a pooled upstream, a small response to a client) fit the socket buffer, so
// the exchange first tries one sendmsg itself and only waits through Asio when the socket is full.
//
// Only for sockets with no other write in flight (an HTTP/1.1 exchange writes in turn).
#pragma once

#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstddef>
#include <optional>
#include <span>

#include "proxy/net/tls_stream.h"

namespace outrigger::net {

// One non-blocking sendmsg of all of b. The result when everything went out or the send failed;
// nullopt when the socket's buffer filled first, with *sent set to the bytes that did go (the
// caller writes the rest, skip_bytes(b, *sent, ...), with async_write).
std::optional<IoResult> send_now(boost::asio::ip::tcp::socket& s,
                                 std::span<const boost::asio::const_buffer> b, size_t* sent);

// b without its first `skip` bytes, built in `room` (which must hold b.size() pieces).
std::span<const boost::asio::const_buffer> skip_bytes(std::span<const boost::asio::const_buffer> b,
                                                      size_t skip,
                                                      std::span<boost::asio::const_buffer> room);

}  // namespace outrigger::net
