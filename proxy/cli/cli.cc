#include "proxy/cli/cli.h"

#include <sys/socket.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/loader.h"
#include "proxy/server/server.h"
#include "proxy/tls/pki.h"

namespace outrigger::cli {

namespace {

constexpr std::string_view kVersion = OUTRIGGER_VERSION;

constexpr std::string_view kTopHelp = R"(outrigger - a sidecar proxy for cross-account service calls on AWS

Usage:
  outrigger run --config FILE            run the proxy
  outrigger validate --config FILE       check a config; print FILE:LINE:COLUMN: message per error
  outrigger reverse-proxy --listen ADDR:PORT --to http://HOST:PORT [options]
                                         quick mode: one listener, one upstream
  outrigger probe http://ADDR:PORT/PATH  exit 0 when the URL answers 2xx (container health checks)
  outrigger pki init DIR                 create a dev root CA + subordinate CA (like AWS Private CA)
  outrigger pki issue DIR --name SERVICE --account ID [--dns NAME] [--days N] [--client|--server|--both]
                                         issue a leaf whose SANs carry the service identity
  outrigger version                      print the version

Every subcommand takes --help and --version.
)";

constexpr std::string_view kRunHelp = R"(Usage: outrigger run --config FILE

Runs the proxy from a YAML config (see config/README.md).
Signals: SIGTERM/SIGINT drain and exit 0; SIGHUP reloads FILE (an invalid file is refused and the
running config kept).
)";

constexpr std::string_view kValidateHelp = R"(Usage: outrigger validate --config FILE

Loads and validates FILE. Prints every problem as FILE:LINE:COLUMN: message on stderr and exits 1;
exits 0 when the config is valid.
)";

constexpr std::string_view kReverseProxyHelp = R"(Usage: outrigger reverse-proxy --listen ADDR:PORT --to http[s]://HOST:PORT [options]

Proxies every request received on ADDR:PORT to one upstream. HOST may be an IP address or a DNS
name (resolved asynchronously and re-resolved on its TTL).

Options:
  --listen ADDR:PORT       address to accept on (port 0 picks a free port, printed on stderr)
  --to http://HOST:PORT    the upstream
  --to https://NAME:PORT   the upstream over TLS: SNI NAME, its certificate must verify against
                           --ca and carry NAME as a SAN (never falls back to plaintext)
  --resolve NAME:ADDR      connect to ADDR for NAME instead of resolving it (like curl --resolve)
  --ca FILE                PEM trust bundle for https upstreams (roots + subordinates), or "system"
  --cert FILE, --key FILE  client certificate chain and key for mTLS to the upstream
  --workers N              worker threads (default: the CPUs this process may use)
  --admin ADDR:PORT        admin listener (/ready, /healthz, /metrics, /config, /clusters)
  --access-log MODE        off | stdout | FILE (default stdout)
  --help, --version
)";

struct Args {
  std::string sub;
  std::map<std::string, std::string> opts;
  std::vector<std::string> errors;
  bool help = false, version = false;
};

Args parse(int argc, char** argv, const std::vector<std::string_view>& known) {
  Args a;
  for (int i = 2; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      a.help = true;
      continue;
    }
    if (arg == "--version") {
      a.version = true;
      continue;
    }
    if (!arg.starts_with("--")) {
      a.errors.push_back("unexpected argument \"" + std::string(arg) + "\"");
      continue;
    }
    std::string name(arg.substr(2));
    std::string value;
    if (const size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      a.errors.push_back("--" + name + " needs a value");
      continue;
    }
    bool ok = false;
    for (auto k : known) ok |= k == name;
    if (!ok) {
      a.errors.push_back("unknown option --" + name);
      continue;
    }
    a.opts[name] = value;
  }
  return a;
}

int usage_error(const std::vector<std::string>& errors, std::string_view help) {
  for (const auto& e : errors) std::cerr << "outrigger: " << e << "\n";
  std::cerr << "\n" << help;
  return 2;
}

int cmd_validate(const Args& a) {
  auto it = a.opts.find("config");
  if (it == a.opts.end()) return usage_error({"--config is required"}, kValidateHelp);
  config::LoadResult r = config::load_file(it->second);
  for (const auto& d : r.errors) std::cerr << d.to_string() << "\n";
  if (!r.ok()) return 1;
  std::cout << it->second << ": ok\n";
  return 0;
}

int cmd_run(const Args& a) {
  auto it = a.opts.find("config");
  if (it == a.opts.end()) return usage_error({"--config is required"}, kRunHelp);
  config::LoadResult r = config::load_file(it->second);
  for (const auto& d : r.errors) std::cerr << d.to_string() << "\n";
  if (!r.ok()) return 1;
  server::Server s(r.config, it->second);
  return s.run();
}

