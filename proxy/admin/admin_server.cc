#include "proxy/admin/admin_server.h"

#include <time.h>

#include <algorithm>
#include <array>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <charconv>
#include <cstring>
#include <ctime>
#include <expected>
#include <map>
#include <unordered_set>
#include <vector>

#include "proxy/http/h1.h"

namespace outrigger::admin {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

using base::iequals;
using base::trim_ows;

// ---- Request head parsing (RFC 9112), strict and allocation-free ------------------------------

struct Request {
  std::string_view method;
  std::string_view path;
  std::string_view query;
  bool http10 = false;
  bool keep_alive = true;
};

bool is_tchar(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c != 0 && std::strchr("!#$%&'*+-.^_`|~", c) != nullptr);
}

bool is_token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return is_tchar(c); });
}

// field-value: visible ASCII, obs-text, SP and HTAB; never CR, LF, NUL or other controls.
bool is_field_value(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return c == '\t' || (c >= 0x20 && c != 0x7f);
  });
}

// Next line of `rest` without its terminator; CRLF or a bare LF ends a line (RFC 9112 2.2).
std::string_view next_line(std::string_view& rest) {
  const size_t lf = rest.find('\n');
  std::string_view line = rest.substr(0, lf);
  rest.remove_prefix(lf == std::string_view::npos ? rest.size() : lf + 1);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

// `head` is the request line and header lines, without the empty line that ends them.
// The error is the status to answer with (400 or 505); the connection is closed after it.
std::expected<Request, int> parse_head(std::string_view head) {
  Request req;
  std::string_view rest = head;
  const std::string_view line = next_line(rest);

  // request-line = method SP request-target SP HTTP-version, single spaces only.
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    return std::unexpected(400);
  }
  req.method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (!is_token(req.method) || target.empty()) return std::unexpected(400);

  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' ||
      version[5] < '0' || version[5] > '9' || version[7] < '0' || version[7] > '9') {
    return std::unexpected(400);
  }
  if (version[5] != '1') return std::unexpected(505);
  const bool http10 = version[7] == '0';
  req.http10 = http10;
  req.keep_alive = !http10;

  // Visible ASCII only; a fragment never belongs in a request target.
  for (char ch : target) {
    const auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c >= 0x7f || c == '#') return std::unexpected(400);
  }
  // absolute-form (as sent to a proxy): keep only the path and query.
  if (target.front() != '/' && target != "*") {
    const size_t scheme_end = target.find("://");
    if (scheme_end == std::string_view::npos) return std::unexpected(400);
    if (!iequals(target.substr(0, scheme_end), "http") &&
        !iequals(target.substr(0, scheme_end), "https")) {
      return std::unexpected(400);
    }
    const size_t path_start = target.find_first_of("/?", scheme_end + 3);
    target =
        path_start == std::string_view::npos ? std::string_view("/") : target.substr(path_start);
    if (target.front() == '?') return std::unexpected(400);
  }
  const size_t q = target.find('?');
  req.path = target.substr(0, q);
  req.query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);

  int hosts = 0;
  bool has_length = false, has_te = false;
  uint64_t content_length = 0;
  bool conn_close = false, conn_keep_alive = false;
  while (!rest.empty()) {
    const std::string_view field = next_line(rest);
    if (field.empty()) return std::unexpected(400);  // the caller strips the final empty line
    if (field.front() == ' ' || field.front() == '\t') return std::unexpected(400);  // obs-fold
    const size_t colon = field.find(':');
    if (colon == std::string_view::npos) return std::unexpected(400);
    const std::string_view name = field.substr(0, colon);
    const std::string_view value = trim_ows(field.substr(colon + 1));
    // No whitespace is allowed between the name and the colon (RFC 9112 5.1).
    if (!is_token(name) || !is_field_value(value)) return std::unexpected(400);

    if (iequals(name, "host")) {
      ++hosts;
    } else if (iequals(name, "content-length")) {
      uint64_t n = 0;
      const auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (value.empty() || ec != std::errc() || p != value.data() + value.size()) {
        return std::unexpected(400);
      }
      if (has_length && n != content_length) return std::unexpected(400);
      has_length = true;
      content_length = n;
    } else if (iequals(name, "transfer-encoding")) {
      has_te = true;
    } else if (iequals(name, "connection")) {
      std::string_view tokens = value;
      while (!tokens.empty()) {
        const size_t comma = tokens.find(',');
        const std::string_view t = trim_ows(tokens.substr(0, comma));
        if (iequals(t, "close")) conn_close = true;
        if (iequals(t, "keep-alive")) conn_keep_alive = true;
        tokens.remove_prefix(comma == std::string_view::npos ? tokens.size() : comma + 1);
      }
    }
  }
  // HTTP/1.1 requires exactly one Host (RFC 9112 3.2); both framings at once is a smuggling shape.
  if ((!http10 && hosts != 1) || hosts > 1) return std::unexpected(400);
  if (has_length && has_te) return std::unexpected(400);

  if (http10) req.keep_alive = conn_keep_alive;
  if (conn_close) req.keep_alive = false;
  // Bodies are not read: the connection cannot be reused once one was announced.
  if (has_te || content_length > 0) req.keep_alive = false;
  return req;
}

