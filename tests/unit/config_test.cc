// Tests of config/: scalar syntaxes, every validation rule with its exact line:column, defaults,
// inheritance, JSON rendering and round trip, the shipped examples and the bad-config fixtures.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "config/loader.h"
#include "config/model.h"
#include "config/syntax.h"

namespace outrigger::config {
namespace {

namespace fs = std::filesystem;
using Lines = std::vector<std::string>;

// Raw strings in this file start with a newline for readability; line 1 is the line after it.
std::string yaml(std::string_view text) {
  if (!text.empty() && text.front() == '\n') text.remove_prefix(1);
  return std::string(text);
}

Lines errors_of(std::string_view text, std::string_view file = "t.yaml") {
  LoadResult r = load_string(text, file);
  Lines out;
  for (const Diagnostic& d : r.errors) out.push_back(d.to_string());
  EXPECT_EQ(r.ok(), out.empty());
  return out;
}

std::shared_ptr<const Config> load_ok(std::string_view text) {
  LoadResult r = load_string(text, "t.yaml");
  for (const Diagnostic& d : r.errors) ADD_FAILURE() << d.to_string();
  return r.config;
}

// A valid clusters section, appended to configs that test listener-side rules.
constexpr std::string_view kClusters =
    "clusters:\n"
    "  - name: app\n"
    "    endpoints: [127.0.0.1:8080]\n";

// A valid listeners section, prepended to configs that test cluster-side rules.
constexpr std::string_view kListeners =
    "listeners:\n"
    "  - name: l\n"
    "    address: 127.0.0.1:15001\n"
    "    routes: [{cluster: app}]\n";

fs::path find_source_dir(std::string_view relative) {
  std::vector<fs::path> roots;
  roots.push_back(fs::path(__FILE__).parent_path().parent_path().parent_path());
  if (const char* env = std::getenv("OUTRIGGER_SOURCE_DIR")) roots.emplace_back(env);
  fs::path dir = fs::current_path();
  for (int i = 0; i < 8 && !dir.empty(); ++i, dir = dir.parent_path()) roots.push_back(dir);
  for (const fs::path& root : roots) {
    std::error_code ec;
    // A build tree has folders named like the sources (build/config): never take those.
    if (fs::exists(root / "CMakeCache.txt", ec)) continue;
    if (fs::is_directory(root / relative, ec)) return root / relative;
  }
  return {};
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs `python3 -m json.tool` on `json`; true when Python accepts it as JSON.
bool python_accepts_json(const std::string& json) {
  char tmpl[] = "/tmp/outrigger_config_test_XXXXXX";
  int fd = mkstemp(tmpl);
  if (fd < 0) return false;
  bool written = ::write(fd, json.data(), json.size()) == static_cast<ssize_t>(json.size());
  ::close(fd);
  std::string cmd = std::string("python3 -m json.tool ") + tmpl + " >/dev/null 2>&1";
  bool ok = written && std::system(cmd.c_str()) == 0;
  ::unlink(tmpl);
  return ok;
}

// ---------------------------------------------------------------------------------------------
// Scalar syntaxes

TEST(ConfigSyntax, DurationsAccepted) {
  Duration d{};
  ASSERT_TRUE(parse_duration("250ms", &d));
  EXPECT_EQ(d.count(), 250);
  ASSERT_TRUE(parse_duration("5s", &d));
  EXPECT_EQ(d.count(), 5'000);
  ASSERT_TRUE(parse_duration("2m", &d));
  EXPECT_EQ(d.count(), 120'000);
  ASSERT_TRUE(parse_duration("1h", &d));
  EXPECT_EQ(d.count(), 3'600'000);
  ASSERT_TRUE(parse_duration("0s", &d));
  EXPECT_EQ(d.count(), 0);
  ASSERT_TRUE(parse_duration("9223372036854ms", &d));  // the largest accepted
}

TEST(ConfigSyntax, DurationsRejected) {
  Duration d{7};
  for (std::string_view bad :
       {"", "5", "-5s", "+5s", "1.5s", "1500us", "5ns", "5d", "s", "5 s", "5S", "0x10s", "5s5",
        "9223372036855ms", "99999999999999999999s", "2562048h"}) {
    EXPECT_FALSE(parse_duration(bad, &d)) << bad;
  }
  EXPECT_EQ(d.count(), 7);  // untouched on failure
}

TEST(ConfigSyntax, DurationReasons) {
  Duration d{};
  std::string reason;
  EXPECT_FALSE(syntax::parse_duration("5", &d, &reason));
  EXPECT_EQ(reason, "missing unit; use ms, s, m or h");
  EXPECT_FALSE(syntax::parse_duration("-5s", &d, &reason));
  EXPECT_EQ(reason, "negative durations are not allowed");
  EXPECT_FALSE(syntax::parse_duration("1.5s", &d, &reason));
  EXPECT_EQ(reason, "fractions are not allowed; use a smaller unit, e.g. 1500ms");
  EXPECT_FALSE(syntax::parse_duration("0.0001s", &d, &reason));
  EXPECT_EQ(reason, "fractions are not allowed; use a smaller unit");
  EXPECT_FALSE(syntax::parse_duration("1500us", &d, &reason));
  EXPECT_EQ(reason, "unknown unit \"us\"; use ms, s, m or h");
  EXPECT_FALSE(syntax::parse_duration("99999999999h", &d, &reason));
  EXPECT_EQ(reason, "too large");
}

TEST(ConfigSyntax, FormatDurationPicksTheLargestExactUnit) {
  EXPECT_EQ(syntax::format_duration(Duration{0}), "0s");
  EXPECT_EQ(syntax::format_duration(Duration{250}), "250ms");
  EXPECT_EQ(syntax::format_duration(Duration{1'500}), "1500ms");
  EXPECT_EQ(syntax::format_duration(Duration{5'000}), "5s");
  EXPECT_EQ(syntax::format_duration(Duration{90'000}), "90s");
  EXPECT_EQ(syntax::format_duration(Duration{300'000}), "5m");
  EXPECT_EQ(syntax::format_duration(Duration{7'200'000}), "2h");
}

TEST(ConfigSyntax, Sizes) {
  uint64_t n = 0;
  std::string reason;
  ASSERT_TRUE(syntax::parse_size("16384", &n, &reason));
  EXPECT_EQ(n, 16384u);
  ASSERT_TRUE(syntax::parse_size("16KiB", &n, &reason));
  EXPECT_EQ(n, 16384u);
  ASSERT_TRUE(syntax::parse_size("64MiB", &n, &reason));
  EXPECT_EQ(n, 64u << 20);
  ASSERT_TRUE(syntax::parse_size("1GiB", &n, &reason));
  EXPECT_EQ(n, 1u << 30);
  EXPECT_FALSE(syntax::parse_size("64MB", &n, &reason));
  EXPECT_EQ(reason, "unknown unit \"MB\"; use KiB, MiB, GiB or TiB");
  EXPECT_FALSE(syntax::parse_size("-1", &n, &reason));
  EXPECT_FALSE(syntax::parse_size("KiB", &n, &reason));
  EXPECT_FALSE(syntax::parse_size("99999999999TiB", &n, &reason));
  EXPECT_EQ(reason, "too large");
}

TEST(ConfigSyntax, HostPortAccepted) {
  HostPort hp;
  std::string err;
  ASSERT_TRUE(parse_host_port("1.2.3.4:80", true, &hp, &err));
  EXPECT_EQ(hp.host, "1.2.3.4");
  EXPECT_EQ(hp.port, 80);
  ASSERT_TRUE(parse_host_port("[::1]:8080", true, &hp, &err));
  EXPECT_EQ(hp.host, "::1");
  EXPECT_EQ(hp.to_string(), "[::1]:8080");
  ASSERT_TRUE(parse_host_port("[0:0::1]:1", true, &hp, &err));
  EXPECT_EQ(hp.host, "::1");  // canonical form, so duplicates compare equal
  ASSERT_TRUE(parse_host_port("0.0.0.0:0", true, &hp, &err));
  EXPECT_EQ(hp.port, 0);
  ASSERT_TRUE(parse_host_port("name.example.com:443", false, &hp, &err));
  EXPECT_EQ(hp.host, "name.example.com");
  EXPECT_EQ(hp.to_string(), "name.example.com:443");
  ASSERT_TRUE(parse_host_port("1.2.3.4:65535", true, &hp, &err));
  EXPECT_EQ(hp.port, 65535);
}

TEST(ConfigSyntax, HostPortRejected) {
  struct Case {
    std::string_view text;
    bool require_ip;
    std::string_view error;
  };
  const Case cases[] = {
      {"", false, "empty address; expected host:port"},
      {"1.2.3.4", true, "missing port in \"1.2.3.4\"; expected host:port"},
      {"1.2.3.4:", true, "missing port in \"1.2.3.4:\""},
      {"1.2.3.4:http", true, "invalid port \"http\""},
      {"1.2.3.4:65536", true, "port 65536 out of range (0..65535)"},
      {"1.2.3.4:-1", true, "invalid port \"-1\""},
      {"[::1]", true, "missing port in \"[::1]\"; expected [address]:port"},
      {"[::1:80", true, "missing \"]\" in \"[::1:80\""},
      {"[zz::1]:80", true, "invalid IPv6 address \"zz::1\""},
      {"::1:80", true, "IPv6 addresses need brackets and a port, e.g. [::1]:8080"},
      {"::1", true, "IPv6 addresses need brackets and a port, e.g. [::1]:8080"},
      {":80", false, "missing host in \":80\""},
      {"name.example.com:443", true, "\"name.example.com\" is not an IP address"},
      {"999.1.1.1:80", false, "invalid IPv4 address \"999.1.1.1\""},
      {"bad..name:80", false, "invalid dns name \"bad..name\""},
      {"-bad.example:80", false, "invalid dns name \"-bad.example\""},
      {"bad name:80", false, "invalid dns name \"bad name\""},
  };
  for (const Case& c : cases) {
    HostPort hp;
    std::string err;
    EXPECT_FALSE(parse_host_port(c.text, c.require_ip, &hp, &err)) << c.text;
    EXPECT_EQ(err, c.error) << c.text;
  }
}

TEST(ConfigSyntax, DnsNames) {
  EXPECT_TRUE(syntax::is_dns_name("a"));
  EXPECT_TRUE(syntax::is_dns_name("user-service"));
  EXPECT_TRUE(syntax::is_dns_name("my_service.internal."));
  EXPECT_TRUE(syntax::is_dns_name(std::string(63, 'a') + ".com"));
  EXPECT_FALSE(syntax::is_dns_name(std::string(64, 'a') + ".com"));
  EXPECT_FALSE(syntax::is_dns_name(""));
  EXPECT_FALSE(syntax::is_dns_name("a..b"));
  EXPECT_FALSE(syntax::is_dns_name("a-.b"));
  EXPECT_FALSE(syntax::is_dns_name("1.2.3"));  // all-numeric last label: a mistyped IPv4
  std::string long_name;
  for (int i = 0; i < 64; ++i) long_name += "abc.";
  EXPECT_FALSE(syntax::is_dns_name(long_name + "com"));  // > 253 characters
}

TEST(ConfigSyntax, HostPatterns) {
  std::string out;
  std::string reason;
  ASSERT_TRUE(syntax::parse_host_pattern("User-Service", &out, &reason));
  EXPECT_EQ(out, "user-service");
  ASSERT_TRUE(syntax::parse_host_pattern("*.Orders.internal", &out, &reason));
  EXPECT_EQ(out, "*.orders.internal");
  ASSERT_TRUE(syntax::parse_host_pattern("*", &out, &reason));
  ASSERT_TRUE(syntax::parse_host_pattern("10.0.0.1", &out, &reason));
  ASSERT_TRUE(syntax::parse_host_pattern("[::1]", &out, &reason));
  ASSERT_TRUE(syntax::parse_host_pattern("[2001:DB8:0::7]", &out, &reason));
  EXPECT_EQ(out, "[2001:db8::7]");  // canonical: what routing compares a request's address with
  for (std::string_view bad : {"", "a.*.b", "*foo.com", "*.", "foo.*", "**", "a b", "host:80"}) {
    EXPECT_FALSE(syntax::parse_host_pattern(bad, &out, &reason)) << bad;
  }
  // A NUL (a YAML "\0" escape) ends no address early: these are not ::1 and 10.0.0.1.
  EXPECT_FALSE(syntax::is_ipv6_literal(std::string_view("::1\0x", 5)));
  EXPECT_FALSE(syntax::is_ipv4_literal(std::string_view("10.0.0.1\0x", 10)));
  EXPECT_FALSE(syntax::parse_host_pattern(std::string_view("[::1\0x]", 7), &out, &reason));
}

TEST(ConfigSyntax, ClosestSuggestsOnlyNearWords) {
  std::vector<std::string> keys = {"timeout", "cluster", "match", "name"};
  EXPECT_EQ(syntax::closest("timout", keys), "timeout");
  EXPECT_EQ(syntax::closest("Cluster", keys), "cluster");
  EXPECT_EQ(syntax::closest("nmae", keys), "");  // transposition costs 2 in a 4-letter word
  EXPECT_EQ(syntax::closest("retries", keys), "");
}

TEST(ConfigSyntax, QuoteEscapes) {
  EXPECT_EQ(syntax::quote("a\"b\\c\n\t\x01"), "\"a\\\"b\\\\c\\n\\t\\u0001\"");
  EXPECT_EQ(syntax::quote("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
  EXPECT_EQ(syntax::quote("bad\xff"), "\"bad\\ufffd\"");
  EXPECT_EQ(syntax::quote("\xc3"), "\"\\ufffd\"");  // truncated sequence
}

TEST(ConfigModel, FindClusterAndHostPort) {
  Config c;
  c.clusters.emplace_back().name = "a";
  c.clusters.emplace_back().name = "b";
  ASSERT_NE(c.find_cluster("b"), nullptr);
  EXPECT_EQ(c.find_cluster("b")->name, "b");
  EXPECT_EQ(c.find_cluster("c"), nullptr);
  EXPECT_EQ((HostPort{"fd00::1", 443}).to_string(), "[fd00::1]:443");
  EXPECT_EQ((HostPort{"10.0.0.1", 0}).to_string(), "10.0.0.1:0");
}

// ---------------------------------------------------------------------------------------------
// Loading: defaults and inheritance

TEST(ConfigLoad, MinimalConfigGetsDefaults) {
  auto c = load_ok(yaml(R"(
listeners:
  - name: out
    address: 127.0.0.1:15001
    routes:
      - cluster: app
clusters:
  - name: app
    endpoints: [127.0.0.1:8080]
)"));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->source, "t.yaml");
  EXPECT_EQ(c->workers, 0u);
  EXPECT_FALSE(c->admin.address);
  EXPECT_EQ(c->access_log.mode, AccessLogMode::kStdout);
  EXPECT_TRUE(c->dns.resolvers.empty());
  EXPECT_EQ(c->dns.timeout.count(), 2'000);
  EXPECT_EQ(c->drain.delay.count(), 0);
  EXPECT_EQ(c->drain.timeout.count(), 30'000);
  ASSERT_EQ(c->listeners.size(), 1u);
  const Listener& l = c->listeners[0];
  EXPECT_EQ(l.name, "out");
  EXPECT_EQ(l.address.to_string(), "127.0.0.1:15001");
  EXPECT_EQ(l.role, ListenerRole::kOutbound);
  EXPECT_EQ(l.limits.max_request_headers_bytes, 16384u);
  EXPECT_EQ(l.limits.max_request_body_bytes, 1ull << 30);
  EXPECT_EQ((l.loc.line), 2);
  EXPECT_EQ((l.loc.column), 5);
  ASSERT_EQ(l.routes.size(), 1u);
  EXPECT_EQ(l.routes[0].name, "out-0");
  EXPECT_TRUE(l.routes[0].match.hosts.empty());
  EXPECT_EQ(l.routes[0].match.path_prefix, "/");
  EXPECT_EQ(l.routes[0].timeout.count(), 15'000);
  EXPECT_EQ(l.routes[0].loc.line, 5);
  EXPECT_EQ(l.routes[0].loc.column, 9);
  ASSERT_EQ(c->clusters.size(), 1u);
  const Cluster& cl = c->clusters[0];
  EXPECT_EQ(cl.type, ClusterType::kStatic);
  EXPECT_EQ(cl.connect_timeout.count(), 5'000);
  EXPECT_EQ(cl.max_connections, 1024u);
  EXPECT_FALSE(cl.host_rewrite);
  EXPECT_EQ(cl.loc.line, 7);
}

TEST(ConfigLoad, ListenerLimitsOverrideTopLevelKeyByKey) {
  auto c = load_ok(yaml(R"(
limits:
  max_headers: 50
  max_request_body_bytes: 64MiB
  idle_timeout: 30s
listeners:
  - name: a
    address: 127.0.0.1:1
    routes: [{cluster: app}]
  - name: b
    address: 127.0.0.1:2
    limits: {max_headers: 20, max_request_headers_bytes: 8KiB, max_connections: 10}
    routes: [{cluster: app}]
)") + std::string(kClusters));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->limits.max_headers, 50u);
  const Limits& a = c->listeners[0].limits;
  EXPECT_EQ(a.max_headers, 50u);
  EXPECT_EQ(a.max_request_body_bytes, 64ull << 20);
  EXPECT_EQ(a.idle_timeout.count(), 30'000);
  const Limits& b = c->listeners[1].limits;
  EXPECT_EQ(b.max_headers, 20u);
  EXPECT_EQ(b.max_request_headers_bytes, 8192u);
  EXPECT_EQ(b.max_connections, 10u);
  EXPECT_EQ(b.max_request_body_bytes, 64ull << 20);  // inherited
  EXPECT_EQ(b.idle_timeout.count(), 30'000);         // inherited
  EXPECT_EQ(b.header_timeout.count(), 10'000);       // default
}

TEST(ConfigLoad, DnsClustersInheritTopLevelTtlsKeyByKey) {
  auto c = load_ok(std::string(kListeners) + yaml(R"(
dns:
  resolvers: [127.0.0.1:5353, "[::1]:53"]
  timeout: 500ms
  min_ttl: 10s
  max_ttl: 2m
clusters:
  - name: app
    type: dns
    endpoints: [app.internal:80, {address: "10.0.0.1:81"}]
    dns: {max_ttl: 1m}
  - name: other
    type: dns
    endpoints: [other.internal:443]
)"));
  ASSERT_TRUE(c);
  ASSERT_EQ(c->dns.resolvers.size(), 2u);
  EXPECT_EQ(c->dns.resolvers[1].to_string(), "[::1]:53");
  EXPECT_EQ(c->dns.timeout.count(), 500);
  EXPECT_EQ(c->clusters[0].dns.min_ttl.count(), 10'000);
  EXPECT_EQ(c->clusters[0].dns.max_ttl.count(), 60'000);
  EXPECT_EQ(c->clusters[0].endpoints[1].address.host, "10.0.0.1");
  EXPECT_EQ(c->clusters[1].dns.min_ttl.count(), 10'000);
  EXPECT_EQ(c->clusters[1].dns.max_ttl.count(), 120'000);
}

TEST(ConfigLoad, WorkersAccessLogAndMatch) {
  std::string rest = std::string(kListeners) + std::string(kClusters);
  EXPECT_EQ(load_ok("workers: auto\n" + rest)->workers, 0u);
  EXPECT_EQ(load_ok("workers: 4\n" + rest)->workers, 4u);
  EXPECT_EQ(load_ok("access_log: off\n" + rest)->access_log.mode, AccessLogMode::kOff);
  auto file = load_ok("access_log: logs/access.log\n" + rest);
  EXPECT_EQ(file->access_log.mode, AccessLogMode::kFile);
  EXPECT_EQ(file->access_log.path, "logs/access.log");

  auto c = load_ok(yaml(R"(
listeners:
  - name: l
    address: "[::]:15001"
    role: inbound
    routes:
      - name: r1
        match: {hosts: [User-Service, "*.Orders.Internal", "*"], path_prefix: /api/}
        cluster: app
        timeout: 250ms
)") + std::string(kClusters));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->listeners[0].role, ListenerRole::kInbound);
  EXPECT_EQ(c->listeners[0].address.host, "::");
  const Route& r = c->listeners[0].routes[0];
  EXPECT_EQ(r.name, "r1");
  EXPECT_EQ(r.match.hosts, (Lines{"user-service", "*.orders.internal", "*"}));
  EXPECT_EQ(r.match.path_prefix, "/api/");
  EXPECT_EQ(r.timeout.count(), 250);
}

// ---------------------------------------------------------------------------------------------
// Validation rules, each with its exact position

TEST(ConfigErrors, YamlSyntaxErrorUsesParserMark) {
  EXPECT_EQ(errors_of(yaml(R"(
listeners:
  - name: a
    address: [1, 2
clusters: []
)")),
            Lines{"t.yaml:4:9: yaml syntax error: end of sequence flow not found"});
  EXPECT_EQ(errors_of("a: b: c\n"), Lines{"t.yaml:1:5: yaml syntax error: illegal map value"});
  std::string deep = "a: " + std::string(3000, '[') + std::string(3000, ']') + "\n";
  Lines e = errors_of(deep);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_TRUE(e[0].ends_with("yaml syntax error: nesting too deep")) << e[0];
}

TEST(ConfigErrors, UnknownKeysPointAtTheKeyWithSuggestion) {
  EXPECT_EQ(errors_of(yaml(R"(
listeners:
  - name: a
    address: 127.0.0.1:1
    routes:
      - cluster: app
        timout: 5s
        retries: 3
)") + std::string(kClusters)),
            (Lines{"t.yaml:6:9: unknown key \"timout\" (did you mean \"timeout\"?)",
                   "t.yaml:7:9: unknown key \"retries\""}));
  EXPECT_EQ(errors_of("listener: []\n" + std::string(kListeners) + std::string(kClusters)),
            Lines{"t.yaml:1:1: unknown key \"listener\" (did you mean \"listeners\"?)"});
  EXPECT_EQ(errors_of("base: &b {}\n<<: *b\n" + std::string(kListeners) + std::string(kClusters)),
            (Lines{"t.yaml:1:1: unknown key \"base\"",
                   "t.yaml:2:1: unknown key \"<<\" (yaml merge keys are not supported)"}));
}

TEST(ConfigErrors, DuplicateYamlKeys) {
  EXPECT_EQ(errors_of(yaml(R"(
workers: 1
listeners:
  - name: a
    address: 127.0.0.1:1
    name: b
    routes: [{cluster: app, cluster: app}]
)") + std::string(kClusters) +
                      "workers: 2\n"),
            (Lines{"t.yaml:5:5: duplicate key \"name\" (first at line 3)",
                   "t.yaml:6:29: duplicate key \"cluster\" (first at line 6)",
                   "t.yaml:10:1: duplicate key \"workers\" (first at line 1)"}));
}

TEST(ConfigErrors, WrongTypes) {
  EXPECT_EQ(errors_of(yaml(R"(
admin: [127.0.0.1:9901]
dns: 5
drain:
  delay: [1s]
limits:
  max_headers: ten
  max_connections: 1.5
workers: {n: 1}
listeners:
  - name: [a]
    address: {ip: 127.0.0.1}
    routes:
      - just-a-string
      - cluster: app
        match: /api
clusters:
  name: app
)")),
            (Lines{
                "t.yaml:1:8: admin: expected a map, got a list",
                "t.yaml:2:6: dns: expected a map, got \"5\"",
                "t.yaml:4:10: delay: expected a duration, got a list",
                "t.yaml:6:16: max_headers: expected an integer, got \"ten\"",
                "t.yaml:7:20: max_connections: expected an integer, got \"1.5\"",
                "t.yaml:8:10: workers: expected an integer or \"auto\", got a map",
                "t.yaml:10:11: name: expected a string, got a list",
                "t.yaml:11:14: address: expected an address (host:port), got a map",
                "t.yaml:13:9: route: expected a map, got \"just-a-string\"",
                "t.yaml:15:16: match: expected a map, got \"/api\"",
                "t.yaml:17:3: clusters: expected a list, got a map",
            }));
  EXPECT_EQ(errors_of("- a\n- b\n"), Lines{"t.yaml:1:1: config: expected a map, got a list"});
}

TEST(ConfigErrors, EmptyValuesPointAtTheirKeyOrDash) {
  EXPECT_EQ(errors_of(yaml(R"(
admin:
listeners:
  - name: a
    address: 127.0.0.1:1
    routes:
      -
      - cluster: app
        timeout: ~
)") + std::string(kClusters)),
            (Lines{"t.yaml:1:1: admin: expected a map, got null",
                   "t.yaml:6:7: route: expected a map, got null",
                   "t.yaml:8:18: timeout: expected a duration, got null"}));
}

TEST(ConfigErrors, BadDurations) {
  EXPECT_EQ(errors_of(yaml(R"(
dns:
  timeout: 5
drain:
  delay: 0s
  timeout: 0s
limits:
  header_timeout: -1s
  idle_timeout: 1.5m
listeners:
  - name: a
    address: 127.0.0.1:1
    routes:
      - cluster: app
        timeout: 1500us
clusters:
  - name: app
    endpoints: [127.0.0.1:8080]
    connect_timeout: 99999999999999h
    idle_timeout: five
)")),
            (Lines{
                "t.yaml:2:12: timeout: invalid duration \"5\" (missing unit; use ms, s, m or h)",
                "t.yaml:5:12: timeout: must be greater than 0",
                "t.yaml:7:19: header_timeout: invalid duration \"-1s\" (negative durations are "
                "not allowed)",
                "t.yaml:8:17: idle_timeout: invalid duration \"1.5m\" (fractions are not "
                "allowed; use a smaller unit, e.g. 90000ms)",
                "t.yaml:14:18: timeout: invalid duration \"1500us\" (unknown unit \"us\"; use ms, "
                "s, m or h)",
                "t.yaml:18:22: connect_timeout: invalid duration \"99999999999999h\" (too large)",
                "t.yaml:19:19: idle_timeout: invalid duration \"five\" (expected an integer and a "
                "unit, e.g. 5s)",
            }));
}

TEST(ConfigErrors, BadAddressesAndPorts) {
  EXPECT_EQ(errors_of(yaml(R"(
admin:
  address: 127.0.0.1
dns:
  resolvers: [localhost:53, 127.0.0.1:0, "[::1]:99999"]
listeners:
  - name: a
    address: localhost:15001
    routes: [{cluster: app}]
  - name: b
    address: ::1:15002
    routes: [{cluster: app}]
  - name: c
    address: 127.0.0.1:http
    routes: [{cluster: app}]
)") + std::string(kClusters)),
            (Lines{
                "t.yaml:2:12: address: missing port in \"127.0.0.1\"; expected host:port",
                "t.yaml:4:15: resolvers: \"localhost\" is not an IP address",
                "t.yaml:4:29: resolvers: port 0 is not allowed for a resolver",
                "t.yaml:4:42: resolvers: port 99999 out of range (0..65535)",
                "t.yaml:7:14: address: \"localhost\" is not an IP address",
                "t.yaml:10:14: address: IPv6 addresses need brackets and a port, e.g. [::1]:8080",
                "t.yaml:13:14: address: invalid port \"http\"",
            }));
}

TEST(ConfigErrors, DanglingClusterWithSuggestion) {
  EXPECT_EQ(errors_of(yaml(R"(
listeners:
  - name: a
    address: 127.0.0.1:1
    routes:
      - cluster: userz
      - cluster: payments
clusters:
  - name: users
    endpoints: [127.0.0.1:8080]
)")),
            (Lines{"t.yaml:5:18: cluster: unknown cluster \"userz\" (did you mean \"users\"?)",
                   "t.yaml:6:18: cluster: unknown cluster \"payments\""}));
}

TEST(ConfigErrors, DuplicateNames) {
  EXPECT_EQ(errors_of(yaml(R"(
listeners:
  - name: a
    address: 127.0.0.1:1
    routes:
      - name: r
        cluster: app
      - name: r
        cluster: app
      - name: a-3
        cluster: app
      - cluster: app
  - name: a
    address: 127.0.0.1:2
    routes:
      - name: r
        cluster: app
clusters:
  - name: app
    endpoints: [127.0.0.1:8080]
  - name: app
    endpoints: [127.0.0.1:8081]
)")),
            (Lines{"t.yaml:7:15: duplicate route name \"r\" in listener \"a\" (first at line 5)",
                   // The fourth route's default name "a-3" collides with an explicit one.
                   "t.yaml:11:9: duplicate route name \"a-3\" in listener \"a\" (first at line 9)",
                   "t.yaml:12:11: duplicate listener name \"a\" (first at line 2)",
                   "t.yaml:20:11: duplicate cluster name \"app\" (first at line 18)"}));
}

TEST(ConfigErrors, DuplicateAndOverlappingListenerAddresses) {
  EXPECT_EQ(errors_of(yaml(R"(
listeners:
  - name: a
    address: 127.0.0.1:15001
    routes: [{cluster: app}]
  - name: b
    address: 127.0.0.1:15001
    routes: [{cluster: app}]
  - name: c
    address: 0.0.0.0:15002
    routes: [{cluster: app}]
  - name: d
    address: 127.0.0.1:15002
    routes: [{cluster: app}]
  - name: e
    address: 127.0.0.1:0
    routes: [{cluster: app}]
  - name: f
    address: 127.0.0.1:0
    routes: [{cluster: app}]
  - name: g
    address: "[::]:15003"
    routes: [{cluster: app}]
  - name: h
    address: 10.0.0.1:15003
    routes: [{cluster: app}]
  - name: i
    address: "[::1]:15001"
    routes: [{cluster: app}]
  - name: j
    address: 0.0.0.0:15004
    routes: [{cluster: app}]
  - name: k
    address: "[::1]:15004"
    routes: [{cluster: app}]
)") + std::string(kClusters)),
            (Lines{
                "t.yaml:6:14: duplicate listener address 127.0.0.1:15001 (listener \"a\" at line "
                "3)",
                "t.yaml:12:14: listener address 127.0.0.1:15002 overlaps 0.0.0.0:15002 of "
                "listener \"c\" (line 9)",
                "t.yaml:24:14: listener address 10.0.0.1:15003 overlaps [::]:15003 of listener "
                "\"g\" (line 21)",
            }));
}

TEST(ConfigErrors, AdminAddressClashesWithListener) {
  EXPECT_EQ(errors_of(yaml(R"(
admin:
  address: 127.0.0.1:15001
listeners:
  - name: out
    address: 0.0.0.0:15001
    routes: [{cluster: app}]
)") + std::string(kClusters)),
            Lines{"t.yaml:2:12: admin address 127.0.0.1:15001 conflicts with listener \"out\" "
                  "(line 5)"});
  // Port 0 means "any free port" for both, so it never clashes.
  EXPECT_TRUE(load_ok("admin: {address: 127.0.0.1:0}\n" + yaml(R"(
listeners:
  - name: out
    address: 127.0.0.1:0
    routes: [{cluster: app}]
)") + std::string(kClusters)));
}

TEST(ConfigErrors, MissingRequiredKeysPointAtTheParentMap) {
  EXPECT_EQ(errors_of(yaml(R"(
workers: 1
listeners:
  - name: a
    routes:
      - match: {host: x}
  - address: 127.0.0.1:2
    routes: [{cluster: app}]
)")),
            (Lines{"t.yaml:1:1: missing required key \"clusters\"",
                   "t.yaml:3:5: missing required key \"address\" in listener",
                   "t.yaml:5:9: missing required key \"cluster\" in route",
                   "t.yaml:6:5: missing required key \"name\" in listener"}));
  EXPECT_EQ(errors_of(std::string(kListeners) + yaml(R"(
clusters:
  - type: dns
  - name: app
    endpoints: [{port: 80}]
)")),
            (Lines{"t.yaml:6:5: missing required key \"name\" in cluster",
                   "t.yaml:6:5: missing required key \"endpoints\" in cluster",
                   "t.yaml:8:17: missing required key \"address\" in endpoint",
                   "t.yaml:8:18: unknown key \"port\""}));
}

TEST(ConfigErrors, EndpointsAndDnsNames) {
  EXPECT_EQ(errors_of(std::string(kListeners) + yaml(R"(
clusters:
  - name: app
    endpoints:
      - app.internal:8080
      - 10.0.0.1:0
      - 0.0.0.0:80
      - address: "[::1]:8080"
  - name: names
    type: dns
    endpoints: ["bad..name:443", -x.internal:1, "under_score.ok:1", 10.0.0.1:80, [a]]
)")),
            (Lines{"t.yaml:8:9: endpoints: \"app.internal\" is not an IP address (static "
                   "clusters need IP literals; use type: dns for names)",
                   "t.yaml:9:9: endpoints: port 0 is not allowed for an endpoint",
                   "t.yaml:10:9: endpoints: 0.0.0.0 is not a valid endpoint address",
                   "t.yaml:14:17: endpoints: invalid dns name \"bad..name\"",
                   "t.yaml:14:34: endpoints: invalid dns name \"-x.internal\"",
                   "t.yaml:14:82: endpoints: expected \"host:port\" or a map with address, got a "
                   "list"}));
}

TEST(ConfigErrors, ClusterTypeHostRewriteAndDnsBlock) {
  EXPECT_EQ(errors_of(std::string(kListeners) + yaml(R"(
clusters:
  - name: app
    type: eds
    endpoints: [127.0.0.1:1]
  - name: s
    endpoints: [127.0.0.1:2]
    host_rewrite: "bad host"
    max_connections: 0
    dns: {min_ttl: 1s}
  - name: d
    type: dns
    endpoints: [d.internal:2]
    host_rewrite: d.internal:8443
    dns: {min_ttl: 10m, max_ttl: 1m, refresh: 5s}
)")),
            (Lines{"t.yaml:7:11: type: unknown cluster type \"eds\" (expected static, dns, "
                   "privatelink, lattice or "
                   "apigateway)",
                   "t.yaml:11:19: host_rewrite: invalid host \"bad host\"",
                   "t.yaml:12:22: max_connections: 0 is out of range (1..1000000)",
                   "t.yaml:13:5: dns: only allowed in clusters of type dns",
                   "t.yaml:18:20: min_ttl 10m is greater than max_ttl 1m",
                   "t.yaml:18:38: unknown key \"refresh\""}));
}

TEST(ConfigErrors, TtlOrderUsesInheritedValues) {
  // Only max_ttl is set in the cluster; it is below the inherited top-level min_ttl.
  EXPECT_EQ(errors_of(std::string(kListeners) + yaml(R"(
dns: {min_ttl: 30s, max_ttl: 10m}
clusters:
  - name: app
    type: dns
    endpoints: [app.internal:80]
    dns:
      max_ttl: 10s
)")),
            Lines{"t.yaml:11:16: min_ttl 30s is greater than max_ttl 10s"});
  EXPECT_EQ(errors_of("dns: {min_ttl: 0s}\n" + std::string(kListeners) + std::string(kClusters)),
            Lines{"t.yaml:1:16: min_ttl: must be greater than 0"});
}

TEST(ConfigErrors, HostPatternsAndPathPrefix) {
  EXPECT_EQ(errors_of(yaml(R"(
listeners:
  - name: a
    address: 127.0.0.1:1
    routes:
      - match: {host: "a.*.b"}
        cluster: app
      - match: {host: ""}
        cluster: app
      - match: {hosts: ["*.ok", "*bad.com", "x:80"], path_prefix: api}
        cluster: app
      - match:
          host: a
          hosts: [b]
        cluster: app
      - match: {hosts: [], path_prefix: "/a b"}
        cluster: app
)") + std::string(kClusters)),
            (Lines{
                "t.yaml:5:23: host: invalid host pattern \"a.*.b\"; \"*\" is allowed only alone "
                "or as a leading \"*.\"",
                "t.yaml:7:23: host: empty host pattern",
                "t.yaml:9:33: hosts: invalid host pattern \"*bad.com\"; \"*\" is allowed only "
                "alone or as a leading \"*.\"",
                "t.yaml:9:45: hosts: host pattern \"x:80\" must not include a port",
                "t.yaml:9:67: path_prefix: must start with \"/\", got \"api\"",
                "t.yaml:13:11: \"host\" and \"hosts\" are mutually exclusive",
                "t.yaml:15:24: hosts: must list at least one host pattern (omit it to match any)",
                "t.yaml:15:41: path_prefix: must not contain spaces, control characters, \"?\" "
                "or \"#\"",
            }));
}

TEST(ConfigErrors, EmptyLists) {
  EXPECT_EQ(errors_of(yaml(R"(
listeners: []
clusters: []
)")),
            (Lines{"t.yaml:1:12: listeners: must list at least one listener",
                   "t.yaml:2:11: clusters: must list at least one cluster"}));
  EXPECT_EQ(errors_of(yaml(R"(
listeners:
  - name: a
    address: 127.0.0.1:1
    routes: []
clusters:
  - name: app
    endpoints: []
)")),
            (Lines{"t.yaml:4:13: routes: must list at least one route",
                   "t.yaml:7:16: endpoints: must list at least one endpoint"}));
}

TEST(ConfigErrors, LimitsOutOfRange) {
  EXPECT_EQ(errors_of(yaml(R"(
workers: 1025
limits:
  max_request_headers_bytes: 255
  max_headers: 0
  max_request_body_bytes: -1
  max_connections: 0
listeners:
  - name: a
    address: 127.0.0.1:1
    limits:
      max_request_headers_bytes: 2MiB
      max_headers: 1001
      max_request_body_bytes: 64MB
      max_connections: 99999999999999999999
    routes: [{cluster: app}]
)") + std::string(kClusters)),
            (Lines{
                "t.yaml:1:10: workers: 1025 is out of range (0..1024)",
                "t.yaml:3:30: max_request_headers_bytes: 255 is out of range (256..65536)",
                "t.yaml:4:16: max_headers: 0 is out of range (1..256)",
                "t.yaml:5:27: max_request_body_bytes: invalid size \"-1\" (negative sizes are not "
                "allowed)",
                "t.yaml:6:20: max_connections: 0 is out of range (1..1000000)",
                "t.yaml:11:34: max_request_headers_bytes: 2MiB is out of range (256..65536)",
                "t.yaml:12:20: max_headers: 1001 is out of range (1..256)",
                "t.yaml:13:31: max_request_body_bytes: invalid size \"64MB\" (unknown unit \"MB\"; "
                "use KiB, MiB, GiB or TiB)",
                "t.yaml:14:24: max_connections: 99999999999999999999 is out of range (1..1000000)",
            }));
  // The bounds themselves are accepted.
  EXPECT_TRUE(load_ok(yaml(R"(
workers: 1024
limits: {max_request_headers_bytes: 256, max_headers: 256, max_request_body_bytes: 0}
)") + std::string(kListeners) +
                      std::string(kClusters)));
}

TEST(ConfigErrors, NamesRolesAccessLog) {
  EXPECT_EQ(errors_of(yaml(R"(
access_log: ""
listeners:
  - name: "out bound"
    address: 127.0.0.1:1
    role: sideways
    routes:
      - name: r/1
        cluster: app
)") + std::string(kClusters)),
            (Lines{"t.yaml:1:13: access_log: expected off, stdout or a file path, got an empty "
                   "string",
                   "t.yaml:3:11: name: invalid name \"out bound\" (use letters, digits, \"_\", "
                   "\".\" and \"-\")",
                   "t.yaml:5:11: role: unknown role \"sideways\" (expected outbound or inbound)",
                   "t.yaml:7:15: name: invalid name \"r/1\" (use letters, digits, \"_\", \".\" "
                   "and \"-\")"}));
}

TEST(ConfigErrors, TooManyListenersRoutesClusters) {
  std::string text = "listeners:\n";
  for (int i = 0; i < 257; ++i) {
    text += "  - name: l" + std::to_string(i) +
            "\n    address: 127.0.0.1:" + std::to_string(10000 + i) + "\n    routes:\n";
    int routes = i < 16 ? 256 : 1;  // 16 * 256 + 241 = 4337 routes in total
    for (int r = 0; r < routes; ++r) text += "      - cluster: c0\n";
  }
  text += "clusters:\n";
  for (int i = 0; i < 1025; ++i) {
    text += "  - name: c" + std::to_string(i) + "\n    endpoints: [127.0.0.1:80]\n";
  }
  Lines e = errors_of(text);
  // Listener 16 (0-based) pushes the route count to 4097; its routes list starts on the line
  // after its "routes:" key.
  int line_of_routes_16 = 1 + 16 * (3 + 256) + 3 + 1;
  int clusters_line = 1 + 16 * (3 + 256) + 241 * 4 + 1;
  EXPECT_EQ(e, (Lines{"t.yaml:2:3: too many listeners (257, at most 256)",
                      "t.yaml:" + std::to_string(line_of_routes_16) +
                          ":7: too many routes (4097 so far, at most 4096 in total)",
                      "t.yaml:" + std::to_string(clusters_line + 1) +
                          ":3: too many clusters (1025, at most 1024)"}));
}

TEST(ConfigErrors, EveryErrorIsReportedInFileOrder) {
  Lines e = errors_of(yaml(R"(
workers: x
listeners:
  - name: a
    address: nowhere
    routes: [{cluster: missing, timeout: 5}]
clusters:
  - name: app
    endpoints: [host.internal:80]
)"));
  EXPECT_EQ(e, (Lines{
                   "t.yaml:1:10: workers: expected an integer or \"auto\", got \"x\"",
                   "t.yaml:4:14: address: missing port in \"nowhere\"; expected host:port",
                   "t.yaml:5:24: cluster: unknown cluster \"missing\"",
                   "t.yaml:5:42: timeout: invalid duration \"5\" (missing unit; use ms, s, m or "
                   "h)",
                   "t.yaml:8:17: endpoints: \"host.internal\" is not an IP address (static "
                   "clusters need IP literals; use type: dns for names)",
               }));
}

TEST(ConfigErrors, EmptyAndMultiDocumentFiles) {
  EXPECT_EQ(errors_of(""),
            Lines{"t.yaml:1:1: empty config; expected a map with listeners and clusters"});
  EXPECT_EQ(errors_of("# nothing\n"),
            Lines{"t.yaml:1:1: empty config; expected a map with listeners and clusters"});
  std::string valid = std::string(kListeners) + std::string(kClusters);
  EXPECT_EQ(errors_of(valid + "---\nworkers: 2\n"),
            Lines{"t.yaml:9:1: only one yaml document is allowed"});
  EXPECT_TRUE(load_ok(valid + "---\n"));  // a trailing empty document is harmless
  EXPECT_TRUE(load_ok(valid + "---\n---\n~\n"));
  EXPECT_EQ(errors_of(valid + "---\n---\n[x]\n"),
            Lines{"t.yaml:10:1: only one yaml document is allowed"});
}

// yaml-cpp 0.7 stops consuming this text after its first document and answers empty documents
// for ever; YAML::LoadAll collected them until memory ran out (tests/fuzz/config_fuzz.cc found
// it: `outrigger validate` grew past 2 GB). Now an error at the place it got stuck, at once.
TEST(ConfigErrors, YamlParserThatStopsMakingProgressIsAnError) {
  const std::string text(
      "#\xa0Th\xff\xff\xff\xff\xff\xff\xff\xff\xfb\xff\xff\xff\xff\xff\xff\xff\xff"
      "er, one rout:\n  - name: obound\n    addeners:,\n  , name:151:8080]\n");
  EXPECT_EQ(errors_of(text),
            Lines{"t.yaml:4:3: yaml syntax error: the parser stopped making progress here"});
}

TEST(ConfigErrors, UnreadableFile) {
  LoadResult r = load_file("/nonexistent/outrigger.yaml");
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].to_string(),
            "/nonexistent/outrigger.yaml:0:0: cannot read: No such file or directory");
  r = load_file("/");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].to_string(), "/:0:0: cannot read: Is a directory");
}

TEST(ConfigErrors, GarbageNeverThrows) {
  const std::string inputs[] = {
      std::string("\0\0\0", 3),
      "\xff\xfe\x00",
      "{{{{",
      "]]]",
      "key: \"unterminated",
      "&a [*a]",
      "? [complex]: key\n",
      "!!binary x",
      "listeners: *nope",
      std::string(100000, '-'),
      "listeners:\n  - !!map {}\n",
      "1: 2\n",
      "clusters: [[[]]]\nlisteners: [[]]\n",
  };
  for (const std::string& input : inputs) {
    LoadResult r;
    EXPECT_NO_THROW(r = load_string(input, "g.yaml"));
    EXPECT_FALSE(r.ok());
    EXPECT_FALSE(r.errors.empty());
  }
}

// ---------------------------------------------------------------------------------------------
// JSON

TEST(ConfigJson, RendersDefaultsAndEscapes) {
  auto c = load_ok(yaml(R"(
access_log: "logs/a \"quoted\" \\ caf\u00e9.log"
)") + std::string(kListeners) +
                   std::string(kClusters));
  ASSERT_TRUE(c);
  std::string compact = to_json(*c, JsonStyle::kCompact);
  EXPECT_EQ(compact.find('\n'), std::string::npos);
  EXPECT_NE(compact.find(R"("access_log":"logs/a \"quoted\" \\ café.log")"), std::string::npos)
      << compact;
  EXPECT_NE(compact.find(R"("drain":{"delay":"0s","timeout":"30s"})"), std::string::npos);
  EXPECT_NE(compact.find(R"("admin":{})"), std::string::npos);
  EXPECT_NE(compact.find(R"("routes":[{"name":"l-0","match":{"path_prefix":"/"},)"
                         R"("cluster":"app","timeout":"15s"}])"),
            std::string::npos)
      << compact;
  std::string pretty = to_json(*c);
  EXPECT_EQ(pretty, to_json(*c, JsonStyle::kPretty));
  EXPECT_NE(pretty.find("\n  \"workers\": 0,\n"), std::string::npos) << pretty;
  EXPECT_TRUE(python_accepts_json(compact)) << compact;
  EXPECT_TRUE(python_accepts_json(pretty)) << pretty;
}

// A value with bytes that are not UTF-8 would come back from the admin /config as U+FFFD, not the
// value loaded: refused at its place (found by tests/fuzz/config_fuzz.cc). yaml-cpp refuses a
// surrogate escape itself. Well-formed UTF-8 round-trips.
TEST(ConfigJson, ValuesMustBeUtf8SoTheJsonLoadsBackTheSame) {
  const std::string tail = std::string(kListeners) + std::string(kClusters);
  EXPECT_EQ(errors_of("access_log: \"a\xff\xfeb\"\n" + tail),
            Lines{"t.yaml:1:13: access_log: not valid UTF-8"});
  EXPECT_EQ(errors_of("access_log: \"\\udc00\"\n" + tail),
            Lines{"t.yaml:1:20: yaml syntax error: invalid unicode: 56320"});
  EXPECT_EQ(errors_of("access_log: caf\xc3\n" + tail),
            Lines{"t.yaml:1:13: access_log: not valid UTF-8"});
  auto c = load_ok("access_log: \"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9a\xa2\"\n" + tail);
  ASSERT_TRUE(c);
  const std::string json = to_json(*c);
  auto again = load_ok(json);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->access_log.path, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9a\xa2");
  EXPECT_EQ(again->access_log.path, c->access_log.path);
  EXPECT_EQ(to_json(*again), json);
}

TEST(ConfigJson, EmptyConfigRendersValidJson) {
  Config empty;
  EXPECT_TRUE(python_accepts_json(to_json(empty)));
  EXPECT_TRUE(python_accepts_json(to_json(empty, JsonStyle::kCompact)));
  EXPECT_NE(to_json(empty, JsonStyle::kCompact).find(R"("listeners":[])"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Shipped examples and fixtures

TEST(ConfigExamples, FullExampleLoadsAndRoundTripsThroughJson) {
  fs::path dir = find_source_dir("config/examples");
  ASSERT_FALSE(dir.empty()) << "config/examples not found";
  LoadResult r = load_file((dir / "outrigger.yaml").string());
  for (const Diagnostic& d : r.errors) ADD_FAILURE() << d.to_string();
  ASSERT_TRUE(r.ok());
  const Config& c = *r.config;
  ASSERT_TRUE(c.admin.address);
  EXPECT_EQ(c.admin.address->to_string(), "127.0.0.1:9901");
  ASSERT_EQ(c.listeners.size(), 2u);
  EXPECT_EQ(c.listeners[0].role, ListenerRole::kOutbound);
  EXPECT_EQ(c.listeners[1].role, ListenerRole::kInbound);
  const auto& routes = c.listeners[0].routes;
  ASSERT_EQ(routes.size(), 3u);
  EXPECT_EQ(routes[0].match.hosts, Lines{"user-service"});
  EXPECT_EQ(routes[1].match.hosts[0], "*.orders.internal");
  EXPECT_NE(routes[0].cluster, routes[1].cluster);
  for (const Listener& l : c.listeners) {
    for (const Route& route : l.routes) {
      EXPECT_NE(c.find_cluster(route.cluster), nullptr) << route.cluster;
    }
  }
  EXPECT_EQ(c.find_cluster(c.listeners[1].routes[0].cluster)->endpoints[0].address.to_string(),
            "127.0.0.1:8080");
  // One of each new feature (issues 5 and 6).
  EXPECT_EQ(c.aws.region, "us-east-1");
  EXPECT_EQ(routes[0].failover, Lines{"users_lattice"});
  ASSERT_TRUE(routes[0].retry);
  EXPECT_EQ(routes[0].retry->num_retries, 2u);
  EXPECT_TRUE(routes[0].allow_timeout_header);
  const Cluster* users = c.find_cluster("users");
  ASSERT_TRUE(users && users->privatelink && users->outlier_detection);
  EXPECT_EQ(users->host_rewrite, "user-service.internal");
  EXPECT_EQ(users->tls->sni, "user-service.internal");
  EXPECT_TRUE(users->privatelink->prefer_zonal);
  const Cluster* lattice = c.find_cluster("users_lattice");
  ASSERT_TRUE(lattice && lattice->signing);
  EXPECT_EQ(lattice->signing->service, "vpc-lattice-svcs");
  const Cluster* orders = c.find_cluster("orders");
  ASSERT_TRUE(orders && orders->health_check && orders->retry_budget);
  EXPECT_EQ(orders->lb_policy, LbPolicy::kLeastRequest);
  EXPECT_EQ(orders->endpoints[0].weight, 2u);
  const Cluster* api = c.find_cluster(routes[2].cluster);
  ASSERT_TRUE(api && api->apigateway && api->signing);
  EXPECT_EQ(api->apigateway->stage, "prod");

  // JSON is YAML: the rendered effective config must load back into the same config.
  for (JsonStyle style : {JsonStyle::kPretty, JsonStyle::kCompact}) {
    std::string json = to_json(c, style);
    EXPECT_TRUE(python_accepts_json(json));
    LoadResult back = load_string(json, "json");
    for (const Diagnostic& d : back.errors) ADD_FAILURE() << d.to_string();
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(to_json(*back.config, style), json);
  }
}

TEST(ConfigExamples, MinimalExampleLoads) {
  fs::path dir = find_source_dir("config/examples");
  ASSERT_FALSE(dir.empty());
  LoadResult r = load_file((dir / "minimal.yaml").string());
  for (const Diagnostic& d : r.errors) ADD_FAILURE() << d.to_string();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.config->listeners.size(), 1u);
}

// The README's complete example is the shipped example file (minus its header comment), and the
// error lines it quotes are real diagnostics from the fixtures.
TEST(ConfigExamples, ReadmeMatchesExampleAndFixtures) {
  fs::path config_dir = find_source_dir("config");
  fs::path fixtures = find_source_dir("tests/fixtures/config");
  ASSERT_FALSE(config_dir.empty());
  ASSERT_FALSE(fixtures.empty());
  std::string readme = read_text(config_dir / "README.md");
  size_t section = readme.find("## A complete example");
  ASSERT_NE(section, std::string::npos);
  size_t begin = readme.find("```yaml\n", section);
  ASSERT_NE(begin, std::string::npos);
  begin += 8;
  size_t end = readme.find("```", begin);
  ASSERT_NE(end, std::string::npos);
  std::string documented = readme.substr(begin, end - begin);

  std::string example = read_text(config_dir / "examples/outrigger.yaml");
  // Drop the file's leading comment block and the blank line after it.
  size_t body = 0;
  while (body < example.size() && example[body] == '#') body = example.find('\n', body) + 1;
  while (body < example.size() && example[body] == '\n') ++body;
  EXPECT_EQ(documented, example.substr(body));

  size_t errors = readme.find("## Errors");
  ASSERT_NE(errors, std::string::npos);
  size_t quoted = readme.find("```\n", errors);
  ASSERT_NE(quoted, std::string::npos);
  std::istringstream lines(readme.substr(quoted + 4, readme.find("```", quoted + 4) - quoted - 4));
  int checked = 0;
  for (std::string line; std::getline(lines, line);) {
    std::string file = line.substr(0, line.find(".yaml:"));
    std::string expected = read_text(fixtures / (file + ".expected"));
    EXPECT_NE(expected.find(line + "\n"), std::string::npos) << line;
    ++checked;
  }
  EXPECT_GE(checked, 5);
}

TEST(ConfigFixtures, BadConfigsProduceExactlyTheExpectedDiagnostics) {
  fs::path dir = find_source_dir("tests/fixtures/config");
  ASSERT_FALSE(dir.empty()) << "tests/fixtures/config not found";
  int checked = 0;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir)) {
    fs::path p = entry.path();
    if (p.extension() != ".yaml" || !p.filename().string().starts_with("bad_")) continue;
    fs::path expected_path = p;
    expected_path.replace_extension(".expected");
    ASSERT_TRUE(fs::exists(expected_path)) << expected_path;
    Lines expected;
    std::istringstream in(read_text(expected_path));
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) expected.push_back(line);
    }
    LoadResult r = load_file(p.string());
    EXPECT_FALSE(r.ok()) << p;
    Lines actual;
    for (Diagnostic d : r.errors) {
      EXPECT_EQ(d.loc.file, p.string());
      d.loc.file = p.filename().string();  // .expected files name the file as run from `dir`
      actual.push_back(d.to_string());
    }
    EXPECT_EQ(actual, expected) << p;
    ++checked;
  }
  EXPECT_GE(checked, 5);
}

// ---------------------------------------------------------------------------------------------
// TLS, caller identity and route authorization (issue 3)

// A temporary directory with a few (content-free: the loader only checks they can be read) PEM
// files; "$D" in YAML text stands for it.
class ConfigTls : public testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/outrigger_config_tls_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    for (const char* f : {"cert.pem", "key.pem", "ca.pem"}) std::ofstream(dir_ / f) << "x\n";
    fs::create_directories(dir_ / "sub");
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::string d(std::string_view text) const {
    std::string out(text);
    if (!out.empty() && out.front() == '\n') out.erase(0, 1);
    for (size_t i; (i = out.find("$D")) != std::string::npos;) out.replace(i, 2, dir_.string());
    return out;
  }
  std::string p(std::string_view file) const { return (dir_ / file).string(); }

  fs::path dir_;
};

TEST_F(ConfigTls, FullTlsConfigLoadsWithPathsRelativeToTheFile) {
  std::ofstream(dir_ / "outrigger.yaml") << d(R"(
tls:
  reload_interval: 250ms
listeners:
  - name: inbound
    address: 127.0.0.1:15006
    role: inbound
    tls:
      cert: cert.pem
      key: ./key.pem
      client_ca: sub/../ca.pem
      client_cert: required
      alpn: [http/1.1]
    identity:
      header: X-Caller
      uri_template: "spiffe://corp/{account}/{service}"
    routes:
      - name: orders
        cluster: app
        authz:
          allow_any_verified: false
          allow_accounts: ["111111111111"]
          allow_services: ["checkout", "111111111111/checkout"]
      - name: any
        cluster: app
        authz: {allow_any_verified: true}
      - name: open
        cluster: app
  - name: outbound
    address: 127.0.0.1:15001
    routes: [{cluster: users}]
clusters:
  - name: app
    endpoints: [127.0.0.1:8080]
  - name: users
    type: dns
    endpoints: [users.internal:443]
    connect_timeout: 2s
    tls:
      sni: Users.Internal.
      ca: $D/ca.pem
      cert: cert.pem
      key: key.pem
      verify_san: ["USERS.internal", "*.Users.internal", "spiffe://222222222222/user-service",
                   "10.0.0.1"]
  - name: public
    type: dns
    endpoints: [api.example.com:443]
    tls: {ca: system}
  - name: pinned
    endpoints: [10.0.0.9:443]
    tls:
      ca: ca.pem
      verify_san: ["spiffe://222222222222/user-service"]
)");
  LoadResult r = load_file((dir_ / "outrigger.yaml").string());
  for (const Diagnostic& e : r.errors) ADD_FAILURE() << e.to_string();
  ASSERT_TRUE(r.ok());
  const Config& c = *r.config;
  EXPECT_EQ(c.tls.reload_interval.count(), 250);

  const Listener& in = c.listeners[0];
  ASSERT_TRUE(in.tls);
  EXPECT_EQ(in.tls->cert, p("cert.pem"));
  EXPECT_EQ(in.tls->key, p("key.pem"));
  EXPECT_EQ(in.tls->client_ca, p("ca.pem"));
  EXPECT_EQ(in.tls->client_cert, ClientCertMode::kRequired);
  EXPECT_EQ(in.tls->alpn, Lines{"http/1.1"});
  EXPECT_EQ(in.tls->loc.line, 8);
  EXPECT_EQ(in.identity.header, "x-caller");
  EXPECT_EQ(in.identity.uri_template, "spiffe://corp/{account}/{service}");
  ASSERT_EQ(in.routes.size(), 3u);
  ASSERT_TRUE(in.routes[0].authz);
  EXPECT_FALSE(in.routes[0].authz->allow_any_verified);
  EXPECT_EQ(in.routes[0].authz->allow_accounts, Lines{"111111111111"});
  EXPECT_EQ(in.routes[0].authz->allow_services, (Lines{"checkout", "111111111111/checkout"}));
  ASSERT_TRUE(in.routes[1].authz);
  EXPECT_TRUE(in.routes[1].authz->allow_any_verified);
  EXPECT_FALSE(in.routes[2].authz);

  const Listener& out = c.listeners[1];
  EXPECT_FALSE(out.tls);
  EXPECT_EQ(out.identity.header, "x-forwarded-client-cert");  // defaults, unused outbound
  EXPECT_EQ(out.identity.uri_template, "spiffe://{account}/{service}");

  EXPECT_FALSE(c.clusters[0].tls);
  const ClusterTls& users = *c.clusters[1].tls;
  EXPECT_EQ(users.sni, "users.internal");
  EXPECT_EQ(users.ca, p("ca.pem"));
  EXPECT_EQ(users.cert, p("cert.pem"));
  EXPECT_EQ(users.key, p("key.pem"));
  EXPECT_EQ(users.verify_san, (Lines{"users.internal", "*.users.internal",
                                     "spiffe://222222222222/user-service", "10.0.0.1"}));
  EXPECT_EQ(users.alpn, Lines{"http/1.1"});
  EXPECT_EQ(c.clusters[1].connect_timeout.count(), 2000);
  const ClusterTls& pub = *c.clusters[2].tls;
  EXPECT_EQ(pub.ca, "system");
  EXPECT_EQ(pub.sni, "");
  EXPECT_TRUE(pub.cert.empty() && pub.key.empty() && pub.verify_san.empty());
  EXPECT_EQ(c.clusters[3].tls->ca, p("ca.pem"));

  // JSON: defaults filled in, absolute paths, and it loads back into the same config.
  std::string compact = to_json(c, JsonStyle::kCompact);
  EXPECT_NE(compact.find(R"("tls":{"reload_interval":"250ms"})"), std::string::npos) << compact;
  EXPECT_NE(compact.find(R"("tls":{"cert":")" + p("cert.pem") + R"(","key":")" + p("key.pem") +
                         R"(","client_ca":")" + p("ca.pem") +
                         R"(","client_cert":"required","alpn":["http/1.1"]},)"
                         R"("identity":{"header":"x-caller",)"
                         R"("uri_template":"spiffe://corp/{account}/{service}"})"),
            std::string::npos)
      << compact;
  EXPECT_NE(compact.find(R"("authz":{"allow_any_verified":false,"allow_accounts":["111111111111"],)"
                         R"("allow_services":["checkout","111111111111/checkout"]})"),
            std::string::npos)
      << compact;
  EXPECT_NE(compact.find(R"("authz":{"allow_any_verified":true}})"), std::string::npos);
  EXPECT_NE(compact.find(R"("tls":{"ca":"system","alpn":["http/1.1"]})"), std::string::npos);
  for (JsonStyle style : {JsonStyle::kPretty, JsonStyle::kCompact}) {
    std::string json = to_json(c, style);
    EXPECT_TRUE(python_accepts_json(json));
    LoadResult back = load_string(json, "json");
    for (const Diagnostic& e : back.errors) ADD_FAILURE() << e.to_string();
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(to_json(*back.config, style), json);
  }
}

TEST_F(ConfigTls, DefaultsWithoutTls) {
  auto c = load_ok(std::string(kListeners) + std::string(kClusters));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->tls.reload_interval.count(), 1000);
  EXPECT_FALSE(c->listeners[0].tls);
  EXPECT_FALSE(c->listeners[0].routes[0].authz);
  EXPECT_FALSE(c->clusters[0].tls);
  std::string compact = to_json(*c, JsonStyle::kCompact);
  EXPECT_NE(compact.find(R"("tls":{"reload_interval":"1s"})"), std::string::npos) << compact;
  EXPECT_EQ(compact.find("identity"), std::string::npos);  // outbound listener

  // An inbound listener renders its (default) identity settings.
  auto in = load_ok(yaml(R"(
listeners:
  - name: in
    address: 127.0.0.1:15006
    role: inbound
    routes: [{cluster: app}]
)") + std::string(kClusters));
  ASSERT_TRUE(in);
  EXPECT_NE(to_json(*in, JsonStyle::kCompact)
                .find(R"("identity":{"header":"x-forwarded-client-cert",)"
                      R"("uri_template":"spiffe://{account}/{service}"})"),
            std::string::npos);
}

TEST_F(ConfigTls, ListenerTlsErrors) {
  EXPECT_EQ(
      errors_of(d(R"(
listeners:
  - name: a
    address: 127.0.0.1:1
    tls:
      cert: $D/missing.pem
      key: $D/sub
      client_cert: sometimes
      client_ca: $D/ca.pem
      alpn: [h2, spdy/3, http/1.1, http/1.1]
    routes: [{cluster: app}]
  - name: b
    address: 127.0.0.1:2
    tls:
      key: $D/key.pem
      client_cert: optional
    routes: [{cluster: app}]
  - name: c
    address: 127.0.0.1:3
    tls:
      cert: $D/cert.pem
      key: $D/key.pem
      client_ca: $D/ca.pem
      alpn: []
      sni: x
    routes: [{cluster: app}]
  - name: d
    address: 127.0.0.1:4
    tls: [cert.pem]
    routes: [{cluster: app}]
)") + std::string(kClusters)),
      (Lines{
          "t.yaml:5:13: cert: cannot read \"" + p("missing.pem") + "\": No such file or directory",
          "t.yaml:6:12: key: \"" + p("sub") + "\" is not a regular file",
          "t.yaml:7:20: client_cert: unknown mode \"sometimes\" (expected none, optional or "
          "required)",
          "t.yaml:9:18: alpn: unknown protocol \"spdy/3\" (supported: http/1.1, h2)",
          "t.yaml:9:36: alpn: duplicate protocol \"http/1.1\"",
          "t.yaml:14:7: missing required key \"cert\" in tls",
          "t.yaml:14:7: missing required key \"client_ca\" in tls (client_cert is optional)",
          "t.yaml:22:7: client_ca: has no effect unless client_cert is optional or required",
          "t.yaml:23:13: alpn: must list at least one protocol",
          "t.yaml:24:7: unknown key \"sni\"",
          "t.yaml:28:10: tls: expected a map, got a list",
      }));
  // A relative path is resolved against the config file's directory, and the message shows both.
  std::ofstream(dir_ / "rel.yaml") << d(R"(
listeners:
  - name: a
    address: 127.0.0.1:1
    tls: {cert: certs/a.pem, key: key.pem}
    routes: [{cluster: app}]
)") << kClusters;
  LoadResult r = load_file(p("rel.yaml"));
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].to_string(), p("rel.yaml") +
                                         ":4:17: cert: cannot read \"certs/a.pem\" (\"" +
                                         p("certs/a.pem") + "\"): No such file or directory");
}

TEST_F(ConfigTls, IdentityAndAuthzErrors) {
  EXPECT_EQ(
      errors_of(d(R"(
listeners:
  - name: out
    address: 127.0.0.1:1
    identity: {header: x-caller}
    routes:
      - cluster: app
        authz: {allow_any_verified: true}
  - name: plain
    address: 127.0.0.1:2
    role: inbound
    identity:
      header: "bad header"
      uri_template: "spiffe://{account}"
    routes:
      - cluster: app
        authz: {allow_any_verified: true}
  - name: nocert
    address: 127.0.0.1:3
    role: inbound
    identity:
      header: Content-Length
      uri_template: "spiffe://{account}{service}"
    tls:
      cert: $D/cert.pem
      key: $D/key.pem
    routes:
      - cluster: app
        authz: {allow_any_verified: true}
  - name: in
    address: 127.0.0.1:4
    role: inbound
    tls:
      cert: $D/cert.pem
      key: $D/key.pem
      client_ca: $D/ca.pem
      client_cert: optional
    routes:
      - cluster: app
        authz: {allow_any_verified: yes}
      - cluster: app
        authz:
          allow_accounts: ["11111111111", 111111111111]
          allow_services: ["a/b", "111111111111/", "svc", "111111111111/s v c"]
      - cluster: app
        authz: {}
      - cluster: app
        authz:
          allow_any_verified: true
          allow_services: [x]
      - cluster: app
        authz:
          allow_accounts: []
      - cluster: app
        authz:
          allow_any_verified: false
          allow_acounts: []
)") + std::string(kClusters)),
      (Lines{
          "t.yaml:4:5: identity: only allowed on inbound listeners",
          "t.yaml:7:9: authz: only allowed on routes of inbound listeners",
          "t.yaml:12:15: header: invalid header name \"bad header\"",
          "t.yaml:13:21: uri_template: must contain {account} and {service}",
          "t.yaml:16:9: authz: the listener has no tls (callers are identified by certificate)",
          "t.yaml:21:15: header: \"content-length\" is used by the proxy itself",
          "t.yaml:22:21: uri_template: {account} and {service} must be separated by some text, "
          "e.g. \"/\"",
          "t.yaml:28:9: authz: the listener's tls.client_cert is none; set it to optional or "
          "required",
          "t.yaml:39:37: allow_any_verified: expected true or false, got \"yes\"",
          "t.yaml:42:28: allow_accounts: \"11111111111\" is not an AWS account id (12 digits)",
          "t.yaml:43:28: allow_services: \"a/b\" is not \"service\" or \"account/service\" (a "
          "12-digit account, a name of letters, digits, \".\", \"_\" and \"-\")",
          "t.yaml:43:35: allow_services: \"111111111111/\" is not \"service\" or "
          "\"account/service\" (a 12-digit account, a name of letters, digits, \".\", \"_\" and "
          "\"-\")",
          "t.yaml:43:59: allow_services: \"111111111111/s v c\" is not \"service\" or "
          "\"account/service\" (a 12-digit account, a name of letters, digits, \".\", \"_\" and "
          "\"-\")",
          "t.yaml:45:16: authz: admits no caller; set allow_any_verified: true, allow_accounts or "
          "allow_services",
          "t.yaml:48:31: allow_any_verified: true admits every verified caller; drop "
          "allow_accounts and allow_services, or set it to false",
          "t.yaml:52:27: allow_accounts: must list at least one account (omit it otherwise)",
          "t.yaml:55:11: authz: admits no caller; set allow_any_verified: true, allow_accounts or "
          "allow_services",
          "t.yaml:56:11: unknown key \"allow_acounts\" (did you mean \"allow_accounts\"?)",
      }));
  // A listener whose role or tls is itself broken gets no extra authz placement errors.
  EXPECT_EQ(errors_of(d(R"(
listeners:
  - name: in
    address: 127.0.0.1:4
    role: inbnd
    tls: {cert: $D/nope.pem, key: $D/key.pem, client_cert: required, client_ca: $D/ca.pem}
    routes:
      - cluster: app
        authz: {allow_any_verified: true}
)") + std::string(kClusters)),
            (Lines{"t.yaml:4:11: role: unknown role \"inbnd\" (expected outbound or inbound)",
                   "t.yaml:5:17: cert: cannot read \"" + p("nope.pem") +
                       "\": No such file or directory"}));
}

TEST_F(ConfigTls, ClusterTlsAndReloadIntervalErrors) {
  EXPECT_EQ(
      errors_of(d(R"(
listeners:
  - name: l
    address: 127.0.0.1:15001
    routes: [{cluster: a}]
clusters:
  - name: a
    endpoints: [127.0.0.1:1]
    tls:
      cert: $D/cert.pem
  - name: b
    type: dns
    endpoints: [b.internal:443]
    tls:
      ca: system
      sni: 10.0.0.1
      verify_san: ["bad..name", "*.*.x", "spiffe:/x", "ok.internal", "x://"]
  - name: c
    type: dns
    endpoints: [c.internal:443]
    tls:
      ca: $D/ca.pem
      key: $D/key.pem
      sni: "-bad"
      verify_san: []
      alpn: [http/1.1]
  - name: d
    endpoints: [127.0.0.1:1]
    tls:
      ca: $D/sub/ca.pem
      verify_san: [10.0.0.1]
      ssl: true
tls:
  reload_interval: 50ms
)")),
      (Lines{
          "t.yaml:9:7: missing required key \"ca\" in tls",
          "t.yaml:9:7: missing required key \"key\" in tls (cert is set)",
          "t.yaml:9:7: tls: a static cluster needs sni or verify_san (there is no DNS name "
          "to verify the upstream's certificate against)",
          "t.yaml:15:12: sni: must be a DNS name, not an IP address",
          "t.yaml:16:20: verify_san: invalid name \"bad..name\" (expected a DNS name, "
          "*.suffix, a URI such as spiffe://ACCOUNT/SERVICE, or an IP address)",
          "t.yaml:16:33: verify_san: invalid name \"*.*.x\" (expected a DNS name, *.suffix, "
          "a URI such as spiffe://ACCOUNT/SERVICE, or an IP address)",
          "t.yaml:16:42: verify_san: invalid name \"spiffe:/x\" (expected a DNS name, "
          "*.suffix, a URI such as spiffe://ACCOUNT/SERVICE, or an IP address)",
          "t.yaml:16:70: verify_san: invalid URI \"x://\"",
          "t.yaml:21:7: missing required key \"cert\" in tls (key is set)",
          "t.yaml:23:12: sni: invalid DNS name \"-bad\"",
          "t.yaml:24:19: verify_san: must list at least one name (omit it otherwise)",
          "t.yaml:29:11: ca: cannot read \"" + p("sub/ca.pem") + "\": No such file or directory",
          "t.yaml:31:7: unknown key \"ssl\"",
          "t.yaml:33:20: reload_interval: must be at least 100ms",
      }));
  EXPECT_EQ(
      errors_of("tls: {reload_interval: 0s}\n" + std::string(kListeners) + std::string(kClusters)),
      Lines{"t.yaml:1:24: reload_interval: must be greater than 0"});
  EXPECT_EQ(
      errors_of("tls: {reload_intreval: 1s}\n" + std::string(kListeners) + std::string(kClusters)),
      Lines{"t.yaml:1:7: unknown key \"reload_intreval\" (did you mean \"reload_interval\"?)"});
  EXPECT_EQ(errors_of("tls: on\n" + std::string(kListeners) + std::string(kClusters)),
            Lines{"t.yaml:1:6: tls: expected a map, got \"on\""});
}

// The README's TLS example loads (with stand-in files where its paths point).
TEST_F(ConfigTls, ReadmeTlsExampleLoads) {
  fs::path config_dir = find_source_dir("config");
  ASSERT_FALSE(config_dir.empty());
  std::string readme = read_text(config_dir / "README.md");
  size_t section = readme.find("## A TLS example");
  ASSERT_NE(section, std::string::npos);
  size_t begin = readme.find("```yaml\n", section);
  ASSERT_NE(begin, std::string::npos);
  begin += 8;
  std::string example = readme.substr(begin, readme.find("```", begin) - begin);
  fs::create_directories(dir_ / "certs");
  for (const char* f :
       {"user-service.pem", "user-service.key", "bundle.pem", "orders.pem", "orders.key"}) {
    std::ofstream(dir_ / "certs" / f) << "x\n";
  }
  std::ofstream(dir_ / "example.yaml") << example;
  LoadResult r = load_file(p("example.yaml"));
  for (const Diagnostic& e : r.errors) ADD_FAILURE() << e.to_string();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.config->listeners[0].tls->client_ca, p("certs/bundle.pem"));
  EXPECT_EQ(r.config->listeners[0].routes[0].authz->allow_services,
            (Lines{"checkout", "333333333333/billing"}));
  EXPECT_EQ(r.config->clusters[1].tls->cert, p("certs/orders.pem"));
}

// ---------------------------------------------------------------------------------------------
// Resilience keys (issue 5): route timeouts and retries, cluster load balancing, breakers,
// budgets, outlier detection, health checks

constexpr std::string_view kRetryRoutes = R"(
listeners:
  - name: l
    address: 127.0.0.1:15001
    routes:
      - name: full
        clusters: [a, b, c]
        timeout: 3s
        per_try_timeout: 1s
        idle_timeout: 20s
        allow_timeout_header: true
        retry:
          retry_on: [5xx, connect-failure, retriable-status-codes, retriable-headers]
          num_retries: 3
          retriable_status_codes: [409, 429]
          retriable_headers: [X-Retry-Me, {name: x-upstream-state, value: draining}]
          retry_non_idempotent: true
          backoff: {base: 50ms, max: 1s}
          retry_after_max: 2s
          max_buffered_body_bytes: 1MiB
      - name: string_form
        cluster: a
        retry:
          retry_on: "gateway-error, reset,refused-stream"
          backoff: {base: 100ms}
          honor_retry_after: false
      - name: defaults
        cluster: b
        retry: {retry_on: [5xx]}
clusters:
  - {name: a, endpoints: [127.0.0.1:1]}
  - {name: b, endpoints: [127.0.0.1:2]}
  - {name: c, endpoints: [127.0.0.1:3]}
)";

constexpr std::string_view kResilienceClusters = R"(
aws: {zone: us-east-1b}
clusters:
  - name: app
    type: dns
    endpoints:
      - {address: "a.internal:80", weight: 3, zone: us-east-1a}
      - {address: "b.internal:80", zone: us-east-1b}
      - c.internal:80
    lb_policy: least_request
    panic_threshold_percent: 0
    zone_aware: {enabled: false, min_healthy_percent: 50}
    circuit_breakers: {max_connections: 10, max_pending_requests: 0, max_requests: 20}
    retry_budget: {budget_percent: 12.5, min_retry_concurrency: 1}
    outlier_detection:
      consecutive_5xx: 3
      consecutive_gateway_failure: 0
      consecutive_local_origin_failure: 2
      interval: 5s
      base_ejection_time: 10s
      max_ejection_time: 1m
      max_ejection_percent: 50
      always_eject_one_host: true
      successful_active_health_check_uneject_host: false
    health_check:
      path: /ready?deep=1
      host: app.internal
      interval: 2s
      interval_jitter: 100ms
      interval_jitter_percent: 0
      initial_jitter: 1s
      timeout: 500ms
      healthy_threshold: 1
      unhealthy_threshold: 5
      expected_statuses: [200-299, 304]
      retriable_statuses: ["503"]
  - name: other
    endpoints: [127.0.0.1:1]
    lb_policy: random
    retry_budget: {}
    outlier_detection: {}
    health_check: {}
  - name: third
    endpoints: [127.0.0.1:1]
    circuit_breakers: {max_retries: 0}
)";

TEST(ConfigResilience, DefaultsWithoutTheNewKeys) {
  auto c = load_ok(std::string(kListeners) + std::string(kClusters));
  ASSERT_TRUE(c);
  const Route& r = c->listeners[0].routes[0];
  EXPECT_EQ(r.cluster, "app");
  EXPECT_TRUE(r.failover.empty());
  EXPECT_EQ(r.timeout.count(), 15'000);
  EXPECT_EQ(r.per_try_timeout.count(), 0);
  EXPECT_FALSE(r.idle_timeout);
  EXPECT_FALSE(r.allow_timeout_header);
  EXPECT_FALSE(r.retry);
  const Cluster& cl = c->clusters[0];
  EXPECT_EQ(cl.lb_policy, LbPolicy::kRoundRobin);
  EXPECT_EQ(cl.panic_threshold_percent, 50u);
  EXPECT_TRUE(cl.zone_aware.enabled);
  EXPECT_EQ(cl.zone_aware.min_healthy_percent, 70u);
  EXPECT_EQ(cl.circuit_breakers.max_connections, 1024u);
  EXPECT_EQ(cl.circuit_breakers.max_pending_requests, 1024u);
  EXPECT_EQ(cl.circuit_breakers.max_requests, 1024u);
  EXPECT_EQ(cl.circuit_breakers.max_retries, 3u);
  EXPECT_FALSE(cl.retry_budget);
  EXPECT_FALSE(cl.outlier_detection);
  EXPECT_FALSE(cl.health_check);
  EXPECT_FALSE(cl.privatelink || cl.lattice || cl.apigateway || cl.signing);
  EXPECT_EQ(cl.endpoints[0].weight, 1u);
  EXPECT_EQ(cl.endpoints[0].zone, "");
  EXPECT_FALSE(cl.resolves_names());
  EXPECT_EQ(c->aws.region, "");
  EXPECT_EQ(c->aws.zone, "");
  EXPECT_EQ(c->aws.credentials, AwsCredentials::kAuto);
}

TEST(ConfigResilience, RouteTimeoutsRetryAndFailover) {
  auto c = load_ok(yaml(kRetryRoutes));
  ASSERT_TRUE(c);
  const auto& routes = c->listeners[0].routes;
  const Route& full = routes[0];
  EXPECT_EQ(full.cluster, "a");
  EXPECT_EQ(full.failover, (Lines{"b", "c"}));
  EXPECT_EQ(full.timeout.count(), 3'000);
  EXPECT_EQ(full.per_try_timeout.count(), 1'000);
  ASSERT_TRUE(full.idle_timeout);
  EXPECT_EQ(full.idle_timeout->count(), 20'000);
  EXPECT_TRUE(full.allow_timeout_header);
  ASSERT_TRUE(full.retry);
  const RetryConfig& r = *full.retry;
  EXPECT_EQ(r.retry_on,
            (Lines{"5xx", "connect-failure", "retriable-status-codes", "retriable-headers"}));
  EXPECT_EQ(r.num_retries, 3u);
  EXPECT_EQ(r.retriable_status_codes, (std::vector<uint16_t>{409, 429}));
  ASSERT_EQ(r.retriable_headers.size(), 2u);
  EXPECT_EQ(r.retriable_headers[0].name, "x-retry-me");
  EXPECT_FALSE(r.retriable_headers[0].value);
  EXPECT_EQ(r.retriable_headers[1].name, "x-upstream-state");
  EXPECT_EQ(r.retriable_headers[1].value, "draining");
  EXPECT_TRUE(r.retry_non_idempotent);
  EXPECT_EQ(r.backoff_base.count(), 50);
  EXPECT_EQ(r.backoff_max.count(), 1'000);
  EXPECT_TRUE(r.honor_retry_after);
  EXPECT_EQ(r.retry_after_max.count(), 2'000);
  EXPECT_EQ(r.max_buffered_body_bytes, 1u << 20);
  EXPECT_EQ(r.loc.line, 12);

  const RetryConfig& s = *routes[1].retry;
  EXPECT_EQ(s.retry_on, (Lines{"gateway-error", "reset", "refused-stream"}));
  EXPECT_EQ(s.backoff_base.count(), 100);
  EXPECT_EQ(s.backoff_max.count(), 1'000);  // 10 x base, as Envoy
  EXPECT_FALSE(s.honor_retry_after);
  EXPECT_TRUE(routes[1].failover.empty());

  const RetryConfig& d = *routes[2].retry;
  EXPECT_EQ(d.num_retries, 1u);
  EXPECT_FALSE(d.retry_non_idempotent);
  EXPECT_EQ(d.backoff_base.count(), 25);
  EXPECT_EQ(d.backoff_max.count(), 250);
  EXPECT_EQ(d.retry_after_max.count(), 5'000);
  EXPECT_EQ(d.max_buffered_body_bytes, 64u * 1024);
}

TEST(ConfigResilience, ClusterKeys) {
  auto c = load_ok(std::string(kListeners) + yaml(kResilienceClusters));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->aws.zone, "us-east-1b");
  const Cluster& a = c->clusters[0];
  ASSERT_EQ(a.endpoints.size(), 3u);
  EXPECT_EQ(a.endpoints[0].weight, 3u);
  EXPECT_EQ(a.endpoints[0].zone, "us-east-1a");
  EXPECT_EQ(a.endpoints[1].weight, 1u);
  EXPECT_EQ(a.endpoints[1].zone, "us-east-1b");
  EXPECT_EQ(a.endpoints[2].zone, "");
  EXPECT_EQ(a.lb_policy, LbPolicy::kLeastRequest);
  EXPECT_EQ(a.panic_threshold_percent, 0u);
  EXPECT_FALSE(a.zone_aware.enabled);
  EXPECT_EQ(a.zone_aware.min_healthy_percent, 50u);
  EXPECT_EQ(a.circuit_breakers.max_connections, 10u);
  EXPECT_EQ(a.circuit_breakers.max_pending_requests, 0u);
  EXPECT_EQ(a.circuit_breakers.max_requests, 20u);
  EXPECT_EQ(a.circuit_breakers.max_retries, 3u);
  ASSERT_TRUE(a.retry_budget);
  EXPECT_DOUBLE_EQ(a.retry_budget->budget_percent, 12.5);
  EXPECT_EQ(a.retry_budget->min_retry_concurrency, 1u);
  ASSERT_TRUE(a.outlier_detection);
  const OutlierDetection& od = *a.outlier_detection;
  EXPECT_EQ(od.consecutive_5xx, 3u);
  EXPECT_EQ(od.consecutive_gateway_failure, 0u);
  EXPECT_EQ(od.consecutive_local_origin_failure, 2u);
  EXPECT_TRUE(od.split_external_local_origin_errors);
  EXPECT_EQ(od.interval.count(), 5'000);
  EXPECT_EQ(od.base_ejection_time.count(), 10'000);
  EXPECT_EQ(od.max_ejection_time.count(), 60'000);
  EXPECT_EQ(od.max_ejection_percent, 50u);
  EXPECT_TRUE(od.always_eject_one_host);
  EXPECT_FALSE(od.successful_active_health_check_uneject_host);
  ASSERT_TRUE(a.health_check);
  const HealthCheck& hc = *a.health_check;
  EXPECT_EQ(hc.path, "/ready?deep=1");
  EXPECT_EQ(hc.host, "app.internal");
  EXPECT_EQ(hc.interval.count(), 2'000);
  EXPECT_EQ(hc.interval_jitter.count(), 100);
  EXPECT_EQ(hc.interval_jitter_percent, 0u);
  EXPECT_EQ(hc.initial_jitter.count(), 1'000);
  EXPECT_EQ(hc.timeout.count(), 500);
  EXPECT_EQ(hc.healthy_threshold, 1u);
  EXPECT_EQ(hc.unhealthy_threshold, 5u);
  ASSERT_EQ(hc.expected_statuses.size(), 2u);
  EXPECT_EQ(hc.expected_statuses[0].first, 200);
  EXPECT_EQ(hc.expected_statuses[0].last, 299);
  EXPECT_EQ(hc.expected_statuses[1].first, 304);
  EXPECT_EQ(hc.expected_statuses[1].last, 304);
  ASSERT_EQ(hc.retriable_statuses.size(), 1u);
  EXPECT_EQ(hc.retriable_statuses[0].first, 503);

  const Cluster& o = c->clusters[1];
  EXPECT_EQ(o.lb_policy, LbPolicy::kRandom);
  ASSERT_TRUE(o.retry_budget);
  EXPECT_DOUBLE_EQ(o.retry_budget->budget_percent, 20.0);
  EXPECT_EQ(o.retry_budget->min_retry_concurrency, 3u);
  ASSERT_TRUE(o.outlier_detection);
  EXPECT_EQ(o.outlier_detection->consecutive_5xx, 5u);
  EXPECT_EQ(o.outlier_detection->max_ejection_percent, 10u);
  EXPECT_EQ(o.outlier_detection->base_ejection_time.count(), 30'000);
  EXPECT_FALSE(o.outlier_detection->always_eject_one_host);
  ASSERT_TRUE(o.health_check);
  EXPECT_EQ(o.health_check->path, "/health");
  EXPECT_EQ(o.health_check->interval.count(), 5'000);
  EXPECT_EQ(o.health_check->timeout.count(), 1'000);
  EXPECT_EQ(o.health_check->healthy_threshold, 2u);
  EXPECT_EQ(o.health_check->unhealthy_threshold, 3u);
  ASSERT_EQ(o.health_check->expected_statuses.size(), 1u);
  EXPECT_EQ(o.health_check->expected_statuses[0].first, 200);
  EXPECT_EQ(o.health_check->expected_statuses[0].last, 399);
  EXPECT_EQ(c->clusters[2].circuit_breakers.max_retries, 0u);
}

TEST(ConfigErrors, RouteRetryErrorsAreLocated) {
  EXPECT_EQ(errors_of(yaml(R"(
listeners:
  - name: l
    address: 127.0.0.1:15001
    routes:
      - cluster: app
        retry:
          retry_on: [5xx, 5xxx, gateway-error, 5xx, retriable-4xx, envoy-ratelimited]
          num_retries: 11
          retriable_status_codes: [503]
          backoff: {base: 100ms, max: 50ms}
          honor_retry_after: false
          retry_after_max: 1s
          max_buffered_body_bytes: 1GiB
      - cluster: app
        retry: {retry_on: "reset, bogus", retriable_headers: [x-a]}
      - cluster: app
        retry:
          retry_on: [retriable-status-codes, retriable-headers]
      - cluster: app
        retry:
          retry_on: [retriable-status-codes, retriable-headers]
          retriable_status_codes: [99, "abc", 500, 500]
          retriable_headers: ["bad header", {value: x}, {name: ok, value: "a\x01"}]
          backoff: {max: 10ms}
      - cluster: app
        retry: {num_retries: 2}
      - cluster: app
        retry: {retry_on: []}
      - cluster: app
        retry: {retry_on: {a: b}}
      - cluster: app
        retry: on
)") + std::string(kClusters)),
            (Lines{
                "t.yaml:7:27: retry_on: unknown condition \"5xxx\" (did you mean \"5xx\"?)",
                "t.yaml:7:48: retry_on: duplicate condition \"5xx\"",
                "t.yaml:7:53: retry_on: unknown condition \"retriable-4xx\" (expected "
                "connect-failure, refused-stream, reset, gateway-error, 5xx, "
                "retriable-status-codes, retriable-headers, cancelled, deadline-exceeded, "
                "resource-exhausted, internal or unavailable)",
                "t.yaml:7:68: retry_on: unknown condition \"envoy-ratelimited\" (expected "
                "connect-failure, refused-stream, reset, gateway-error, 5xx, "
                "retriable-status-codes, retriable-headers, cancelled, deadline-exceeded, "
                "resource-exhausted, internal or unavailable)",
                "t.yaml:8:24: num_retries: 11 is out of range (0..10)",
                "t.yaml:10:39: backoff: max 50ms is less than base 100ms",
                "t.yaml:12:11: retry_after_max: has no effect when honor_retry_after is false",
                "t.yaml:13:36: max_buffered_body_bytes: 1GiB is out of range (0..67108864)",
                // Inside a comma-separated string the position is the string's.
                "t.yaml:15:27: retry_on: unknown condition \"bogus\" (expected connect-failure, "
                "refused-stream, reset, gateway-error, 5xx, retriable-status-codes, "
                "retriable-headers, cancelled, deadline-exceeded, resource-exhausted, internal "
                "or unavailable)",
                "t.yaml:18:11: missing required key \"retriable_status_codes\" in retry (retry_on "
                "includes retriable-status-codes)",
                "t.yaml:18:11: missing required key \"retriable_headers\" in retry (retry_on "
                "includes retriable-headers)",
                "t.yaml:22:36: retriable_status_codes: \"99\" is not an HTTP status (100..599)",
                "t.yaml:22:40: retriable_status_codes: \"abc\" is not an HTTP status (100..599)",
                "t.yaml:22:52: retriable_status_codes: duplicate status 500",
                "t.yaml:23:31: retriable_headers: invalid header name \"bad header\"",
                "t.yaml:23:45: missing required key \"name\" in retriable header",
                "t.yaml:23:75: value: header value contains control characters",
                "t.yaml:24:26: backoff: max 10ms is less than base 25ms",
                "t.yaml:26:16: missing required key \"retry_on\" in retry",
                "t.yaml:28:27: retry_on: must list at least one condition",
                "t.yaml:30:27: retry_on: expected a list of conditions, got a map",
                "t.yaml:32:16: retry: expected a map, got \"on\"",
            }));
  // A condition list without the matching list's condition: the list has no effect.
  EXPECT_EQ(errors_of(yaml(R"(
listeners:
  - name: l
    address: 127.0.0.1:15001
    routes:
      - cluster: app
        retry:
          retry_on: 5xx
          retriable_status_codes: [503]
          retriable_headers: [x-a]
)") + std::string(kClusters)),
            (Lines{"t.yaml:8:11: retriable_status_codes: has no effect unless retry_on includes "
                   "retriable-status-codes",
                   "t.yaml:9:11: retriable_headers: has no effect unless retry_on includes "
                   "retriable-headers"}));
}

TEST(ConfigErrors, RouteTargetsAndTimeouts) {
  EXPECT_EQ(errors_of(yaml(R"(
listeners:
  - name: l
    address: 127.0.0.1:15001
    routes:
      - cluster: app
        clusters: [app]
      - clusters: [app, ap, app, [x]]
      - clusters: []
      - clusters: app
      - clusters: [app, b, c, d, e, f, g, h, i]
      - cluster: app
        timeout: 2s
        per_try_timeout: 3s
        idle_timeout: 0s
        allow_timeout_header: yes
      - cluster: app
        per_try_timeout: 15s
)") + std::string(kClusters)),
            (Lines{
                "t.yaml:6:9: \"cluster\" and \"clusters\" are mutually exclusive",
                "t.yaml:7:25: clusters: unknown cluster \"ap\" (did you mean \"app\"?)",
                "t.yaml:7:29: clusters: \"app\" is listed twice",
                "t.yaml:7:34: clusters: expected a cluster name, got a list",
                "t.yaml:8:19: clusters: must list at least one cluster",
                "t.yaml:9:19: clusters: expected a list, got \"app\"",
                "t.yaml:10:19: clusters: too many clusters (9, at most 8)",
                "t.yaml:10:25: clusters: unknown cluster \"b\"",
                "t.yaml:10:28: clusters: unknown cluster \"c\"",
                "t.yaml:10:31: clusters: unknown cluster \"d\"",
                "t.yaml:10:34: clusters: unknown cluster \"e\"",
                "t.yaml:10:37: clusters: unknown cluster \"f\"",
                "t.yaml:10:40: clusters: unknown cluster \"g\"",
                "t.yaml:10:43: clusters: unknown cluster \"h\"",
                "t.yaml:10:46: clusters: unknown cluster \"i\"",
                "t.yaml:13:26: per_try_timeout 3s is longer than the route timeout 2s (it would "
                "never fire)",
                "t.yaml:14:23: idle_timeout: must be greater than 0",
                "t.yaml:15:31: allow_timeout_header: expected true or false, got \"yes\"",
            }));
}

TEST(ConfigErrors, ClusterResilienceErrorsAreLocated) {
  EXPECT_EQ(errors_of(std::string(kListeners) + yaml(R"(
clusters:
  - name: app
    endpoints:
      - {address: "127.0.0.1:1", weight: 0, zone: us-east-1}
      - {address: "127.0.0.1:2", weight: 129, zone: use1-az1}
      - {weight: 2}
    lb_policy: maglev
    panic_threshold_percent: 101
    zone_aware: {enabled: 1, min_healthy_percent: -1, local_zone: x}
    circuit_breakers: {max_connections: 0, max_pending_requests: -1, max_requests: 0}
    retry_budget: {budget_percent: 100.5, min_retry_concurrency: x}
  - name: b
    endpoints: [127.0.0.1:3]
    retry_budget: {budget_percent: 1e2}
    circuit_breakers: {max_retries: 5}
    outlier_detection:
      consecutive_5xx: 0
      consecutive_gateway_failure: 0
      consecutive_local_origin_failure: 0
      interval: 0s
      max_ejection_percent: 200
      always_eject_one_host: maybe
)")),
            (Lines{
                "t.yaml:8:42: weight: 0 is out of range (1..128)",
                "t.yaml:8:51: zone: availability zone 'us-east-1' is a region: add the zone letter "
                "(e.g. us-east-1a)",
                "t.yaml:9:42: weight: 129 is out of range (1..128)",
                "t.yaml:9:53: zone: availability zone 'use1-az1' must be a region followed by a "
                "zone letter, e.g. us-east-1a",
                "t.yaml:10:9: missing required key \"address\" in endpoint",
                "t.yaml:11:16: lb_policy: unknown policy \"maglev\" (expected round_robin, "
                "least_request or random)",
                "t.yaml:12:30: panic_threshold_percent: 101 is out of range (0..100)",
                "t.yaml:13:27: enabled: expected true or false, got \"1\"",
                "t.yaml:13:51: min_healthy_percent: -1 is out of range (0..100)",
                "t.yaml:13:55: unknown key \"local_zone\"",
                "t.yaml:14:41: max_connections: 0 is out of range (1..1000000)",
                "t.yaml:14:66: max_pending_requests: -1 is out of range (0..1000000)",
                "t.yaml:14:84: max_requests: 0 is out of range (1..1000000)",
                "t.yaml:15:36: budget_percent: expected a number from 0 to 100 (e.g. 20 or 12.5), "
                "got \"100.5\"",
                "t.yaml:15:66: min_retry_concurrency: expected an integer, got \"x\"",
                "t.yaml:18:36: budget_percent: expected a number from 0 to 100 (e.g. 20 or 12.5), "
                "got \"1e2\"",
                "t.yaml:19:24: max_retries: has no effect when the cluster has a retry_budget (the "
                "budget replaces it)",
                "t.yaml:21:7: outlier_detection: every detector is off (its consecutive_* "
                "thresholds are 0); remove outlier_detection instead",
                "t.yaml:24:17: interval: must be greater than 0",
                "t.yaml:25:29: max_ejection_percent: 200 is out of range (0..100)",
                "t.yaml:26:30: always_eject_one_host: expected true or false, got \"maybe\"",
            }));
  EXPECT_EQ(
      errors_of(std::string(kListeners) + yaml(R"(
clusters:
  - name: app
    endpoints: [127.0.0.1:1]
  - name: c
    endpoints: [127.0.0.1:4]
    outlier_detection:
      split_external_local_origin_errors: false
      consecutive_local_origin_failure: 3
    health_check:
      path: health
      host: "bad host"
      interval: 0s
      timeout: 1.5s
      healthy_threshold: 0
      unhealthy_threshold: 1001
      expected_statuses: [200-, 99, 300-200, "2xx", 600]
      retriable_statuses: []
  - name: d
    endpoints: [127.0.0.1:5]
    outlier_detection: {split_external_local_origin_errors: false, consecutive_5xx: 0,
                        consecutive_gateway_failure: 0}
    health_check: {path: "/a b"}
)")),
      (Lines{
          "t.yaml:12:7: consecutive_local_origin_failure: has no effect unless "
          "split_external_local_origin_errors is true",
          "t.yaml:14:13: path: must start with \"/\", got \"health\"",
          "t.yaml:15:13: host: invalid host \"bad host\"",
          "t.yaml:16:17: interval: must be greater than 0",
          "t.yaml:17:16: timeout: invalid duration \"1.5s\" (fractions are not allowed; use a "
          "smaller unit, e.g. 1500ms)",
          "t.yaml:18:26: healthy_threshold: 0 is out of range (1..1000)",
          "t.yaml:19:28: unhealthy_threshold: 1001 is out of range (1..1000)",
          "t.yaml:20:27: expected_statuses: expected a status (200) or a range of statuses "
          "(200-299), got \"200-\"",
          "t.yaml:20:33: expected_statuses: \"99\" is not an HTTP status (100..599)",
          "t.yaml:20:37: expected_statuses: range \"300-200\" is empty (first > last)",
          "t.yaml:20:46: expected_statuses: expected a status (200) or a range of statuses "
          "(200-299), got \"2xx\"",
          "t.yaml:20:53: expected_statuses: \"600\" is not an HTTP status (100..599)",
          "t.yaml:21:27: retriable_statuses: must list at least one status (omit it otherwise)",
          "t.yaml:24:24: outlier_detection: every detector is off (its consecutive_* thresholds "
          "are 0); remove outlier_detection instead",
          "t.yaml:26:26: path: must not contain spaces, control or non-ASCII characters, or \"#\"",
      }));
}

// ---------------------------------------------------------------------------------------------
// AWS-native upstreams (issue 6)

constexpr std::string_view kVpce =
    "vpce-0a1b2c3d4e5f6a7b8-abcdefgh.vpce-svc-0123456789abcdef0.us-east-1.vpce.amazonaws.com";
constexpr std::string_view kLatticeName =
    "orders-0123456789abcdef0.7d67968.vpc-lattice-svcs.us-east-1.on.aws";

std::string sub(std::string text) {
  for (size_t i; (i = text.find("$VPCE")) != std::string::npos;) text.replace(i, 5, kVpce);
  for (size_t i; (i = text.find("$LATTICE")) != std::string::npos;) {
    text.replace(i, 8, kLatticeName);
  }
  return text;
}

constexpr std::string_view kAwsClusters = R"(
aws: {region: us-east-1}
clusters:
  - name: app
    endpoints: [127.0.0.1:8080]
  - name: users
    type: privatelink
    privatelink:
      endpoint: "$VPCE."
      service_name: users.example.com
    tls: {ca: system}
    dns: {min_ttl: 10s}
  - name: users_plain
    type: privatelink
    privatelink:
      endpoint: Users.Internal.Example.com
      port: 8080
      prefer_zonal: false
  - name: users_zonal
    type: privatelink
    privatelink:
      endpoint: vpce-0a1b2c3d4e5f6a7b8-abcdefgh-us-east-1a.vpce-svc-0123456789abcdef0.us-east-1.vpce.amazonaws.com
    host_rewrite: keep.me
  - name: orders
    type: lattice
    lattice: {service: "$LATTICE", auth: iam}
    tls: {ca: system}
  - name: orders_custom
    type: lattice
    lattice:
      service: orders.example.com
      custom_domain: true
      port: 80
      auth: iam
      sigv4a: true
  - name: orders_plain
    type: lattice
    lattice: {service: "$LATTICE"}
  - name: api
    type: apigateway
    apigateway: {api_id: abcde12345, vpc_endpoint: vpce-0123456789abcdef0, stage: prod,
                 auth: iam}
    tls: {ca: system}
  - name: api_endpoint
    type: apigateway
    apigateway: {endpoint: "fghij67890.execute-api.eu-west-1.amazonaws.com", region: eu-west-1}
    tls: {ca: system}
  - name: api_cn
    type: apigateway
    apigateway: {api_id: klmno12345, region: cn-north-1}
    tls: {ca: system, sni: api.example.cn}
)";

TEST(ConfigAws, TopLevelAws) {
  auto c = load_ok("aws: {region: eu-west-1, zone: eu-west-1c, credentials: ecs}\n" +
                   std::string(kListeners) + std::string(kClusters));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->aws.region, "eu-west-1");
  EXPECT_EQ(c->aws.zone, "eu-west-1c");
  EXPECT_EQ(c->aws.credentials, AwsCredentials::kEcs);
  EXPECT_EQ(load_ok("aws: {credentials: env}\n" + std::string(kListeners) + std::string(kClusters))
                ->aws.credentials,
            AwsCredentials::kEnv);
  EXPECT_EQ(errors_of(yaml(R"(
aws:
  region: us-east
  zone: us-east-1
  credentials: instance
  profile: x
)") + std::string(kListeners) +
                      std::string(kClusters)),
            (Lines{
                "t.yaml:2:11: region: region 'us-east' must look like us-east-1 or us-gov-west-1 "
                "(<geo>-[<qualifier>-]<direction>-<number>)",
                "t.yaml:3:9: zone: availability zone 'us-east-1' is a region: add the zone letter "
                "(e.g. us-east-1a)",
                "t.yaml:4:16: credentials: unknown credential source \"instance\" (expected auto, "
                "env or ecs)",
                "t.yaml:5:3: unknown key \"profile\"",
            }));
  EXPECT_EQ(errors_of("aws: {region: us-east-1, zone: us-west-2a}\n" + std::string(kListeners) +
                      std::string(kClusters)),
            (Lines{
                "t.yaml:1:32: zone: us-west-2a is not in region us-east-1",
            }));
}

TEST(ConfigAws, PrivateLinkLatticeAndApiGatewayLoad) {
  auto c = load_ok(std::string(kListeners) + sub(yaml(kAwsClusters)));
  ASSERT_TRUE(c);
  auto get = [&](std::string_view name) -> const Cluster& { return *c->find_cluster(name); };

  const Cluster& users = get("users");
  EXPECT_EQ(users.type, ClusterType::kPrivateLink);
  EXPECT_TRUE(users.resolves_names());
  ASSERT_TRUE(users.privatelink);
  EXPECT_EQ(users.privatelink->endpoint, kVpce);
  EXPECT_TRUE(users.privatelink->vpce_name);
  EXPECT_EQ(users.privatelink->region, "us-east-1");
  EXPECT_EQ(users.privatelink->zone, "");
  EXPECT_EQ(users.privatelink->port, 443);  // with tls
  EXPECT_EQ(users.privatelink->service_name, "users.example.com");
  EXPECT_TRUE(users.privatelink->prefer_zonal);
  ASSERT_EQ(users.endpoints.size(), 1u);
  EXPECT_EQ(users.endpoints[0].address.to_string(), std::string(kVpce) + ":443");
  EXPECT_EQ(users.host_rewrite, "users.example.com");
  EXPECT_EQ(users.tls->sni, "users.example.com");
  EXPECT_EQ(users.dns.min_ttl.count(), 10'000);
  EXPECT_FALSE(users.signing);

  const Cluster& plain = get("users_plain");
  EXPECT_EQ(plain.privatelink->endpoint, "users.internal.example.com");
  EXPECT_FALSE(plain.privatelink->vpce_name);
  EXPECT_FALSE(plain.privatelink->prefer_zonal);
  EXPECT_EQ(plain.endpoints[0].address.to_string(), "users.internal.example.com:8080");
  EXPECT_FALSE(plain.host_rewrite);

  const Cluster& zonal = get("users_zonal");
  EXPECT_EQ(zonal.privatelink->zone, "us-east-1a");
  EXPECT_FALSE(zonal.privatelink->prefer_zonal);
  EXPECT_EQ(zonal.privatelink->port, 80);  // plaintext
  EXPECT_EQ(zonal.endpoints[0].zone, "us-east-1a");
  EXPECT_EQ(zonal.host_rewrite, "keep.me");

  const Cluster& orders = get("orders");
  ASSERT_TRUE(orders.lattice);
  EXPECT_EQ(orders.lattice->service, kLatticeName);
  EXPECT_FALSE(orders.lattice->custom_domain);
  EXPECT_EQ(orders.lattice->port, 443);
  EXPECT_EQ(orders.lattice->auth, AwsAuth::kIam);
  EXPECT_EQ(orders.lattice->region, "us-east-1");
  EXPECT_EQ(orders.endpoints[0].address.to_string(), std::string(kLatticeName) + ":443");
  EXPECT_EQ(orders.host_rewrite, kLatticeName);
  ASSERT_TRUE(orders.signing);
  EXPECT_EQ(orders.signing->service, "vpc-lattice-svcs");
  EXPECT_EQ(orders.signing->region, "us-east-1");
  EXPECT_FALSE(orders.signing->sigv4a);

  const Cluster& custom = get("orders_custom");
  EXPECT_TRUE(custom.lattice->custom_domain);
  EXPECT_EQ(custom.lattice->region, "");  // the run-time region signs
  EXPECT_EQ(custom.endpoints[0].address.to_string(), "orders.example.com:80");
  ASSERT_TRUE(custom.signing);
  EXPECT_TRUE(custom.signing->sigv4a);
  EXPECT_EQ(custom.signing->region, "");
  EXPECT_FALSE(get("orders_plain").signing);

  const Cluster& api = get("api");
  ASSERT_TRUE(api.apigateway);
  EXPECT_EQ(api.apigateway->api_id, "abcde12345");
  EXPECT_EQ(api.apigateway->region, "us-east-1");  // from aws.region
  EXPECT_EQ(api.apigateway->vpce_id, "vpce-0123456789abcdef0");
  EXPECT_EQ(api.apigateway->host,
            "abcde12345-vpce-0123456789abcdef0.execute-api.us-east-1.amazonaws.com");
  EXPECT_EQ(api.apigateway->stage, "prod");
  EXPECT_EQ(api.endpoints[0].address.port, 443);
  EXPECT_EQ(api.host_rewrite, api.apigateway->host);
  ASSERT_TRUE(api.signing);
  EXPECT_EQ(api.signing->service, "execute-api");
  EXPECT_EQ(api.signing->region, "us-east-1");

  const Cluster& by_endpoint = get("api_endpoint");
  EXPECT_EQ(by_endpoint.apigateway->api_id, "fghij67890");
  EXPECT_EQ(by_endpoint.apigateway->region, "eu-west-1");
  EXPECT_EQ(by_endpoint.apigateway->vpce_id, "");
  EXPECT_FALSE(by_endpoint.signing);
  EXPECT_EQ(get("api_cn").apigateway->host, "klmno12345.execute-api.cn-north-1.amazonaws.com.cn");
  EXPECT_EQ(get("api_cn").tls->sni, "api.example.cn");
}

TEST(ConfigErrors, AwsClusterErrorsAreLocated) {
  EXPECT_EQ(errors_of(std::string(kListeners) + sub(yaml(R"(
aws: {region: us-west-2}
clusters:
  - name: app
    type: privatelink
    endpoints: [127.0.0.1:1]
    lattice: {service: x}
  - name: pl_region
    type: privatelink
    privatelink: {endpoint: "$VPCE"}
  - name: pl_bad
    type: privatelink
    privatelink:
      endpoint: vpce-0a1b2c3d4e5f6a7b8-abcdefgh.vpce-svc-0123456789abcdef0.us-moon-1.vpce.amazonaws.com
      port: 0
      service_name: 10.0.0.1
  - name: pl_private
    type: privatelink
    privatelink: {endpoint: users.example.com, prefer_zonal: true}
  - name: pl_ip
    type: privatelink
    privatelink: {endpoint: "10.1.2.3"}
  - name: pl_missing
    type: privatelink
)"))),
            (Lines{
                "t.yaml:7:5: missing required key \"privatelink\" in cluster",
                "t.yaml:9:5: endpoints: not allowed in clusters of type privatelink (the endpoint "
                "comes from its privatelink block)",
                "t.yaml:10:5: lattice: only allowed in clusters of type lattice",
                "t.yaml:13:29: endpoint: the endpoint is in region us-east-1 but aws.region is "
                "us-west-2 (an interface endpoint lives in the task's own VPC)",
                "t.yaml:17:17: endpoint: PrivateLink endpoint name: region 'us-moon-1': 'moon' is "
                "not a direction (east, west, north, south, central, northeast, northwest, "
                "southeast, southwest)",
                "t.yaml:18:13: port: 0 is out of range (1..65535)",
                "t.yaml:19:21: service_name: must be a DNS name, not an IP address",
                "t.yaml:22:62: prefer_zonal: needs a vpce-... endpoint name (a private DNS name "
                "has no zonal form)",
                "t.yaml:25:29: endpoint: must be a DNS name, not an IP address",
                "t.yaml:26:5: missing required key \"privatelink\" in cluster",
            }));
}

TEST(ConfigErrors, LatticeAndApiGatewayErrorsAreLocated) {
  EXPECT_EQ(
      errors_of(std::string(kListeners) + sub(yaml(R"(
clusters:
  - name: app
    endpoints: [127.0.0.1:1]
  - name: l1
    type: lattice
    lattice: {service: orders.example.com}
  - name: l2
    type: lattice
    lattice:
      service: orders-xyz.7d67968.vpc-lattice-svcs.us-east-1.on.aws
  - name: l3
    type: lattice
    lattice:
      service: "$LATTICE"
      custom_domain: true
      sigv4a: true
      region: us-east-1
  - name: l4
    type: lattice
    lattice:
      service: "$LATTICE"
      auth: iam
      region: us-west-2
      port: 70000
  - name: l5
    type: lattice
    lattice: {service: "$LATTICE", auth: sigv4}
  - name: a1
    type: apigateway
    apigateway: {api_id: ABCDE12345, vpc_endpoint: vpce-xyz, stage: "a/b"}
  - name: a2
    type: apigateway
    apigateway: {api_id: abcde12345}
    tls: {ca: system}
  - name: a3
    type: apigateway
    apigateway:
      endpoint: abcde12345.execute-api.us-east-1.amazonaws.com
      api_id: fghij67890
      region: eu-west-1
      vpc_endpoint: vpce-0123456789abcdef0
    tls: {ca: system}
  - name: a4
    type: apigateway
    apigateway: {endpoint: abcde12345.execute-api.us-east-1.amazonaws.com.cn}
    tls: {ca: system}
  - name: a5
    type: apigateway
    apigateway: {region: us-east-1}
    tls: {ca: system}
    health_check: {}
)"))),
      (Lines{
          "t.yaml:10:24: service: \"orders.example.com\" is not a VPC Lattice service name "
          "(<name>-<id>.<label>.vpc-lattice-svcs.<region>.on.aws); set custom_domain: true if it "
          "is the service's custom domain name",
          "t.yaml:14:16: service: VPC Lattice service name: 'xyz' after the service name must be "
          "the service id's 8-17 hex digits",
          "t.yaml:19:22: custom_domain: "
          "\"orders-0123456789abcdef0.7d67968.vpc-lattice-svcs.us-east-1.on.aws\" is the service's "
          "generated name, not a custom domain",
          "t.yaml:20:15: sigv4a: only used with auth: iam",
          "t.yaml:21:7: region: only used for signing (auth: iam)",
          "t.yaml:27:15: region: us-west-2 differs from the service name's region us-east-1",
          "t.yaml:28:13: port: 70000 is out of range (1..65535)",
          "t.yaml:31:100: auth: unknown auth \"sigv4\" (expected none or iam)",
          "t.yaml:32:5: missing required key \"tls\" in cluster (API Gateway only accepts HTTPS; "
          "e.g. tls: {ca: system})",
          "t.yaml:34:17: missing required key \"region\" in apigateway (or set aws.region)",
          "t.yaml:34:26: api_id: \"ABCDE12345\" is not an API id (10 lower-case letters or digits)",
          "t.yaml:34:52: vpc_endpoint: \"vpce-xyz\" is not a VPC endpoint id (vpce- and 8 or 17 "
          "hex digits)",
          "t.yaml:34:69: stage: invalid stage name \"a/b\" (1..128 letters, digits, \"-\" and "
          "\"_\")",
          "t.yaml:37:17: missing required key \"region\" in apigateway (or set aws.region)",
          "t.yaml:43:15: api_id: \"fghij67890\" differs from the endpoint's API id \"abcde12345\"",
          "t.yaml:44:15: region: \"eu-west-1\" differs from the endpoint's region \"us-east-1\"",
          "t.yaml:45:21: vpc_endpoint: \"vpce-0123456789abcdef0\" differs from the endpoint's VPC "
          "endpoint (none)",
          "t.yaml:49:28: endpoint: execute-api host region us-east-1 (partition aws) uses "
          "amazonaws.com, not amazonaws.com.cn",
          "t.yaml:53:17: missing required key \"api_id\" in apigateway",
          "t.yaml:55:5: health_check: not supported on clusters of type apigateway (AWS runs the "
          "endpoint and checks what is behind it)",
      }));
}

// Every new key renders to JSON and loads back into the same config.
TEST(ConfigJson, NewKeysRoundTrip) {
  const std::string texts[] = {yaml(kRetryRoutes),
                               std::string(kListeners) + yaml(kResilienceClusters),
                               std::string(kListeners) + sub(yaml(kAwsClusters))};
  for (const std::string& text : texts) {
    auto c = load_ok(text);
    ASSERT_TRUE(c);
    for (JsonStyle style : {JsonStyle::kPretty, JsonStyle::kCompact}) {
      std::string json = to_json(*c, style);
      if (style == JsonStyle::kCompact) {
        EXPECT_TRUE(python_accepts_json(json));
      }
      LoadResult back = load_string(json, "json");
      for (const Diagnostic& d : back.errors) ADD_FAILURE() << d.to_string() << "\n" << json;
      ASSERT_TRUE(back.ok());
      EXPECT_EQ(to_json(*back.config, style), json);
    }
  }
  auto c = load_ok(yaml(kRetryRoutes));
  std::string json = to_json(*c, JsonStyle::kCompact);
  EXPECT_NE(json.find(R"("clusters":["a","b","c"],"timeout":"3s","per_try_timeout":"1s",)"
                      R"("idle_timeout":"20s","allow_timeout_header":true,"retry":{"retry_on":)"
                      R"(["5xx","connect-failure","retriable-status-codes","retriable-headers"],)"
                      R"("num_retries":3,"retriable_status_codes":[409,429],"retriable_headers":)"
                      R"(["x-retry-me",{"name":"x-upstream-state","value":"draining"}],)"
                      R"("retry_non_idempotent":true,"backoff":{"base":"50ms","max":"1s"},)"
                      R"("honor_retry_after":true,"retry_after_max":"2s",)"
                      R"("max_buffered_body_bytes":1048576}})"),
            std::string::npos)
      << json;
  c = load_ok(std::string(kListeners) + yaml(kResilienceClusters));
  json = to_json(*c, JsonStyle::kCompact);
  EXPECT_NE(json.find(R"("aws":{"zone":"us-east-1b","credentials":"auto"})"), std::string::npos);
  EXPECT_NE(json.find(R"({"address":"a.internal:80","weight":3,"zone":"us-east-1a"})"),
            std::string::npos);
  EXPECT_NE(json.find(R"("retry_budget":{"budget_percent":12.5,"min_retry_concurrency":1})"),
            std::string::npos);
  EXPECT_NE(json.find(R"("expected_statuses":["200-299",304],"retriable_statuses":[503])"),
            std::string::npos);
  c = load_ok(std::string(kListeners) + sub(yaml(kAwsClusters)));
  json = to_json(*c, JsonStyle::kCompact);
  EXPECT_NE(json.find(R"("type":"lattice","lattice":{"service":"orders.example.com",)"
                      R"("custom_domain":true,"port":80,"auth":"iam","sigv4a":true})"),
            std::string::npos)
      << json;
}

// One listener "l" (line 2 of the file) with `key_line` as its line 4 ("" for none), routed to
// the shared clusters.
std::string one_listener(std::string_view key_line) {
  std::string s = "listeners:\n  - name: l\n    address: 127.0.0.1:15001\n";
  if (!key_line.empty()) s.append("    ").append(key_line).append("\n");
  return s.append("    routes: [{cluster: app}]\n").append(kClusters);
}

// HTTP/2: listeners may speak h2c (prior knowledge) and offer h2 by ALPN; clusters may not (yet).
TEST(ConfigH2, ListenerH2cAndAlpn) {
  auto c = load_ok(one_listener("h2c: true"));
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->listeners[0].h2c);
  EXPECT_NE(to_json(*c, JsonStyle::kCompact).find(R"("h2c":true)"), std::string::npos);
  EXPECT_EQ(errors_of(one_listener("h2c: maybe")),
            Lines{"t.yaml:4:10: h2c: expected true or false, got \"maybe\""});
}

// x-request-id on responses: returned unless the listener says otherwise.
TEST(ConfigListener, RequestIdInResponse) {
  auto on = load_ok(one_listener(""));
  ASSERT_TRUE(on);
  EXPECT_TRUE(on->listeners[0].request_id_in_response);
  auto off = load_ok(one_listener("request_id_in_response: false"));
  ASSERT_TRUE(off);
  EXPECT_FALSE(off->listeners[0].request_id_in_response);
  EXPECT_NE(to_json(*off, JsonStyle::kCompact).find(R"("request_id_in_response":false)"),
            std::string::npos);
  EXPECT_EQ(errors_of(one_listener("request_id_in_response: 0")),
            Lines{"t.yaml:4:29: request_id_in_response: expected true or false, got \"0\""});
}

}  // namespace
}  // namespace outrigger::config
