// bench_floor: the least work a proxy can do in the bench's cases, to measure the floor under
// every proxy's CPU time per request on this machine (bench/README.md, "The floor").
//
// It is not a proxy anyone should run. It skips everything a proxy is for (header validation,
// routing, retries, timeouts, limits, logs, metrics) and keeps only what no proxy can skip: the
// same sockets, the same system calls per request, the same TCP segments, and in its modes the
// least protocol work the case needs:
//   tcp   (h1-keepalive)      copies bytes between a downstream and an upstream connection; no
//                             HTTP parsing at all. One pooled upstream connection per downstream.
//   tcp with --ca (h1-mtls)   the same over TLS to the upstream: client certificate, chain and
//                             name verified, SNI; OpenSSL's record layer, read-ahead on.
//   uring (h1-keepalive)      the tcp mode's byte copy on io_uring instead of epoll: no readiness
//                             step, every recv and send a queued operation, all of one loop turn
//                             submitted and reaped with one io_uring_enter (DEFER_TASKRUN). It
//                             shows what a proxy on io_uring could save in the kernel.
//   h2c   (h2c-h1)            HTTP/2 with prior knowledge downstream (nghttp2), HTTP/1.1
//                             upstream: forwards the method, :path and :authority; answers with
//                             the upstream's status, content-length and body. Nothing else.
// One thread, level-triggered epoll, one recv per readiness, responses to one HTTP/2 connection
// batched into one send per loop turn. Connecting upstream is blocking (it happens once per pooled
// connection, outside the measured requests).
#include <arpa/inet.h>
#include <fcntl.h>
#include <liburing.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace {

[[noreturn]] void die(const char* what, const char* detail = nullptr) {
  std::fprintf(stderr, "bench_floor: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  std::exit(2);
}

struct Options {
  std::string listen, to, mode = "tcp", ca, cert, key, sni;
};

sockaddr_in parse_addr(const std::string& s) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos) die("address must be IPV4:PORT", s.c_str());
  sockaddr_in a{};
  a.sin_family = AF_INET;
  char* end = nullptr;
  long port = std::strtol(s.c_str() + colon + 1, &end, 10);
  if (*end != '\0' || port < 1 || port > 65535) die("bad port", s.c_str());
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, s.substr(0, colon).c_str(), &a.sin_addr) != 1) die("bad IPv4 address", s.c_str());
  return a;
}

int epfd = -1;
SSL_CTX* tls_ctx = nullptr;
sockaddr_in upstream_addr{};
std::string sni;
long upstreams_opened = 0;
volatile sig_atomic_t stopping = 0;

void nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}
void nonblocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

// Everything registered with epoll. Objects closed during one batch of events are deleted after
// it, so a later event of the same batch never sees freed memory.
struct Handler {
  int fd = -1;
  bool dead = false;
  virtual ~Handler() {
    if (fd >= 0) close(fd);
  }
  virtual void on_event(uint32_t events) = 0;
};
std::vector<Handler*> graveyard;
void bury(Handler* h) {
  if (h->dead) return;
  h->dead = true;
  epoll_ctl(epfd, EPOLL_CTL_DEL, h->fd, nullptr);
  graveyard.push_back(h);
}
void watch(Handler* h, uint32_t events, int op = EPOLL_CTL_ADD) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = h;
  if (epoll_ctl(epfd, op, h->fd, &ev) != 0) die("epoll_ctl", std::strerror(errno));
}

// Sends all of it: at once in the bench (small messages, empty socket buffers); a full buffer
// waits in poll(), which a floor may do and a proxy may not.
bool send_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w > 0) {
      p += w;
      n -= static_cast<size_t>(w);
    } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
      pollfd pfd{fd, POLLOUT, 0};
      if (poll(&pfd, 1, 5000) <= 0) return false;
    } else {
      return false;
    }
  }
  return true;
}

