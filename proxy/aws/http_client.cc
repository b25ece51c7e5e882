#include "proxy/aws/http_client.h"

#include <openssl/crypto.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <charconv>

#include "proxy/base/text.h"

namespace outrigger::aws {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

using base::iequals;

enum class Parse { kIncomplete, kDone, kError };

// Decodes a chunked body from in (everything after the head). Done when the last chunk and the
// trailers have arrived.
Parse decode_chunked(std::string_view in, std::string& out, std::string& error) {
  out.clear();
  size_t pos = 0;
  for (;;) {
    size_t eol = in.find("\r\n", pos);
    if (eol == std::string_view::npos) return Parse::kIncomplete;
    std::string_view line = in.substr(pos, eol - pos);
    line = line.substr(0, line.find(';'));
    line = base::trim_ows(line);
    size_t size = 0;
    auto r = std::from_chars(line.data(), line.data() + line.size(), size, 16);
    if (line.empty() || r.ec != std::errc() || r.ptr != line.data() + line.size()) {
      error = "malformed chunk size";
      return Parse::kError;
    }
    pos = eol + 2;
    if (size == 0) {
      // Trailers, then an empty line.
      for (;;) {
        size_t t = in.find("\r\n", pos);
        if (t == std::string_view::npos) return Parse::kIncomplete;
        if (t == pos) return Parse::kDone;
        pos = t + 2;
      }
    }
    if (in.size() - pos < size + 2) return Parse::kIncomplete;
    out.append(in.substr(pos, size));
    if (in.substr(pos + size, 2) != "\r\n") {
      error = "malformed chunk";
      return Parse::kError;
    }
    pos += size + 2;
  }
}

class GetOp final : public HttpCall, public std::enable_shared_from_this<GetOp> {
 public:
  GetOp(asio::io_context& io, HttpGetOptions options, HttpCallback cb, std::string name)
      : socket_(io), timer_(io), options_(options), cb_(std::move(cb)), name_(std::move(name)) {}

  // The response may carry credentials: wiped, not just freed.
  ~GetOp() override {
    wipe_request();
    if (!response_.empty()) OPENSSL_cleanse(response_.data(), response_.size());
  }

  void start(const tcp::endpoint& ep) {
    auto self = shared_from_this();
    timer_.expires_after(options_.timeout);
    timer_.async_wait([self](boost::system::error_code ec) {
      if (!ec)
        self->fail("timed out after " + std::to_string(self->options_.timeout.count()) + " ms");
    });
    socket_.async_connect(ep, [self](boost::system::error_code ec) {
      if (self->done_) return;
      if (ec) return self->fail("connect: " + ec.message());
      asio::async_write(self->socket_, asio::buffer(self->request_),
                        [self](boost::system::error_code ec, size_t) {
                          self->wipe_request();
                          if (self->done_) return;
                          if (ec) return self->fail("write: " + ec.message());
                          self->read();
                        });
    });
  }

  void fail_soon(std::string why) {
    auto self = shared_from_this();
    asio::post(socket_.get_executor(),
               [self, why = std::move(why)]() mutable { self->fail(std::move(why)); });
  }

  void cancel() override {
    done_ = true;
    cb_ = nullptr;
    close();
  }

  std::string request_;

 private:
  void read() {
    auto self = shared_from_this();
    size_t room = options_.max_response_bytes + 1 - response_.size();
    size_t chunk = std::min<size_t>(room, 16 * 1024);
    size_t old = response_.size();
    response_.resize(old + chunk);
    socket_.async_read_some(asio::buffer(response_.data() + old, chunk),
                            [self, old](boost::system::error_code ec, size_t n) {
                              self->response_.resize(old + n);
                              if (self->done_) return;
                              bool eof = ec == asio::error::eof;
                              if (ec && !eof) return self->fail("read: " + ec.message());
                              self->on_bytes(eof);
                            });
  }