// Where the head ends (index just past the empty line) in `buf`, or npos while incomplete.
size_t find_head_end(std::string_view buf) {
  for (size_t i = buf.find('\n'); i != std::string_view::npos; i = buf.find('\n', i + 1)) {
    if (i + 1 < buf.size() && buf[i + 1] == '\n') return i + 2;
    if (i + 2 < buf.size() && buf[i + 1] == '\r' && buf[i + 2] == '\n') return i + 3;
  }
  return std::string_view::npos;
}

// IMF-fixdate, e.g. "Sun, 06 Nov 1994 08:49:37 GMT" (RFC 9110 5.6.7).
std::string http_date() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[64];
  const size_t n = std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return std::string(buf, n);
}

Response plain(int status, std::string body) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

class Connection;

}  // namespace

struct AdminState : std::enable_shared_from_this<AdminState> {
  AdminState(asio::io_context& io, AdminServer::Options opts)
      : acceptor(io), retry(io), options(opts) {}

  void accept();
  void on_closed(Connection* c);
  Response dispatch(const Request& req) const;

  tcp::acceptor acceptor;
  asio::steady_timer retry;  // backs off accept after errors such as EMFILE
  AdminServer::Options options;
  tcp::endpoint local;
  std::map<std::string, Handler, std::less<>> handlers;
  std::unordered_set<Connection*> connections;
  bool started = false;
  bool stopped = false;
  bool accepting = false;  // an async_accept is outstanding
};

namespace {

// One admin client connection. Owned by the shared_ptrs its pending handlers hold; the AdminState
// only keeps a raw pointer, removed in close().
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(std::shared_ptr<AdminState> state, tcp::socket socket)
      : state_(std::move(state)), socket_(std::move(socket)), timer_(socket_.get_executor()) {}

  void start() {
    error_code ec;
    socket_.set_option(tcp::no_delay(true), ec);
    begin_head(state_->options.header_timeout);
    read();
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    error_code ec;
    socket_.close(ec);
    timer_.cancel();
    state_->on_closed(this);
  }

 private:
  enum class Phase { kIdle, kHead, kWriting, kLinger };

  void arm(std::chrono::milliseconds after) {
    if (closed_) return;  // a timer armed after close would keep the io_context running
    const uint64_t gen = ++timer_gen_;
    timer_.expires_after(after);
    timer_.async_wait([self = shared_from_this(), gen](error_code ec) {
      if (ec || gen != self->timer_gen_ || self->closed_) return;
      self->on_timeout();
    });
  }

  void begin_head(std::chrono::milliseconds timeout) {
    phase_ = Phase::kHead;
    timed_out_ = false;
    arm(timeout);
  }

  void on_timeout() {
    if (phase_ == Phase::kHead) {
      // The read handler answers 408; cancelling makes it run now.
      timed_out_ = true;
      error_code ec;
      socket_.cancel(ec);
    } else {
      close();  // idle keep-alive, unread response, or lingering: nothing more to say
    }
  }

