// Tests of proxy/upstream/h2_pool: the HTTP/2 upstream pool against real servers over loopback.
// Two kinds of server: nghttpd (Debian's nghttp2-server, a child process started and killed by
// PID) for interoperability (multiplexing, MAX_CONCURRENT_STREAMS, echo uploads, TLS with ALPN
// h2 from `outrigger pki` certificates), and an in-process server built on proxy/h2's
// ServerSession over an asio acceptor for what nghttpd cannot be told to do: hold responses,
// GOAWAY in the middle of a load, REFUSED_STREAM, resets, abrupt closes, slow consumption of
// request bodies. Client and in-process server share one io_context; every wait is bounded.
#include "proxy/upstream/h2_pool.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "proxy/h2/session.h"
#include "proxy/tls/context.h"
#include "proxy/tls/pki.h"

namespace outrigger::upstream {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

// Runs the io_context until pred() holds or `limit` passed; true when pred held.
bool run_until(asio::io_context& io, const std::function<bool()>& pred,
               std::chrono::milliseconds limit = 10s) {
  const auto end = Clock::now() + limit;
  while (!pred()) {
    if (Clock::now() >= end) return false;
    if (io.stopped()) io.restart();
    if (io.run_one_for(20ms) == 0 && io.stopped()) ::usleep(1000);
  }
  return true;
}

// Lets the io_context run for d (things that must NOT happen get their chance).
void run_for(asio::io_context& io, std::chrono::milliseconds d) {
  run_until(io, [] { return false; }, d);
}

std::string pattern(size_t n, unsigned seed = 7) {
  std::string s(n, '\0');
  uint32_t x = seed;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1103515245u + 12345u;
    s[i] = static_cast<char>(x >> 16);
  }
  return s;
}

std::span<const uint8_t> bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

h2::FieldList request(std::string_view method, std::string_view path,
                      std::string_view scheme = "http") {
  h2::FieldList f;
  f.add(":method", method);
  f.add(":scheme", scheme);
  f.add(":authority", "127.0.0.1");
  f.add(":path", path);
  return f;
}

// ---------------------------------------------------------------------------------------------
// The in-process HTTP/2 server (proxy/h2 ServerSession over an asio acceptor).
//
// Paths: /hello (200 "hello <id>" once the request ended), /hold (no answer until release()),
// /echo (streams the request body back, request trailers echoed as response trailers),
// /sink (counts the body; consumes it only while `consume_sink`; answers "<bytes>:<fnv>"),
// /big/N (N pattern bytes, trailer x-total), /refuse (RST_STREAM REFUSED_STREAM),
// /reset (head, 7 bytes, then RST_STREAM INTERNAL_ERROR), /close (closes the TCP connection).

struct SStream {
  std::string method, path;
  std::string received;
  size_t unconsumed = 0;
  bool req_end = false;
  std::vector<std::pair<std::string, std::string>> req_trailers;
  std::string out;
  size_t out_off = 0;
  bool out_end = false;
  bool deferred = false;
  size_t pulled = 0;  // response body bytes handed to nghttp2 (only when the window allows)
  bool held = false;
  int reset_step = 0;
  bool closed = false;
  h2::CloseInfo close;
};

class H2TestServer {
 public:
  struct Conn : h2::ServerEvents, std::enable_shared_from_this<Conn> {
    Conn(H2TestServer& srv, tcp::socket s) : srv(srv), sock(std::move(s)), kick_timer(srv.io_) {}
    H2TestServer& srv;
    tcp::socket sock;
    std::unique_ptr<h2::ServerSession> s;
    asio::steady_timer kick_timer;
    std::string inject;  // raw bytes written between codec writes (frame boundaries)
    bool closed = false;
    bool eof = false;
    std::string feed_error;
    std::map<int32_t, SStream> streams;
    int requests = 0;
    bool consume_sink = false;

    void kick() { kick_timer.cancel(); }

    void respond(int32_t id, int status, std::string body,
                 std::vector<std::pair<std::string, std::string>> trailers = {}) {
      SStream& st = streams[id];
      st.held = false;
      st.out = std::move(body);
      st.out_end = true;
      if (!trailers.empty()) {
        std::vector<h2::Field> t;
        for (auto& [k, v] : trailers) t.push_back({k, v});
        EXPECT_TRUE(s->submit_trailers(id, t));
      }
      h2::FieldList f;
      f.add("x-stream-id", std::to_string(id));
      if (trailers.empty()) f.add("content-length", std::to_string(st.out.size()));
      const bool has_body = !st.out.empty() || !trailers.empty();
      auto r = s->submit_response(id, status, f.fields(), has_body);
      EXPECT_TRUE(r) << (r ? "" : r.error());
      kick();
    }
    // Answers held streams (all, or those with id <= up_to).
    void release(int32_t up_to = INT32_MAX) {
      for (auto& [id, st] : streams) {
        if (st.held && id <= up_to) respond(id, 200, "held " + std::to_string(id));
      }
    }
    std::vector<int32_t> held_ids() const {
      std::vector<int32_t> ids;
      for (auto& [id, st] : streams) {
        if (st.held) ids.push_back(id);
      }
      return ids;
    }
    void inject_goaway(int32_t last, uint32_t code) {
      const uint8_t f[17] = {0, 0, 8, 0x7, 0, 0, 0, 0, 0,
                             static_cast<uint8_t>((last >> 24) & 0x7f), static_cast<uint8_t>(last >> 16),
                             static_cast<uint8_t>(last >> 8), static_cast<uint8_t>(last),
                             static_cast<uint8_t>(code >> 24), static_cast<uint8_t>(code >> 16),
                             static_cast<uint8_t>(code >> 8), static_cast<uint8_t>(code)};
      inject.append(reinterpret_cast<const char*>(f), sizeof f);
      kick();
    }
    void close_now() {
      boost::system::error_code ignored;
      sock.shutdown(tcp::socket::shutdown_both, ignored);
      sock.close(ignored);
      closed = true;
      kick();
    }
    void allow_sink(bool on) {
      consume_sink = on;
      if (!on) return;
      for (auto& [id, st] : streams) {
        if (st.unconsumed > 0) {
          s->consume(id, st.unconsumed);
          st.unconsumed = 0;
        }
      }
      kick();
    }