// A blocking connect (and TLS handshake), then non-blocking.
int connect_upstream(SSL** ssl_out) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, reinterpret_cast<sockaddr*>(&upstream_addr), sizeof upstream_addr) != 0) {
    close(fd);
    return -1;
  }
  nodelay(fd);
  ++upstreams_opened;
  if (tls_ctx) {
    SSL* ssl = SSL_new(tls_ctx);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, sni.c_str());
    SSL_set1_host(ssl, sni.c_str());
    if (SSL_connect(ssl) != 1) {
      std::fprintf(stderr, "bench_floor: TLS handshake with the upstream failed\n");
      ERR_print_errors_fp(stderr);
      SSL_free(ssl);
      close(fd);
      return -1;
    }
    *ssl_out = ssl;
  }
  nonblocking(fd);
  return fd;
}

char buf[65536];

// ---- tcp mode ---------------------------------------------------------------------------------
struct Downstream;
struct Upstream : Handler {
  SSL* ssl = nullptr;
  Downstream* down = nullptr;
  bool draining = false;  // its downstream left before the answer came: drop it, then pool
  ~Upstream() override {
    if (ssl) SSL_free(ssl);
  }
  void on_event(uint32_t events) override;
  bool write(const char* p, size_t n) {
    if (!ssl) return send_all(fd, p, n);
    while (n > 0) {
      int w = SSL_write(ssl, p, static_cast<int>(n));
      if (w > 0) {
        p += w;
        n -= static_cast<size_t>(w);
        continue;
      }
      int e = SSL_get_error(ssl, w);
      if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ) return false;
      pollfd pfd{fd, static_cast<short>(e == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN), 0};
      if (poll(&pfd, 1, 5000) <= 0) return false;
    }
    return true;
  }
};
std::vector<Upstream*> idle_upstreams;

struct Downstream : Handler {
  Upstream* up = nullptr;
  bool answered = true;  // the last bytes went downstream: the upstream is between exchanges
  void on_event(uint32_t) override {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) return finish();
    answered = false;
    if (!up->write(buf, static_cast<size_t>(n))) {
      bury(up);
      up = nullptr;
      finish();
    }
  }
  // The downstream is gone: its upstream goes back to the pool, at once or after the answer on its
  // way (one read: the bench's answers are small). A load generator stops with every connection
  // busy, so without this every run would open (and handshake) all its upstreams again.
  void finish() {
    if (up) {
      up->down = nullptr;
      if (answered) idle_upstreams.push_back(up);
      else up->draining = true;
      up = nullptr;
    }
    bury(this);
  }
};

void Upstream::on_event(uint32_t) {
  size_t got = 0;
  if (ssl) {
    do {
      int r = SSL_read(ssl, buf + got, static_cast<int>(sizeof buf - got));
      if (r > 0) {
        got += static_cast<size_t>(r);
        continue;
      }
      int e = SSL_get_error(ssl, r);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
      got = 0;
      goto closed;
    } while (SSL_has_pending(ssl) && got < sizeof buf);
    if (got == 0) return;
  } else {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) goto closed;
    got = static_cast<size_t>(n);
  }
  if (draining) {
    draining = false;
    idle_upstreams.push_back(this);
    return;
  }
  if (!down) goto closed;  // an idle pooled connection has nothing to say but its close
  down->answered = true;
  if (!send_all(down->fd, buf, got)) down->finish();
  return;
closed:
  if (down) {
    down->up = nullptr;
    bury(down);
  } else {
    for (auto& u : idle_upstreams)
      if (u == this) {
        u = idle_upstreams.back();
        idle_upstreams.pop_back();
        break;
      }
  }
  bury(this);
}

Upstream* take_upstream() {
  while (!idle_upstreams.empty()) {
    Upstream* u = idle_upstreams.back();
    idle_upstreams.pop_back();
    if (!u->dead) return u;
  }
  auto* u = new Upstream;
  u->fd = connect_upstream(&u->ssl);
  if (u->fd < 0) {
    delete u;
    return nullptr;
  }
  watch(u, EPOLLIN);
  return u;
}

// ---- h2c mode ---------------------------------------------------------------------------------
struct H2Down;
struct H1Up;
struct Stream {
  int32_t id = 0;
  H2Down* conn = nullptr;
  H1Up* up = nullptr;
  std::string method, path, authority, body, status, length;
  size_t sent = 0;
};
struct H1Up : Handler {
  Stream* stream = nullptr;
  std::string in;
  void on_event(uint32_t) override;
};
std::vector<H1Up*> idle_h1;
std::vector<H2Down*> dirty;