  void on_bytes(bool eof) {
    if (response_.size() > options_.max_response_bytes) {
      return fail("response larger than " + std::to_string(options_.max_response_bytes) + " bytes");
    }
    if (!head_parsed_) {
      size_t end = response_.find("\r\n\r\n");
      if (end == std::string::npos) {
        if (eof) return fail("connection closed before the response head ended");
        return read();
      }
      body_start_ = end + 4;
      if (std::string err = parse_head(std::string_view(response_).substr(0, end)); !err.empty()) {
        return fail(err);
      }
      head_parsed_ = true;
    }
    std::string_view body = std::string_view(response_).substr(body_start_);
    HttpResult result;
    result.status = status_;
    if (chunked_) {
      std::string err;
      switch (decode_chunked(body, result.body, err)) {
        case Parse::kDone:
          return succeed(std::move(result));
        case Parse::kError:
          return fail(err);
        case Parse::kIncomplete:
          if (eof) return fail("connection closed inside a chunked body");
          return read();
      }
    }
    if (content_length_ >= 0) {
      if (body.size() >= static_cast<size_t>(content_length_)) {
        result.body.assign(body.substr(0, static_cast<size_t>(content_length_)));
        return succeed(std::move(result));
      }
      if (eof) return fail("connection closed before the body ended");
      return read();
    }
    if (eof) {
      result.body.assign(body);
      return succeed(std::move(result));
    }
    read();
  }

  std::string parse_head(std::string_view head) {
    size_t eol = head.find("\r\n");
    std::string_view status_line = head.substr(0, eol);
    if (status_line.size() < 12 || !status_line.starts_with("HTTP/1.") || status_line[8] != ' ') {
      return "malformed status line";
    }
    auto r = std::from_chars(status_line.data() + 9, status_line.data() + 12, status_);
    if (r.ec != std::errc() || r.ptr != status_line.data() + 12 || status_ < 100 || status_ > 599) {
      return "malformed status code";
    }
    if (status_ < 200) return "unexpected interim response";
    std::string_view rest =
        eol == std::string_view::npos ? std::string_view() : head.substr(eol + 2);
    while (!rest.empty()) {
      size_t e = rest.find("\r\n");
      std::string_view line = rest.substr(0, e);
      rest = e == std::string_view::npos ? std::string_view() : rest.substr(e + 2);
      size_t colon = line.find(':');
      if (colon == std::string_view::npos || colon == 0) return "malformed header line";
      std::string_view name = line.substr(0, colon);
      std::string_view value = base::trim_ows(line.substr(colon + 1));
      if (iequals(name, "content-length")) {
        long long n = -1;
        auto cr = std::from_chars(value.data(), value.data() + value.size(), n);
        if (cr.ec != std::errc() || cr.ptr != value.data() + value.size() || n < 0 ||
            (content_length_ >= 0 && content_length_ != n)) {
          return "malformed Content-Length";
        }
        content_length_ = n;
      } else if (iequals(name, "transfer-encoding")) {
        if (!iequals(value, "chunked")) return "unsupported Transfer-Encoding";
        chunked_ = true;
      }
    }
    if (chunked_ && content_length_ >= 0) return "both Content-Length and chunked";
    return {};
  }

  void succeed(HttpResult r) { finish(std::move(r)); }
  void fail(std::string why) { finish(std::unexpected(name_ + ": " + why)); }

  void finish(std::expected<HttpResult, std::string> r) {
    if (done_) return;
    done_ = true;
    close();
    if (auto cb = std::move(cb_)) {
      cb_ = nullptr;
      cb(std::move(r));
    }
  }

  void close() {
    boost::system::error_code ignored;
    timer_.cancel();
    socket_.close(ignored);
  }

  // The request may carry the endpoint's authorization token.
  void wipe_request() {
    if (!request_.empty()) OPENSSL_cleanse(request_.data(), request_.size());
    request_.clear();
  }