    void on_request(int32_t id, const h2::Request& rq) override {
      SStream& st = streams[id];
      st.method = rq.method;
      st.path = rq.path;
      ++requests;
      ++srv.requests;
      if (st.path == "/hold") {
        st.held = true;
      } else if (st.path == "/echo") {
        h2::FieldList f;
        f.add("x-stream-id", std::to_string(id));
        EXPECT_TRUE(s->submit_response(id, 200, f.fields(), true));
      } else if (st.path.starts_with("/big/")) {
        const size_t n = std::stoul(st.path.substr(5));
        respond(id, 200, pattern(n), {{"x-total", std::to_string(n)}});
      } else if (st.path == "/refuse") {
        s->reset_stream(id, h2::kRefusedStream);
      } else if (st.path == "/reset") {
        st.reset_step = 1;
        st.out = "partial";
        EXPECT_TRUE(s->submit_response(id, 200, {}, true));
      } else if (st.path == "/close") {
        asio::post(srv.io_, [self = shared_from_this()] { self->close_now(); });
      }
      kick();  // on_end_stream follows at once when the head had END_STREAM
    }
    void finish_request(int32_t id) {
      SStream& st = streams[id];
      if (st.path == "/hello") {
        respond(id, 200, "hello " + std::to_string(id));
      } else if (st.path == "/sink") {
        uint32_t h = 2166136261u;
        for (unsigned char ch : st.received) h = (h ^ ch) * 16777619u;
        respond(id, 200, std::to_string(st.received.size()) + ":" + std::to_string(h));
      } else if (st.path == "/echo") {
        st.out_end = true;
        if (!st.req_trailers.empty()) {
          std::vector<h2::Field> t;
          for (auto& [k, v] : st.req_trailers) t.push_back({k, v});
          EXPECT_TRUE(s->submit_trailers(id, t));
        }
        if (st.deferred) {
          st.deferred = false;
          s->resume(id);
        }
      }
    }
    void on_data(int32_t id, std::span<const uint8_t> data) override {
      SStream& st = streams[id];
      st.received.append(reinterpret_cast<const char*>(data.data()), data.size());
      if (st.path == "/echo") {
        st.out.append(reinterpret_cast<const char*>(data.data()), data.size());
        if (st.deferred) {
          st.deferred = false;
          s->resume(id);
        }
      } else if (st.path == "/sink" && !consume_sink) {
        st.unconsumed += data.size();
      } else {
        s->consume(id, data.size());
      }
      kick();
    }
    void on_trailers(int32_t id, std::span<const h2::Field> t) override {
      for (const auto& f : t) streams[id].req_trailers.emplace_back(f.name, f.value);
    }
    void on_end_stream(int32_t id) override {
      streams[id].req_end = true;
      finish_request(id);
      kick();
    }
    void on_stream_close(int32_t id, const h2::CloseInfo& info) override {
      SStream& st = streams[id];
      st.closed = true;
      st.close = info;
      st.held = false;
    }
    h2::BodyRead on_body_read(int32_t id, std::span<uint8_t> out) override {
      SStream& st = streams[id];
      if (st.reset_step == 2) {
        s->reset_stream(id, h2::kInternalError);
        return {0, h2::BodyRead::Status::kDeferred};
      }
      const size_t n = std::min(out.size(), st.out.size() - st.out_off);
      std::memcpy(out.data(), st.out.data() + st.out_off, n);
      st.out_off += n;
      st.pulled += n;
      if (st.path == "/echo" && n > 0) s->consume(id, n);  // echoed bytes free the request window
      if (st.reset_step == 1) {
        st.reset_step = 2;
        asio::post(srv.io_, [self = shared_from_this(), id] {
          self->s->resume(id);
          self->kick();
        });
        return {n, h2::BodyRead::Status::kData};
      }
      if (st.out_off == st.out.size() && st.out_end) return {n, h2::BodyRead::Status::kEnd};
      if (n > 0) return {n, h2::BodyRead::Status::kData};
      st.deferred = true;
      return {0, h2::BodyRead::Status::kDeferred};
    }
  };

  explicit H2TestServer(asio::io_context& io, h2::Limits limits = {})
      : io_(io), acceptor_(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        limits_(limits) {
    asio::co_spawn(io, accept_loop(this), asio::detached);
  }
  ~H2TestServer() {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    for (auto& c : conns) c->close_now();
  }
  tcp::endpoint endpoint() const { return acceptor_.local_endpoint(); }
  size_t held() const {
    size_t n = 0;
    for (auto& c : conns) n += c->held_ids().size();
    return n;
  }

  std::vector<std::shared_ptr<Conn>> conns;
  int requests = 0;

 private:
  static asio::awaitable<void> accept_loop(H2TestServer* srv) {
    for (;;) {
      auto [ec, sock] = co_await srv->acceptor_.async_accept(use_nothrow);
      if (ec) co_return;
      auto c = std::make_shared<Conn>(*srv, std::move(sock));
      auto s = h2::ServerSession::create(c.get(), srv->limits_);
      EXPECT_TRUE(s);
      if (!s) co_return;
      c->s = std::move(*s);
      srv->conns.push_back(c);
      asio::co_spawn(srv->io_, reader(c), asio::detached);
      asio::co_spawn(srv->io_, writer(c), asio::detached);
    }
  }
  static asio::awaitable<void> reader(std::shared_ptr<Conn> c) {
    std::vector<uint8_t> buf(16 * 1024);
    for (;;) {
      auto [ec, n] = co_await c->sock.async_read_some(asio::buffer(buf), use_nothrow);
      if (ec || n == 0) {
        c->eof = true;
        c->closed = true;
        c->kick();
        co_return;
      }
      auto r = c->s->feed({buf.data(), n});
      c->kick();
      if (!r) {
        c->feed_error = r.error();
        co_return;
      }
    }
  }
  static asio::awaitable<void> writer(std::shared_ptr<Conn> c) {
    for (int guard = 0; guard < 10'000'000; ++guard) {
      if (c->closed) break;
      if (!c->inject.empty()) {
        std::string w = std::move(c->inject);
        c->inject.clear();
        auto [ec, n] = co_await asio::async_write(c->sock, asio::buffer(w), use_nothrow);
        if (ec) break;
        continue;
      }
      auto out = c->s->pending_output();
      if (!out.empty()) {
        auto [ec, n] = co_await asio::async_write(c->sock, asio::buffer(out.data(), out.size()),
                                                  use_nothrow);
        if (ec) break;
        c->s->consume_output(n);
        continue;
      }
      if (c->s->done()) break;
      c->kick_timer.expires_at(Clock::time_point::max());
      (void)co_await c->kick_timer.async_wait(use_nothrow);
    }
    c->close_now();
  }

  asio::io_context& io_;
  tcp::acceptor acceptor_;
  h2::Limits limits_;
};

// ---------------------------------------------------------------------------------------------
// A client exchange: acquire a stream, send the body (in chunks) and trailers, read the response.

struct Result {
  bool done = false;
  std::optional<H2Error> error;
  std::string stage;  // where it failed: acquire, write, head, body
  int status = 0;
  std::string body;
  std::map<std::string, std::string> trailers;
  const H2Connection* conn = nullptr;
  int32_t id = 0;
  bool ok() const { return done && !error && status != 0; }
};

struct Fetch {
  std::string method = "GET";
  std::string body;
  size_t chunk = 16 * 1024;
  std::vector<std::pair<std::string, std::string>> trailers;
  std::chrono::milliseconds timeout = 10s;
  H2Tls tls;
  std::string scheme = "http";
};

asio::awaitable<void> exchange(H2Stream& s, Result* r, const Fetch& o, Clock::time_point deadline) {
  const bool has_body = !o.body.empty() || !o.trailers.empty();
  if (has_body) {
    for (size_t off = 0; off < o.body.size(); off += o.chunk) {
      const size_t n = std::min(o.chunk, o.body.size() - off);
      const bool last = off + n == o.body.size() && o.trailers.empty();
      auto w = co_await s.write_body(bytes(std::string_view(o.body).substr(off, n)), last, deadline);
      if (!w) {
        r->error = w.error();
        r->stage = "write";
        break;
      }
    }
    if (!r->error && !o.trailers.empty()) {
      h2::FieldList t;
      for (auto& [k, v] : o.trailers) t.add(k, v);
      auto w = s.write_trailers(t.fields());
      if (!w) {
        r->error = w.error();
        r->stage = "write";
      }
    }
  }
  if (r->error && r->error->code != H2Errc::kReset) co_return;
  r->error.reset();
  for (int i = 0; i < 8; ++i) {
    auto h = co_await s.read_response_head(deadline);
    if (!h) {
      r->error = h.error();
      r->stage = "head";
      co_return;
    }
    if (h->status >= 200) {
      r->status = h->status;
      break;
    }
  }
  for (int i = 0; i < 100'000; ++i) {
    auto b = co_await s.read_body(deadline);
    if (!b) {
      r->error = b.error();
      r->stage = "body";
      co_return;
    }
    r->body.append(reinterpret_cast<const char*>(b->data.data()), b->data.size());
    if (b->end) {
      if (b->trailers) {
        for (const auto& f : b->trailers->fields()) r->trailers[std::string(f.name)] = f.value;
      }
      break;
    }
  }
}

asio::awaitable<void> fetch(H2Pool& pool, tcp::endpoint ep, std::string path, Result* r,
                            Fetch o = {}) {
  const auto deadline = Clock::now() + o.timeout;
  h2::FieldList f = request(o.method, path, o.scheme);
  const bool has_body = !o.body.empty() || !o.trailers.empty();
  auto s = co_await pool.acquire_stream(ep, f.fields(), has_body, deadline, &o.tls);
  if (!s) {
    r->error = s.error();
    r->stage = "acquire";
    r->done = true;
    co_return;
  }
  H2Stream stream = std::move(*s);
  r->conn = &stream.connection();
  r->id = stream.id();
  co_await exchange(stream, r, o, deadline);
  r->done = true;
}

void spawn_fetch(asio::io_context& io, H2Pool& pool, tcp::endpoint ep, std::string path,
                 Result* r, Fetch o = {}) {
  asio::co_spawn(io, fetch(pool, ep, std::move(path), r, std::move(o)), asio::detached);
}

bool all_done(const std::vector<Result>& rs) {
  return std::all_of(rs.begin(), rs.end(), [](const Result& r) { return r.done; });
}

std::string describe(const Result& r) {
  if (!r.error) return "status " + std::to_string(r.status);
  return r.stage + ": " + std::string(h2_errc_name(r.error->code)) + " " + r.error->detail;
}

H2PoolOptions pool_options(uint32_t max_connections = 8) {
  H2PoolOptions o;
  o.max_connections = max_connections;
  o.connect_timeout = 2s;
  return o;
}

// ---------------------------------------------------------------------------------------------
// nghttpd, a child process (by PID).

uint16_t free_port() {
  asio::io_context io;
  tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return a.local_endpoint().port();
}

bool can_connect(uint16_t port) {
  asio::io_context io;
  tcp::socket s(io);
  boost::system::error_code ec;
  s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), ec);
  return !ec;
}

