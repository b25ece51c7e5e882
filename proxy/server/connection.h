// One downstream HTTP/1.1 connection: reads requests, routes them, forwards each to an upstream
// connection from the worker's pool and streams the response back, in order, with backpressure.
//
// Thread affinity: worker-local. The connection is owned by its coroutine; the worker keeps an
// intrusive list of live connections so its tick can enforce deadlines and drain.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "proxy/base/buffer.h"
#include "proxy/h2/fields.h"
#include "proxy/http/h1.h"
#include "proxy/net/tls_stream.h"
#include "proxy/server/snapshot.h"
#include "proxy/server/stream_io.h"
#include "proxy/tls/identity.h"
#include "proxy/upstream/pool.h"

namespace outrigger::server {

class Worker;
struct Exchange;
class H2Session;

// The calling worker's vector for a response head handed to an HTTP/2 stream as field views,
// cleared on each call: the stream copies the fields before write_head()/start_response()
// returns, so one vector per worker serves every stream and stays warm in cache.
std::vector<h2::Field>& response_views();

// The verified caller of a TLS connection (shared by the streams of an HTTP/2 connection).
struct Peer {
  tls::Identity identity;
  std::string caller;  // "account/service" for the access log
  std::string xfcc;    // the identity header's value; "" = send none
};

class DownstreamConnection {
 public:
  using tcp = boost::asio::ip::tcp;
  using Clock = std::chrono::steady_clock;

  DownstreamConnection(Worker& worker, size_t listener_index, tcp::socket socket);
  // One HTTP/2 stream of an h2 connection, served as a single HTTP/1.1 exchange over `io`.
  DownstreamConnection(Worker& worker, size_t listener_index, StreamIo* io,
                       std::shared_ptr<const Peer> peer, std::string client_ip);
  ~DownstreamConnection();
  DownstreamConnection(const DownstreamConnection&) = delete;
  DownstreamConnection& operator=(const DownstreamConnection&) = delete;

  // A connection's whole life (sockets and TLS; an HTTP/2 stream's is stream_exchange()).
  static boost::asio::awaitable<void> serve(std::unique_ptr<DownstreamConnection> self);
  // An HTTP/2 stream's one exchange, spawned as it is (no serve() frame around it); the spawn's
  // completion calls finish_stream(), which resets the stream if its response is incomplete.
  boost::asio::awaitable<void> stream_exchange() { return run(); }
  void finish_stream();

  // Worker tick: fires a passed deadline by cancelling whatever the connection waits on, and
  // lets a long-idle connection give its buffer back.
  void on_tick(Clock::time_point now);
  // Drain started: an idle connection is closed; a busy one answers with Connection: close.
  void on_drain();
  // Worker stopping (drain timeout): close every socket so the coroutine unwinds on its own.
  void abort();

  DownstreamConnection* prev_ = nullptr;
  DownstreamConnection* next_ = nullptr;

 private:
  enum class Timeout : uint8_t { kNone, kIdle, kHeader, kBody, kConnect, kPoolWait, kResponse,
                                 kExpect, kStream, kHandshake };
  struct Upstream;
  friend class H2Session;
  // HTTP/2 on this connection (ALPN h2, or the h2c preface): streams become stream-mode
  // connections; `first` holds bytes already read.
  boost::asio::awaitable<void> serve_h2(std::span<const uint8_t> first);

  boost::asio::awaitable<net::IoResult> ds_read(boost::asio::mutable_buffer b);
  boost::asio::awaitable<net::IoResult> ds_write(std::span<const boost::asio::const_buffer> b);
  boost::asio::awaitable<net::IoResult> ds_write(boost::asio::const_buffer b);
  boost::asio::awaitable<bool> tls_accept(const ListenerState& ls);

  enum class Opening : uint8_t { kHttp1, kClosed };
  boost::asio::awaitable<Opening> open();
  boost::asio::awaitable<void> run();
  boost::asio::awaitable<bool> wait_for_request();
  void take_stream_bytes();
  boost::asio::awaitable<int> wait_tls_lean();
  boost::asio::awaitable<bool> read_downstream(Timeout kind, std::chrono::milliseconds d);
  boost::asio::awaitable<bool> proxy(Exchange& ex, const Snapshot& snap);
  boost::asio::awaitable<bool> forward(Exchange& ex, const Snapshot& snap, const ListenerState& ls,
                                       const ClusterState& cluster);
  boost::asio::awaitable<void> send_local(Exchange& ex, int status, std::string_view reason,
                                          bool close, std::string_view extra_headers = {});
  // An upgraded connection (WebSocket): bytes both ways between the client and `up` until both
  // have closed, or one fails, or nothing moves for `idle`. `from_client` holds what the client
  // sent after its handshake.
  struct TunnelBack;
  boost::asio::awaitable<void> tunnel(Exchange& ex, upstream::Connection& up,
                                      std::chrono::milliseconds idle, size_t from_client);
  boost::asio::awaitable<void> tunnel_back(Exchange& ex, upstream::Connection& up,
                                           std::chrono::milliseconds idle,
                                           std::shared_ptr<TunnelBack> back);

  void arm(Timeout kind, std::chrono::milliseconds d);
  void disarm() { timeout_ = Timeout::kNone; }
  void cancel_io();
  void compact() noexcept;
  void release_buffer() noexcept;

  Worker& worker_;
  size_t listener_index_;
  // The client's socket; none in stream mode (an HTTP/2 stream), which saves constructing one per
  // stream (Asio looks its service up under a mutex: ~250 instructions per stream).
  std::optional<tcp::socket> socket_;
  net::TlsStreamPtr tls_;        // TLS listeners only
  std::shared_ptr<const Peer> peer_;  // after a TLS handshake
  StreamIo* sio_ = nullptr;            // stream mode (HTTP/2 stream), else null
  H2Session* h2_ = nullptr;            // this connection speaks HTTP/2
  std::optional<std::chrono::milliseconds> grpc_timeout_;  // stream mode: grpc-timeout
  void h2_tick(Clock::time_point now);
  std::string client_ip_;
  base::Buffer* rbuf_ = nullptr;
  size_t rbeg_ = 0, rend_ = 0;
  size_t pin_ = 0;  // compact() keeps rbuf_[0, pin_) in place (see forward())
  Clock::time_point deadline_{};  // max(): armed, the countdown starts at the next tick
  std::chrono::milliseconds arm_for_{};
  Clock::time_point idle_since_{};
  Timeout timeout_ = Timeout::kNone;
  bool timed_out_ = false;
  bool idle_ = false;            // waiting for the first byte of a request
  bool lean_requested_ = false;  // tick asked an idle connection to give its buffer back
  bool close_ = false;           // drain or an error: no further request on this connection
  uint64_t requests_ = 0;
  upstream::Connection* active_upstream_ = nullptr;  // for cancellation
  boost::asio::steady_timer* wait_timer_ = nullptr;  // pool wait, for cancellation
};

}  // namespace outrigger::server