// Builds the config `reverse-proxy` stands for.
std::optional<config::Config> quick_config(const Args& a, std::vector<std::string>* errors) {
  config::Config c;
  c.source = "<flags>";
  auto listen = a.opts.find("listen");
  auto to = a.opts.find("to");
  if (listen == a.opts.end()) errors->push_back("--listen is required");
  if (to == a.opts.end()) errors->push_back("--to is required");
  if (!errors->empty()) return std::nullopt;

  config::Listener l;
  l.name = "main";
  std::string err;
  if (!config::parse_host_port(listen->second, true, &l.address, &err)) {
    errors->push_back("--listen: " + err);
  }
  config::Cluster cl;
  cl.name = "upstream";
  std::string_view url = to->second;
  bool https = false;
  if (url.starts_with("http://")) {
    url.remove_prefix(7);
  } else if (url.starts_with("https://")) {
    url.remove_prefix(8);
    https = true;
  } else {
    errors->push_back("--to: expected http://HOST:PORT or https://NAME:PORT, got \"" + to->second +
                      "\"");
  }
  while (!url.empty() && url.back() == '/') url.remove_suffix(1);
  config::Endpoint ep;
  if (errors->empty() && !config::parse_host_port(url, false, &ep.address, &err)) {
    errors->push_back("--to: " + err);
  }
  const std::string name = ep.address.host;
  if (auto rs = a.opts.find("resolve"); rs != a.opts.end() && errors->empty()) {
    // NAME:ADDR; ADDR may be an IPv6 literal, with or without brackets.
    const size_t colon = rs->second.find(':');
    std::string host = colon == std::string::npos ? "" : rs->second.substr(0, colon);
    std::string addr = colon == std::string::npos ? "" : rs->second.substr(colon + 1);
    if (addr.size() > 2 && addr.front() == '[' && addr.back() == ']') addr = addr.substr(1, addr.size() - 2);
    boost::system::error_code aec;
    boost::asio::ip::make_address(addr, aec);
    if (host.empty() || aec) {
      errors->push_back("--resolve: expected NAME:ADDR with an IP address, got \"" + rs->second + "\"");
    } else if (host != name) {
      errors->push_back("--resolve: NAME \"" + host + "\" is not the --to host \"" + name + "\"");
    } else {
      ep.address.host = addr;
    }
  }
  boost::system::error_code ec;
  boost::asio::ip::make_address(ep.address.host, ec);
  cl.type = ec ? config::ClusterType::kDns : config::ClusterType::kStatic;
  cl.endpoints.push_back(ep);
  auto abs_path = [](const std::string& p) {
    return p.empty() || p.front() == '/' ? p : std::filesystem::absolute(p).string();
  };
  const auto ca = a.opts.find("ca");
  const auto cert = a.opts.find("cert");
  const auto key = a.opts.find("key");
  if (https) {
    config::ClusterTls t;
    t.sni = name;
    if (ca == a.opts.end()) {
      errors->push_back("--to https://... needs --ca FILE (the upstream's trust bundle) or --ca system");
    } else {
      t.ca = ca->second == "system" ? ca->second : abs_path(ca->second);
    }
    if ((cert == a.opts.end()) != (key == a.opts.end())) {
      errors->push_back("--cert and --key go together");
    } else if (cert != a.opts.end()) {
      t.cert = abs_path(cert->second);
      t.key = abs_path(key->second);
    }
    cl.tls = t;
  } else if (ca != a.opts.end() || cert != a.opts.end() || key != a.opts.end()) {
    errors->push_back("--ca, --cert and --key need --to https://NAME:PORT");
  }
  config::Route r;
  r.name = "all";
  r.cluster = cl.name;
  l.routes.push_back(r);
  c.listeners.push_back(l);
  c.clusters.push_back(cl);

  if (auto w = a.opts.find("workers"); w != a.opts.end()) {
    char* end = nullptr;
    const long n = std::strtol(w->second.c_str(), &end, 10);
    if (end == w->second.c_str() || *end != '\0' || n < 0 || n > 1024) {
      errors->push_back("--workers: expected a number from 0 to 1024");
    } else {
      c.workers = static_cast<uint32_t>(n);
    }
  }
  if (auto ad = a.opts.find("admin"); ad != a.opts.end()) {
    config::HostPort hp;
    if (!config::parse_host_port(ad->second, true, &hp, &err)) {
      errors->push_back("--admin: " + err);
    } else {
      c.admin.address = hp;
    }
  }
  if (auto al = a.opts.find("access-log"); al != a.opts.end()) {
    if (al->second == "off") {
      c.access_log.mode = config::AccessLogMode::kOff;
    } else if (al->second == "stdout") {
      c.access_log.mode = config::AccessLogMode::kStdout;
    } else if (!al->second.empty()) {
      c.access_log.mode = config::AccessLogMode::kFile;
      c.access_log.path = al->second;
    } else {
      errors->push_back("--access-log: expected off, stdout or a file path");
    }
  }
  for (auto& li : c.listeners) li.limits = c.limits;
  if (!errors->empty()) return std::nullopt;
  return c;
}

constexpr std::string_view kProbeHelp = R"(Usage: outrigger probe http://ADDR:PORT/PATH [--timeout-ms N]