class Nghttpd {
 public:
  // args: options before the port; tls: {key, cert} after it.
  Nghttpd(std::vector<std::string> args, std::vector<std::string> tls = {}) : port_(free_port()) {
    std::vector<std::string> argv = {"nghttpd", "-a", "127.0.0.1"};
    if (tls.empty()) argv.push_back("--no-tls");
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back(std::to_string(port_));
    argv.insert(argv.end(), tls.begin(), tls.end());
    pid_ = ::fork();
    if (pid_ == 0) {
      const int null = ::open("/dev/null", O_RDWR);
      ::dup2(null, 1);
      ::dup2(null, 2);
      std::vector<char*> av;
      for (auto& a : argv) av.push_back(a.data());
      av.push_back(nullptr);
      ::execvp("nghttpd", av.data());
      ::_exit(127);
    }
    for (int i = 0; i < 250 && pid_ > 0; ++i) {  // up to 5 s
      if (can_connect(port_)) {
        up_ = true;
        break;
      }
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      ::usleep(20'000);
    }
  }
  ~Nghttpd() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 100; ++i) {  // up to 2 s, then SIGKILL
      if (::waitpid(pid_, &status, WNOHANG) == pid_) return;
      ::usleep(20'000);
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
  }
  bool up() const { return up_; }
  tcp::endpoint endpoint() const {
    return tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_);
  }

 private:
  uint16_t port_;
  pid_t pid_ = -1;
  bool up_ = false;
};

class H2PoolTest : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/outrigger_h2_pool_test_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    fs::create_directories(dir_ / "www");
    std::ofstream(dir_ / "www" / "small.txt") << "small file\n";
    std::ofstream(dir_ / "www" / "10k.bin", std::ios::binary) << pattern(10'000, 1);
    std::ofstream(dir_ / "www" / "1m.bin", std::ios::binary) << pattern(1 << 20, 2);
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  static std::string docroot() { return (dir_ / "www").string(); }
  static inline fs::path dir_;
};

// ---------------------------------------------------------------------------------------------
// nghttpd

TEST_F(H2PoolTest, ManyConcurrentRequestsShareOneConnection) {
  Nghttpd srv({"-d", docroot()});
  ASSERT_TRUE(srv.up()) << "nghttpd (Debian package nghttp2-server) did not start";
  asio::io_context io;
  H2Pool pool(io, pool_options());
  std::vector<Result> rs(50);
  for (auto& r : rs) spawn_fetch(io, pool, srv.endpoint(), "/10k.bin", &r);
  ASSERT_TRUE(run_until(io, [&] { return all_done(rs); }));
  const std::string expect = pattern(10'000, 1);
  for (auto& r : rs) {
    ASSERT_TRUE(r.ok()) << describe(r);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, expect);
    EXPECT_EQ(r.conn, rs[0].conn);
  }
  EXPECT_EQ(pool.counters().connections_opened, 1u);
  EXPECT_EQ(pool.counters().streams_opened, 50u);
  EXPECT_EQ(pool.connections(), 1u);
  EXPECT_EQ(pool.ready_connections(srv.endpoint()), 1u);
}

TEST_F(H2PoolTest, SecondConnectionAtPeerMaxConcurrentStreamsAndWindowsHold) {
  Nghttpd srv({"-d", docroot(), "-m", "2"});
  ASSERT_TRUE(srv.up());
  asio::io_context io;
  H2Pool pool(io, pool_options());
  // Three streams held open: the 1 MiB bodies do not fit the client's 256 KiB stream window, so
  // nghttpd keeps each stream open until we read.
  std::vector<H2Stream> streams;
  bool acquired = false;
  std::optional<H2Error> error;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        h2::FieldList f = request("GET", "/1m.bin");
        for (int i = 0; i < 3; ++i) {
          auto s = co_await pool.acquire_stream(srv.endpoint(), f.fields(), false,
                                                Clock::now() + 5s);
          if (!s) {
            error = s.error();
            co_return;
          }
          streams.push_back(std::move(*s));
        }
        acquired = true;
      },
      asio::detached);
  ASSERT_TRUE(run_until(io, [&] { return acquired || error; }));
  ASSERT_FALSE(error) << error->detail;
  EXPECT_EQ(&streams[0].connection(), &streams[1].connection());
  EXPECT_NE(&streams[0].connection(), &streams[2].connection());
  EXPECT_EQ(streams[0].connection().peer_max_concurrent_streams(), 2u);
  EXPECT_EQ(pool.counters().connections_opened, 2u);
  // Nobody reads: what arrives stays within the receive window.
  run_for(io, 300ms);
  const uint32_t window = h2::Limits{}.initial_stream_window;
  for (auto& s : streams) {
    EXPECT_GT(s.buffered_bytes(), 0u);
    EXPECT_LE(s.buffered_bytes(), window);
  }
  // Now read everything.
  std::vector<Result> rs(3);
  static const Fetch plain;  // outlives the spawned exchanges (they hold a reference)
  for (size_t i = 0; i < 3; ++i) {
    asio::co_spawn(io, exchange(streams[i], &rs[i], plain, Clock::now() + 10s),
                   [&rs, i](std::exception_ptr) { rs[i].done = true; });
  }
  ASSERT_TRUE(run_until(io, [&] { return all_done(rs); }));
  const std::string expect = pattern(1 << 20, 2);
  for (auto& r : rs) {
    EXPECT_FALSE(r.error) << describe(r);
    EXPECT_EQ(r.status, 200);
    EXPECT_TRUE(r.body == expect) << r.body.size();
  }
}