  tcp::socket socket_;
  asio::steady_timer timer_;
  HttpGetOptions options_;
  HttpCallback cb_;
  std::string name_;
  std::string response_;
  bool done_ = false;
  bool head_parsed_ = false;
  bool chunked_ = false;
  size_t body_start_ = 0;
  long long content_length_ = -1;
  int status_ = 0;
};

}  // namespace

std::expected<HttpTarget, std::string> parse_http_url(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  if (url.size() >= 8 && iequals(url.substr(0, 8), "https://")) {
    return std::unexpected(
        "https endpoints are not supported (only plain http to link-local or "
        "loopback addresses)");
  }
  if (url.size() < kScheme.size() || !iequals(url.substr(0, kScheme.size()), kScheme)) {
    return std::unexpected("URL must start with http://");
  }
  std::string_view rest = url.substr(kScheme.size());
  size_t slash = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, slash);
  std::string_view target =
      slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  if (target.find('#') != std::string_view::npos) return std::unexpected("URL has a fragment");
  if (authority.find('@') != std::string_view::npos) return std::unexpected("URL has user info");
  HttpTarget t;
  std::string_view host = authority;
  std::string_view port;
  if (authority.starts_with('[')) {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return std::unexpected("unterminated [IPv6] host");
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return std::unexpected("junk after [IPv6] host");
      port = after.substr(1);
    }
  } else if (size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty()) return std::unexpected("URL has no host");
  if (!port.empty() || authority.ends_with(':')) {
    unsigned p = 0;
    auto r = std::from_chars(port.data(), port.data() + port.size(), p);
    if (port.empty() || r.ec != std::errc() || r.ptr != port.data() + port.size() || p == 0 ||
        p > 65535) {
      return std::unexpected("invalid port");
    }
    t.port = static_cast<uint16_t>(p);
  }
  if (!iequals(host, "localhost")) {
    boost::system::error_code ec;
    asio::ip::make_address(std::string(host), ec);
    if (ec) return std::unexpected("host must be an IP address or localhost (no DNS lookups)");
  }
  for (char c : target) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      return std::unexpected("URL path has spaces or control characters");
    }
  }
  t.host = std::string(host);
  t.target = target.empty() ? "/" : std::string(target);
  if (t.target.front() == '?') t.target.insert(0, "/");
  return t;
}

std::shared_ptr<HttpCall> http_get(asio::io_context& io, const HttpTarget& target,
                                   std::span<const std::pair<std::string, std::string>> headers,
                                   const HttpGetOptions& options, HttpCallback callback) {
  bool v6 = target.host.find(':') != std::string::npos;
  std::string authority = v6 ? "[" + target.host + "]" : target.host;
  if (target.port != 80) authority += ":" + std::to_string(target.port);
  auto op = std::make_shared<GetOp>(io, options, std::move(callback),
                                    "GET http://" + authority + target.target);
  boost::system::error_code ec;
  auto addr = iequals(target.host, "localhost") ? asio::ip::make_address("127.0.0.1")
                                                : asio::ip::make_address(target.host, ec);
  if (ec) {
    op->fail_soon("host is not an IP address");
    return op;
  }
  std::string& req = op->request_;
  req.reserve(256);
  req += "GET ";
  req += target.target;
  req += " HTTP/1.1\r\nHost: ";
  req += authority;
  req += "\r\nAccept: application/json\r\nConnection: close\r\nUser-Agent: outrigger\r\n";
  for (const auto& [name, value] : headers) {
    if (name.find_first_of("\r\n:") != std::string::npos ||
        value.find_first_of("\r\n") != std::string::npos) {
      op->fail_soon("header " + (name.find_first_of("\r\n") == std::string::npos ? name : "?") +
                    " has CR, LF or ':' in it");
      return op;
    }
    req += name;
    req += ": ";
    req += value;
    req += "\r\n";
  }
  req += "\r\n";
  op->start(tcp::endpoint(addr, target.port));
  return op;
}

}  // namespace outrigger::aws
