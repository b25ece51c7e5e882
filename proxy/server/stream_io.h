// The byte stream a DownstreamConnection serves when it is not a socket: one HTTP/2 stream,
// presented to the HTTP/1.1 request pipeline as an HTTP/1.1 exchange (see h2_downstream.cc). The
// pipeline reads the request as HTTP/1.1 bytes and writes the response as HTTP/1.1 bytes; the
// implementation translates both to and from HTTP/2 frames.
//
// Thread affinity: worker-local, like the connection that uses it.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <optional>
#include <span>

#include "proxy/h2/fields.h"
#include "proxy/http/h1.h"
#include "proxy/net/tls_stream.h"

namespace outrigger::server {

class StreamIo {
 public:
  // Like socket.async_read_some: request bytes, (eof, 0) at the end of the request.
  virtual boost::asio::awaitable<net::IoResult> read(boost::asio::mutable_buffer b) = 0;
  // The request bytes already buffered, copied without waiting (0: none yet). With a typed
  // head (request_head) these are body bytes only, framed as HTTP/1.1 (chunked when the request
  // had no content-length).
  virtual size_t read_ready(boost::asio::mutable_buffer b) = 0;
  // The request head, made from the stream's fields without HTTP/1.1 text in between (views
  // into the stream, valid while it lives). False when it has more fields than an
  // http::RequestHead holds. *size: the head's size as names and values (for limits and the
  // access log's bytes_received).
  virtual bool request_head(http::RequestHead* out, size_t* size) = 0;
  // Like async_write: all response bytes are taken (or an error: the stream is gone).
  virtual boost::asio::awaitable<net::IoResult> write(
      std::span<const boost::asio::const_buffer> b) = 0;
  virtual boost::asio::awaitable<net::IoResult> write(boost::asio::const_buffer b) = 0;
  // write() when it would not have to wait: the bytes are taken at once (or the stream is gone)
  // and the result returned without a coroutine; nullopt when they would go over the stream's
  // buffer (then call write(), which waits for the client to read).
  virtual std::optional<net::IoResult> write_now(std::span<const boost::asio::const_buffer> b) = 0;
  // The final response head as fields, instead of as HTTP/1.1 bytes through write() (which the
  // stream would parse again): the body then written is framed as `body` says (kContentLength:
  // content_length bytes, kChunked: HTTP/1.1 chunks with their trailers, kNone: nothing).
  // Interim heads still go through write(). False: the stream is gone or already has a head.
  virtual bool write_head(int status, std::span<const h2::Field> fields, http::BodyKind body,
                          uint64_t content_length) = 0;
  // A deadline fired or the worker stops: the pending read or write returns operation_aborted.
  virtual void cancel() = 0;
  // The exchange is over (the connection serving it ends): an incomplete response resets the
  // stream.
  virtual void finish() = 0;

 protected:
  ~StreamIo() = default;
};

}  // namespace outrigger::server