TEST_F(H2PoolTest, UploadLargerThanTheWindowIsStreamedWithBackpressure) {
  // nghttpd's stream window 2^16-1: a 1 MiB upload needs ~16 window updates.
  Nghttpd srv({"-d", docroot(), "--echo-upload", "-w", "16"});
  ASSERT_TRUE(srv.up());
  asio::io_context io;
  H2Pool pool(io, pool_options());
  Result r;
  Fetch o;
  o.method = "POST";
  o.body = pattern(1 << 20, 3);
  o.chunk = 40'000;
  spawn_fetch(io, pool, srv.endpoint(), "/upload", &r, o);
  ASSERT_TRUE(run_until(io, [&] { return r.done; }));
  ASSERT_TRUE(r.ok()) << describe(r);
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.body == o.body) << r.body.size();
}

TEST_F(H2PoolTest, ResponseHeadAsAnHttp11ViewForTheRetryPolicy) {
  H2ResponseHead h;
  h.status = 503;
  h.fields.add("retry-after", "0");
  h.fields.add("x-retry-me", "yes");
  h.content_length = 12;
  http::ResponseHead v;
  to_h1_view(h, &v);
  EXPECT_EQ(v.status, 503);
  EXPECT_EQ(v.body, http::BodyKind::kContentLength);
  EXPECT_EQ(v.content_length, 12u);
  ASSERT_EQ(v.header_count, 2u);
  RetryPolicy p;
  p.retry_on = retry_on::kRetriableHeaders;
  p.retriable_headers = {{"X-Retry-Me", std::nullopt}};
  AttemptOutcome o;
  o.status = v.status;
  o.headers = &v;
  EXPECT_TRUE(p.retriable(o));
  h.fields.clear();
  h.fields.add("x-other", "1");
  to_h1_view(h, &v);
  EXPECT_FALSE(p.retriable(o));
  h.end_stream = true;
  to_h1_view(h, &v);
  EXPECT_EQ(v.body, http::BodyKind::kNone);
  h.end_stream = false;
  h.content_length = -1;
  to_h1_view(h, &v);
  EXPECT_EQ(v.body, http::BodyKind::kChunked);
}

TEST_F(H2PoolTest, TlsWithAlpnH2AndSessionResumption) {
  const std::string ca = (dir_ / "ca").string();
  auto pki = [](std::vector<std::string> args) {
    args.insert(args.begin(), "pki");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    testing::internal::CaptureStdout();
    testing::internal::CaptureStderr();
    const int rc = tls::pki_main(static_cast<int>(args.size()), argv.data());
    testing::internal::GetCapturedStdout();
    testing::internal::GetCapturedStderr();
    return rc;
  };
  ASSERT_EQ(pki({"init", ca}), 0);
  ASSERT_EQ(pki({"issue", ca, "--name", "user-service", "--account", "222222222222", "--dns",
                 "users.internal", "--server"}),
            0);
  Nghttpd srv({"-d", docroot()}, {ca + "/user-service.key", ca + "/user-service.pem"});
  ASSERT_TRUE(srv.up());
  tls::ClientTlsSettings cs;
  cs.ca = ca + "/bundle.pem";
  cs.sni = "users.internal";
  cs.alpn = {"h2"};
  auto material = tls::make_client_tls(cs);
  ASSERT_TRUE(material) << material.error();
  tls::ClientSessionCache cache;
  asio::io_context io;
  H2Pool pool(io, pool_options());
  Fetch o;
  o.scheme = "https";
  o.tls.material = *material;
  o.tls.sessions = &cache;
  std::vector<Result> rs(5);
  for (auto& r : rs) spawn_fetch(io, pool, srv.endpoint(), "/small.txt", &r, o);
  ASSERT_TRUE(run_until(io, [&] { return all_done(rs); }));
  for (auto& r : rs) {
    ASSERT_TRUE(r.ok()) << describe(r);
    EXPECT_EQ(r.body, "small file\n");
  }
  EXPECT_EQ(pool.counters().connections_opened, 1u);
  EXPECT_EQ(pool.counters().tls_handshakes, 1u);
  EXPECT_EQ(pool.counters().tls_resumed, 0u);

  // A second pool (another worker, say) resumes the session the first one stored.
  H2Pool pool2(io, pool_options());
  Result again;
  spawn_fetch(io, pool2, srv.endpoint(), "/small.txt", &again, o);
  ASSERT_TRUE(run_until(io, [&] { return again.done; }));
  ASSERT_TRUE(again.ok()) << describe(again);
  EXPECT_EQ(pool2.counters().tls_resumed, 1u);

  // A client that offers only http/1.1 gets no h2 connection; a wrong name fails the handshake.
  cs.alpn = {"http/1.1"};
  auto h1_only = tls::make_client_tls(cs);
  ASSERT_TRUE(h1_only);
  cs.alpn = {"h2"};
  cs.sni = "someone-else.internal";
  auto wrong_name = tls::make_client_tls(cs);
  ASSERT_TRUE(wrong_name);
  H2Pool pool3(io, pool_options());
  Result not_h2, bad_name;
  Fetch o2 = o;
  o2.tls.material = *h1_only;
  o2.tls.sessions = nullptr;
  spawn_fetch(io, pool3, srv.endpoint(), "/small.txt", &not_h2, o2);
  ASSERT_TRUE(run_until(io, [&] { return not_h2.done; }));
  ASSERT_TRUE(not_h2.error);
  EXPECT_EQ(not_h2.error->code, H2Errc::kNotH2) << describe(not_h2);
  o2.tls.material = *wrong_name;
  H2Pool pool4(io, pool_options());
  spawn_fetch(io, pool4, srv.endpoint(), "/small.txt", &bad_name, o2);
  ASSERT_TRUE(run_until(io, [&] { return bad_name.done; }));
  ASSERT_TRUE(bad_name.error);
  EXPECT_EQ(bad_name.error->code, H2Errc::kTlsHandshake) << describe(bad_name);
  EXPECT_EQ(bad_name.error->tls_reason, "san_mismatch");
  EXPECT_EQ(bad_name.error->attempt_result(), AttemptResult::kConnectFailure);
}

// ---------------------------------------------------------------------------------------------
// The in-process server

