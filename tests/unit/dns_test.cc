// proxy/dns against a real dnsmasq on a loopback port (one per test), and against a UDP socket
// that never answers (a server that is down without refusing).
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "proxy/dns/resolver.h"

extern char** environ;

namespace outrigger::dns {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
namespace asio = boost::asio;
namespace fs = std::filesystem;

asio::ip::address ip(const char* s) { return asio::ip::make_address(s); }
asio::ip::tcp::endpoint ep(const char* s, uint16_t port) { return {ip(s), port}; }

int count_substr(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t pos = text.find(needle); pos != std::string::npos;
       pos = text.find(needle, pos + needle.size())) {
    ++n;
  }
  return n;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Sends one A question for probe.test and waits up to `wait` for any reply from the server.
bool dns_answers(uint16_t port, milliseconds wait) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  timeval tv{.tv_sec = 0, .tv_usec = static_cast<suseconds_t>(wait.count() * 1000)};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const unsigned char q[] = {
      0x12, 0x34, 0x01, 0x00, 0,   1,   0, 0,   0,   0,   0,   0,               // header, RD
      5,    'p',  'r',  'o',  'b', 'e', 4, 't', 'e', 's', 't', 0, 0, 1, 0, 1};  // A, IN
  bool ok = false;
  if (sendto(fd, q, sizeof q, 0, reinterpret_cast<sockaddr*>(&to), sizeof to) ==
      static_cast<ssize_t>(sizeof q)) {
    unsigned char buf[512];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    ok = n >= 2 && buf[0] == 0x12 && buf[1] == 0x34;
  }
  close(fd);
  return ok;
}

