// A small, self-contained HTTP/1.1 server for the admin endpoints (/metrics, /ready, ...).
//
// Thread affinity: everything runs on the io_context given to the constructor, which the proxy
// runs on its main thread; every member function must be called from that thread (or before the
// io_context runs). Handlers are called on that thread too, so they must be quick: the admin
// port shares the main thread with signals, reload and DNS.
//
// Deliberately independent of the data-path HTTP codec: the admin port must keep answering (for
// health checks and scrapes) even while the data path's parser is being changed or is the thing
// under investigation. Only GET and HEAD, no request bodies, no chunked responses.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace outrigger::admin {

struct AdminState;  // admin_server.cc

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

// Called with the raw (not percent-decoded) path and query of the request target; the query
// excludes the '?'. A handler that throws produces a 500.
using Handler = std::function<Response(std::string_view path, std::string_view query)>;

class AdminServer {
 public:
  struct Options {
    // From the first byte of a request head (or the accept) to its end; then 408 and close.
    std::chrono::milliseconds header_timeout{5000};
    // Keep-alive connection with no request in progress; closed silently after this.
    std::chrono::milliseconds idle_timeout{60000};
    // A response the client does not read within this is abandoned.
    std::chrono::milliseconds write_timeout{10000};
    // After the last response, unread input is drained for up to this long before the close,
    // so the client reads the response instead of a reset.
    std::chrono::milliseconds linger_timeout{1000};
    size_t max_head_bytes = 8192;  // request line + headers; beyond it 431
    size_t max_connections = 64;   // beyond it accepting pauses until one closes
  };

  // Binds and listens with SO_REUSEADDR; throws boost::system::system_error on failure (startup).
  AdminServer(boost::asio::io_context& io, boost::asio::ip::tcp::endpoint listen);
  AdminServer(boost::asio::io_context& io, boost::asio::ip::tcp::endpoint listen, Options options);
  ~AdminServer();  // stop()
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Exact path match ("/metrics"); GET and HEAD only, other methods get 405 with Allow.
  void handle(std::string path, Handler h);
  // The bound address, with the real port when bound to port 0.
  boost::asio::ip::tcp::endpoint local_endpoint() const;
  void start();
  // Closes the acceptor and every connection; pending handlers then complete with errors. A
  // handler that calls stop() closes its own connection unanswered: post the stop instead.
  void stop();

 private:
  std::shared_ptr<AdminState> state_;  // shared with the connections, which may outlive this object
};

}  // namespace outrigger::admin