TEST_F(H2PoolTest, NewConnectionWhenStreamsAreFullAndWaitAtMaxConnections) {
  asio::io_context io;
  h2::Limits limits;
  limits.max_concurrent_streams = 2;
  H2TestServer srv(io, limits);
  H2Pool pool(io, pool_options(8));
  std::vector<Result> rs(5);
  for (auto& r : rs) spawn_fetch(io, pool, srv.endpoint(), "/hold", &r);
  ASSERT_TRUE(run_until(io, [&] { return srv.held() == 5; }));
  EXPECT_EQ(srv.conns.size(), 3u);  // 2 + 2 + 1
  EXPECT_EQ(pool.connections(), 3u);
  EXPECT_EQ(pool.counters().connections_opened, 3u);
  for (auto& c : srv.conns) c->release();
  ASSERT_TRUE(run_until(io, [&] { return all_done(rs); }));
  for (auto& r : rs) {
    EXPECT_TRUE(r.ok()) << describe(r);
    EXPECT_EQ(r.body, "held " + std::to_string(r.id));
  }

  // One connection allowed: the third request waits for a free stream slot, within its deadline.
  H2TestServer srv2(io, limits);
  H2Pool one(io, pool_options(1));
  std::vector<Result> held(2);
  for (auto& r : held) spawn_fetch(io, one, srv2.endpoint(), "/hold", &r);
  ASSERT_TRUE(run_until(io, [&] { return srv2.held() == 2; }));
  Result too_late, waits;
  Fetch quick;
  quick.timeout = 200ms;
  spawn_fetch(io, one, srv2.endpoint(), "/hello", &too_late, quick);
  ASSERT_TRUE(run_until(io, [&] { return too_late.done; }));
  ASSERT_TRUE(too_late.error);
  EXPECT_EQ(too_late.error->code, H2Errc::kPoolTimeout) << describe(too_late);
  EXPECT_EQ(one.counters().pool_timeouts, 1u);
  spawn_fetch(io, one, srv2.endpoint(), "/hello", &waits);
  run_for(io, 100ms);
  EXPECT_FALSE(waits.done);
  srv2.conns[0]->release();
  ASSERT_TRUE(run_until(io, [&] { return waits.done && all_done(held); }));
  EXPECT_TRUE(waits.ok()) << describe(waits);
  EXPECT_EQ(waits.conn, held[0].conn);
  EXPECT_EQ(srv2.conns.size(), 1u);
  EXPECT_EQ(one.counters().pool_waits, 2u);
}

TEST_F(H2PoolTest, RequestBodyFollowsTheServersConsumption) {
  asio::io_context io;
  h2::Limits limits;
  limits.initial_stream_window = 64 * 1024;
  H2TestServer srv(io, limits);
  H2Pool pool(io, pool_options());
  const std::string body = pattern(1 << 20, 4);
  size_t written = 0;
  Result r;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        h2::FieldList f = request("POST", "/sink");
        const auto deadline = Clock::now() + 10s;
        auto s = co_await pool.acquire_stream(srv.endpoint(), f.fields(), true, deadline);
        if (!s) {
          r.error = s.error();
          r.done = true;
          co_return;
        }
        for (size_t off = 0; off < body.size(); off += 16 * 1024) {
          auto w = co_await s->write_body(bytes(std::string_view(body).substr(off, 16 * 1024)),
                                          off + 16 * 1024 >= body.size(), deadline);
          if (!w) {
            r.error = w.error();
            r.done = true;
            co_return;
          }
          written = off + 16 * 1024;
        }
        Fetch none;
        co_await exchange(*s, &r, none, deadline);
        r.done = true;
      },
      asio::detached);
  ASSERT_TRUE(run_until(io, [&] { return written > 0; }));
  run_for(io, 300ms);
  // The server consumes nothing: the client got exactly one stream window out.
  EXPECT_EQ(written, 64u * 1024);
  ASSERT_EQ(srv.conns.size(), 1u);
  EXPECT_EQ(srv.conns[0]->streams.begin()->second.received.size(), 64u * 1024);
  EXPECT_FALSE(r.done);
  srv.conns[0]->allow_sink(true);
  ASSERT_TRUE(run_until(io, [&] { return r.done; }));
  ASSERT_TRUE(r.ok()) << describe(r);
  uint32_t h = 2166136261u;
  for (unsigned char ch : body) h = (h ^ ch) * 16777619u;
  EXPECT_EQ(r.body, std::to_string(body.size()) + ":" + std::to_string(h));

  // A server that stops reading: the write's deadline passes, the stream is reset.
  srv.conns[0]->allow_sink(false);
  std::optional<H2Error> write_error;
  int32_t stuck_id = 0;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        h2::FieldList f = request("POST", "/sink");
        auto s = co_await pool.acquire_stream(srv.endpoint(), f.fields(), true, Clock::now() + 5s);
        if (!s) co_return;
        stuck_id = s->id();
        auto w = co_await s->write_body(bytes(body), true, Clock::now() + 200ms);
        if (!w) write_error = w.error();
        auto again = co_await s->write_body(bytes(body), true, Clock::now() + 200ms);
        EXPECT_FALSE(again);
      },
      asio::detached);
  ASSERT_TRUE(run_until(io, [&] { return write_error.has_value(); }));
  EXPECT_EQ(write_error->code, H2Errc::kTimeout);
  EXPECT_EQ(write_error->attempt_result(), AttemptResult::kPerTryTimeout);
  ASSERT_TRUE(run_until(io, [&] { return srv.conns[0]->streams[stuck_id].closed; }));
  EXPECT_EQ(srv.conns[0]->streams[stuck_id].close.error_code, h2::kCancel);
  EXPECT_EQ(srv.conns[0]->streams[stuck_id].received.size(), 64u * 1024);
}

TEST_F(H2PoolTest, SlowReaderKeepsTheServerWithinTheWindow) {
  asio::io_context io;
  H2TestServer srv(io);
  H2Pool pool(io, pool_options());
  const size_t total = 2 << 20;
  const size_t window = h2::Limits{}.initial_stream_window;
  std::string got;
  bool done = false, within = true;
  size_t max_buffered = 0, max_ahead = 0;
  std::map<std::string, std::string> trailers;
  std::optional<H2Error> error;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        h2::FieldList f = request("GET", "/big/" + std::to_string(total));
        const auto deadline = Clock::now() + 20s;
        auto s = co_await pool.acquire_stream(srv.endpoint(), f.fields(), false, deadline);
        if (!s) {
          error = s.error();
          co_return;
        }
        auto head = co_await s->read_response_head(deadline);
        if (!head) {
          error = head.error();
          co_return;
        }
        asio::steady_timer t(io);
        size_t consumed = 0, last = 0;
        for (int i = 0; i < 10'000; ++i) {
          t.expires_after(i == 0 ? 200ms : 3ms);  // a slow downstream
          co_await t.async_wait(use_nothrow);
          max_buffered = std::max(max_buffered, s->buffered_bytes());
          auto b = co_await s->read_body(deadline);
          if (!b) {
            error = b.error();
            co_return;
          }
          consumed += last;  // the previous chunk was consumed by this call
          last = b->data.size();
          const size_t pulled = srv.conns[0]->streams.begin()->second.pulled;
          max_ahead = std::max(max_ahead, pulled - consumed);
          if (pulled > consumed + window) within = false;
          got.append(reinterpret_cast<const char*>(b->data.data()), b->data.size());
          if (b->end) {
            if (b->trailers) {
              for (auto& fl : b->trailers->fields()) trailers[std::string(fl.name)] = fl.value;
            }
            break;
          }
        }
        done = true;
      },
      asio::detached);
  ASSERT_TRUE(run_until(io, [&] { return done || error; }, 20s));
  ASSERT_FALSE(error) << error->detail;
  EXPECT_TRUE(within) << "server ran " << max_ahead << " bytes ahead of the reader";
  EXPECT_LE(max_buffered, window);
  EXPECT_GT(max_buffered, window / 2);  // the window was used, not the whole body
  EXPECT_TRUE(got == pattern(total)) << got.size();
  EXPECT_EQ(trailers["x-total"], std::to_string(total));
}