struct H2Down : Handler {
  nghttp2_session* session = nullptr;
  std::unordered_set<Stream*> streams;
  std::string out;
  size_t out_sent = 0;
  bool is_dirty = false, want_out = false;
  ~H2Down() override {
    for (Stream* s : streams) {
      if (s->up) s->up->stream = nullptr;
      delete s;
    }
    if (session) nghttp2_session_del(session);
  }
  void mark() {
    if (!is_dirty) {
      is_dirty = true;
      dirty.push_back(this);
    }
  }
  void on_event(uint32_t events) override {
    if (events & EPOLLOUT) mark();
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0 || nghttp2_session_mem_recv(session, reinterpret_cast<uint8_t*>(buf),
                                           static_cast<size_t>(n)) < 0)
      return bury(this);
    mark();
  }
  // One send per loop turn with everything nghttp2 has for the connection.
  void flush() {
    is_dirty = false;
    if (dead) return;
    if (out_sent == out.size()) {
      out.clear();
      out_sent = 0;
      const uint8_t* p;
      ssize_t n;
      while ((n = nghttp2_session_mem_send(session, &p)) > 0) out.append(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
      if (n < 0) return bury(this);
    }
    while (out_sent < out.size()) {
      ssize_t w = send(fd, out.data() + out_sent, out.size() - out_sent, MSG_NOSIGNAL);
      if (w > 0) {
        out_sent += static_cast<size_t>(w);
      } else if (w < 0 && errno == EINTR) {
        continue;
      } else if (w < 0 && errno == EAGAIN) {
        if (!want_out) watch(this, EPOLLIN | EPOLLOUT, EPOLL_CTL_MOD);
        want_out = true;
        return;
      } else {
        return bury(this);
      }
    }
    if (want_out) watch(this, EPOLLIN, EPOLL_CTL_MOD);
    want_out = false;
    if (!nghttp2_session_want_read(session) && !nghttp2_session_want_write(session)) bury(this);
  }
};

ssize_t read_body(nghttp2_session*, int32_t, uint8_t* dst, size_t len, uint32_t* flags,
                  nghttp2_data_source* src, void*) {
  auto* s = static_cast<Stream*>(src->ptr);
  size_t n = std::min(len, s->body.size() - s->sent);
  std::memcpy(dst, s->body.data() + s->sent, n);
  s->sent += n;
  if (s->sent == s->body.size()) *flags |= NGHTTP2_DATA_FLAG_EOF;
  return static_cast<ssize_t>(n);
}

nghttp2_nv nv(std::string_view name, const std::string& value) {
  return {reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
          reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
          NGHTTP2_NV_FLAG_NO_COPY_NAME};
}

void respond(Stream* s) {
  nghttp2_nv head[] = {nv(":status", s->status), nv("content-length", s->length)};
  nghttp2_data_provider body{};
  body.source.ptr = s;
  body.read_callback = read_body;
  nghttp2_submit_response(s->conn->session, s->id, head, 2, &body);
  s->conn->mark();
}

void fail(Stream* s) {
  s->status = "502";
  s->body.clear();
  s->length = "0";
  respond(s);
}

void dispatch(Stream* s) {
  H1Up* up = nullptr;
  while (!idle_h1.empty() && !up) {
    up = idle_h1.back();
    idle_h1.pop_back();
    if (up->dead) up = nullptr;
  }
  if (!up) {
    up = new H1Up;
    up->fd = connect_upstream(nullptr);
    if (up->fd < 0) {
      delete up;
      return fail(s);
    }
    watch(up, EPOLLIN);
  }
  std::string req;
  req.reserve(64 + s->path.size() + s->authority.size());
  req.append(s->method).append(" ").append(s->path).append(" HTTP/1.1\r\nhost: ");
  req.append(s->authority).append("\r\n\r\n");
  if (!send_all(up->fd, req.data(), req.size())) {
    bury(up);
    return fail(s);
  }
  up->stream = s;
  s->up = up;
}

bool iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if ((a[i] | 0x20) != (b[i] | 0x20)) return false;
  return true;
}

