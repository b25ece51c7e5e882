// AWS building blocks over real loopback sockets: the credentials provider against a fake ECS
// credentials endpoint (tokens, rotation, outages, expiry), the task metadata fetcher against a
// fake metadata v4 endpoint, the small HTTP client's limits, and the name parsers.
//
// The fake endpoints are plain blocking sockets on a thread of their own, answering with the JSON
// shapes AWS documents; the code under test runs on an io_context in the test thread, driven until
// a condition holds or a deadline passes (never a sleep for synchronisation).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "proxy/aws/credentials.h"
#include "proxy/aws/ecs_metadata.h"
#include "proxy/aws/http_client.h"
#include "proxy/aws/json.h"
#include "proxy/aws/names.h"

namespace outrigger::aws {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using std::chrono::system_clock;

constexpr std::string_view kSecretA = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
constexpr std::string_view kSecretB = "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY";
constexpr std::string_view kAuthToken = "Bearer-very-secret-agent-token";

struct SeenRequest {
  std::string method;
  std::string target;
  std::map<std::string, std::string> headers;  // lower-case names
};

// A one-request-per-connection HTTP server on 127.0.0.1:<ephemeral> answering with whatever the
// handler returns: a full raw response, kHang to hold the connection open unanswered, or "" to
// close without a byte.
class FakeEndpoint {
 public:
  using Handler = std::function<std::string(const SeenRequest&)>;
  static constexpr std::string_view kHang = "<hang>";

  explicit FakeEndpoint(Handler h) : handler_(std::move(h)) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(listen(fd_, 16), 0);
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { loop(); });
  }
  ~FakeEndpoint() {
    stop_ = true;
    thread_.join();
    for (int fd : hung_) close(fd);
    close(fd_);
  }

  uint16_t port() const { return port_; }
  void set_handler(Handler h) {
    std::lock_guard lock(mu_);
    handler_ = std::move(h);
  }
  std::vector<SeenRequest> requests() const {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  void loop() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;  // wakes to notice stop_
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      timeval tv{2, 0};
      setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      std::string in;
      char buf[4096];
      while (in.find("\r\n\r\n") == std::string::npos && in.size() < 65536) {
        ssize_t n = recv(c, buf, sizeof buf, 0);
        if (n <= 0) break;
        in.append(buf, static_cast<size_t>(n));
      }
      SeenRequest req = parse(in);
      std::string response;
      {
        std::lock_guard lock(mu_);
        requests_.push_back(req);
        response = handler_(req);
      }
      if (response == kHang) {
        hung_.push_back(c);
        continue;
      }
      size_t off = 0;
      while (off < response.size()) {
        ssize_t n = send(c, response.data() + off, response.size() - off, MSG_NOSIGNAL);
        if (n <= 0) break;
        off += static_cast<size_t>(n);
      }
      shutdown(c, SHUT_WR);
      close(c);
    }
  }

  static SeenRequest parse(const std::string& in) {
    SeenRequest r;
    size_t eol = in.find("\r\n");
    std::string line = in.substr(0, eol);
    size_t sp1 = line.find(' '), sp2 = line.rfind(' ');
    if (sp1 != std::string::npos && sp2 > sp1) {
      r.method = line.substr(0, sp1);
      r.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    }
    size_t pos = eol == std::string::npos ? in.size() : eol + 2;
    while (pos < in.size()) {
      size_t e = in.find("\r\n", pos);
      if (e == std::string::npos || e == pos) break;
      std::string h = in.substr(pos, e - pos);
      size_t colon = h.find(':');
      if (colon != std::string::npos) {
        std::string name = h.substr(0, colon);
        for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        size_t v = h.find_first_not_of(' ', colon + 1);
        r.headers[name] = v == std::string::npos ? "" : h.substr(v);
      }
      pos = e + 2;
    }
    return r;
  }

  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  mutable std::mutex mu_;
  Handler handler_;
  std::vector<SeenRequest> requests_;
  std::vector<int> hung_;  // only touched by the server thread, then by the destructor after join
};

std::string http_response(int status, std::string_view body, std::string_view extra = "") {
  return "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Type: application/json\r\n" +
         std::string(extra) + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
         std::string(body);
}

std::string iso8601(system_clock::time_point t) {
  std::time_t tt = system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// The container credentials endpoint's documented shape.
std::string credentials_json(std::string_view key_id, std::string_view secret,
                             std::string_view token, system_clock::time_point expires) {
  return R"({"RoleArn":"arn:aws:iam::111122223333:role/orders-task","AccessKeyId":")" +
         std::string(key_id) + R"(","SecretAccessKey":")" + std::string(secret) + R"(","Token":")" +
         std::string(token) + R"(","Expiration":")" + iso8601(expires) + R"("})";
}

Environment env_of(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](std::string_view name) -> std::optional<std::string> {
    auto it = vars.find(std::string(name));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

// Runs io until pred() holds or the timeout passes; a work guard keeps run_for waiting.
bool run_until(asio::io_context& io, const std::function<bool()>& pred,
               std::chrono::milliseconds timeout) {
  auto guard = asio::make_work_guard(io);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    io.restart();
    io.run_for(10ms);
  }
  return true;
}

// A time n from now, in whole seconds: the Expiration field carries no fraction.
system_clock::time_point in(std::chrono::milliseconds n) {
  return std::chrono::floor<std::chrono::seconds>(system_clock::now() + n);
}

// Options that make every phase happen within a second or two.
CredentialsProvider::Options fast_options() {
  CredentialsProvider::Options o;
  o.request_timeout = 500ms;
  o.refresh_before_expiry = 2s;
  o.max_refresh_interval = 10min;
  o.min_refresh_interval = 100ms;
  o.retry_initial = 50ms;
  o.retry_max = 200ms;
  return o;
}

struct Recorder {
  std::vector<std::shared_ptr<const Credentials>> published;
  std::vector<std::string> errors;
  CredentialsProvider::Callbacks callbacks() {
    return {[this](std::shared_ptr<const Credentials> c) { published.push_back(std::move(c)); },
            [this](std::string_view e) { errors.emplace_back(e); }};
  }
};