// A loopback port free for both UDP and TCP right now (dnsmasq binds both).
uint16_t free_port() {
  for (int attempt = 0; attempt < 20; ++attempt) {
    int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    uint16_t port = 0;
    if (bind(u, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
        getsockname(u, reinterpret_cast<sockaddr*>(&a), &len) == 0 &&
        bind(t, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
      port = ntohs(a.sin_port);
    }
    close(u);
    close(t);
    if (port != 0) return port;
  }
  return 0;
}

// A UDP socket on loopback that reads nothing and answers nothing.
class SilentServer {
 public:
  SilentServer() {
    fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~SilentServer() { close(fd_); }
  config::HostPort address() const { return {"127.0.0.1", port_}; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

// dnsmasq serving a hosts file (records get --local-ttl) plus extra flags, authoritative for
// .test (--local) so that unknown names are NXDOMAIN, logging every query to a file.
class Dnsmasq {
 public:
  Dnsmasq(int local_ttl, std::string hosts, std::vector<std::string> extra = {})
      : local_ttl_(local_ttl), extra_(std::move(extra)) {
    char tmpl[] = "/tmp/outrigger-dns-XXXXXX";
    dir_ = mkdtemp(tmpl);
    // dnsmasq started as root runs as nobody and re-reads the hosts file on SIGHUP.
    chmod(dir_.c_str(), 0755);
    write_hosts(hosts);
  }
  ~Dnsmasq() {
    stop();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Starts on a fresh port (or the previous one after stop()) and waits until it answers.
  bool start() {
    for (int attempt = 0; attempt < 5; ++attempt) {
      if (port_ == 0 || attempt > 0) port_ = free_port();
      if (port_ != 0 && spawn() && wait_ready()) return true;
      stop();
    }
    return false;
  }

  void stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    for (int i = 0; i < 200; ++i) {  // up to 2 s
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(10ms);
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  // Replaces the hosts file and waits until dnsmasq has logged reading it again.
  bool reload(const std::string& hosts) {
    const std::string line = "read " + hosts_path().string();
    const int before = count_substr(read_file(log_path()), line);
    write_hosts(hosts);
    kill(pid_, SIGHUP);
    for (int i = 0; i < 300; ++i) {  // up to 3 s
      if (count_substr(read_file(log_path()), line) > before) return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }

  int queries(const std::string& type, const std::string& name) const {
    return count_substr(read_file(log_path()), "query[" + type + "] " + name + " from");
  }
  config::HostPort address() const { return {"127.0.0.1", port_}; }

 private:
  fs::path hosts_path() const { return dir_ / "hosts"; }
  fs::path log_path() const { return dir_ / "log"; }

  void write_hosts(const std::string& hosts) {
    // Rename, so that dnsmasq never reads a half-written file.
    fs::path tmp = dir_ / "hosts.new";
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << hosts;
    }
    chmod(tmp.c_str(), 0644);
    fs::rename(tmp, hosts_path());
  }

  bool spawn() {
    std::vector<std::string> args = {
        "dnsmasq",
        "--port=" + std::to_string(port_),
        "--listen-address=127.0.0.1",
        "--bind-interfaces",
        "--no-resolv",
        "--no-hosts",
        // Not --no-daemon: that debug mode answers TCP inline and stops serving UDP meanwhile.
        "--keep-in-foreground",
        "--pid-file=",
        "--local=/test/",
        "--log-queries",
        "--log-facility=" + log_path().string(),
        "--addn-hosts=" + hosts_path().string(),
        "--local-ttl=" + std::to_string(local_ttl_),
    };
    args.insert(args.end(), extra_.begin(), extra_.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    int rc = posix_spawn(&pid_, "/usr/sbin/dnsmasq", &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) pid_ = -1;
    return rc == 0;
  }

  bool wait_ready() {
    for (int i = 0; i < 250; ++i) {                   // up to 5 s
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {  // exited: port taken or bad flag
        pid_ = -1;
        return false;
      }
      if (dns_answers(port_, 20ms)) return true;
    }
    return false;
  }

  int local_ttl_;
  std::vector<std::string> extra_;
  fs::path dir_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
};

class DnsTest : public ::testing::Test {
 protected:
  // Runs handlers until pred() holds or `limit` passes; false on timeout.
  template <class Pred>
  bool run_until(Pred pred, milliseconds limit) {
    const auto deadline = Clock::now() + limit;
    while (!pred()) {
      const auto now = Clock::now();
      if (now >= deadline) return false;
      io_.run_one_for(deadline - now);
    }
    return true;
  }

  std::unique_ptr<Resolver> make_resolver(config::HostPort server, milliseconds timeout = 1s,
                                          int tries = 2) {
    auto r = Resolver::create(
        io_, ResolverOptions{.servers = {std::move(server)}, .timeout = timeout, .tries = tries});
    EXPECT_TRUE(r.has_value()) << r.error();
    return r ? std::move(*r) : nullptr;
  }

  ResolveResult resolve(Resolver& r, const std::string& name) {
    std::optional<ResolveResult> out;
    r.resolve(name, [&](ResolveResult x) { out = std::move(x); });
    EXPECT_FALSE(out.has_value()) << "callback ran inside resolve()";
    if (!run_until([&] { return out.has_value(); }, 5s)) return std::unexpected("no callback");
    return std::move(*out);
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_{io_.get_executor()};
};

using DnsResolverTest = DnsTest;

TEST_F(DnsResolverTest, AOnly) {
  Dnsmasq dns(30, "10.0.0.1 a.test\n");
  ASSERT_TRUE(dns.start());
  auto r = make_resolver(dns.address());
  auto res = resolve(*r, "a.test");
  ASSERT_TRUE(res.has_value()) << res.error();
  EXPECT_EQ(res->addresses, std::vector{ip("10.0.0.1")});
  EXPECT_EQ(res->ttl, 30s);
  EXPECT_EQ(r->queries_sent(), 2u);
  EXPECT_EQ(dns.queries("A", "a.test"), 1);
  EXPECT_EQ(dns.queries("AAAA", "a.test"), 1);
}

TEST_F(DnsResolverTest, AaaaOnly) {
  Dnsmasq dns(30, "fd00::1 v6.test\n");
  ASSERT_TRUE(dns.start());
  auto r = make_resolver(dns.address());
  auto res = resolve(*r, "v6.test");
  ASSERT_TRUE(res.has_value()) << res.error();
  EXPECT_EQ(res->addresses, std::vector{ip("fd00::1")});
}

TEST_F(DnsResolverTest, BothFamiliesAndSeveralRecordsSortedWithMinimumTtl) {
  Dnsmasq dns(
      30, "",
      {"--host-record=multi.test,10.0.0.4,fd00::9,40", "--host-record=multi.test,10.0.0.2,7",
       "--host-record=multi.test,10.0.0.3,fd00::2,20"});
  ASSERT_TRUE(dns.start());
  auto r = make_resolver(dns.address());
  auto res = resolve(*r, "multi.test");
  ASSERT_TRUE(res.has_value()) << res.error();
  EXPECT_EQ(res->addresses, (std::vector{ip("10.0.0.2"), ip("10.0.0.3"), ip("10.0.0.4"),
                                         ip("fd00::2"), ip("fd00::9")}));
  EXPECT_EQ(res->ttl, 7s);
}

// 120 A records do not fit 512 bytes of UDP: c-ares retries over TCP, so this also covers the
// connect (writable) path of the socket watching. Many names at once share the sockets.
TEST_F(DnsResolverTest, TruncatedAnswerRetriedOverTcpAndConcurrentQueries) {
  std::string hosts;
  std::vector<asio::ip::address> big;
  for (int i = 1; i <= 120; ++i) {
    std::string a = "10.1.0." + std::to_string(i);
    hosts += a + " big.test\n";
    big.push_back(ip(a.c_str()));
  }
  for (int i = 0; i < 20; ++i)
    hosts += "10.2.0." + std::to_string(i) + " n" + std::to_string(i) + ".test\n";
  std::sort(big.begin(), big.end());
  Dnsmasq dns(30, hosts);
  ASSERT_TRUE(dns.start());
  auto r = make_resolver(dns.address());

  std::optional<ResolveResult> big_res;
  std::vector<std::optional<ResolveResult>> small(20);
  r->resolve("big.test", [&](ResolveResult x) { big_res = std::move(x); });
  for (int i = 0; i < 20; ++i) {
    r->resolve("n" + std::to_string(i) + ".test",
               [&, i](ResolveResult x) { small[i] = std::move(x); });
  }
  ASSERT_TRUE(run_until(
      [&] {
        return big_res.has_value() &&
               std::ranges::all_of(small, [](const auto& s) { return s.has_value(); });
      },
      5s));
  ASSERT_TRUE(big_res->has_value()) << big_res->error();
  EXPECT_EQ((*big_res)->addresses, big);
  EXPECT_EQ(dns.queries("A", "big.test"), 2);  // truncated over UDP, then again over TCP
  for (int i = 0; i < 20; ++i) {
    EXPECT_TRUE(small[i]->has_value()) << small[i]->error();
    if (!small[i]->has_value()) continue;
    std::string want = "10.2.0." + std::to_string(i);
    EXPECT_EQ((*small[i])->addresses, std::vector{ip(want.c_str())});
  }
  EXPECT_EQ(r->in_flight(), 0u);
}

TEST_F(DnsResolverTest, IpLiteralNeedsNoQuery) {
  // No servers: c-ares reads /etc/resolv.conf, which a literal never needs.
  auto created = Resolver::create(io_, ResolverOptions{});
  ASSERT_TRUE(created.has_value()) << created.error();
  auto& r = *created;
  auto v4 = resolve(*r, "192.0.2.7");
  auto v6 = resolve(*r, "2001:db8::1");
  ASSERT_TRUE(v4.has_value()) << v4.error();
  ASSERT_TRUE(v6.has_value()) << v6.error();
  EXPECT_EQ(v4->addresses, std::vector{ip("192.0.2.7")});
  EXPECT_EQ(v6->addresses, std::vector{ip("2001:db8::1")});
  EXPECT_EQ(v4->ttl, Resolver::kLiteralTtl);
  EXPECT_EQ(r->queries_sent(), 0u);
}

TEST_F(DnsResolverTest, NxdomainAndNoRecordsAreErrors) {
  Dnsmasq dns(30, "10.0.0.1 a.test\n", {"--txt-record=txt.test,hello"});
  ASSERT_TRUE(dns.start());
  auto r = make_resolver(dns.address());
  auto nx = resolve(*r, "missing.test");
  ASSERT_FALSE(nx.has_value());
  EXPECT_EQ(nx.error(), "missing.test: NXDOMAIN");
  auto none = resolve(*r, "txt.test");
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.error(), "txt.test: no A or AAAA records");
  EXPECT_EQ(r->in_flight(), 0u);
}

TEST_F(DnsResolverTest, SilentServerTimesOutWithinBounds) {
  SilentServer silent;
  auto r = make_resolver(silent.address(), 200ms, 2);
  const auto t0 = Clock::now();
  auto res = resolve(*r, "a.test");
  const auto took = Clock::now() - t0;
  ASSERT_FALSE(res.has_value());
  EXPECT_EQ(res.error(), "a.test: timeout");
  // Two tries of at least 200 ms each; c-ares 1.18 doubles the second one (measured ~600 ms).
  EXPECT_GE(took, 400ms);
  EXPECT_LE(took, 1500ms);
}

TEST_F(DnsResolverTest, StoppedServerFailsFast) {
  Dnsmasq dns(30, "10.0.0.1 a.test\n");
  ASSERT_TRUE(dns.start());
  auto r = make_resolver(dns.address(), 1s, 2);
  ASSERT_TRUE(resolve(*r, "a.test").has_value());
  dns.stop();
  const auto t0 = Clock::now();
  auto res = resolve(*r, "a.test");
  ASSERT_FALSE(res.has_value());
  EXPECT_EQ(res.error().rfind("a.test: ", 0), 0u) << res.error();
  EXPECT_LE(Clock::now() - t0, 3500ms);  // refused at once, or at worst the timeouts
}

TEST_F(DnsResolverTest, RejectsNonLiteralServer) {
  auto r = Resolver::create(io_, ResolverOptions{.servers = {{"dns.example.com", 53}}});
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().find("not an IP address"), std::string::npos);
}

TEST_F(DnsResolverTest, DestroyWithQueriesInFlightCallsEachCallbackOnce) {
  SilentServer silent;
  auto r = make_resolver(silent.address(), 5s, 2);
  std::array<int, 3> calls{};
  std::array<std::string, 3> errors;
  for (size_t i = 0; i < calls.size(); ++i) {
    r->resolve("n" + std::to_string(i) + ".test", [&, i](ResolveResult res) {
      ++calls[i];
      if (!res) errors[i] = res.error();
    });
  }
  ASSERT_TRUE(run_until([&] { return r->queries_sent() == 6; }, 1s));
  io_.poll();  // let the sockets get watched
  EXPECT_EQ(r->in_flight(), 3u);
  EXPECT_EQ(calls, (std::array<int, 3>{0, 0, 0}));
  r.reset();
  EXPECT_EQ(calls, (std::array<int, 3>{0, 0, 0})) << "called inside the destructor";
  ASSERT_TRUE(run_until([&] { return calls == std::array<int, 3>{1, 1, 1}; }, 1s));
  io_.run_for(50ms);  // nothing else may arrive
  EXPECT_EQ(calls, (std::array<int, 3>{1, 1, 1}));
  EXPECT_EQ(errors[0], "n0.test: resolver destroyed");
}

TEST_F(DnsResolverTest, CallbackMayDestroyResolver) {
  Dnsmasq dns(30, "10.0.0.1 a.test\n");
  ASSERT_TRUE(dns.start());
  auto r = make_resolver(dns.address());
  int first = 0;
  std::optional<ResolveResult> second;
  r->resolve("10.1.1.1", [&](ResolveResult) {
    ++first;
    r.reset();
  });
  r->resolve("a.test", [&](ResolveResult res) { second = std::move(res); });
  ASSERT_TRUE(run_until([&] { return second.has_value(); }, 2s));
  EXPECT_EQ(first, 1);
  ASSERT_FALSE(second->has_value());
  EXPECT_EQ(second->error(), "a.test: resolver destroyed");
}

// Refresher: on_change events and on_result calls, recorded with their time.
class DnsRefresherTest : public DnsTest {
 protected:
  struct Change {
    std::string key;
    Refresher::Endpoints endpoints;
    Clock::time_point at;
  };

  std::unique_ptr<Refresher> make_refresher(Resolver& r) {
    return std::make_unique<Refresher>(
        io_, r,
        [this](const std::string& key, Refresher::Endpoints eps) {
          changes_.push_back({key, std::move(eps), Clock::now()});
        },
        [this](const std::string& key, bool ok) {
          ++(ok ? ok_ : failed_);
          if (on_result_) on_result_();
        });
  }

  std::vector<Change> changes_;
  int ok_ = 0;
  int failed_ = 0;
  std::function<void()> on_result_;
};

TEST_F(DnsRefresherTest, FirstResolutionThenChangeSeenAfterClampedTtl) {
  Dnsmasq dns(2, "10.0.0.1 svc.test\n10.0.0.2 svc.test\nfd00::1 svc.test\n");
  ASSERT_TRUE(dns.start());
  auto r = make_resolver(dns.address());
  auto f = make_refresher(*r);
  f->add("svc", {"svc.test", 443}, {.min_ttl = 1s, .max_ttl = 60s});
  f->start();
  ASSERT_TRUE(run_until([&] { return changes_.size() == 1; }, 2s));
  EXPECT_EQ(changes_[0].key, "svc");
  EXPECT_EQ(changes_[0].endpoints,
            (Refresher::Endpoints{ep("10.0.0.1", 443), ep("10.0.0.2", 443), ep("fd00::1", 443)}));
  const auto first = changes_[0].at;

  ASSERT_TRUE(dns.reload("10.0.0.9 svc.test\n"));
  ASSERT_TRUE(run_until([&] { return changes_.size() == 2; }, 4s));
  EXPECT_EQ(changes_[1].endpoints, Refresher::Endpoints{ep("10.0.0.9", 443)});
  // The record TTL (2 s) rules: not min_ttl (1 s), not max_ttl.
  EXPECT_GE(changes_[1].at - first, 1900ms);
  EXPECT_LE(changes_[1].at - first, 3000ms);
  EXPECT_EQ(ok_, 2);
  EXPECT_EQ(failed_, 0);

  auto snap = f->snapshot();
  ASSERT_EQ(snap.size(), 1u);
  EXPECT_EQ(snap[0].endpoints, changes_[1].endpoints);
  EXPECT_EQ(snap[0].resolutions_ok, 2u);
  EXPECT_EQ(snap[0].ttl, 2s);
  EXPECT_TRUE(snap[0].last_error.empty());
  EXPECT_GT(snap[0].next_refresh, Clock::now() + 1s);
}

TEST_F(DnsRefresherTest, MinTtlFloorsZeroTtlRecords) {
  Dnsmasq dns(0, "10.0.0.1 zero.test\n");
  ASSERT_TRUE(dns.start());
  auto r = make_resolver(dns.address());
  auto f = make_refresher(*r);
  f->add("zero", {"zero.test", 80}, {.min_ttl = 1s, .max_ttl = 60s});
  f->start();
  io_.run_for(2500ms);
  // At 0 s, 1 s and 2 s; a hot loop would have asked hundreds of times.
  EXPECT_GE(dns.queries("A", "zero.test"), 2);
  EXPECT_LE(dns.queries("A", "zero.test"), 4);
  EXPECT_EQ(ok_, dns.queries("A", "zero.test"));
  EXPECT_EQ(changes_.size(), 1u);  // same answer every time
  auto snap = f->snapshot();
  ASSERT_EQ(snap.size(), 1u);
  EXPECT_EQ(snap[0].ttl, 0s);
}

TEST_F(DnsRefresherTest, MaxTtlCapsLongTtl) {
  Dnsmasq dns(3600, "10.0.0.1 long.test\n");
  ASSERT_TRUE(dns.start());
  auto r = make_resolver(dns.address());
  auto f = make_refresher(*r);
  f->add("long", {"long.test", 80}, {.min_ttl = 200ms, .max_ttl = 700ms});
  f->start();
  io_.run_for(1600ms);
  EXPECT_EQ(ok_, 3);  // 0, 0.7 and 1.4 s
  auto snap = f->snapshot();
  ASSERT_EQ(snap.size(), 1u);
  EXPECT_EQ(snap[0].ttl, 3600s);
  EXPECT_LE(snap[0].next_refresh - Clock::now(), 700ms);

  f->stop();  // and nothing more after stop()
  const int before = dns.queries("A", "long.test");
  io_.run_for(900ms);
  EXPECT_EQ(dns.queries("A", "long.test"), before);
  EXPECT_EQ(ok_, 3);
}

TEST_F(DnsRefresherTest, KeepsLastGoodSetWhenServerGoesDownAndBacksOff) {
  Dnsmasq dns(0, "10.0.0.1 svc.test\n");
  ASSERT_TRUE(dns.start());
  auto r = make_resolver(dns.address(), 200ms, 1);
  auto f = make_refresher(*r);
  f->add("svc", {"svc.test", 443}, {.min_ttl = 200ms, .max_ttl = 60s});
  f->start();
  ASSERT_TRUE(run_until([&] { return changes_.size() == 1; }, 2s));
  dns.stop();

  // Backoff: after the 2nd failure in a row the next try is 2 * min_ttl away.
  std::optional<TargetStatus> after_second;
  on_result_ = [&] {
    if (failed_ == 2) after_second = f->snapshot().at(0);
  };
  ASSERT_TRUE(run_until([&] { return failed_ >= 2; }, 4s));
  ASSERT_TRUE(after_second.has_value());
  EXPECT_EQ(after_second->consecutive_failures, 2u);
  EXPECT_GT(after_second->next_refresh - Clock::now(), 300ms);
  EXPECT_LE(after_second->next_refresh - Clock::now(), 400ms);

  EXPECT_EQ(changes_.size(), 1u) << "a failure must not change the set";
  auto snap = f->snapshot();
  EXPECT_EQ(snap[0].endpoints, Refresher::Endpoints{ep("10.0.0.1", 443)});
  EXPECT_EQ(snap[0].last_error.rfind("svc.test: ", 0), 0u) << snap[0].last_error;
  EXPECT_EQ(snap[0].resolutions_failed, 2u);
  EXPECT_EQ(snap[0].resolutions_ok, 1u);
}

TEST_F(DnsRefresherTest, NxdomainKeepsSetAndRecoveryIsNotAChange) {
  Dnsmasq dns(0, "10.0.0.1 svc.test\n");
  ASSERT_TRUE(dns.start());
  auto r = make_resolver(dns.address());
  auto f = make_refresher(*r);
  f->add("svc", {"svc.test", 443}, {.min_ttl = 200ms, .max_ttl = 60s});
  f->start();
  ASSERT_TRUE(run_until([&] { return changes_.size() == 1; }, 2s));

  ASSERT_TRUE(dns.reload("10.0.0.2 other.test\n"));
  ASSERT_TRUE(run_until([&] { return failed_ >= 1; }, 2s));
  auto snap = f->snapshot();
  EXPECT_EQ(snap[0].last_error, "svc.test: NXDOMAIN");
  EXPECT_EQ(snap[0].endpoints, Refresher::Endpoints{ep("10.0.0.1", 443)});

  ASSERT_TRUE(dns.reload("10.0.0.1 svc.test\n"));
  const int ok_before = ok_;
  ASSERT_TRUE(run_until([&] { return ok_ > ok_before; }, 3s));
  EXPECT_TRUE(f->snapshot()[0].last_error.empty());
  EXPECT_EQ(f->snapshot()[0].consecutive_failures, 0u);
  EXPECT_EQ(changes_.size(), 1u);
}

TEST_F(DnsRefresherTest, IpLiteralAddRemoveAndReplace) {
  SilentServer silent;
  auto r = make_resolver(silent.address());
  auto f = make_refresher(*r);
  f->start();
  f->add("lit", {"192.0.2.1", 8080}, {});
  ASSERT_TRUE(run_until([&] { return changes_.size() == 1; }, 1s));
  EXPECT_EQ(changes_[0].endpoints, Refresher::Endpoints{ep("192.0.2.1", 8080)});
  f->add("lit", {"192.0.2.1", 8080}, {});  // same: nothing happens
  f->add("lit", {"192.0.2.1", 9090}, {});  // new target: a new set
  ASSERT_TRUE(run_until([&] { return changes_.size() == 2; }, 1s));
  EXPECT_EQ(changes_[1].endpoints, Refresher::Endpoints{ep("192.0.2.1", 9090)});
  f->remove("lit");
  EXPECT_TRUE(f->snapshot().empty());
  EXPECT_EQ(r->queries_sent(), 0u);
}

TEST_F(DnsRefresherTest, DestroyRefresherThenResolverWithQueriesInFlight) {
  SilentServer silent;
  auto r = make_resolver(silent.address(), 5s, 2);
  auto f = make_refresher(*r);
  f->add("a", {"a.test", 80}, {});
  f->add("b", {"b.test", 80}, {});
  f->start();
  io_.poll();
  EXPECT_EQ(r->in_flight(), 2u);
  auto snap = f->snapshot();
  EXPECT_TRUE(snap[0].resolving);
  f.reset();
  r.reset();
  io_.run_for(100ms);  // the posted "destroyed" answers find no Refresher
  EXPECT_TRUE(changes_.empty());
  EXPECT_EQ(ok_ + failed_, 0);
}

}  // namespace
}  // namespace outrigger::dns
