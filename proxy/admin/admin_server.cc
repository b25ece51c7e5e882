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

#include "proxy/admin/request.h"
#include "proxy/http/h1.h"

namespace outrigger::admin {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

using base::iequals;
using base::trim_ows;

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
