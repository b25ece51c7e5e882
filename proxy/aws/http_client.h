// A minimal HTTP/1.1 GET client over Boost.Asio for the link-local AWS endpoints the sidecar
// talks to (container credentials, task metadata): one request per connection, a single deadline
// from connect to last byte, a bounded response, Content-Length, chunked or close-delimited bodies.
//
// Thread affinity: an HttpCall runs on the io_context passed to http_get; call cancel() there and
// expect the callback there. No DNS: the host must be an IP literal or "localhost", which is all
// these endpoints use and keeps a resolver off the main thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace boost::asio {
class io_context;
}

namespace outrigger::aws {

struct HttpTarget {
  std::string host;  // IP literal (IPv6 without brackets) or "localhost"
  uint16_t port = 80;
  std::string target;  // origin-form: "/path?query"
};

// Parses "http://host[:port][/path[?query]]". https, user info, fragments and names that are not
// an IP literal or localhost are refused with a message saying so.
std::expected<HttpTarget, std::string> parse_http_url(std::string_view url);

struct HttpResult {
  int status = 0;
  std::string body;
};

struct HttpGetOptions {
  std::chrono::milliseconds timeout{2000};  // connect + request + whole response
  size_t max_response_bytes = 64 * 1024;    // head + body; beyond it the call fails
};

class HttpCall {
 public:
  virtual ~HttpCall() = default;
  // Abandons the call: the socket closes and the callback is never called.
  virtual void cancel() = 0;
};

using HttpCallback = std::function<void(std::expected<HttpResult, std::string>)>;

// Starts a GET; the callback runs exactly once (unless cancelled), never from within http_get.
// Header values with CR or LF fail the call. Error messages name the endpoint and the cause, never
// a header value (the Authorization header carries a secret).
std::shared_ptr<HttpCall> http_get(boost::asio::io_context& io, const HttpTarget& target,
                                   std::span<const std::pair<std::string, std::string>> headers,
                                   const HttpGetOptions& options, HttpCallback callback);

}  // namespace outrigger::aws