void H1Up::on_event(uint32_t) {
  ssize_t n = recv(fd, buf, sizeof buf, 0);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n <= 0) {
    if (stream) {
      stream->up = nullptr;
      fail(stream);
    }
    for (auto& u : idle_h1)
      if (u == this) {
        u = idle_h1.back();
        idle_h1.pop_back();
        break;
      }
    return bury(this);
  }
  in.append(buf, static_cast<size_t>(n));
  // "HTTP/1.1 200 ...", then headers; the body's length from content-length (the backend's).
  size_t end = in.find("\r\n\r\n");
  if (end == std::string::npos) return;
  std::string_view head(in.data(), end + 2);
  size_t length = 0;
  std::string_view length_text = "0";
  for (size_t line = head.find("\r\n") + 2; line < head.size();) {
    size_t eol = head.find("\r\n", line);
    std::string_view field = head.substr(line, eol - line);
    size_t colon = field.find(':');
    if (colon != std::string_view::npos && iequal(field.substr(0, colon), "content-length")) {
      length_text = field.substr(colon + 1);
      while (!length_text.empty() && length_text.front() == ' ') length_text.remove_prefix(1);
      length = std::strtoul(std::string(length_text).c_str(), nullptr, 10);
    }
    line = eol + 2;
  }
  if (in.size() < end + 4 + length) return;
  if (Stream* s = stream) {
    s->status.assign(in, 9, 3);
    s->length.assign(length_text);
    s->body.assign(in, end + 4, length);
    s->up = nullptr;
    respond(s);
  }
  stream = nullptr;
  in.clear();
  idle_h1.push_back(this);
}

int on_begin_headers(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  auto* s = new Stream;
  s->id = frame->hd.stream_id;
  s->conn = static_cast<H2Down*>(user);
  s->conn->streams.insert(s);
  nghttp2_session_set_stream_user_data(session, s->id, s);
  return 0;
}

int on_header(nghttp2_session* session, const nghttp2_frame* frame, const uint8_t* name,
              size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void*) {
  auto* s = static_cast<Stream*>(nghttp2_session_get_stream_user_data(session, frame->hd.stream_id));
  if (!s) return 0;
  std::string_view n(reinterpret_cast<const char*>(name), namelen);
  std::string_view v(reinterpret_cast<const char*>(value), valuelen);
  if (n == ":method") s->method = v;
  else if (n == ":path") s->path = v;
  else if (n == ":authority") s->authority = v;
  return 0;
}

int on_frame_recv(nghttp2_session* session, const nghttp2_frame* frame, void*) {
  if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
      (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
    if (auto* s = static_cast<Stream*>(nghttp2_session_get_stream_user_data(session, frame->hd.stream_id)))
      dispatch(s);
  }
  return 0;
}

int on_stream_close(nghttp2_session* session, int32_t id, uint32_t, void* user) {
  auto* s = static_cast<Stream*>(nghttp2_session_get_stream_user_data(session, id));
  if (!s) return 0;
  if (s->up) s->up->stream = nullptr;  // its answer is read and dropped
  static_cast<H2Down*>(user)->streams.erase(s);
  delete s;
  return 0;
}

nghttp2_session_callbacks* h2_callbacks() {
  nghttp2_session_callbacks* cb;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
  return cb;
}