TEST_F(H2PoolTest, TrailersBothWays) {
  asio::io_context io;
  H2TestServer srv(io);
  H2Pool pool(io, pool_options());
  Result r;
  Fetch o;
  o.method = "POST";
  o.body = pattern(100'000, 5);
  o.trailers = {{"grpc-status", "0"}, {"x-checksum", "abc"}};
  spawn_fetch(io, pool, srv.endpoint(), "/echo", &r, o);
  ASSERT_TRUE(run_until(io, [&] { return r.done; }));
  ASSERT_TRUE(r.ok()) << describe(r);
  EXPECT_TRUE(r.body == o.body);
  ASSERT_EQ(srv.conns.size(), 1u);
  const SStream& st = srv.conns[0]->streams.begin()->second;
  ASSERT_EQ(st.req_trailers.size(), 2u);
  EXPECT_EQ(st.req_trailers[0].first, "grpc-status");
  EXPECT_EQ(st.req_trailers[1].second, "abc");
  EXPECT_EQ(r.trailers["grpc-status"], "0");
  EXPECT_EQ(r.trailers["x-checksum"], "abc");
  // Trailers without a body at all.
  Result bare;
  Fetch t;
  t.method = "POST";
  t.trailers = {{"x-only", "1"}};
  spawn_fetch(io, pool, srv.endpoint(), "/echo", &bare, t);
  ASSERT_TRUE(run_until(io, [&] { return bare.done; }));
  ASSERT_TRUE(bare.ok()) << describe(bare);
  EXPECT_EQ(bare.body, "");
  EXPECT_EQ(bare.trailers["x-only"], "1");
}

TEST_F(H2PoolTest, GoawayMidLoadFinishesStartedStreamsAndMovesTheRest) {
  asio::io_context io;
  H2TestServer srv(io);
  H2Pool pool(io, pool_options());
  std::vector<Result> rs(10);
  for (auto& r : rs) spawn_fetch(io, pool, srv.endpoint(), "/hold", &r);
  ASSERT_TRUE(run_until(io, [&] { return srv.held() == 10; }));
  ASSERT_EQ(srv.conns.size(), 1u);
  auto& c0 = *srv.conns[0];
  const std::vector<int32_t> ids = c0.held_ids();
  const int32_t last = ids[3];  // the server processes the first four
  c0.inject_goaway(last, h2::kNoError);
  for (int32_t id : ids) {
    if (id > last) c0.s->reset_stream(id, h2::kRefusedStream);
  }
  c0.release(last);
  ASSERT_TRUE(run_until(io, [&] { return all_done(rs); }));
  std::vector<Result> retries;
  retries.reserve(10);
  for (auto& r : rs) {
    if (r.id <= last) {
      EXPECT_TRUE(r.ok()) << describe(r);
      EXPECT_EQ(r.body, "held " + std::to_string(r.id));
      continue;
    }
    ASSERT_TRUE(r.error) << r.id;
    EXPECT_EQ(r.error->code, H2Errc::kRefused) << describe(r);
    EXPECT_TRUE(r.error->unprocessed());
    EXPECT_EQ(r.error->attempt_result(), AttemptResult::kRefusedStream);
    retries.emplace_back();
  }
  EXPECT_EQ(retries.size(), 6u);
  EXPECT_EQ(pool.counters().goaways_received, 1u);
  EXPECT_EQ(pool.counters().streams_unprocessed, 6u);
  // The retries go to a new connection; the old one closes after its last stream.
  for (auto& r : retries) spawn_fetch(io, pool, srv.endpoint(), "/hello", &r);
  ASSERT_TRUE(run_until(io, [&] { return all_done(retries); }));
  for (auto& r : retries) {
    EXPECT_TRUE(r.ok()) << describe(r);
    EXPECT_NE(r.conn, rs[0].conn);
  }
  EXPECT_EQ(srv.conns.size(), 2u);
  EXPECT_EQ(pool.counters().connections_opened, 2u);
  ASSERT_TRUE(run_until(io, [&] { return pool.connections() == 1 && c0.eof; }));
}

TEST_F(H2PoolTest, GracefulDrainLetsStreamsFinish) {
  asio::io_context io;
  H2TestServer srv(io);
  H2Pool pool(io, pool_options());
  std::vector<Result> rs(3);
  for (auto& r : rs) spawn_fetch(io, pool, srv.endpoint(), "/hold", &r);
  ASSERT_TRUE(run_until(io, [&] { return srv.held() == 3; }));
  srv.conns[0]->s->begin_drain();  // GOAWAY(2^31-1) + PING, then the final GOAWAY
  srv.conns[0]->kick();
  ASSERT_TRUE(run_until(io, [&] { return pool.counters().goaways_received >= 1; }));
  Result fresh;
  spawn_fetch(io, pool, srv.endpoint(), "/hello", &fresh);
  ASSERT_TRUE(run_until(io, [&] { return fresh.done; }));
  EXPECT_TRUE(fresh.ok()) << describe(fresh);
  EXPECT_NE(fresh.conn, rs[0].conn);
  srv.conns[0]->release();
  ASSERT_TRUE(run_until(io, [&] { return all_done(rs); }));
  for (auto& r : rs) EXPECT_TRUE(r.ok()) << describe(r);
  EXPECT_EQ(pool.counters().streams_unprocessed, 0u);
  ASSERT_TRUE(run_until(io, [&] { return pool.connections() == 1 && srv.conns[0]->closed; }));
}

TEST_F(H2PoolTest, RefusedStreamIsUnprocessedAndTheConnectionStays) {
  asio::io_context io;
  H2TestServer srv(io);
  H2Pool pool(io, pool_options());
  Result refused, next;
  spawn_fetch(io, pool, srv.endpoint(), "/refuse", &refused);
  ASSERT_TRUE(run_until(io, [&] { return refused.done; }));
  ASSERT_TRUE(refused.error);
  EXPECT_EQ(refused.error->code, H2Errc::kRefused) << describe(refused);
  EXPECT_EQ(refused.error->h2_code, h2::kRefusedStream);
  EXPECT_EQ(refused.error->attempt_result(), AttemptResult::kRefusedStream);
  spawn_fetch(io, pool, srv.endpoint(), "/hello", &next);
  ASSERT_TRUE(run_until(io, [&] { return next.done; }));
  EXPECT_TRUE(next.ok()) << describe(next);
  EXPECT_EQ(next.conn, refused.conn);
  EXPECT_EQ(pool.counters().connections_opened, 1u);
  EXPECT_EQ(pool.counters().streams_unprocessed, 1u);
}

TEST_F(H2PoolTest, ServerResetAndCloseAreReported) {
  asio::io_context io;
  H2TestServer srv(io);
  H2Pool pool(io, pool_options());
  Result reset;
  spawn_fetch(io, pool, srv.endpoint(), "/reset", &reset);
  ASSERT_TRUE(run_until(io, [&] { return reset.done; }));
  ASSERT_TRUE(reset.error);
  EXPECT_EQ(reset.stage, "body");
  EXPECT_EQ(reset.status, 200);
  EXPECT_EQ(reset.body, "partial");
  EXPECT_EQ(reset.error->code, H2Errc::kReset) << describe(reset);
  EXPECT_EQ(reset.error->h2_code, h2::kInternalError);
  EXPECT_EQ(reset.error->attempt_result(), AttemptResult::kReset);
  EXPECT_FALSE(reset.error->unprocessed());
  EXPECT_EQ(pool.counters().streams_reset_by_peer, 1u);

  std::vector<Result> lost(3);
  for (auto& r : lost) spawn_fetch(io, pool, srv.endpoint(), "/hold", &r);
  ASSERT_TRUE(run_until(io, [&] { return srv.held() == 3; }));
  Result closer;
  spawn_fetch(io, pool, srv.endpoint(), "/close", &closer);
  ASSERT_TRUE(run_until(io, [&] { return closer.done && all_done(lost); }));
  for (auto* r : {&closer, &lost[0], &lost[1], &lost[2]}) {
    ASSERT_TRUE(r->error);
    EXPECT_EQ(r->error->code, H2Errc::kConnectionLost) << describe(*r);
    EXPECT_EQ(r->error->attempt_result(), AttemptResult::kReset);
  }
  EXPECT_EQ(pool.counters().connections_lost, 1u);
  ASSERT_TRUE(run_until(io, [&] { return pool.connections() == 0; }));
  Result after;
  spawn_fetch(io, pool, srv.endpoint(), "/hello", &after);
  ASSERT_TRUE(run_until(io, [&] { return after.done; }));
  EXPECT_TRUE(after.ok()) << describe(after);
  EXPECT_EQ(pool.counters().connections_opened, 2u);
}

// Readers waiting on one connection each time out at their own deadline, in deadline order
// whatever the order they started waiting in, and an answered stream is not disturbed by them.
TEST_F(H2PoolTest, ReadDeadlinesOnOneConnectionEachFireInTurn) {
  asio::io_context io;
  H2TestServer srv(io);
  H2Pool pool(io, pool_options());
  Result warm;
  spawn_fetch(io, pool, srv.endpoint(), "/hello", &warm);
  ASSERT_TRUE(run_until(io, [&] { return warm.done; }));
  ASSERT_TRUE(warm.ok()) << describe(warm);
  Result late, early, answered;
  Fetch late_opts, early_opts;
  late_opts.timeout = 900ms;
  early_opts.timeout = 150ms;
  const auto t0 = Clock::now();
  spawn_fetch(io, pool, srv.endpoint(), "/hold", &late, late_opts);
  spawn_fetch(io, pool, srv.endpoint(), "/hold", &early, early_opts);
  spawn_fetch(io, pool, srv.endpoint(), "/hello", &answered);
  Clock::time_point early_at{}, late_at{};
  ASSERT_TRUE(run_until(io, [&] {
    if (early.done && early_at == Clock::time_point{}) early_at = Clock::now();
    if (late.done && late_at == Clock::time_point{}) late_at = Clock::now();
    return early.done && late.done && answered.done;
  }));
  EXPECT_TRUE(answered.ok()) << describe(answered);
  for (const Result* r : {&early, &late}) {
    ASSERT_TRUE(r->error) << describe(*r);
    EXPECT_EQ(r->error->code, H2Errc::kTimeout) << describe(*r);
    EXPECT_EQ(r->stage, "head");
    EXPECT_EQ(r->conn, warm.conn);  // all on the one connection
  }
  EXPECT_GE(early_at - t0, 150ms);
  EXPECT_LT(early_at - t0, 900ms);  // it did not wait for the other's deadline
  EXPECT_GE(late_at - t0, 900ms);
  EXPECT_LT(early_at, late_at);
}

TEST_F(H2PoolTest, DeadlineThenCallerResetCancelsTheStream) {
  asio::io_context io;
  H2TestServer srv(io);
  H2Pool pool(io, pool_options());
  std::optional<H2Error> head_error;
  bool finished = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        h2::FieldList f = request("GET", "/hold");
        auto s = co_await pool.acquire_stream(srv.endpoint(), f.fields(), false,
                                              Clock::now() + 5s);
        if (!s) co_return;
        auto h = co_await s->read_response_head(Clock::now() + 100ms);
        if (!h) head_error = h.error();
        s->reset();
        auto again = co_await s->read_response_head(Clock::now() + 100ms);
        EXPECT_FALSE(again);
        if (!again) {
          EXPECT_EQ(again.error().code, H2Errc::kCancelled);
        }
        finished = true;
      },
      asio::detached);
  ASSERT_TRUE(run_until(io, [&] { return finished; }));
  ASSERT_TRUE(head_error);
  EXPECT_EQ(head_error->code, H2Errc::kTimeout);
  EXPECT_EQ(head_error->attempt_result(), AttemptResult::kPerTryTimeout);
  ASSERT_TRUE(run_until(io, [&] {
    return srv.conns.size() == 1 && srv.conns[0]->streams.begin()->second.closed;
  }));
  const SStream& st = srv.conns[0]->streams.begin()->second;
  EXPECT_TRUE(st.close.reset_by_peer);
  EXPECT_EQ(st.close.error_code, h2::kCancel);
  // Destroying a handle mid-stream resets it too (every exit path of the data path). Here the
  // HEADERS were still queued: nghttp2 cancels them, the server never sees the stream, and the
  // slot is free again.
  bool dropped = false;
  const H2Connection* conn = nullptr;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        h2::FieldList f = request("GET", "/hold");
        auto s = co_await pool.acquire_stream(srv.endpoint(), f.fields(), false,
                                              Clock::now() + 5s);
        dropped = s.has_value();
        if (s) conn = &s->connection();
      },
      asio::detached);
  ASSERT_TRUE(run_until(io, [&] { return dropped && conn->active_streams() == 0; }));
  run_for(io, 100ms);
  for (auto& [id, st] : srv.conns[0]->streams) EXPECT_TRUE(st.closed) << id;
  // Once sent, a dropped stream reaches the server as RST_STREAM CANCEL.
  bool sent = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        h2::FieldList f = request("GET", "/hold");
        auto s = co_await pool.acquire_stream(srv.endpoint(), f.fields(), false,
                                              Clock::now() + 5s);
        if (!s) co_return;
        asio::steady_timer t(io, 50ms);
        co_await t.async_wait(use_nothrow);  // the HEADERS go out meanwhile
        sent = true;
      },
      asio::detached);
  ASSERT_TRUE(run_until(io, [&] { return sent && srv.conns[0]->streams.rbegin()->second.closed; }));
  EXPECT_GT(srv.conns[0]->streams.rbegin()->first, 1);
  EXPECT_EQ(srv.conns[0]->streams.rbegin()->second.close.error_code, h2::kCancel);
  EXPECT_EQ(pool.counters().connections_opened, 1u);
}