GETs the URL (ADDR an IP address) and exits 0 on a 2xx answer, 1 otherwise: a health check for
images without curl, e.g. ["CMD", "outrigger", "probe", "http://127.0.0.1:9901/ready"].
)";

// A blocking one-shot GET; the proxy itself never uses this path.
int probe(std::string_view url, int timeout_ms) {
  if (!url.starts_with("http://")) {
    std::cerr << "outrigger probe: expected http://ADDR:PORT/PATH\n";
    return 2;
  }
  url.remove_prefix(7);
  const size_t slash = url.find('/');
  const std::string_view authority = url.substr(0, slash);
  const std::string path = slash == std::string_view::npos ? "/" : std::string(url.substr(slash));
  config::HostPort hp;
  std::string err;
  if (!config::parse_host_port(authority, true, &hp, &err)) {
    std::cerr << "outrigger probe: " << err << "\n";
    return 2;
  }
  try {
    boost::asio::io_context io;
    boost::asio::ip::tcp::socket s(io);
    boost::asio::ip::tcp::endpoint ep(boost::asio::ip::make_address(hp.host), hp.port);
    const timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    s.open(ep.protocol());
    ::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(s.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    s.connect(ep);
    const std::string req = "GET " + path + " HTTP/1.1\r\nHost: " + std::string(authority) +
                            "\r\nConnection: close\r\nUser-Agent: outrigger-probe\r\n\r\n";
    boost::asio::write(s, boost::asio::buffer(req));
    char buf[64];
    size_t got = 0;
    boost::system::error_code ec;
    while (got < 12 && !ec) got += s.read_some(boost::asio::buffer(buf + got, sizeof buf - got), ec);
    const std::string_view line(buf, got);
    if (got >= 12 && line.starts_with("HTTP/1.") && line[9] == '2') return 0;
    std::cerr << "outrigger probe: " << (got >= 12 ? std::string(line.substr(0, 12)) : "no answer") << "\n";
    return 1;
  } catch (const boost::system::system_error& e) {
    std::cerr << "outrigger probe: " << e.code().message() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "outrigger probe: " << e.what() << "\n";
    return 1;
  }
}

int cmd_reverse_proxy(const Args& a) {
  std::vector<std::string> errors;
  auto c = quick_config(a, &errors);
  if (!c) return usage_error(errors, kReverseProxyHelp);
  server::Server s(std::make_shared<const config::Config>(std::move(*c)), "");
  return s.run();
}

}  // namespace

int main(int argc, char** argv) {
  const std::string_view sub = argc > 1 ? argv[1] : "";
  if (sub.empty() || sub == "--help" || sub == "-h" || sub == "help") {
    std::cout << kTopHelp;
    return sub.empty() ? 2 : 0;
  }
  if (sub == "--version" || sub == "version") {
    std::cout << "outrigger " << kVersion << "\n";
    return 0;
  }
  if (sub == "pki") return tls::pki_main(argc - 1, argv + 1);
  if (sub == "probe") {
    std::string_view url;
    int timeout_ms = 2000;
    for (int i = 2; i < argc; ++i) {
      std::string_view arg = argv[i];
      if (arg == "--help" || arg == "-h") {
        std::cout << kProbeHelp;
        return 0;
      }
      if (arg == "--version") {
        std::cout << "outrigger " << kVersion << "\n";
        return 0;
      }
      if (arg == "--timeout-ms" && i + 1 < argc) {
        timeout_ms = std::max(1, std::atoi(argv[++i]));
      } else if (url.empty() && !arg.starts_with("--")) {
        url = arg;
      } else {
        std::cerr << "outrigger probe: unexpected argument \"" << arg << "\"\n\n" << kProbeHelp;
        return 2;
      }
    }
    if (url.empty()) {
      std::cerr << kProbeHelp;
      return 2;
    }
    return probe(url, timeout_ms);
  }
  struct Sub {
    std::string_view name, help;
    std::vector<std::string_view> options;
    int (*fn)(const Args&);
  };
  static const Sub kSubs[] = {
      {"run", kRunHelp, {"config"}, cmd_run},
      {"validate", kValidateHelp, {"config"}, cmd_validate},
      {"reverse-proxy", kReverseProxyHelp,
       {"listen", "to", "workers", "admin", "access-log", "resolve", "ca", "cert", "key"},
       cmd_reverse_proxy},
  };
  for (const Sub& s : kSubs) {
    if (s.name != sub) continue;
    Args a = parse(argc, argv, s.options);
    if (a.help) {
      std::cout << s.help;
      return 0;
    }
    if (a.version) {
      std::cout << "outrigger " << kVersion << "\n";
      return 0;
    }
    if (!a.errors.empty()) return usage_error(a.errors, s.help);
    return s.fn(a);
  }
  std::cerr << "outrigger: unknown command \"" << sub << "\"\n\n" << kTopHelp;
  return 2;
}

}  // namespace outrigger::cli
