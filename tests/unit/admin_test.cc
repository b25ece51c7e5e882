// The admin server over real loopback sockets: a blocking client on the test thread, the server
// on its io_context in a second thread.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/system/system_error.hpp>
#include <cerrno>
#include <chrono>
#include <future>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <thread>

#include "proxy/admin/admin_server.h"

namespace outrigger::admin {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using namespace std::string_literals;

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

// A blocking client socket; every read has a timeout so a broken server fails, not hangs.
class Client {
 public:
  explicit Client(uint16_t port, std::chrono::milliseconds timeout = 5000ms) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{};
    tv.tv_sec = timeout.count() / 1000;
    tv.tv_usec = (timeout.count() % 1000) * 1000;
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~Client() { close(fd_); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool connected() const { return connected_; }

  bool send(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // One response; `head_request` means no body follows whatever Content-Length says.
  std::optional<HttpResponse> read_response(bool head_request = false) {
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill()) return std::nullopt;
    }
    HttpResponse r;
    const std::string head = buf_.substr(0, end);
    buf_.erase(0, end + 4);
    if (head.compare(0, 9, "HTTP/1.1 ") != 0) return std::nullopt;
    r.status = std::stoi(head.substr(9, 3));
    size_t pos = head.find("\r\n");
    while (pos != std::string::npos) {
      const size_t next = head.find("\r\n", pos + 2);
      const std::string line =
          head.substr(pos + 2, next == std::string::npos ? next : next - pos - 2);
      const size_t colon = line.find(':');
      std::string name = line.substr(0, colon);
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      r.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
      pos = next;
    }
    if (!head_request) {
      const size_t len = std::stoul(r.headers.at("content-length"));
      while (buf_.size() < len) {
        if (!fill()) return std::nullopt;
      }
      r.body = buf_.substr(0, len);
      buf_.erase(0, len);
    }
    return r;
  }