CredentialSource container_source(uint16_t port, std::string target = "/v2/credentials/task-id") {
  auto src = resolve_credential_source(env_of({{"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", target}}),
                                       SourceOptions{"127.0.0.1:" + std::to_string(port)});
  EXPECT_TRUE(src.has_value()) << (src ? "" : src.error());
  return src.value_or(CredentialSource{});
}

// ---------------------------------------------------------------------------------------------
// Credential sources

TEST(CredentialSource, NoneConfiguredIsAClearError) {
  auto s = resolve_credential_source(env_of({}), {});
  ASSERT_FALSE(s.has_value());
  EXPECT_NE(s.error().find("no AWS credentials configured"), std::string::npos);
  EXPECT_NE(s.error().find("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"), std::string::npos);
}

TEST(CredentialSource, RelativeUriUsesTheEcsAgentUnlessOverridden) {
  auto s = resolve_credential_source(
      env_of({{"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/abc"},
              {"AWS_ACCESS_KEY_ID", "AKIDIGNORED"},
              {"AWS_SECRET_ACCESS_KEY", "x"}}),
      {});
  ASSERT_TRUE(s.has_value()) << s.error();
  EXPECT_EQ(s->kind, CredentialSource::Kind::kContainer);
  EXPECT_EQ(s->host, "169.254.170.2");
  EXPECT_EQ(s->port, 80);
  EXPECT_EQ(s->target, "/v2/credentials/abc");
  EXPECT_EQ(s->describe(), "container endpoint http://169.254.170.2/v2/credentials/abc");
  auto o = resolve_credential_source(env_of({{"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/creds"}}),
                                     {"127.0.0.1:9911"});
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->host, "127.0.0.1");
  EXPECT_EQ(o->port, 9911);
  EXPECT_FALSE(
      resolve_credential_source(env_of({{"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "creds"}}), {})
          .has_value());
}

TEST(CredentialSource, FullUriHostsAreRestrictedAndTokensPicked) {
  auto ok = resolve_credential_source(
      env_of({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://169.254.170.23/v1/credentials"},
              {"AWS_CONTAINER_AUTHORIZATION_TOKEN", "tok"},
              {"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "/var/run/token"}}),
      {});
  ASSERT_TRUE(ok.has_value()) << ok.error();
  EXPECT_EQ(ok->auth_token_file, "/var/run/token");  // the file wins, as in the SDKs
  EXPECT_TRUE(ok->auth_token.empty());
  EXPECT_EQ(ok->describe().find("tok\""), std::string::npos);

  auto v6 = resolve_credential_source(
      env_of({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://[fd00:ec2::23]/v1/credentials"}}), {});
  ASSERT_TRUE(v6.has_value()) << v6.error();
  EXPECT_EQ(v6->host, "fd00:ec2::23");

  for (std::string bad : std::vector<std::string>{
           "http://10.0.0.5/creds", "http://example.com/creds", "https://localhost/creds",
           "ftp://127.0.0.1/x", "http://127.0.0.1:0/x"}) {
    auto s = resolve_credential_source(env_of({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", bad}}), {});
    EXPECT_FALSE(s.has_value()) << bad;
  }
  auto crlf = resolve_credential_source(
      env_of({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1/x"},
              {"AWS_CONTAINER_AUTHORIZATION_TOKEN", "a\r\nEvil: 1"}}),
      {});
  EXPECT_FALSE(crlf.has_value());
}

TEST(CredentialSource, EnvironmentKeys) {
  auto s = resolve_credential_source(env_of({{"AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"},
                                             {"AWS_SECRET_ACCESS_KEY", std::string(kSecretA)},
                                             {"AWS_SESSION_TOKEN", "tok"}}),
                                     {});
  ASSERT_TRUE(s.has_value()) << s.error();
  ASSERT_EQ(s->kind, CredentialSource::Kind::kStatic);
  EXPECT_EQ(s->fixed->access_key_id, "AKIDEXAMPLE");
  EXPECT_EQ(s->fixed->session_token, "tok");
  EXPECT_FALSE(s->fixed->expiration.has_value());
  EXPECT_EQ(s->describe().find(kSecretA), std::string::npos);

  auto half = resolve_credential_source(env_of({{"AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"}}), {});
  ASSERT_FALSE(half.has_value());
  EXPECT_NE(half.error().find("AWS_SECRET_ACCESS_KEY"), std::string::npos);

  // Static credentials are published at start, once.
  asio::io_context io;
  Recorder rec;
  CredentialsProvider p(io, *s, fast_options(), rec.callbacks());
  p.start();
  ASSERT_EQ(rec.published.size(), 1u);
  EXPECT_EQ(rec.published[0]->secret_access_key, kSecretA);
  EXPECT_FALSE(p.next_refresh().has_value());
}

// ---------------------------------------------------------------------------------------------
// Parsing

TEST(ContainerCredentials, ParsesTheDocumentedShape) {
  auto exp = system_clock::time_point(1766000000s);
  auto c = parse_container_credentials(credentials_json("ASIAEXAMPLE", kSecretA, "tok", exp));
  ASSERT_TRUE(c.has_value()) << c.error();
  EXPECT_EQ(c->access_key_id, "ASIAEXAMPLE");
  EXPECT_EQ(c->secret_access_key, kSecretA);
  EXPECT_EQ(c->session_token, "tok");
  ASSERT_TRUE(c->expiration.has_value());
  EXPECT_EQ(*c->expiration, exp);
}

TEST(ContainerCredentials, ErrorsNeverContainTheSecret) {
  std::string s(kSecretA);
  std::vector<std::string> bodies = {
      R"({"AccessKeyId":"A","SecretAccessKey":")" + s + R"(","Expiration":"soon"})",
      R"({"AccessKeyId":"A","SecretAccessKey":")" + s + R"(","Token":5})",
      R"({"AccessKeyId":"A","SecretAccessKey":")" + s + R"(" "Token":"t"})",
      R"({"AccessKeyId":"A","SecretAccessKey":")" + s,
      R"({"AccessKeyId":"A","SecretAccessKey":")" + s + "\x01\"}",
      R"({"AccessKeyId":"A","SecretAccessKey":")" + s + R"("} trailing)",
      R"({"AccessKeyId":"","SecretAccessKey":")" + s + R"("})",
      R"({"SecretAccessKey":")" + s + R"("})",
      R"({"AccessKeyId":"A","SecretAccessKey":")" + s + R"(\q"})",
  };
  for (const std::string& b : bodies) {
    auto c = parse_container_credentials(b);
    ASSERT_FALSE(c.has_value()) << b;
    EXPECT_EQ(c.error().find(s), std::string::npos) << c.error();
    EXPECT_EQ(c.error().find("wJalr"), std::string::npos) << c.error();
  }
  auto e = parse_container_credentials(R"({"code":"AccessDenied","message":"role not found"})");
  ASSERT_FALSE(e.has_value());
  EXPECT_EQ(e.error(), "credentials endpoint error AccessDenied: role not found");
}

TEST(ContainerCredentials, Iso8601) {
  auto t = [](std::string_view s) { return parse_iso8601(s); };
  auto base = system_clock::time_point(1456380211s);  // 2016-02-25T06:03:31Z
  EXPECT_EQ(t("2016-02-25T06:03:31Z"), base);
  EXPECT_EQ(t("2016-02-25T06:03:31.250Z"), base + 250ms);
  EXPECT_EQ(t("2016-02-25T08:03:31+02:00"), base);
  EXPECT_EQ(t("2016-02-25T05:33:31-00:30"), base);
  EXPECT_EQ(t("2016-02-25t06:03:31z"), base);
  for (std::string_view bad :
       {"", "2016-02-25", "2016-02-25T06:03:31", "2016-02-30T06:03:31Z", "2016-13-01T00:00:00Z",
        "2016-02-25T24:00:00Z", "2016-02-25T06:03:31.Z", "2016-02-25T06:03:31Zjunk",
        "2016-02-25T06:03:31+0200", "20160225T060331Z"}) {
    EXPECT_FALSE(t(bad).has_value()) << bad;
  }
}

TEST(Json, ReaderValidatesAndDecodes) {
  auto m = json::parse_object(
      R"( {"a":"x\u00e9\ud83d\ude00\n","n":-1.5e3,"o":{"k":[1,{"z":null}]},"t":true,"a":"last"} )");
  ASSERT_TRUE(m.has_value()) << m.error();
  ASSERT_EQ(m->size(), 5u);
  EXPECT_EQ(json::decode_string((*m)[0].value.raw).value(), "x\xc3\xa9\xf0\x9f\x98\x80\n");
  EXPECT_EQ((*m)[1].value.kind, json::Kind::kNumber);
  EXPECT_EQ((*m)[1].value.raw, "-1.5e3");
  EXPECT_EQ((*m)[2].value.kind, json::Kind::kObject);
  EXPECT_EQ(json::string_member(*m, "a").value(), "last");
  EXPECT_FALSE(json::string_member(*m, "n").has_value());
  EXPECT_FALSE(json::string_member(*m, "missing").has_value());
  std::string deep(40, '[');
  deep += std::string(40, ']');
  for (std::string bad :
       std::vector<std::string>{"", "[]", "{", "{\"a\"}", "{\"a\":}", "{\"a\":01}", "{\"a\":tru}",
                                "{} {}", "{\"a\":[1,]}", "{\"a\":" + deep + "}"}) {
    EXPECT_FALSE(json::parse_object(bad).has_value()) << bad;
  }
  // Syntactically valid, but a lone surrogate is not text: decoding refuses it.
  auto lone = json::parse_object(R"({"a":"\ud800"})");
  ASSERT_TRUE(lone.has_value());
  EXPECT_FALSE(json::string_member(*lone, "a").has_value());
}

// ---------------------------------------------------------------------------------------------
// The provider against a live endpoint

TEST(CredentialsProvider, FetchesFromTheRelativeUriWithoutAuthorization) {
  FakeEndpoint ep([](const SeenRequest&) {
    return http_response(200,
                         credentials_json("ASIAONE", kSecretA, "tok-1", system_clock::now() + 6h));
  });
  asio::io_context io;
  Recorder rec;
  CredentialsProvider p(io, container_source(ep.port()), fast_options(), rec.callbacks());
  p.start();
  ASSERT_TRUE(run_until(
      io, [&] { return !rec.published.empty(); }, 5s));
  EXPECT_EQ(rec.published[0]->access_key_id, "ASIAONE");
  EXPECT_EQ(rec.published[0]->session_token, "tok-1");
  EXPECT_EQ(p.current(), rec.published[0]);
  EXPECT_TRUE(p.last_error().empty());
  auto seen = ep.requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "GET");
  EXPECT_EQ(seen[0].target, "/v2/credentials/task-id");
  EXPECT_EQ(seen[0].headers.count("authorization"), 0u);
  // Expires in 6 h: the next refresh is max_refresh_interval (10 min here) away, not sooner.
  ASSERT_TRUE(p.next_refresh().has_value());
  EXPECT_GT(*p.next_refresh() - std::chrono::steady_clock::now(), 9min);
}

TEST(CredentialsProvider, FullUriSendsTheAuthorizationToken) {
  FakeEndpoint ep([](const SeenRequest& r) {
    if (r.headers.count("authorization") == 0 || r.headers.at("authorization") != kAuthToken) {
      return http_response(401, R"({"code":"Unauthorized","message":"bad token"})");
    }
    return http_response(200,
                         credentials_json("ASIATOKEN", kSecretA, "t", system_clock::now() + 1h));
  });
  auto src = resolve_credential_source(
      env_of({{"AWS_CONTAINER_CREDENTIALS_FULL_URI",
               "http://127.0.0.1:" + std::to_string(ep.port()) + "/get-credentials?a=1"},
              {"AWS_CONTAINER_AUTHORIZATION_TOKEN", std::string(kAuthToken)}}),
      {});
  ASSERT_TRUE(src.has_value()) << src.error();
  asio::io_context io;
  Recorder rec;
  CredentialsProvider p(io, *src, fast_options(), rec.callbacks());
  p.start();
  ASSERT_TRUE(run_until(
      io, [&] { return !rec.published.empty(); }, 5s));
  EXPECT_EQ(rec.published[0]->access_key_id, "ASIATOKEN");
  auto seen = ep.requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].target, "/get-credentials?a=1");
  EXPECT_EQ(seen[0].headers["authorization"], kAuthToken);
}

TEST(CredentialsProvider, TokenFileIsReadAtEveryFetch) {
  auto dir = std::filesystem::temp_directory_path() /
             ("outrigger-aws-" + std::to_string(getpid()) + "-" +
              std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
  std::filesystem::create_directories(dir);
  auto file = dir / "token";
  std::ofstream(file) << "token-one\n";
  std::atomic<int> n{0};
  FakeEndpoint ep([&](const SeenRequest&) {
    // Short-lived credentials so that a refresh comes quickly (min_refresh_interval).
    return http_response(200, credentials_json("ASIA" + std::to_string(++n), kSecretA, "t",
                                               system_clock::now() + 2100ms));
  });
  auto src = resolve_credential_source(
      env_of({{"AWS_CONTAINER_CREDENTIALS_FULL_URI",
               "http://localhost:" + std::to_string(ep.port()) + "/creds"},
              {"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", file.string()}}),
      {});
  ASSERT_TRUE(src.has_value()) << src.error();
  asio::io_context io;
  Recorder rec;
  CredentialsProvider p(io, *src, fast_options(), rec.callbacks());
  p.start();
  ASSERT_TRUE(run_until(
      io, [&] { return rec.published.size() >= 1; }, 5s));
  std::ofstream(file) << "token-two\n";  // rotated, as EKS does
  ASSERT_TRUE(run_until(
      io, [&] { return rec.published.size() >= 2; }, 5s));
  auto seen = ep.requests();
  ASSERT_GE(seen.size(), 2u);
  EXPECT_EQ(seen[0].headers["authorization"], "token-one");
  EXPECT_EQ(seen[1].headers["authorization"], "token-two");
  p.stop();
  std::filesystem::remove_all(dir);
}

TEST(CredentialsProvider, RotatedCredentialsArePickedUpBeforeExpiry) {
  const auto a_expires = in(3s);  // refresh due 2 s before it: within a second
  std::atomic<int> calls{0};
  FakeEndpoint ep([&](const SeenRequest&) {
    if (calls++ == 0)
      return http_response(200, credentials_json("ASIAOLD", kSecretA, "old", a_expires));
    return http_response(200,
                         credentials_json("ASIANEW", kSecretB, "new", system_clock::now() + 6h));
  });
  asio::io_context io;
  Recorder rec;
  std::optional<system_clock::time_point> b_seen_at;
  auto cb = rec.callbacks();
  cb.on_credentials = [&](std::shared_ptr<const Credentials> c) {
    if (c && c->access_key_id == "ASIANEW") b_seen_at = system_clock::now();
    rec.published.push_back(std::move(c));
  };
  CredentialsProvider p(io, container_source(ep.port()), fast_options(), cb);
  p.start();
  ASSERT_TRUE(run_until(
      io, [&] { return b_seen_at.has_value(); }, 6s));
  ASSERT_EQ(rec.published.size(), 2u);
  EXPECT_EQ(rec.published[0]->access_key_id, "ASIAOLD");
  EXPECT_EQ(rec.published[1]->secret_access_key, kSecretB);
  EXPECT_LT(*b_seen_at, a_expires);  // rotated before the old set expired
  EXPECT_EQ(p.fetches(), 2u);
  EXPECT_EQ(p.failures(), 0u);
}

TEST(CredentialsProvider, OutageKeepsLastGoodUntilItExpires) {
  const auto expires = in(3s);  // refresh due within a second
  std::atomic<bool> down{false};
  FakeEndpoint ep([&](const SeenRequest&) -> std::string {
    if (!down) {
      down = true;
      return http_response(200, credentials_json("ASIAGOOD", kSecretA, "tok", expires));
    }
    static int i = 0;  // alternate the ways an agent can fail
    switch (i++ % 3) {
      case 0:
        return http_response(500, R"({"code":"InternalError","message":"agent restarting"})");
      case 1:
        return "";  // closed without an answer
      default:
        return "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{\"Access";  // truncated
    }
  });
  asio::io_context io;
  Recorder rec;
  CredentialsProvider p(io, container_source(ep.port()), fast_options(), rec.callbacks());
  p.start();
  ASSERT_TRUE(run_until(
      io, [&] { return rec.published.size() == 1; }, 5s));
  auto good = rec.published[0];
  // Failing refreshes: the good set stays current while it is valid.
  ASSERT_TRUE(run_until(
      io, [&] { return p.failures() >= 3; }, 5s));
  EXPECT_LT(system_clock::now(), expires);
  EXPECT_EQ(p.current(), good);
  EXPECT_EQ(rec.published.size(), 1u);
  EXPECT_FALSE(p.last_error().empty());
  // Then it expires: nullptr is published and the error says why.
  ASSERT_TRUE(run_until(
      io, [&] { return rec.published.size() == 2; }, 5s));
  EXPECT_EQ(rec.published[1], nullptr);
  EXPECT_EQ(p.current(), nullptr);
  EXPECT_GE(system_clock::now(), expires);
  // The error reported with the expiry says why. (Not p.last_error(): a failed retry in the same
  // turn of the loop may already have replaced it; seen once in 425 tests.)
  ASSERT_FALSE(rec.errors.empty());
  EXPECT_TRUE(std::any_of(rec.errors.begin(), rec.errors.end(), [](const std::string& e) {
    return e.find("credentials expired before a refresh succeeded") != std::string::npos;
  })) << p.last_error();
  // Later failures still say the set expired, with their own cause.
  const uint64_t failed = p.failures();
  ASSERT_TRUE(run_until(
      io, [&] { return p.failures() > failed; }, 5s));
  EXPECT_EQ(p.last_error().rfind("credentials expired before a refresh succeeded: ", 0), 0u)
      << p.last_error();
  for (const std::string& e : rec.errors) {
    EXPECT_EQ(e.find(kSecretA), std::string::npos) << e;
    EXPECT_EQ(e.find("tok\""), std::string::npos) << e;
  }
  // Recovery: the endpoint answers again and a new set is published.
  ep.set_handler([](const SeenRequest&) {
    return http_response(200,
                         credentials_json("ASIABACK", kSecretB, "t", system_clock::now() + 1h));
  });
  ASSERT_TRUE(run_until(
      io, [&] { return rec.published.size() == 3; }, 5s));
  EXPECT_EQ(rec.published[2]->access_key_id, "ASIABACK");
  EXPECT_TRUE(p.last_error().empty());
}

TEST(CredentialsProvider, UnreachableEndpointRetriesWithBackoffAndNamesTheCause) {
  uint16_t dead_port;
  {
    FakeEndpoint gone([](const SeenRequest&) { return std::string(); });
    dead_port = gone.port();
  }  // closed: connections are refused
  asio::io_context io;
  Recorder rec;
  CredentialsProvider p(io, container_source(dead_port), fast_options(), rec.callbacks());
  auto start = std::chrono::steady_clock::now();
  p.start();
  ASSERT_TRUE(run_until(
      io, [&] { return p.failures() >= 4; }, 5s));
  // 50 + 100 + 200 ms of backoff at least between the first and the fourth failure.
  EXPECT_GE(std::chrono::steady_clock::now() - start, 350ms);
  EXPECT_TRUE(rec.published.empty());
  EXPECT_EQ(p.current(), nullptr);
  EXPECT_NE(p.last_error().find("connect"), std::string::npos) << p.last_error();
  EXPECT_NE(p.last_error().find("127.0.0.1:" + std::to_string(dead_port)), std::string::npos);
}

TEST(CredentialsProvider, StopCancelsAHangingFetch) {
  FakeEndpoint ep([](const SeenRequest&) { return std::string(FakeEndpoint::kHang); });
  asio::io_context io;
  Recorder rec;
  auto opts = fast_options();
  opts.request_timeout = 10s;
  auto p =
      std::make_unique<CredentialsProvider>(io, container_source(ep.port()), opts, rec.callbacks());
  p->start();
  ASSERT_TRUE(run_until(
      io, [&] { return !ep.requests().empty(); }, 5s));
  p.reset();  // destroyed mid-fetch: nothing may call back into it
  io.restart();
  io.run_for(50ms);
  EXPECT_TRUE(rec.published.empty());
  EXPECT_TRUE(rec.errors.empty());
}

TEST(CredentialsProvider, RequestTimeoutIsAnError) {
  FakeEndpoint ep([](const SeenRequest&) { return std::string(FakeEndpoint::kHang); });
  asio::io_context io;
  Recorder rec;
  auto opts = fast_options();
  opts.request_timeout = 200ms;
  opts.retry_initial = 5s;
  CredentialsProvider p(io, container_source(ep.port()), opts, rec.callbacks());
  auto start = std::chrono::steady_clock::now();
  p.start();
  ASSERT_TRUE(run_until(
      io, [&] { return !rec.errors.empty(); }, 5s));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 190ms);
  EXPECT_NE(rec.errors[0].find("timed out"), std::string::npos) << rec.errors[0];
}

// ---------------------------------------------------------------------------------------------
// The HTTP client's framing and limits

std::expected<HttpResult, std::string> get_once(uint16_t port, size_t max_bytes = 64 * 1024) {
  asio::io_context io;
  std::optional<std::expected<HttpResult, std::string>> result;
  HttpGetOptions o;
  o.timeout = 2s;
  o.max_response_bytes = max_bytes;
  auto call = http_get(io, HttpTarget{"127.0.0.1", port, "/x"}, {}, o,
                       [&](std::expected<HttpResult, std::string> r) { result = std::move(r); });
  EXPECT_TRUE(run_until(
      io, [&] { return result.has_value(); }, 5s));
  return result.value_or(std::unexpected("no result"));
}

TEST(HttpClient, ChunkedCloseDelimitedAndLimits) {
  FakeEndpoint chunked([](const SeenRequest&) {
    return std::string(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        "4\r\n{\"a\"\r\n5;ext=1\r\n:\"b\"}\r\n0\r\nX-Trailer: 1\r\n\r\n");
  });
  auto r = get_once(chunked.port());
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(r->body, "{\"a\":\"b\"}");

  FakeEndpoint close_delimited(
      [](const SeenRequest&) { return std::string("HTTP/1.0 404 Not Found\r\n\r\nnope"); });
  r = get_once(close_delimited.port());
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(r->body, "nope");

  FakeEndpoint big([](const SeenRequest&) { return http_response(200, std::string(70000, 'x')); });
  r = get_once(big.port());
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().find("larger than 65536"), std::string::npos) << r.error();

  FakeEndpoint garbage([](const SeenRequest&) { return std::string("SSH-2.0-OpenSSH\r\n\r\n"); });
  r = get_once(garbage.port());
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().find("status line"), std::string::npos) << r.error();

  FakeEndpoint both([](const SeenRequest&) {
    return std::string("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd");
  });
  EXPECT_FALSE(get_once(both.port()).has_value());
}

TEST(HttpClient, UrlParsing) {
  auto u = parse_http_url("http://169.254.170.2/v4/abc-123");
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->host, "169.254.170.2");
  EXPECT_EQ(u->port, 80);
  EXPECT_EQ(u->target, "/v4/abc-123");
  u = parse_http_url("HTTP://[::1]:8080?x=1");
  ASSERT_TRUE(u.has_value()) << u.error();
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, 8080);
  EXPECT_EQ(u->target, "/?x=1");
  for (std::string_view bad : {"https://127.0.0.1/", "http://", "http://user@127.0.0.1/",
                               "http://127.0.0.1:99999/", "http://metadata.local/x",
                               "http://127.0.0.1/a b", "http://127.0.0.1/#frag", "http://[::1/"}) {
    EXPECT_FALSE(parse_http_url(bad).has_value()) << bad;
  }
}

// ---------------------------------------------------------------------------------------------
// ECS task metadata v4

// The shape the ECS developer guide documents for ${ECS_CONTAINER_METADATA_URI_V4}/task on Fargate
// (values made up).
const std::string kTaskDocument = R"({
  "Cluster": "arn:aws:ecs:us-west-2:111122223333:cluster/orders",
  "TaskARN": "arn:aws:ecs:us-west-2:111122223333:task/orders/158d1c8083dd49d6b527399fd6414f5c",
  "Family": "orders-api",
  "Revision": "24",
  "DesiredStatus": "RUNNING",
  "KnownStatus": "RUNNING",
  "Limits": {"CPU": 0.25, "Memory": 512},
  "PullStartedAt": "2026-11-22T05:00:01.123456789Z",
  "PullStoppedAt": "2026-11-22T05:00:09.987654321Z",
  "AvailabilityZone": "us-west-2b",
  "LaunchType": "FARGATE",
  "Containers": [
    {
      "DockerId": "158d1c8083dd49d6b527399fd6414f5c-0123456789",
      "Name": "outrigger",
      "DockerName": "outrigger",
      "Image": "111122223333.dkr.ecr.us-west-2.amazonaws.com/outrigger:1.0",
      "Labels": {"com.amazonaws.ecs.cluster": "arn:aws:ecs:us-west-2:111122223333:cluster/orders"},
      "Limits": {"CPU": 2},
      "Networks": [{"NetworkMode": "awsvpc", "IPv4Addresses": ["10.0.2.106"],
                    "PrivateDNSName": "ip-10-0-2-106.us-west-2.compute.internal"}]
    }
  ],
  "ClockDrift": {"ClockErrorBound": 0.446931, "ReferenceTimestamp": "2026-11-22T05:00:00Z",
                 "ClockSynchronizationStatus": "SYNCHRONIZED"},
  "EphemeralStorageMetrics": {"Utilized": 261, "Reserved": 20496}
})";

TEST(TaskMetadata, ParsesTheDocumentedShape) {
  auto t = parse_task_metadata(kTaskDocument);
  ASSERT_TRUE(t.has_value()) << t.error();
  EXPECT_EQ(t->availability_zone, "us-west-2b");
  EXPECT_EQ(t->task_arn,
            "arn:aws:ecs:us-west-2:111122223333:task/orders/158d1c8083dd49d6b527399fd6414f5c");
  EXPECT_EQ(t->cluster, "arn:aws:ecs:us-west-2:111122223333:cluster/orders");
  EXPECT_EQ(t->family, "orders-api");
  EXPECT_EQ(t->revision, "24");
  EXPECT_EQ(t->launch_type, "FARGATE");
  EXPECT_EQ(t->region, "us-west-2");
  EXPECT_EQ(t->account_id, "111122223333");
}

TEST(TaskMetadata, RejectsWhatItCannotUse) {
  auto with = [](std::string_view from, std::string_view to) {
    std::string doc = kTaskDocument;
    doc.replace(doc.find(from), from.size(), to);
    return parse_task_metadata(doc);
  };
  EXPECT_EQ(with("\"Revision\": \"24\"", "\"Revision\": 24")->revision, "24");
  auto no_az = with("\"AvailabilityZone\": \"us-west-2b\",", "");
  ASSERT_TRUE(no_az.has_value());
  EXPECT_TRUE(no_az->availability_zone.empty());
  EXPECT_NE(with("\"TaskARN\"", "\"TaskArn\"").error().find("TaskARN"), std::string::npos);
  EXPECT_NE(with("us-west-2b", "us-east-1a").error().find("not in the task's region"),
            std::string::npos);
  EXPECT_NE(with("us-west-2b", "us-west-2").error().find("zone letter"), std::string::npos);
  EXPECT_FALSE(with("arn:aws:ecs:us-west-2:111122223333:task", "arn:aws:ecs:us-west-2:1111:task")
                   .has_value());
  EXPECT_FALSE(parse_task_metadata("[]").has_value());
}

TEST(TaskMetadata, EnvironmentVariable) {
  EXPECT_EQ(
      metadata_uri_v4(env_of({{"ECS_CONTAINER_METADATA_URI_V4", "http://169.254.170.2/v4/x"}})),
      "http://169.254.170.2/v4/x");
  EXPECT_FALSE(metadata_uri_v4(env_of({})).has_value());
}

TEST(TaskMetadataFetcher, RetriesAnUnavailableAgentThenParses) {
  std::atomic<int> calls{0};
  FakeEndpoint ep([&](const SeenRequest& r) {
    if (calls++ == 0) return http_response(503, "{}");
    if (r.target != "/v4/158d1c80-container/task") return http_response(404, "{}");
    return http_response(200, kTaskDocument);
  });
  asio::io_context io;
  std::optional<std::expected<TaskMetadata, std::string>> got;
  TaskMetadataFetcher::Options o;
  o.retry_initial = 20ms;
  TaskMetadataFetcher f(io,
                        "http://127.0.0.1:" + std::to_string(ep.port()) + "/v4/158d1c80-container/",
                        o, [&](std::expected<TaskMetadata, std::string> r) { got = std::move(r); });
  f.start();
  ASSERT_TRUE(run_until(
      io, [&] { return got.has_value(); }, 5s));
  ASSERT_TRUE(got->has_value()) << got->error();
  EXPECT_EQ((*got)->availability_zone, "us-west-2b");
  EXPECT_EQ(f.attempts_made(), 2);
}

TEST(TaskMetadataFetcher, GivesUpAfterTheBoundedAttempts) {
  FakeEndpoint ep([&](const SeenRequest&) { return http_response(500, "{}"); });
  asio::io_context io;
  std::optional<std::expected<TaskMetadata, std::string>> got;
  TaskMetadataFetcher::Options o;
  o.attempts = 3;
  o.retry_initial = 10ms;
  TaskMetadataFetcher f(io, "http://127.0.0.1:" + std::to_string(ep.port()) + "/v4/x", o,
                        [&](std::expected<TaskMetadata, std::string> r) { got = std::move(r); });
  f.start();
  ASSERT_TRUE(run_until(
      io, [&] { return got.has_value(); }, 5s));
  ASSERT_FALSE(got->has_value());
  EXPECT_NE(got->error().find("HTTP 500"), std::string::npos) << got->error();
  EXPECT_NE(got->error().find("after 3 attempts"), std::string::npos) << got->error();
  EXPECT_EQ(ep.requests().size(), 3u);
}

TEST(TaskMetadataFetcher, MalformedDocumentIsNotRetriedAndBadUriFailsLater) {
  FakeEndpoint ep([&](const SeenRequest&) { return http_response(200, "{\"Cluster\": 1}"); });
  asio::io_context io;
  std::optional<std::expected<TaskMetadata, std::string>> got;
  TaskMetadataFetcher f(io, "http://127.0.0.1:" + std::to_string(ep.port()) + "/v4/x", {},
                        [&](std::expected<TaskMetadata, std::string> r) { got = std::move(r); });
  f.start();
  ASSERT_TRUE(run_until(
      io, [&] { return got.has_value(); }, 5s));
  ASSERT_FALSE(got->has_value());
  EXPECT_EQ(f.attempts_made(), 1);

  std::optional<std::expected<TaskMetadata, std::string>> bad;
  TaskMetadataFetcher g(io, "https://169.254.170.2/v4/x", {},
                        [&](std::expected<TaskMetadata, std::string> r) { bad = std::move(r); });
  g.start();
  EXPECT_FALSE(bad.has_value());  // never from inside start()
  ASSERT_TRUE(run_until(
      io, [&] { return bad.has_value(); }, 5s));
  EXPECT_NE(bad->error().find("ECS_CONTAINER_METADATA_URI_V4"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Names

TEST(Names, Regions) {
  auto r = parse_region("us-gov-west-1");
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(r->geo, "us");
  EXPECT_EQ(r->qualifier, "gov");
  EXPECT_EQ(r->direction, "west");
  EXPECT_EQ(r->number, 1);
  EXPECT_EQ(r->partition, "aws-us-gov");
  for (std::string_view ok : {"us-east-1", "eu-central-2", "ap-southeast-4", "cn-northwest-1",
                              "il-central-1", "mx-central-1", "us-isob-east-1", "me-south-1"}) {
    EXPECT_TRUE(parse_region(ok).has_value()) << ok;
  }
  EXPECT_EQ(parse_region("cn-north-1")->partition, "aws-cn");
  EXPECT_EQ(parse_region("us-isob-east-1")->partition, "aws-iso-b");
  EXPECT_NE(parse_region("us-east").error().find("must look like us-east-1"), std::string::npos);
  EXPECT_NE(parse_region("xx-east-1").error().find("'xx' is not a known geography"),
            std::string::npos);
  EXPECT_NE(parse_region("us-up-1").error().find("'up' is not a direction"), std::string::npos);
  EXPECT_NE(parse_region("us-east-01").error().find("number from 1 to 99"), std::string::npos);
  EXPECT_NE(parse_region("us-mil-east-1").error().find("'mil' is not a known qualifier"),
            std::string::npos);
  EXPECT_FALSE(parse_region("US-EAST-1").has_value());
  EXPECT_FALSE(parse_region("").has_value());
}

TEST(Names, AvailabilityZones) {
  auto az = parse_availability_zone("eu-west-3c");
  ASSERT_TRUE(az.has_value()) << az.error();
  EXPECT_EQ(az->region.name, "eu-west-3");
  EXPECT_EQ(az->letter, 'c');
  EXPECT_NE(parse_availability_zone("us-east-1").error().find("add the zone letter"),
            std::string::npos);
  EXPECT_FALSE(parse_availability_zone("use1-az1").has_value());  // an AZ id, not a name
  EXPECT_FALSE(parse_availability_zone("us-east-1A").has_value());
}

TEST(Names, PrivateLinkEndpoints) {
  auto n = parse_privatelink_endpoint_name(
      "vpce-0a1b2c3d4e5f67890-k2n5x9qz.vpce-svc-0123456789abcdef0.us-east-1.vpce.amazonaws.com");
  ASSERT_TRUE(n.has_value()) << n.error();
  EXPECT_EQ(n->endpoint_id, "vpce-0a1b2c3d4e5f67890");
  EXPECT_EQ(n->suffix, "k2n5x9qz");
  EXPECT_TRUE(n->availability_zone.empty());
  EXPECT_EQ(n->service_id, "vpce-svc-0123456789abcdef0");
  EXPECT_EQ(n->region, "us-east-1");
  EXPECT_EQ(n->dns_suffix, "amazonaws.com");
  EXPECT_EQ(zonal_endpoint_name(*n, "us-east-1b").value(),
            "vpce-0a1b2c3d4e5f67890-k2n5x9qz-us-east-1b.vpce-svc-0123456789abcdef0.us-east-1.vpce."
            "amazonaws.com");
  EXPECT_NE(zonal_endpoint_name(*n, "us-west-2a").error().find("not in region us-east-1"),
            std::string::npos);
  EXPECT_FALSE(zonal_endpoint_name(*n, "us-east-1").has_value());

  // A zonal name, any case, a trailing dot; it round-trips to the regional name.
  auto z = parse_privatelink_endpoint_name(
      "VPCE-0A1B2C3D4E5F67890-K2N5X9QZ-US-EAST-1B.vpce-svc-0123456789abcdef0.us-east-1.vpce."
      "amazonaws.com.");
  ASSERT_TRUE(z.has_value()) << z.error();
  EXPECT_EQ(z->availability_zone, "us-east-1b");
  EXPECT_EQ(regional_endpoint_name(*z),
            "vpce-0a1b2c3d4e5f67890-k2n5x9qz.vpce-svc-0123456789abcdef0.us-east-1.vpce."
            "amazonaws.com");

  auto cn = parse_privatelink_endpoint_name(
      "vpce-0a1b2c3d4e5f67890-k2n5x9qz.vpce-svc-0123456789abcdef0.cn-north-1.vpce.amazonaws.com."
      "cn");
  ASSERT_TRUE(cn.has_value()) << cn.error();
  EXPECT_EQ(cn->dns_suffix, "amazonaws.com.cn");

  auto err = [](std::string_view name) {
    auto r = parse_privatelink_endpoint_name(name);
    return r ? std::string("parsed") : r.error();
  };
  EXPECT_NE(err("vpce-0a1b2c3d4e5f67890-k2n5x9qz.vpce-svc-0123456789abcdef0.us-east-1.vpce."
                "amazonaws.com.cn")
                .find("uses amazonaws.com"),
            std::string::npos);
  EXPECT_NE(err("vpce-0a1b2c3d4e5f6789-k2n5x9qz.vpce-svc-0123456789abcdef0.us-east-1.vpce."
                "amazonaws.com")
                .find("is not an endpoint id"),
            std::string::npos);
  EXPECT_NE(err("vpce-0a1b2c3d4e5f67890-k2n5x9.vpce-svc-0123456789abcdef0.us-east-1.vpce."
                "amazonaws.com")
                .find("8 letters or digits"),
            std::string::npos);
  EXPECT_NE(err("vpce-0a1b2c3d4e5f67890-k2n5x9qz-us-west-2a.vpce-svc-0123456789abcdef0.us-east-1."
                "vpce.amazonaws.com")
                .find("not in the name's region"),
            std::string::npos);
  EXPECT_NE(err("vpce-0a1b2c3d4e5f67890-k2n5x9qz.s3.us-east-1.vpce.amazonaws.com")
                .find("endpoint service id"),
            std::string::npos);
  EXPECT_NE(err("vpce-0a1b2c3d4e5f67890-k2n5x9qz.vpce-svc-0123456789abcdef0.us-east-1.amazonaws."
                "com")
                .find("must look like"),
            std::string::npos);
  EXPECT_NE(err("vpce_0a1b.vpce-svc-0123456789abcdef0.us-east-1.vpce.amazonaws.com")
                .find("a-z, 0-9 and '-'"),
            std::string::npos);
}

TEST(Names, LatticeServices) {
  auto n = parse_lattice_service_name(
      "orders-api-0bd13ce30a0ba2c6b.7d67968.vpc-lattice-svcs.us-west-2.on.aws");
  ASSERT_TRUE(n.has_value()) << n.error();
  EXPECT_EQ(n->service_name, "orders-api");
  EXPECT_EQ(n->service_id, "svc-0bd13ce30a0ba2c6b");
  EXPECT_EQ(n->domain_label, "7d67968");
  EXPECT_EQ(n->region, "us-west-2");
  // The user guide's example name.
  EXPECT_TRUE(
      parse_lattice_service_name("data-svc-022f67d3a42.1234abc.vpc-lattice-svcs.us-west-2.on.aws")
          .has_value());
  auto err = [](std::string_view name) {
    auto r = parse_lattice_service_name(name);
    return r ? std::string("parsed") : r.error();
  };
  EXPECT_NE(err("orders.7d67968.vpc-lattice-svcs.us-west-2.on.aws").find("service name, '-'"),
            std::string::npos);
  EXPECT_NE(err("orders-xyz.7d67968.vpc-lattice-svcs.us-west-2.on.aws").find("hex digits"),
            std::string::npos);
  EXPECT_NE(err("ab-0bd13ce30a0ba2c6b.7d67968.vpc-lattice-svcs.us-west-2.on.aws")
                .find("3 to 40 characters"),
            std::string::npos);
  EXPECT_NE(err("orders-0bd13ce30a0ba2c6b.7d67968.vpc-lattice-svcs.us-west-9x.on.aws")
                .find("number from 1 to 99"),
            std::string::npos);
  EXPECT_NE(
      err("orders-0bd13ce30a0ba2c6b.7d67968.vpc-lattice.us-west-2.on.aws").find("must look like"),
      std::string::npos);
}

TEST(Names, ExecuteApiHosts) {
  auto h = parse_execute_api_host("a1b2c3d4e5.execute-api.eu-central-1.amazonaws.com");
  ASSERT_TRUE(h.has_value()) << h.error();
  EXPECT_EQ(h->api_id, "a1b2c3d4e5");
  EXPECT_TRUE(h->vpce_id.empty());
  EXPECT_EQ(h->region, "eu-central-1");
  auto p = parse_execute_api_host(
      "a1b2c3d4e5-vpce-0a1b2c3d4e5f67890.execute-api.us-east-1.amazonaws.com");
  ASSERT_TRUE(p.has_value()) << p.error();
  EXPECT_EQ(p->vpce_id, "vpce-0a1b2c3d4e5f67890");
  EXPECT_NE(parse_execute_api_host("a1b2c3.execute-api.us-east-1.amazonaws.com")
                .error()
                .find("10 letters or digits"),
            std::string::npos);
  EXPECT_NE(parse_execute_api_host("a1b2c3d4e5-vpce-12.execute-api.us-east-1.amazonaws.com")
                .error()
                .find("VPC endpoint id"),
            std::string::npos);
  EXPECT_NE(parse_execute_api_host("a1b2c3d4e5.execute-api.us-east-1.example.com")
                .error()
                .find("amazonaws.com"),
            std::string::npos);
  EXPECT_FALSE(parse_execute_api_host("a1b2c3d4e5.lambda-url.us-east-1.on.aws").has_value());
}

}  // namespace
}  // namespace outrigger::aws