TEST_F(H2PoolTest, IdleConnectionsExpire) {
  asio::io_context io;
  H2TestServer srv(io);
  H2PoolOptions o = pool_options();
  o.connection.idle_timeout = 150ms;
  H2Pool pool(io, o);
  Result r;
  spawn_fetch(io, pool, srv.endpoint(), "/hello", &r);
  ASSERT_TRUE(run_until(io, [&] { return r.done; }));
  ASSERT_TRUE(r.ok()) << describe(r);
  const auto t0 = Clock::now();
  ASSERT_TRUE(run_until(io, [&] { return pool.connections() == 0; }, 3s));
  EXPECT_GE(Clock::now() - t0, 100ms);
  EXPECT_EQ(pool.counters().idle_closed, 1u);
  EXPECT_EQ(pool.counters().connections_closed, 1u);
  EXPECT_EQ(pool.counters().connections_lost, 0u);
  ASSERT_TRUE(run_until(io, [&] { return srv.conns[0]->eof; }));
  EXPECT_TRUE(srv.conns[0]->s->goaway_received());
}

TEST_F(H2PoolTest, ConnectFailuresAreSharedByWaitersAndClassified) {
  asio::io_context io;
  H2Pool pool(io, pool_options());
  // Nothing listens: every waiter gets the one connect attempt's error.
  const tcp::endpoint nobody(asio::ip::make_address("127.0.0.1"), free_port());
  std::vector<Result> rs(3);
  for (auto& r : rs) spawn_fetch(io, pool, nobody, "/", &r);
  ASSERT_TRUE(run_until(io, [&] { return all_done(rs); }));
  for (auto& r : rs) {
    ASSERT_TRUE(r.error);
    EXPECT_EQ(r.error->code, H2Errc::kConnectRefused) << describe(r);
    EXPECT_EQ(r.error->attempt_result(), AttemptResult::kConnectFailure);
    EXPECT_TRUE(r.error->unprocessed());
  }
  EXPECT_EQ(pool.counters().connect_failures, 1u);
  EXPECT_EQ(pool.connections(), 0u);

  // An HTTP/1.1 server: its answer to the preface is not SETTINGS.
  tcp::acceptor h1(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        auto [ec, s] = co_await h1.async_accept(use_nothrow);
        if (ec) co_return;
        std::string reply = "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        co_await asio::async_write(s, asio::buffer(reply), use_nothrow);
        asio::steady_timer t(io, 500ms);
        co_await t.async_wait(use_nothrow);
      },
      asio::detached);
  Result h1r;
  spawn_fetch(io, pool, h1.local_endpoint(), "/", &h1r);
  ASSERT_TRUE(run_until(io, [&] { return h1r.done; }));
  ASSERT_TRUE(h1r.error);
  EXPECT_EQ(h1r.error->code, H2Errc::kNotH2) << describe(h1r);

  // A listener that never answers: the connect timeout covers the missing SETTINGS.
  tcp::acceptor silent(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  H2PoolOptions o = pool_options();
  o.connect_timeout = 200ms;
  H2Pool quick(io, o);
  Result silent_r;
  const auto t0 = Clock::now();
  spawn_fetch(io, quick, silent.local_endpoint(), "/", &silent_r);
  ASSERT_TRUE(run_until(io, [&] { return silent_r.done; }));
  ASSERT_TRUE(silent_r.error);
  EXPECT_EQ(silent_r.error->code, H2Errc::kConnectTimeout) << describe(silent_r);
  EXPECT_LT(Clock::now() - t0, 2s);
}