  void read() {
    if (len_ == buf_.size()) {
      // Only reachable in kHead: the head did not fit.
      respond(plain(431, "request head larger than " +
                             std::to_string(state_->options.max_head_bytes) + " bytes\n"),
              false, false);
      return;
    }
    socket_.async_read_some(
        asio::buffer(buf_.data() + len_, buf_.size() - len_),
        [self = shared_from_this()](error_code ec, size_t n) { self->on_read(ec, n); });
  }

  void on_read(error_code ec, size_t n) {
    if (closed_) return;
    len_ += n;
    if (phase_ == Phase::kHead && timed_out_) {
      respond(plain(408, "request head not received in time\n"), false, false);
      return;
    }
    if (ec) {
      close();  // EOF, reset or idle timeout cancel: nothing to answer
      return;
    }
    if (phase_ == Phase::kIdle && len_ > 0) begin_head(state_->options.header_timeout);
    process();
  }

  // Parses and answers the next complete head in the buffer, or reads more.
  void process() {
    // Empty lines before a request line are ignored (RFC 9112 2.2).
    size_t skip = 0;
    while (skip < len_ && (buf_[skip] == '\r' || buf_[skip] == '\n')) ++skip;
    // Such bytes already count as the start of a head (header timeout), so trickling CRLFs
    // cannot keep an idle connection open.
    if (skip > 0) consume(skip);

    const std::string_view data(buf_.data(), len_);
    const size_t end = find_head_end(data);
    if (end == std::string_view::npos) {
      read();
      return;
    }
    // The head without its final empty line.
    std::string_view head = data.substr(0, end);
    head.remove_suffix(head.ends_with("\n\r\n") ? 2 : 1);
    auto req = parse_head(head);
    if (!req) {
      respond(plain(req.error(),
                    req.error() == 505 ? "only HTTP/1.0 and HTTP/1.1\n" : "malformed request\n"),
              false, false);
      return;
    }
    Response resp = state_->dispatch(*req);
    const bool head_only = req->method == "HEAD";
    const bool keep_alive = req->keep_alive && !state_->stopped;
    // An HTTP/1.0 client keeps the connection only when told so explicitly.
    announce_keep_alive_ = keep_alive && req->http10;
    consume(end);  // invalidates req's views; resp no longer needs them
    respond(std::move(resp), keep_alive, head_only);
  }

  void consume(size_t n) {
    std::memmove(buf_.data(), buf_.data() + n, len_ - n);
    len_ -= n;
  }

  void respond(Response resp, bool keep_alive, bool head_only) {
    if (closed_) return;  // the handler stopped the server, closing this connection too
    phase_ = Phase::kWriting;
    arm(state_->options.write_timeout);
    keep_alive_ = keep_alive;
    resp_ = std::move(resp);
    out_.clear();
    out_ += "HTTP/1.1 ";
    out_ += std::to_string(resp_.status);
    out_ += ' ';
    out_ += http::reason_phrase(resp_.status);
    out_ += "\r\nDate: ";
    out_ += http_date();
    out_ += "\r\nContent-Type: ";
    // A handler-supplied type must not be able to inject header lines.
    out_ += is_field_value(resp_.content_type) ? std::string_view(resp_.content_type)
                                               : std::string_view("application/octet-stream");
    out_ += "\r\nContent-Length: ";
    out_ += std::to_string(resp_.body.size());
    out_ += "\r\nCache-Control: no-store";
    if (resp_.status == 405) out_ += "\r\nAllow: GET, HEAD";
    if (!keep_alive) {
      out_ += "\r\nConnection: close";
    } else if (announce_keep_alive_) {
      out_ += "\r\nConnection: keep-alive";
    }
    out_ += "\r\n\r\n";
    if (head_only) resp_.body.clear();
    const std::array<asio::const_buffer, 2> bufs{asio::buffer(out_), asio::buffer(resp_.body)};
    asio::async_write(socket_, bufs,
                      [self = shared_from_this()](error_code ec, size_t) { self->on_written(ec); });
  }

  void on_written(error_code ec) {
    if (closed_) return;
    if (ec) {
      close();
      return;
    }
    resp_ = Response{};
    if (!keep_alive_ || state_->stopped) {
      linger();
      return;
    }
    // Pipelined bytes may already hold the next head; otherwise wait idle for it.
    if (len_ > 0) {
      begin_head(state_->options.header_timeout);
    } else {
      phase_ = Phase::kIdle;
      arm(state_->options.idle_timeout);
    }
    process();
  }