// ---- uring mode -------------------------------------------------------------------------------
// A pair is one downstream and one upstream connection, each with a recv always queued into its
// own buffer; a completed recv queues the send to the other side, a completed send queues the
// next recv. One io_uring_enter per loop turn submits everything queued and waits for more.
io_uring ring;
struct Pair;
enum Op : uintptr_t { kAccept = 0, kRecvDown = 1, kRecvUp = 2, kSendUp = 3, kSendDown = 4 };
struct Side {
  int fd = -1;
  char buf[16384];
  size_t len = 0, off = 0;  // what a send still has to write from buf
};
struct Pair {
  Side down, up;
  int pending = 0;  // operations in the ring; the pair is freed when the last one completes
  bool closing = false;
};
io_uring_sqe* sqe() {
  io_uring_sqe* e = io_uring_get_sqe(&ring);
  if (!e) {
    io_uring_submit(&ring);
    e = io_uring_get_sqe(&ring);
  }
  if (!e) die("io_uring: no submission entry");
  return e;
}
void queue(Pair* p, Op op) {
  io_uring_sqe* e = sqe();
  Side& s = (op == kRecvDown || op == kSendDown) ? p->down : p->up;
  if (op == kRecvDown || op == kRecvUp) io_uring_prep_recv(e, s.fd, s.buf, sizeof s.buf, 0);
  else {
    // a send writes what the other side's recv brought
    Side& from = op == kSendUp ? p->down : p->up;
    io_uring_prep_send(e, s.fd, from.buf + from.off, from.len - from.off, MSG_NOSIGNAL);
  }
  io_uring_sqe_set_data64(e, reinterpret_cast<uintptr_t>(p) | op);
  ++p->pending;
}
void close_pair(Pair* p) {
  if (!p->closing) {
    p->closing = true;
    // Wakes the queued recvs (they complete with 0 or an error).
    shutdown(p->down.fd, SHUT_RDWR);
    shutdown(p->up.fd, SHUT_RDWR);
  }
  if (p->pending == 0) {
    close(p->down.fd);
    close(p->up.fd);
    delete p;
  }
}
void queue_accept(int listener) {
  io_uring_sqe* e = sqe();
  io_uring_prep_multishot_accept(e, listener, nullptr, nullptr, SOCK_CLOEXEC);
  io_uring_sqe_set_data64(e, kAccept);
}
void run_uring(int listener) {
  io_uring_params params{};
  params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  if (int e = io_uring_queue_init_params(4096, &ring, &params); e < 0) die("io_uring_queue_init", std::strerror(-e));
  queue_accept(listener);
  while (!stopping) {
    int r = io_uring_submit_and_wait(&ring, 1);
    if (r < 0 && r != -EINTR) die("io_uring_submit_and_wait", std::strerror(-r));
    unsigned head, seen = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring, head, cqe) {
      ++seen;
      uintptr_t data = io_uring_cqe_get_data64(cqe);
      auto op = static_cast<Op>(data & 7);
      int res = cqe->res;
      if (op == kAccept) {
        if (!(cqe->flags & IORING_CQE_F_MORE)) queue_accept(listener);
        if (res < 0) continue;
        nodelay(res);
        auto* p = new Pair;
        p->down.fd = res;
        p->up.fd = connect_upstream(nullptr);
        if (p->up.fd < 0) {
          close(res);
          delete p;
          continue;
        }
        queue(p, kRecvDown);
        queue(p, kRecvUp);
        continue;
      }
      auto* p = reinterpret_cast<Pair*>(data & ~uintptr_t{7});
      --p->pending;
      if (p->closing || res <= 0) {
        close_pair(p);
        continue;
      }
      Side& s = (op == kRecvDown || op == kSendDown) ? p->down : p->up;
      switch (op) {
        case kRecvDown:
        case kRecvUp:
          s.len = static_cast<size_t>(res);
          s.off = 0;
          queue(p, op == kRecvDown ? kSendUp : kSendDown);
          break;
        case kSendUp:
        case kSendDown: {
          Side& from = op == kSendUp ? p->down : p->up;
          from.off += static_cast<size_t>(res);
          queue(p, from.off < from.len ? op : (op == kSendUp ? kRecvDown : kRecvUp));
          break;
        }
        default:
          break;
      }
    }
    io_uring_cq_advance(&ring, seen);
  }
}

// ---- listener and loop ------------------------------------------------------------------------
struct Listener : Handler {
  bool h2c = false;
  nghttp2_session_callbacks* callbacks = nullptr;
  void on_event(uint32_t) override {
    for (;;) {
      int fd = accept4(this->fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;
      nodelay(fd);
      if (h2c) {
        auto* d = new H2Down;
        d->fd = fd;
        nghttp2_session_server_new(&d->session, callbacks, d);
        nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 1000}};
        nghttp2_submit_settings(d->session, NGHTTP2_FLAG_NONE, iv, 1);
        watch(d, EPOLLIN);
        d->mark();
        continue;
      }
      Upstream* up = take_upstream();
      if (!up) {
        close(fd);
        continue;
      }
      auto* d = new Downstream;
      d->fd = fd;
      d->up = up;
      up->down = d;
      watch(d, EPOLLIN);
    }
  }
};