TEST_F(H2PoolTest, AdoptedConnectionAndBreaker) {
  asio::io_context io;
  H2TestServer srv(io);
  // A connection the caller connected itself.
  auto conn = std::make_unique<Connection>(io);
  conn->endpoint = srv.endpoint();
  bool connected = false;
  conn->socket.async_connect(srv.endpoint(), [&](boost::system::error_code ec) {
    connected = !ec;
  });
  ASSERT_TRUE(run_until(io, [&] { return connected; }));
  auto c = H2Connection::adopt(io, std::move(conn), {});
  ASSERT_TRUE(c) << c.error().detail;
  Result r;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        auto ready = co_await (*c)->wait_ready(Clock::now() + 2s);
        if (!ready) {
          r.error = ready.error();
          r.done = true;
          co_return;
        }
        h2::FieldList f = request("GET", "/hello");
        auto s = (*c)->open_stream(f.fields(), false);
        if (!s) {
          r.error = s.error();
          r.done = true;
          co_return;
        }
        r.id = s->id();
        const Fetch plain;  // named: g++ 12 destroys class temporaries in co_await twice
        co_await exchange(*s, &r, plain, Clock::now() + 2s);
        r.done = true;
      },
      asio::detached);
  ASSERT_TRUE(run_until(io, [&] { return r.done; }));
  EXPECT_TRUE(r.ok()) << describe(r);
  EXPECT_EQ(r.body, "hello 1");
  EXPECT_EQ((*c)->counters().streams_opened, 1u);
  (*c)->close();
  ASSERT_TRUE(run_until(io, [&] { return (*c)->state() == H2Connection::State::kClosed; }));

  // H2Connection::connect() without a pool; close_when_idle() waits for the stream in flight.
  std::shared_ptr<H2Connection> direct;
  Result held;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        const H2Tls cleartext;
        const H2ConnectionOptions opts;
        auto cc = co_await H2Connection::connect(io, srv.endpoint(), cleartext, 2s, opts);
        if (!cc) {
          held.error = cc.error();
          held.done = true;
          co_return;
        }
        direct = *cc;
        h2::FieldList f = request("GET", "/hold");
        auto s = direct->open_stream(f.fields(), false);
        if (!s) co_return;
        direct->close_when_idle();
        auto refused = direct->open_stream(f.fields(), false);
        EXPECT_FALSE(refused);
        if (!refused) {
          EXPECT_EQ(refused.error().code, H2Errc::kGoaway);
        }
        const Fetch plain;
        co_await exchange(*s, &held, plain, Clock::now() + 5s);
        held.done = true;
      },
      asio::detached);
  ASSERT_TRUE(run_until(io, [&] { return srv.held() == 1 || held.done; }));
  ASSERT_FALSE(held.error) << describe(held);
  EXPECT_EQ(direct->state(), H2Connection::State::kDraining);
  srv.conns.back()->release();
  ASSERT_TRUE(run_until(io, [&] { return held.done; }));
  EXPECT_TRUE(held.ok()) << describe(held);
  ASSERT_TRUE(run_until(io, [&] { return direct->state() == H2Connection::State::kClosed; }));
  EXPECT_EQ(direct->counters().connections_lost, 0u);

  // The cluster's max_connections breaker: one slot, held by the first connection.
  CircuitBreakerThresholds t;
  t.max_connections = 1;
  H2PoolOptions o = pool_options();
  o.connection.breaker = std::make_shared<CircuitBreaker>(t);
  o.max_connections = 4;
  h2::Limits one_stream;
  one_stream.max_concurrent_streams = 1;
  H2TestServer srv1(io, one_stream);
  H2Pool pool(io, o);
  Result first, second;
  spawn_fetch(io, pool, srv1.endpoint(), "/hold", &first);
  ASSERT_TRUE(run_until(io, [&] { return srv1.held() == 1; }));
  EXPECT_EQ(o.connection.breaker->open(Resource::kConnections), 1u);
  spawn_fetch(io, pool, srv1.endpoint(), "/hello", &second);
  ASSERT_TRUE(run_until(io, [&] { return second.done; }));
  ASSERT_TRUE(second.error);
  EXPECT_EQ(second.error->code, H2Errc::kBreakerOpen) << describe(second);
  srv1.conns[0]->release();
  ASSERT_TRUE(run_until(io, [&] { return first.done; }));
  EXPECT_TRUE(first.ok()) << describe(first);
}

}  // namespace
}  // namespace outrigger::upstream
