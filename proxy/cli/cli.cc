#include "proxy/cli/cli.h"

#include <boost/asio/ip/address.hpp>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/loader.h"
#include "proxy/server/server.h"

namespace outrigger::cli {

namespace {

constexpr std::string_view kVersion = OUTRIGGER_VERSION;

constexpr std::string_view kTopHelp = R"(outrigger - a sidecar proxy for cross-account service calls on AWS

Usage:
  outrigger run --config FILE            run the proxy
  outrigger validate --config FILE       check a config; print FILE:LINE:COLUMN: message per error
  outrigger reverse-proxy --listen ADDR:PORT --to http://HOST:PORT [options]
                                         quick mode: one listener, one upstream
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

constexpr std::string_view kReverseProxyHelp = R"(Usage: outrigger reverse-proxy --listen ADDR:PORT --to http://HOST:PORT [options]

Proxies every request received on ADDR:PORT to one upstream. HOST may be an IP address or a DNS
name (resolved asynchronously and re-resolved on its TTL).

Options:
  --listen ADDR:PORT       address to accept on (port 0 picks a free port, printed on stderr)
  --to http://HOST:PORT    the upstream
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
  if (url.starts_with("http://")) {
    url.remove_prefix(7);
  } else {
    errors->push_back("--to: expected http://HOST:PORT, got \"" + to->second + "\"");
  }
  while (!url.empty() && url.back() == '/') url.remove_suffix(1);
  config::Endpoint ep;
  if (errors->empty() && !config::parse_host_port(url, false, &ep.address, &err)) {
    errors->push_back("--to: " + err);
  }
  boost::system::error_code ec;
  boost::asio::ip::make_address(ep.address.host, ec);
  cl.type = ec ? config::ClusterType::kDns : config::ClusterType::kStatic;
  cl.endpoints.push_back(ep);
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
  struct Sub {
    std::string_view name, help;
    std::vector<std::string_view> options;
    int (*fn)(const Args&);
  };
  static const Sub kSubs[] = {
      {"run", kRunHelp, {"config"}, cmd_run},
      {"validate", kValidateHelp, {"config"}, cmd_validate},
      {"reverse-proxy", kReverseProxyHelp, {"listen", "to", "workers", "admin", "access-log"},
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