  // Half-close and drain what the client still sends, so that our close does not turn into a
  // reset that could destroy the response before the client reads it.
  void linger() {
    phase_ = Phase::kLinger;
    arm(state_->options.linger_timeout);
    error_code ec;
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    if (ec) {
      close();
      return;
    }
    drain();
  }

  void drain() {
    socket_.async_read_some(asio::buffer(buf_), [self = shared_from_this()](error_code ec, size_t) {
      if (self->closed_) return;
      if (ec) {
        self->close();
      } else {
        self->drain();
      }
    });
  }

  std::shared_ptr<AdminState> state_;
  tcp::socket socket_;
  asio::steady_timer timer_;
  uint64_t timer_gen_ = 0;
  Phase phase_ = Phase::kHead;
  bool timed_out_ = false;
  bool closed_ = false;
  bool keep_alive_ = true;
  bool announce_keep_alive_ = false;
  std::vector<char> buf_ = std::vector<char>(state_->options.max_head_bytes);
  size_t len_ = 0;
  std::string out_;
  Response resp_;
};

}  // namespace

void AdminState::accept() {
  if (stopped || accepting || connections.size() >= options.max_connections) return;
  accepting = true;
  acceptor.async_accept([self = shared_from_this()](error_code ec, tcp::socket socket) {
    self->accepting = false;
    if (self->stopped || ec == asio::error::operation_aborted) return;
    if (ec == asio::error::connection_aborted) {
      self->accept();  // the client gave up while queued; nothing wrong on our side
      return;
    }
    if (ec) {
      // Out of descriptors and similar: back off instead of spinning on the error.
      self->retry.expires_after(std::chrono::milliseconds(100));
      self->retry.async_wait([self](error_code e) {
        if (!e) self->accept();
      });
      return;
    }
    auto conn = std::make_shared<Connection>(self, std::move(socket));
    self->connections.insert(conn.get());
    conn->start();
    self->accept();  // pauses by itself at max_connections
  });
}

void AdminState::on_closed(Connection* c) {
  connections.erase(c);
  accept();  // resumes accepting if it had paused at the limit
}

Response AdminState::dispatch(const Request& req) const {
  const auto it = handlers.find(req.path);
  if (it == handlers.end()) {
    std::string body = "not found; known paths:\n";
    for (const auto& [path, h] : handlers) {
      body += path;
      body += '\n';
    }
    return plain(404, std::move(body));
  }
  if (req.method != "GET" && req.method != "HEAD") {
    return plain(405, "only GET and HEAD\n");
  }
  // A copy, so that a handler may re-register its own path while it runs.
  const Handler h = it->second;
  try {
    return h(req.path, req.query);
  } catch (const std::exception& e) {
    return plain(500, std::string("handler failed: ") + e.what() + "\n");
  } catch (...) {
    return plain(500, "handler failed\n");
  }
}

AdminServer::AdminServer(asio::io_context& io, tcp::endpoint listen)
    : AdminServer(io, listen, Options{}) {}

AdminServer::AdminServer(asio::io_context& io, tcp::endpoint listen, Options options)
    : state_(std::make_shared<AdminState>(io, options)) {
  tcp::acceptor& a = state_->acceptor;
  a.open(listen.protocol());
  a.set_option(tcp::acceptor::reuse_address(true));
  a.bind(listen);
  a.listen();
  state_->local = a.local_endpoint();
}

AdminServer::~AdminServer() { stop(); }

void AdminServer::handle(std::string path, Handler h) {
  state_->handlers.insert_or_assign(std::move(path), std::move(h));
}

tcp::endpoint AdminServer::local_endpoint() const { return state_->local; }

void AdminServer::start() {
  if (state_->started || state_->stopped) return;
  state_->started = true;
  state_->accept();
}

void AdminServer::stop() {
  AdminState& s = *state_;
  if (s.stopped) return;
  s.stopped = true;
  error_code ec;
  s.acceptor.close(ec);
  s.retry.cancel();
  // close() erases from the set, so walk a copy.
  const std::vector<Connection*> open(s.connections.begin(), s.connections.end());
  for (Connection* c : open) c->close();
}

}  // namespace outrigger::admin