void usage() {
  std::fprintf(stderr,
               "usage: bench_floor --listen IPV4:PORT --to IPV4:PORT [--mode tcp|uring|h2c]\n"
               "                   [--ca BUNDLE --cert PEM --key PEM --sni NAME]  (tcp: TLS upstream)\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "-h" || a == "--help") usage();
    if (i + 1 >= argc) die("missing value after", argv[i]);
    std::string v = argv[++i];
    if (a == "--listen") o.listen = v;
    else if (a == "--to") o.to = v;
    else if (a == "--mode") o.mode = v;
    else if (a == "--ca") o.ca = v;
    else if (a == "--cert") o.cert = v;
    else if (a == "--key") o.key = v;
    else if (a == "--sni") o.sni = v;
    else die("unknown option", argv[i - 1]);
  }
  if (o.listen.empty() || o.to.empty()) usage();
  if (o.mode != "tcp" && o.mode != "uring" && o.mode != "h2c")
    die("--mode must be tcp, uring or h2c", o.mode.c_str());
  if (!o.ca.empty()) {
    if (o.mode != "tcp" || o.sni.empty()) die("--ca needs --mode tcp and --sni");
    tls_ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(tls_ctx, TLS1_3_VERSION);
    if (SSL_CTX_load_verify_locations(tls_ctx, o.ca.c_str(), nullptr) != 1) die("cannot load --ca", o.ca.c_str());
    SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_PEER, nullptr);
    if (!o.cert.empty() && (SSL_CTX_use_certificate_chain_file(tls_ctx, o.cert.c_str()) != 1 ||
                            SSL_CTX_use_PrivateKey_file(tls_ctx, o.key.c_str(), SSL_FILETYPE_PEM) != 1))
      die("cannot load --cert/--key", o.cert.c_str());
    SSL_CTX_set_read_ahead(tls_ctx, 1);
    sni = o.sni;
  }
  signal(SIGPIPE, SIG_IGN);
  struct sigaction stop{};
  stop.sa_handler = [](int) { stopping = 1; };
  sigaction(SIGTERM, &stop, nullptr);
  sigaction(SIGINT, &stop, nullptr);
  upstream_addr = parse_addr(o.to);
  sockaddr_in la = parse_addr(o.listen);
  epfd = epoll_create1(EPOLL_CLOEXEC);
  auto* l = new Listener;
  l->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(l->fd, reinterpret_cast<sockaddr*>(&la), sizeof la) != 0 || listen(l->fd, 4096) != 0)
    die("cannot listen", std::strerror(errno));
  std::fprintf(stderr, "bench_floor: %s on %s to %s%s\n", o.mode.c_str(), o.listen.c_str(),
               o.to.c_str(), tls_ctx ? " (TLS)" : "");
  if (o.mode == "uring") {
    run_uring(l->fd);
    std::fprintf(stderr, "bench_floor: stopped; %ld upstream connection(s) opened\n", upstreams_opened);
    _exit(0);
  }
  l->h2c = o.mode == "h2c";
  if (l->h2c) l->callbacks = h2_callbacks();
  watch(l, EPOLLIN);

  epoll_event events[256];
  while (!stopping) {
    int n = epoll_wait(epfd, events, 256, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait", std::strerror(errno));
    }
    for (int i = 0; i < n; ++i) {
      auto* h = static_cast<Handler*>(events[i].data.ptr);
      if (!h->dead) h->on_event(events[i].events);
    }
    for (size_t i = 0; i < dirty.size(); ++i) dirty[i]->flush();
    dirty.clear();
    for (Handler* h : graveyard) delete h;
    graveyard.clear();
  }
  // How many upstream connections (and TLS handshakes) the pool needed: a handful per run.
  std::fprintf(stderr, "bench_floor: stopped; %ld upstream connection(s) opened\n", upstreams_opened);
  // The connections still open are not freed one by one: the process ends here (and under
  // LeakSanitizer, _exit skips a report of them).
  _exit(0);
}
