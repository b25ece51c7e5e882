#include "proxy/dns/resolver.h"

#include <ares.h>
#include <sys/time.h>

#include <algorithm>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <cstring>
#include <limits>
#include <mutex>
#include <string_view>

namespace outrigger::dns {
namespace {

constexpr int kClassIn = 1;
constexpr int kTypeA = 1;
constexpr int kTypeAaaa = 28;
// Bigger than any answer that fits a UDP or EDNS packet; a longer TCP answer is cut here.
constexpr int kMaxRecords = 256;

std::string status_text(int status) {
  switch (status) {
    case ARES_ENOTFOUND:
      return "NXDOMAIN";
    case ARES_ENODATA:
      return "no records";
    case ARES_ETIMEOUT:
      return "timeout";
    case ARES_ECONNREFUSED:
      return "connection refused";
    case ARES_ESERVFAIL:
      return "SERVFAIL";
    case ARES_EREFUSED:
      return "REFUSED";
    case ARES_EDESTRUCTION:
      return "resolver destroyed";
    case ARES_ECANCELLED:
      return "cancelled";
    default:
      return ares_strerror(status);
  }
}

// A status that only says "nothing of this family": the other family may still answer.
bool is_empty_answer(int status) {
  return status == ARES_SUCCESS || status == ARES_ENODATA || status == ARES_ENOTFOUND;
}

std::expected<void, std::string> init_library() {
  static std::once_flag once;
  static int rc = ARES_SUCCESS;
  std::call_once(once, [] { rc = ares_library_init(ARES_LIB_INIT_ALL); });
  if (rc != ARES_SUCCESS) return std::unexpected(std::string("c-ares init: ") + ares_strerror(rc));
  return {};
}

}  // namespace

ResolverOptions resolver_options(const config::Dns& dns) {
  ResolverOptions o;
  o.servers = dns.resolvers;
  o.timeout = dns.timeout;
  return o;
}

// One c-ares socket. The descriptor never owns the fd: c-ares closes it, right after telling us
// (readable = writable = 0), and we release() it first so that Asio forgets it too.
struct Resolver::Watch {
  Watch(boost::asio::io_context& io, int fd) : fd(fd), sd(io) {}
  int fd;
  boost::asio::posix::stream_descriptor sd;
  bool want_read = false;
  bool want_write = false;
  bool read_armed = false;
  bool write_armed = false;
  bool closed = false;
};

// One resolve(): its A and AAAA questions complete independently; the second one finishes it.
struct Resolver::Query {
  Resolver* owner = nullptr;
  std::string name;
  ResolveCallback cb;
  int pending = 2;
  int status[2] = {ARES_SUCCESS, ARES_SUCCESS};  // [0] A, [1] AAAA, after parsing
  std::vector<boost::asio::ip::address> addresses;
  int64_t min_ttl = std::numeric_limits<int64_t>::max();
};

Resolver::Resolver(boost::asio::io_context& io)
    : io_(io), timer_(io), alive_(std::make_shared<int>(0)) {}

std::expected<std::unique_ptr<Resolver>, std::string> Resolver::create(boost::asio::io_context& io,
                                                                       ResolverOptions options) {
  if (auto ok = init_library(); !ok) return std::unexpected(ok.error());
  if (options.timeout.count() <= 0) return std::unexpected("dns timeout must be positive");
  if (options.tries < 1) return std::unexpected("dns tries must be at least 1");

  std::vector<ares_addr_port_node> nodes(options.servers.size());
  for (size_t i = 0; i < options.servers.size(); ++i) {
    const auto& s = options.servers[i];
    boost::system::error_code ec;
    auto addr = boost::asio::ip::make_address(s.host, ec);
    if (ec) return std::unexpected("dns resolver '" + s.host + "' is not an IP address");
    auto& n = nodes[i];
    n.next = i + 1 < nodes.size() ? &nodes[i + 1] : nullptr;
    if (addr.is_v4()) {
      n.family = AF_INET;
      auto bytes = addr.to_v4().to_bytes();
      std::memcpy(&n.addr.addr4, bytes.data(), bytes.size());
    } else {
      n.family = AF_INET6;
      auto bytes = addr.to_v6().to_bytes();
      std::memcpy(&n.addr.addr6, bytes.data(), bytes.size());
    }
    n.udp_port = n.tcp_port = s.port == 0 ? 53 : s.port;
  }

  std::unique_ptr<Resolver> r(new Resolver(io));
  ares_options o{};
  o.timeout =
      static_cast<int>(std::min<int64_t>(options.timeout.count(), std::numeric_limits<int>::max()));
  o.tries = options.tries;
  o.sock_state_cb = &Resolver::on_sock_state;
  o.sock_state_cb_data = r.get();
  ares_channel channel = nullptr;
  int rc =
      ares_init_options(&channel, &o, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB);
  if (rc != ARES_SUCCESS) return std::unexpected(std::string("c-ares: ") + ares_strerror(rc));
  r->channel_ = channel;
  if (!nodes.empty()) {
    rc = ares_set_servers_ports(channel, nodes.data());
    if (rc != ARES_SUCCESS) {
      return std::unexpected(std::string("c-ares servers: ") + ares_strerror(rc));
    }
  }
  return r;
}

Resolver::~Resolver() {
  alive_.reset();
  // Runs every pending query callback with ARES_EDESTRUCTION (each posts its user callback) and
  // closes the sockets, which reports them closed through on_sock_state.
  if (channel_ != nullptr) ares_destroy(channel_);
  for (auto& [fd, w] : watches_) {
    w->closed = true;
    w->sd.release();
  }
}

void Resolver::resolve(std::string name, ResolveCallback cb) {
  boost::system::error_code ec;
  auto literal = boost::asio::ip::make_address(name, ec);
  if (!ec) {
    boost::asio::post(io_, [cb = std::move(cb), literal] {
      cb(Resolution{.addresses = {literal}, .ttl = kLiteralTtl});
    });
    return;
  }
  if (name.empty()) {
    boost::asio::post(io_, [cb = std::move(cb)] { cb(std::unexpected("empty DNS name")); });
    return;
  }
  // The hosts file first, as the system resolver does ("localhost", names pinned by operators).
  if (Resolution from_hosts; lookup_hosts_file(name, &from_hosts)) {
    boost::asio::post(io_, [cb = std::move(cb), r = std::move(from_hosts)]() mutable {
      cb(std::move(r));
    });
    return;
  }
  auto* q = new Query;
  q->owner = this;
  q->name = std::move(name);
  q->cb = std::move(cb);
  ++in_flight_;
  queries_sent_ += 2;
  // c-ares encodes the name before returning, and may call back before returning (bad name).
  ares_query(
      channel_, q->name.c_str(), kClassIn, kTypeA,
      [](void* arg, int status, int timeouts, unsigned char* abuf, int alen) {
        on_answer(arg, status, timeouts, abuf, alen, false);
      },
      q);
  ares_query(
      channel_, q->name.c_str(), kClassIn, kTypeAaaa,
      [](void* arg, int status, int timeouts, unsigned char* abuf, int alen) {
        on_answer(arg, status, timeouts, abuf, alen, true);
      },
      q);
  update_timer();
}

bool Resolver::lookup_hosts_file(const std::string& name, Resolution* out) {
  for (int family : {AF_INET, AF_INET6}) {
    hostent* h = nullptr;
    if (ares_gethostbyname_file(channel_, name.c_str(), family, &h) != ARES_SUCCESS || h == nullptr) {
      continue;
    }
    for (char** p = h->h_addr_list; p != nullptr && *p != nullptr; ++p) {
      if (family == AF_INET) {
        boost::asio::ip::address_v4::bytes_type b;
        std::memcpy(b.data(), *p, b.size());
        out->addresses.emplace_back(boost::asio::ip::address_v4(b));
      } else {
        boost::asio::ip::address_v6::bytes_type b;
        std::memcpy(b.data(), *p, b.size());
        out->addresses.emplace_back(boost::asio::ip::address_v6(b));
      }
    }
    ares_free_hostent(h);
  }
  if (out->addresses.empty()) return false;
  std::sort(out->addresses.begin(), out->addresses.end());
  out->addresses.erase(std::unique(out->addresses.begin(), out->addresses.end()), out->addresses.end());
  out->ttl = kHostsFileTtl;
  return true;
}

void Resolver::on_answer(void* arg, int status, int /*timeouts*/, unsigned char* abuf, int alen,
                         bool aaaa) {
  auto* q = static_cast<Query*>(arg);
  if (status == ARES_SUCCESS) {
    int n = kMaxRecords;
    if (aaaa) {
      ares_addr6ttl recs[kMaxRecords];
      status = ares_parse_aaaa_reply(abuf, alen, nullptr, recs, &n);
      for (int i = 0; status == ARES_SUCCESS && i < n; ++i) {
        boost::asio::ip::address_v6::bytes_type b;
        std::memcpy(b.data(), &recs[i].ip6addr, b.size());
        q->addresses.emplace_back(boost::asio::ip::address_v6(b));
        q->min_ttl = std::min<int64_t>(q->min_ttl, recs[i].ttl);
      }
    } else {
      ares_addrttl recs[kMaxRecords];
      status = ares_parse_a_reply(abuf, alen, nullptr, recs, &n);
      for (int i = 0; status == ARES_SUCCESS && i < n; ++i) {
        boost::asio::ip::address_v4::bytes_type b;
        std::memcpy(b.data(), &recs[i].ipaddr, b.size());
        q->addresses.emplace_back(boost::asio::ip::address_v4(b));
        q->min_ttl = std::min<int64_t>(q->min_ttl, recs[i].ttl);
      }
    }
  }
  q->status[aaaa ? 1 : 0] = status;
  if (--q->pending == 0) q->owner->finish(q);
}

void Resolver::finish(Query* raw) {
  std::unique_ptr<Query> q(raw);
  --in_flight_;
  ResolveResult result;
  const int a = q->status[0];
  const int aaaa = q->status[1];
  // One family answered with records while the other was refused or failed outright (servers
  // that do not serve AAAA): use what we have. A timeout still fails the whole resolution, so a
  // dual-stack set is not halved by one lost packet (the refresher keeps the last good set).
  const bool partial_ok = !q->addresses.empty() && a != ARES_ETIMEOUT && aaaa != ARES_ETIMEOUT;
  if (!partial_ok && (!is_empty_answer(a) || !is_empty_answer(aaaa))) {
    std::string why;
    if (a == aaaa) {
      why = status_text(a);
    } else {
      why = "A: " + status_text(a) + ", AAAA: " + status_text(aaaa);
    }
    result = std::unexpected(q->name + ": " + why);
  } else if (q->addresses.empty()) {
    bool nx = a == ARES_ENOTFOUND && aaaa == ARES_ENOTFOUND;
    result = std::unexpected(q->name + (nx ? ": NXDOMAIN" : ": no A or AAAA records"));
  } else {
    auto& v = q->addresses;
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    result = Resolution{.addresses = std::move(v),
                        .ttl = std::chrono::seconds(std::max<int64_t>(0, q->min_ttl))};
  }
  // Posted, never called from inside c-ares: the callback may start or destroy anything.
  boost::asio::post(io_, [cb = std::move(q->cb), result = std::move(result)]() mutable {
    cb(std::move(result));
  });
}

void Resolver::on_sock_state(void* data, int fd, int readable, int writable) {
  auto* self = static_cast<Resolver*>(data);
  auto it = self->watches_.find(fd);
  if (!readable && !writable) {
    if (it != self->watches_.end()) {
      auto w = std::move(it->second);
      self->watches_.erase(it);
      w->closed = true;
      w->sd.release();  // cancels its waits; c-ares closes the fd next
    }
    return;
  }
  std::shared_ptr<Watch> w;
  if (it == self->watches_.end()) {
    w = std::make_shared<Watch>(self->io_, fd);
    boost::system::error_code ec;
    w->sd.assign(fd, ec);
    // Unwatchable (epoll refused it): its queries still end, by timeout through timer_.
    if (ec) return;
    self->watches_.emplace(fd, w);
  } else {
    w = it->second;
  }
  w->want_read = readable != 0;
  w->want_write = writable != 0;
  self->arm(w);
}

void Resolver::arm(const std::shared_ptr<Watch>& w) {
  auto make_handler = [this, w](bool write) {
    return [this, alive = std::weak_ptr<int>(alive_), w, write](boost::system::error_code ec) {
      if (alive.expired()) return;
      (write ? w->write_armed : w->read_armed) = false;
      if (w->closed || ec == boost::asio::error::operation_aborted) return;
      process(w, write);
    };
  };
  if (w->want_read && !w->read_armed) {
    w->read_armed = true;
    w->sd.async_wait(boost::asio::posix::stream_descriptor::wait_read, make_handler(false));
  }
  if (w->want_write && !w->write_armed) {
    w->write_armed = true;
    w->sd.async_wait(boost::asio::posix::stream_descriptor::wait_write, make_handler(true));
  }
}

void Resolver::process(const std::shared_ptr<Watch>& w, bool write) {
  ares_process_fd(channel_, write ? ARES_SOCKET_BAD : w->fd, write ? w->fd : ARES_SOCKET_BAD);
  if (!w->closed) arm(w);
  update_timer();
}

void Resolver::update_timer() {
  timeval tv{};
  if (ares_timeout(channel_, nullptr, &tv) == nullptr) {
    timer_.cancel();
    return;
  }
  timer_.expires_after(std::chrono::seconds(tv.tv_sec) + std::chrono::microseconds(tv.tv_usec));
  timer_.async_wait([this, alive = std::weak_ptr<int>(alive_)](boost::system::error_code ec) {
    if (alive.expired() || ec) return;
    ares_process_fd(channel_, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // retries and timeouts
    update_timer();
  });
}

}  // namespace outrigger::dns