  // True when the server closed the connection (EOF or reset) with nothing more to read.
  bool closed_by_peer() {
    if (!buf_.empty()) return false;
    char c;
    const ssize_t n = recv(fd_, &c, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
  }

  // Whether anything (data or EOF) arrives within `wait`.
  bool readable_within(std::chrono::milliseconds wait) {
    pollfd p{fd_, POLLIN, 0};
    return poll(&p, 1, static_cast<int>(wait.count())) > 0;
  }

  std::string& buffered() { return buf_; }

 private:
  bool fill() {
    char tmp[4096];
    const ssize_t n = recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string buf_;
};

class AdminServerTest : public ::testing::Test {
 protected:
  void start(AdminServer::Options options = {}) {
    server_ = std::make_unique<AdminServer>(
        io_, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0), options);
    server_->handle("/hello", [](std::string_view, std::string_view) {
      return Response{200, "text/plain; charset=utf-8", "hello admin\n"};
    });
    server_->handle("/echo", [](std::string_view path, std::string_view query) {
      return Response{200, "text/plain", std::string(path) + "?" + std::string(query)};
    });
    server_->handle("/boom", [](std::string_view, std::string_view) -> Response {
      throw std::runtime_error("kaboom");
    });
    server_->handle("/quit", [this](std::string_view, std::string_view) {
      server_->stop();
      return Response{};
    });
    server_->start();
    port_ = server_->local_endpoint().port();
    thread_ = std::thread([this] {
      io_.run();
      ran_out_.set_value();
    });
  }

  // Runs f on the server's thread and waits for it.
  void on_io(std::function<void()> f) {
    std::promise<void> done;
    asio::post(io_, [&] {
      f();
      done.set_value();
    });
    ASSERT_EQ(done.get_future().wait_for(10s), std::future_status::ready);
  }

  void TearDown() override {
    if (!thread_.joinable()) return;
    if (finished_.wait_for(0s) == std::future_status::ready) {
      server_.reset();  // the loop has ended: no other thread touches the server now
    } else {
      on_io([this] { server_.reset(); });
    }
    work_.reset();
    io_.stop();  // lingering handlers of closed sockets need not run to the end
    thread_.join();
  }

  std::optional<HttpResponse> get(Client& c, std::string_view path,
                                  std::string_view method = "GET") {
    if (!c.send(std::string(method) + " " + std::string(path) + " HTTP/1.1\r\nHost: admin\r\n\r\n"))
      return std::nullopt;
    return c.read_response(method == "HEAD");
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
  std::unique_ptr<AdminServer> server_;
  std::thread thread_;
  std::promise<void> ran_out_;
  std::future<void> finished_ = ran_out_.get_future();
  uint16_t port_ = 0;
};

TEST_F(AdminServerTest, BindsPortZeroAndServesGet) {
  start();
  EXPECT_NE(port_, 0);
  Client c(port_);
  ASSERT_TRUE(c.connected());
  auto r = get(c, "/hello");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "hello admin\n");
  EXPECT_EQ(r->headers["content-length"], "12");
  EXPECT_EQ(r->headers["content-type"], "text/plain; charset=utf-8");
  EXPECT_EQ(r->headers.count("date"), 1u);
  EXPECT_EQ(r->headers.count("connection"), 0u);  // HTTP/1.1 keeps the connection by default
}

TEST_F(AdminServerTest, PassesPathAndQuery) {
  start();
  Client c(port_);
  auto r = get(c, "/echo?name=a%20b&x=1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "/echo?name=a%20b&x=1");
  // absolute-form targets are reduced to their path and query
  ASSERT_TRUE(c.send("GET http://127.0.0.1/echo?y=2 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
  r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "/echo?y=2");
}

TEST_F(AdminServerTest, HeadHasLengthButNoBody) {
  start();
  Client c(port_);
  auto r = get(c, "/hello", "HEAD");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->headers["content-length"], "12");
  // Had a body been sent, it would sit in front of the next status line.
  r = get(c, "/hello");
  ASSERT_TRUE(r) << "buffered: " << c.buffered();
  EXPECT_EQ(r->body, "hello admin\n");
}

TEST_F(AdminServerTest, UnknownPathIs404ListingKnownPaths) {
  start();
  Client c(port_);
  auto r = get(c, "/nope");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_NE(r->body.find("/hello\n"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("/echo\n"), std::string::npos) << r->body;
  EXPECT_EQ(r->headers["content-length"], std::to_string(r->body.size()));
}

TEST_F(AdminServerTest, OtherMethodsAre405WithAllow) {
  start();
  Client c(port_);
  ASSERT_TRUE(c.send("POST /hello HTTP/1.1\r\nHost: admin\r\nContent-Length: 0\r\n\r\n"));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);
  EXPECT_EQ(r->headers["allow"], "GET, HEAD");
  // No body was announced, so the connection stays usable.
  r = get(c, "/hello");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(AdminServerTest, KeepAliveServesTwoRequestsOnOneConnection) {
  start();
  Client c(port_);
  for (int i = 0; i < 2; ++i) {
    auto r = get(c, "/hello");
    ASSERT_TRUE(r) << "request " << i;
    EXPECT_EQ(r->status, 200);
  }
  // Pipelined: two heads in one write, two responses in order.
  ASSERT_TRUE(
      c.send("GET /echo?1 HTTP/1.1\r\nHost: a\r\n\r\nGET /echo?2 HTTP/1.1\r\nHost: a\r\n\r\n"));
  auto r1 = c.read_response();
  auto r2 = c.read_response();
  ASSERT_TRUE(r1 && r2);
  EXPECT_EQ(r1->body, "/echo?1");
  EXPECT_EQ(r2->body, "/echo?2");
}

TEST_F(AdminServerTest, ConnectionCloseIsHonoured) {
  start();
  Client c(port_);
  ASSERT_TRUE(c.send("GET /hello HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->headers["connection"], "close");
  EXPECT_TRUE(c.closed_by_peer());
}

TEST_F(AdminServerTest, Http10ClosesUnlessKeepAliveAsked) {
  start();
  {
    Client c(port_);
    ASSERT_TRUE(c.send("GET /hello HTTP/1.0\r\n\r\n"));
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->headers["connection"], "close");
    EXPECT_TRUE(c.closed_by_peer());
  }
  Client c(port_);
  ASSERT_TRUE(c.send("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->headers["connection"], "keep-alive");
  ASSERT_TRUE(c.send("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  EXPECT_TRUE(c.read_response());
}

TEST_F(AdminServerTest, OversizedHeadIs431) {
  start();
  Client c(port_);
  const std::string big =
      "GET /hello HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(9000, 'a') + "\r\n\r\n";
  ASSERT_TRUE(c.send(big));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 431);
  EXPECT_EQ(r->headers["connection"], "close");
  EXPECT_TRUE(c.closed_by_peer());
}

TEST_F(AdminServerTest, HeadJustUnderTheLimitIsServed) {
  start();
  Client c(port_);
  std::string head = "GET /hello HTTP/1.1\r\nHost: a\r\nX-Pad: ";
  head += std::string(8192 - head.size() - 4, 'p') + "\r\n\r\n";
  ASSERT_EQ(head.size(), 8192u);
  ASSERT_TRUE(c.send(head));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(AdminServerTest, SlowClientGets408) {
  AdminServer::Options o;
  o.header_timeout = 200ms;
  start(o);
  Client c(port_);
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(c.send("GET /hello HTTP/1.1\r\nHost: a\r\n"));  // never finished
  auto r = c.read_response();
  const auto elapsed = std::chrono::steady_clock::now() - t0;
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 408);
  EXPECT_EQ(r->headers["connection"], "close");
  EXPECT_GE(elapsed, 150ms);
  EXPECT_LT(elapsed, 4s);
  EXPECT_TRUE(c.closed_by_peer());
}

TEST_F(AdminServerTest, TricklingClientStillGets408) {
  AdminServer::Options o;
  o.header_timeout = 300ms;
  start(o);
  Client c(port_);
  // One byte every 50 ms: the deadline is for the whole head, not for each read.
  const std::string req = "GET /hello HTTP/1.1\r\nHost: a\r\nX-Slow: abcdefghijklmnop\r\n\r\n";
  bool got_response = false;
  for (size_t i = 0; i < req.size() && !got_response; ++i) {
    if (!c.send(req.substr(i, 1))) break;
    got_response = c.readable_within(50ms);
  }
  ASSERT_TRUE(got_response);
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 408);
}

TEST_F(AdminServerTest, IdleKeepAliveIsClosedSilently) {
  AdminServer::Options o;
  o.idle_timeout = 200ms;
  start(o);
  Client c(port_);
  ASSERT_TRUE(get(c, "/hello"));
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(c.closed_by_peer());  // no 408: the client may be sending its next request now
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 150ms);
}

TEST_F(AdminServerTest, MalformedRequestsAre400) {
  start();
  const std::vector<std::pair<std::string, int>> cases = {
      {"GARBAGE\r\n\r\n", 400},
      {"GET /hello\r\n\r\n", 400},
      {"GET  /hello HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"GET /hello HTTP/1.1\r\n\r\n", 400},                          // no Host
      {"GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},    // two Hosts
      {"GET /hello HTTP/1.1\r\nHost : a\r\n\r\n", 400},              // space before colon
      {"GET /hello HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400},    // obs-fold
      {"GET /hello HTTP/1.1\r\nHost: a\r\nX: a\x01z\r\n\r\n", 400},  // control character
      {"GET /he\0llo HTTP/1.1\r\nHost: a\r\n\r\n"s, 400},
      {"GET /hello HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n", 400},
      {"GET /hello HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n",
       400},
      {"GET /hello#frag HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"GET hello HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"GET /hello HTTP/1.1x\r\nHost: a\r\n\r\n", 400},
      {"GET /hello HTTP/2.0\r\nHost: a\r\n\r\n", 505},
      {"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505},
  };
  for (const auto& [req, status] : cases) {
    Client c(port_);
    ASSERT_TRUE(c.send(req));
    auto r = c.read_response();
    ASSERT_TRUE(r) << testing::PrintToString(req);
    EXPECT_EQ(r->status, status) << testing::PrintToString(req);
    EXPECT_EQ(r->headers["connection"], "close");
    EXPECT_TRUE(c.closed_by_peer()) << testing::PrintToString(req);
  }
}

TEST_F(AdminServerTest, SurvivesRandomGarbage) {
  start();
  std::mt19937 rng(20261122);
  for (int i = 0; i < 40; ++i) {
    Client c(port_, 3000ms);
    std::string junk(1 + rng() % 600, '\0');
    for (char& ch : junk) ch = static_cast<char>(rng());
    if (i % 2) junk = "GET /hello HTTP/1.1\r\n" + junk;  // garbage inside the header block
    junk += "\r\n\r\n";
    c.send(junk);  // may fail half-way once the server has answered and closed
    // Whatever it answers, it answers with a well-formed response or closes.
    if (auto r = c.read_response()) {
      EXPECT_GE(r->status, 400) << i;
    }
  }
  Client c(port_);
  auto r = get(c, "/hello");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(AdminServerTest, ThrowingHandlerIs500) {
  start();
  Client c(port_);
  auto r = get(c, "/boom");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 500);
  EXPECT_NE(r->body.find("kaboom"), std::string::npos);
  r = get(c, "/hello");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(AdminServerTest, StopClosesConnectionsAndListener) {
  start();
  // Both connections were served, so both are accepted: a idles, b is in the middle of a head.
  Client a(port_), b(port_);
  ASSERT_TRUE(get(a, "/hello"));
  ASSERT_TRUE(get(b, "/hello"));
  ASSERT_TRUE(b.send("GET /hello HTTP/1.1\r\n"));
  on_io([this] { server_->stop(); });
  EXPECT_TRUE(a.closed_by_peer());
  EXPECT_TRUE(b.closed_by_peer());
  Client late(port_);
  EXPECT_FALSE(late.connected());  // the listener is closed: refused
}

// Nothing of a stopped server (timers, lingering reads) may keep the io_context busy.
TEST_F(AdminServerTest, StopFromAHandlerLetsTheLoopRunOut) {
  start();
  Client idle(port_);
  ASSERT_TRUE(get(idle, "/hello"));
  Client c(port_);
  ASSERT_TRUE(c.send("GET /quit HTTP/1.1\r\nHost: a\r\n\r\n"));
  EXPECT_TRUE(c.closed_by_peer());
  EXPECT_TRUE(idle.closed_by_peer());
  work_.reset();
  EXPECT_EQ(finished_.wait_for(3s), std::future_status::ready);
}

TEST_F(AdminServerTest, AcceptPausesAtMaxConnections) {
  AdminServer::Options o;
  o.max_connections = 4;
  start(o);
  std::vector<std::unique_ptr<Client>> held;
  for (int i = 0; i < 4; ++i) {
    held.push_back(std::make_unique<Client>(port_));
    ASSERT_TRUE(get(*held.back(), "/hello")) << i;  // served, so accepted and counted
  }
  Client fifth(port_);  // completes in the kernel backlog
  ASSERT_TRUE(fifth.connected());
  ASSERT_TRUE(fifth.send("GET /hello HTTP/1.1\r\nHost: a\r\n\r\n"));
  EXPECT_FALSE(fifth.readable_within(300ms));  // not accepted while 4 are open
  held.pop_back();                             // one closes: accepting resumes
  auto r = fifth.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(AdminServerTest, BindFailureThrows) {
  start();
  on_io([this] {
    EXPECT_THROW(AdminServer(io_, server_->local_endpoint()), boost::system::system_error);
  });
}

}  // namespace
}  // namespace outrigger::admin
