// HTTP/2 codec tests: our ServerSession against a real nghttp2 client session and our
// ClientSession against a real nghttp2 server session, bytes pumped between them in memory;
// hand-built frames for the abuse limits; the translation and gRPC helpers.
#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "proxy/h2/allocator.h"
#include "proxy/h2/fields.h"
#include "proxy/h2/grpc.h"
#include "proxy/h2/session.h"
#include "proxy/h2/translate.h"
#include "proxy/http/h1.h"

namespace outrigger::h2 {
namespace {

using Pairs = std::vector<std::pair<std::string, std::string>>;

std::span<const uint8_t> bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

Pairs to_pairs(std::span<const Field> fs) {
  Pairs p;
  for (const Field& f : fs) p.emplace_back(std::string(f.name), std::string(f.value));
  return p;
}

std::string find(const Pairs& p, std::string_view name) {
  for (const auto& [n, v] : p) {
    if (n == name) return v;
  }
  return "<none>";
}

// ---------------------------------------------------------------------------------------------
// A real nghttp2 session as the other side.

struct PeerStream {
  Pairs head, trailers;
  std::string body;
  bool ended = false, closed = false;
  uint32_t close_code = 0;
  // what this side sends
  std::string send;
  size_t sent = 0;
  bool send_trailers = false;
};

class Peer {
 public:
  // server: act as an nghttp2 server (for ClientSession tests); else a client.
  explicit Peer(bool server, std::vector<nghttp2_settings_entry> settings = {},
                bool manual_window = false, bool pad = false) {
    nghttp2_session_callbacks* cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
    if (pad) nghttp2_session_callbacks_set_select_padding_callback(cb, pad_cb);
    nghttp2_option* opt;
    nghttp2_option_new(&opt);
    if (manual_window) nghttp2_option_set_no_auto_window_update(opt, 1);
    if (server) {
      nghttp2_session_server_new2(&ng, cb, this, opt);
    } else {
      nghttp2_session_client_new2(&ng, cb, this, opt);
    }
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    nghttp2_submit_settings(ng, NGHTTP2_FLAG_NONE, settings.data(), settings.size());
  }
  ~Peer() { nghttp2_session_del(ng); }

  int32_t request(const Pairs& fields, std::string body = "", bool has_body = false,
                  bool trailers = false) {
    auto nv = make_nv(fields);
    nghttp2_data_provider prd{};
    prd.read_callback = read_cb;
    const bool with_body = has_body || !body.empty();
    const int32_t id = nghttp2_submit_request(ng, nullptr, nv.data(), nv.size(),
                                              with_body ? &prd : nullptr, nullptr);
    if (id > 0) {
      streams[id].send = std::move(body);
      streams[id].send_trailers = trailers;
    }
    return id;
  }
  void respond(int32_t id, const Pairs& fields, std::string body, bool trailers) {
    auto nv = make_nv(fields);
    nghttp2_data_provider prd{};
    prd.read_callback = read_cb;
    streams[id].send = std::move(body);
    streams[id].send_trailers = trailers;
    const bool with_body = !streams[id].send.empty() || trailers;
    nghttp2_submit_response(ng, id, nv.data(), nv.size(), with_body ? &prd : nullptr);
  }

  std::string take_output() {
    std::string out;
    for (int i = 0; i < 100000; ++i) {
      const uint8_t* p;
      const ssize_t n = nghttp2_session_mem_send(ng, &p);
      if (n <= 0) break;
      out.append(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
    }
    return out;
  }
  void feed(std::span<const uint8_t> in) {
    const ssize_t rv = nghttp2_session_mem_recv(ng, in.data(), in.size());
    if (rv < 0) recv_error = static_cast<int>(rv);
  }

  nghttp2_session* ng = nullptr;
  std::map<int32_t, PeerStream> streams;
  int goaways = 0;
  int32_t goaway_last = -1;
  uint32_t goaway_code = 0;
  int recv_error = 0;
  int rst_received = 0;
  uint32_t last_rst_code = 0;
  // Server role: answer each complete request with this (body = prefix + request body).
  bool auto_respond = false;
  std::string respond_prefix = "echo:";
  size_t max_chunk = SIZE_MAX;  // DATA payload per frame (below 16384 leaves room for padding)

 private:
  static std::vector<nghttp2_nv> make_nv(const Pairs& fields) {
    std::vector<nghttp2_nv> nv;
    for (const auto& [n, v] : fields) {
      nv.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(n.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(v.data())), n.size(), v.size(),
                    NGHTTP2_NV_FLAG_NONE});
    }
    return nv;
  }
  static Peer& P(void* ud) { return *static_cast<Peer*>(ud); }
  static ssize_t pad_cb(nghttp2_session*, const nghttp2_frame* f, size_t max_payload, void*) {
    return static_cast<ssize_t>(std::min(max_payload, f->hd.length + 255));
  }
  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* f, void* ud) {
    P(ud).streams[f->hd.stream_id];
    return 0;
  }
  static int on_header(nghttp2_session*, const nghttp2_frame* f, const uint8_t* n, size_t nl,
                       const uint8_t* v, size_t vl, uint8_t, void* ud) {
    PeerStream& s = P(ud).streams[f->hd.stream_id];
    const bool trailer = !s.head.empty() && f->headers.cat == NGHTTP2_HCAT_HEADERS &&
                         find(s.head, ":status") != "100";
    (trailer ? s.trailers : s.head)
        .emplace_back(std::string(reinterpret_cast<const char*>(n), nl),
                      std::string(reinterpret_cast<const char*>(v), vl));
    return 0;
  }
  static int on_frame_recv(nghttp2_session* ng, const nghttp2_frame* f, void* ud) {
    Peer& p = P(ud);
    if (f->hd.type == NGHTTP2_GOAWAY) {
      ++p.goaways;
      p.goaway_last = f->goaway.last_stream_id;
      p.goaway_code = f->goaway.error_code;
    }
    if (f->hd.type == NGHTTP2_RST_STREAM) {
      ++p.rst_received;
      p.last_rst_code = f->rst_stream.error_code;
    }
    if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
      PeerStream& s = p.streams[f->hd.stream_id];
      s.ended = true;
      if (p.auto_respond && nghttp2_session_check_server_session(ng)) {
        p.respond(f->hd.stream_id, {{":status", "200"}, {"x-peer", "yes"}},
                  p.respond_prefix + s.body, true);
      }
    }
    return 0;
  }
  static int on_data(nghttp2_session*, uint8_t, int32_t id, const uint8_t* d, size_t n, void* ud) {
    P(ud).streams[id].body.append(reinterpret_cast<const char*>(d), n);
    return 0;
  }
  static int on_close(nghttp2_session*, int32_t id, uint32_t code, void* ud) {
    PeerStream& s = P(ud).streams[id];
    s.closed = true;
    s.close_code = code;
    return 0;
  }
  static ssize_t read_cb(nghttp2_session* ng, int32_t id, uint8_t* buf, size_t len, uint32_t* flags,
                         nghttp2_data_source*, void* ud) {
    PeerStream& s = P(ud).streams[id];
    const size_t n = std::min({len, s.send.size() - s.sent, P(ud).max_chunk});
    std::memcpy(buf, s.send.data() + s.sent, n);
    s.sent += n;
    if (s.sent == s.send.size()) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      if (s.send_trailers) {
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        static const std::string tn = "x-trailer", tv = "done";
        nghttp2_nv nv{reinterpret_cast<uint8_t*>(const_cast<char*>(tn.data())),
                      reinterpret_cast<uint8_t*>(const_cast<char*>(tv.data())), tn.size(),
                      tv.size(), NGHTTP2_NV_FLAG_NONE};
        nghttp2_submit_trailer(ng, id, &nv, 1);
      }
    }
    return static_cast<ssize_t>(n);
  }
};

// ---------------------------------------------------------------------------------------------
// Our side's event recorder (server and client).

struct RecStream {
  std::string method, scheme, authority, path;
  int status = 0;
  Pairs headers, trailers;
  std::string body;
  int64_t content_length = -1;
  bool head_end_stream = false, ended = false, closed = false;
  CloseInfo close;
  // body we send
  std::string send;
  size_t sent = 0;
  bool send_done = false;       // no more body will be appended
  bool trailers_later = false;  // end with kEndBeforeTrailers
  int informational = 0;
};

class Rec : public ServerEvents, public ClientEvents {
 public:
  void on_request(int32_t id, const Request& r) override {
    RecStream& s = st[id];
    s.method = r.method;
    s.scheme = r.scheme;
    s.authority = r.authority;
    s.path = r.path;
    s.headers = to_pairs(r.headers);
    s.content_length = r.content_length;
    s.head_end_stream = r.end_stream;
    ++requests;
    if (take_blocks) {
      Kept& k = kept[id];
      session->swap_header_block(&k.block);
      k.request = r;  // its views now point into k.block
    }
    if (respond_inline) {
      auto* ss = static_cast<ServerSession*>(session);
      s.send = "inline";
      s.send_done = true;
      EXPECT_TRUE(ss->submit_response(id, 200, {}, true).has_value());
    }
  }
  void on_response(int32_t id, const Response& r) override {
    RecStream& s = st[id];
    s.status = r.status;
    if (take_blocks) {
      Kept& k = kept[id];
      session->swap_header_block(&k.block);
      k.response = r;
    }
    s.headers = to_pairs(r.headers);
    s.content_length = r.content_length;
    s.head_end_stream = r.end_stream;
  }
  void on_informational(int32_t id, const Response&) override { ++st[id].informational; }
  void on_data(int32_t id, std::span<const uint8_t> d) override {
    st[id].body.append(reinterpret_cast<const char*>(d.data()), d.size());
    if (auto_consume) session->consume(id, d.size());
  }
  void on_trailers(int32_t id, std::span<const Field> t) override { st[id].trailers = to_pairs(t); }
  void on_end_stream(int32_t id) override { st[id].ended = true; }
  void on_stream_close(int32_t id, const CloseInfo& info) override {
    st[id].closed = true;
    st[id].close = info;
    ++closes;
  }
  BodyRead on_body_read(int32_t id, std::span<uint8_t> out) override {
    RecStream& s = st[id];
    ++body_reads;
    const size_t n = std::min(out.size(), s.send.size() - s.sent);
    std::memcpy(out.data(), s.send.data() + s.sent, n);
    s.sent += n;
    if (s.sent == s.send.size() && s.send_done) {
      return {n, s.trailers_later ? BodyRead::Status::kEndBeforeTrailers : BodyRead::Status::kEnd};
    }
    if (n == 0) return {0, BodyRead::Status::kDeferred};
    return {n, BodyRead::Status::kData};
  }
  void on_goaway(int32_t last, uint32_t code) override {
    goaway_last = last;
    goaway_code = code;
    ++goaways;
  }

  Session* session = nullptr;
  std::map<int32_t, RecStream> st;
  // Server side: requests told to the proxy and not closed yet (what open_streams() counts).
  size_t live_requests() const {
    size_t n = 0;
    for (const auto& [id, x] : st) n += !x.method.empty() && !x.closed ? 1 : 0;
    return n;
  }
  // take_blocks: each head's header block is taken with swap_header_block (no copy).
  struct Kept {
    FieldList block;
    Request request;
    Response response;
  };
  bool take_blocks = false;
  std::map<int32_t, Kept> kept;
  bool auto_consume = true;
  bool respond_inline = false;
  int requests = 0, closes = 0, goaways = 0, body_reads = 0;
  int32_t goaway_last = -1;
  uint32_t goaway_code = 0;
};

size_t g_peer_bytes = 0;  // bytes the peer wrote, over all pumps

// Moves bytes both ways until neither side has anything to write.
void pump(Session& s, Peer& p) {
  for (int i = 0; i < 10000; ++i) {
    bool moved = false;
    auto out = s.pending_output();
    if (!out.empty()) {
      p.feed(out);
      s.consume_output(out.size());
      moved = true;
    }
    const std::string in = p.take_output();
    if (!in.empty()) {
      g_peer_bytes += in.size();
      (void)s.feed(bytes(in));
      moved = true;
    }
    if (!moved) return;
  }
  ADD_FAILURE() << "pump did not settle";
}

std::unique_ptr<ServerSession> make_server(Rec& rec, const Limits& limits = {}) {
  auto s = ServerSession::create(&rec, limits);
  EXPECT_TRUE(s.has_value()) << (s ? "" : s.error());
  rec.session = s->get();
  return std::move(*s);
}

std::unique_ptr<ClientSession> make_client(Rec& rec, const Limits& limits = {}) {
  auto s = ClientSession::create(&rec, limits);
  EXPECT_TRUE(s.has_value()) << (s ? "" : s.error());
  rec.session = s->get();
  return std::move(*s);
}

const Pairs kGet = {{":method", "GET"},  {":scheme", "https"}, {":authority", "example.com"},
                    {":path", "/a?b=1"}, {"user-agent", "t"},  {"cookie", "a=1"},
                    {"cookie", "b=2"}};

Pairs post(std::string path = "/up") {
  return {{":method", "POST"}, {":scheme", "http"}, {":authority", "svc"}, {":path", path}};
}

// ---------------------------------------------------------------------------------------------
// Hand-built frames.

struct Frame {
  uint8_t type = 0, flags = 0;
  int32_t stream = 0;
  std::string payload;
};

std::string frame(uint8_t type, uint8_t flags, int32_t stream, std::string_view payload) {
  std::string f;
  const auto len = static_cast<uint32_t>(payload.size());
  f += static_cast<char>(len >> 16);
  f += static_cast<char>(len >> 8);
  f += static_cast<char>(len);
  f += static_cast<char>(type);
  f += static_cast<char>(flags);
  f += static_cast<char>((stream >> 24) & 0x7f);
  f += static_cast<char>(stream >> 16);
  f += static_cast<char>(stream >> 8);
  f += static_cast<char>(stream);
  f += payload;
  return f;
}

std::string u32(uint32_t v) {
  std::string s(4, '\0');
  s[0] = static_cast<char>(v >> 24);
  s[1] = static_cast<char>(v >> 16);
  s[2] = static_cast<char>(v >> 8);
  s[3] = static_cast<char>(v);
  return s;
}

std::vector<Frame> parse_frames(std::string_view b) {
  std::vector<Frame> out;
  while (b.size() >= 9) {
    const auto* p = reinterpret_cast<const uint8_t*>(b.data());
    const size_t len = (size_t{p[0]} << 16) | (size_t{p[1]} << 8) | p[2];
    if (b.size() < 9 + len) break;
    Frame f;
    f.type = p[3];
    f.flags = p[4];
    f.stream = static_cast<int32_t>(((p[5] & 0x7fu) << 24) | (p[6] << 16) | (p[7] << 8) | p[8]);
    f.payload = std::string(b.substr(9, len));
    out.push_back(std::move(f));
    b.remove_prefix(9 + len);
  }
  return out;
}

uint32_t payload_u32(const Frame& f, size_t at) {
  const auto* p = reinterpret_cast<const uint8_t*>(f.payload.data() + at);
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

// An HPACK encoder of our own peers' header blocks.
class Hpack {
 public:
  Hpack() { nghttp2_hd_deflate_new(&deflater_, 4096); }
  ~Hpack() { nghttp2_hd_deflate_del(deflater_); }
  Hpack(const Hpack&) = delete;
  Hpack& operator=(const Hpack&) = delete;

  std::string block(const Pairs& fields) {
    std::vector<nghttp2_nv> nv;
    for (const auto& [n, v] : fields) {
      nv.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(n.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(v.data())), n.size(), v.size(),
                    NGHTTP2_NV_FLAG_NONE});
    }
    std::string out(nghttp2_hd_deflate_bound(deflater_, nv.data(), nv.size()), '\0');
    const ssize_t n = nghttp2_hd_deflate_hd(deflater_, reinterpret_cast<uint8_t*>(out.data()),
                                            out.size(), nv.data(), nv.size());
    out.resize(n > 0 ? static_cast<size_t>(n) : 0);
    return out;
  }

 private:
  nghttp2_hd_deflater* deflater_ = nullptr;
};

// Everything a session has to write, as frames.
std::vector<Frame> drain_frames(Session& s) {
  std::string all;
  for (int i = 0; i < 1000; ++i) {
    auto out = s.pending_output();
    if (out.empty()) break;
    all.append(reinterpret_cast<const char*>(out.data()), out.size());
    s.consume_output(out.size());
  }
  return parse_frames(all);
}

// A raw client: the preface, an HPACK encoder, and the server's frames as they come.
class Raw {
 public:
  explicit Raw(ServerSession& s, bool ack_settings = true) : s_(s) {
    send(std::string(NGHTTP2_CLIENT_MAGIC) + frame(NGHTTP2_SETTINGS, 0, 0, ""));
    drain();
    if (ack_settings) send(frame(NGHTTP2_SETTINGS, NGHTTP2_FLAG_ACK, 0, ""));
  }

  std::string block(const Pairs& fields) { return hpack_.block(fields); }
  std::string headers(int32_t id, const Pairs& fields, bool end_stream) {
    return frame(NGHTTP2_HEADERS,
                 NGHTTP2_FLAG_END_HEADERS | (end_stream ? NGHTTP2_FLAG_END_STREAM : 0), id,
                 block(fields));
  }
  bool send(const std::string& b) { return s_.feed(bytes(b)).has_value(); }
  std::vector<Frame> drain() { return drain_frames(s_); }

  // The fields of a HEADERS frame from the server (END_HEADERS, no padding or priority: what
  // the session sends), decoded in order, so that the decoder's table follows the server's.
  Pairs decode(const Frame& f) {
    Pairs out;
    auto* in = reinterpret_cast<uint8_t*>(const_cast<char*>(f.payload.data()));
    size_t left = f.payload.size();
    for (int guard = 0; guard < 1000; ++guard) {
      nghttp2_nv nv;
      int flags = 0;
      const ssize_t n = nghttp2_hd_inflate_hd2(inflater_.get(), &nv, &flags, in, left, 1);
      if (n < 0) break;
      in += n;
      left -= static_cast<size_t>(n);
      if (flags & NGHTTP2_HD_INFLATE_EMIT) {
        out.emplace_back(std::string(reinterpret_cast<char*>(nv.name), nv.namelen),
                         std::string(reinterpret_cast<char*>(nv.value), nv.valuelen));
      }
      if (flags & NGHTTP2_HD_INFLATE_FINAL) {
        nghttp2_hd_inflate_end_headers(inflater_.get());
        break;
      }
    }
    return out;
  }

 private:
  static nghttp2_hd_inflater* new_inflater() {
    nghttp2_hd_inflater* i = nullptr;
    nghttp2_hd_inflate_new(&i);
    return i;
  }
  ServerSession& s_;
  Hpack hpack_;
  std::unique_ptr<nghttp2_hd_inflater, decltype(&nghttp2_hd_inflate_del)> inflater_{
      new_inflater(), &nghttp2_hd_inflate_del};
};

const Frame* find_frame(const std::vector<Frame>& fs, uint8_t type, int32_t stream = -1) {
  for (const Frame& f : fs) {
    if (f.type == type && (stream < 0 || f.stream == stream)) return &f;
  }
  return nullptr;
}

Pairs simple_get(int32_t) {
  return {{":method", "GET"}, {":scheme", "http"}, {":authority", "h"}, {":path", "/"}};
}

// ---------------------------------------------------------------------------------------------
// ServerSession

TEST(H2Server, GetWithResponseBodyAndTrailers) {
  Rec rec;
  auto s = make_server(rec);
  Peer client(false);
  const int32_t id = client.request(kGet);
  pump(*s, client);
  ASSERT_EQ(rec.requests, 1);
  RecStream& r = rec.st[id];
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.scheme, "https");
  EXPECT_EQ(r.authority, "example.com");
  EXPECT_EQ(r.path, "/a?b=1");
  EXPECT_EQ(find(r.headers, "user-agent"), "t");
  EXPECT_TRUE(r.head_end_stream);
  EXPECT_TRUE(r.ended);

  r.send = "hello world";
  r.send_done = true;
  const Field extra[] = {{"content-type", "text/plain"}, {"connection", "close"}};
  ASSERT_TRUE(s->submit_response(id, 200, extra, true).has_value());
  const Field tr[] = {{"x-checksum", "abc"}};
  ASSERT_TRUE(s->submit_trailers(id, tr).has_value());
  pump(*s, client);
  PeerStream& p = client.streams[id];
  EXPECT_EQ(find(p.head, ":status"), "200");
  EXPECT_EQ(find(p.head, "content-type"), "text/plain");
  EXPECT_EQ(find(p.head, "connection"), "<none>");  // connection-specific fields never sent
  EXPECT_EQ(p.body, "hello world");
  EXPECT_EQ(find(p.trailers, "x-checksum"), "abc");
  EXPECT_TRUE(p.closed);
  EXPECT_EQ(p.close_code, 0u);
  EXPECT_TRUE(r.closed);
  EXPECT_EQ(r.close.error_code, kNoError);
  EXPECT_FALSE(r.close.reset_by_peer);
  EXPECT_EQ(s->open_streams(), 0u);
  EXPECT_EQ(s->counters().streams_opened, 1u);
}

// nghttp2 packs a head after submit returns (when the output is pulled) and reads the bytes in
// place (no-copy flags): they must be the session's own copy, not the caller's, with names
// lower-cased. The caller's buffer is scribbled over before anything is sent. A head past the
// in-place size (16 KiB) is copied by nghttp2 as before.
TEST(H2Server, SubmittedHeadIsCopiedAndLowerCased) {
  Rec rec;
  auto s = make_server(rec);
  Peer client(false);
  const int32_t a = client.request(kGet);
  const int32_t b = client.request(kGet);
  pump(*s, client);
  ASSERT_EQ(rec.requests, 2);
  std::string names = "Content-Type|X-Mixed-CASE|Set-Cookie";
  std::string values = "text/plain|Value With Upper|a=B";
  const std::string big(20000, 'v');
  {
    const Field f[] = {{std::string_view(names).substr(0, 12), std::string_view(values).substr(0, 10)},
                       {std::string_view(names).substr(13, 12), std::string_view(values).substr(11, 16)},
                       {std::string_view(names).substr(26), std::string_view(values).substr(28)}};
    ASSERT_TRUE(s->submit_response(a, 200, f, false).has_value());
    const Field g[] = {{"X-Big", big}, {"X-Small", "s"}};
    ASSERT_TRUE(s->submit_response(b, 404, g, false).has_value());
  }
  std::fill(names.begin(), names.end(), '#');
  std::fill(values.begin(), values.end(), '#');
  pump(*s, client);
  const PeerStream& pa = client.streams[a];
  EXPECT_EQ(find(pa.head, ":status"), "200");
  EXPECT_EQ(find(pa.head, "content-type"), "text/plain");
  EXPECT_EQ(find(pa.head, "x-mixed-case"), "Value With Upper");
  EXPECT_EQ(find(pa.head, "set-cookie"), "a=B");
  EXPECT_TRUE(pa.closed);
  const PeerStream& pb = client.streams[b];
  EXPECT_EQ(find(pb.head, ":status"), "404");
  EXPECT_EQ(find(pb.head, "x-big"), big);
  EXPECT_EQ(find(pb.head, "x-small"), "s");
  EXPECT_TRUE(pb.closed);
}

// Request ids go out never-indexed (RFC 7541 6.2.3), but the session's first head indexes one, so
// later ones name the field by its dynamic-table index instead of a literal name.
TEST(H2Server, RequestIdsNeverIndexedButNamedByIndex) {
  Rec rec;
  auto s = make_server(rec);
  Raw raw(*s);
  const std::string ids[] = {"0f6e1c2a-0000-4000-8000-000000000001",
                             "0f6e1c2a-0000-4000-8000-000000000002",
                             "0f6e1c2a-0000-4000-8000-000000000003"};
  nghttp2_hd_inflater* inflater = nullptr;
  ASSERT_EQ(nghttp2_hd_inflate_new(&inflater), 0);
  std::vector<size_t> sizes;
  for (int i = 0; i < 3; ++i) {
    const int32_t id = 1 + 2 * i;
    ASSERT_TRUE(raw.send(raw.headers(id, simple_get(id), true)));
    const Field f[] = {{"x-request-id", ids[i]}};
    ASSERT_TRUE(s->submit_response(id, 200, f, false).has_value());
    const std::vector<Frame> fs = raw.drain();
    const Frame* h = find_frame(fs, NGHTTP2_HEADERS, id);
    ASSERT_NE(h, nullptr);
    sizes.push_back(h->payload.size());
    // Decode the block as the peer does: the value, and whether it came never-indexed.
    std::string value;
    uint8_t flags = 0;
    const auto* in = reinterpret_cast<const uint8_t*>(h->payload.data());
    size_t left = h->payload.size();
    for (int guard = 0; guard < 16; ++guard) {
      nghttp2_nv nv;
      int out_flags = 0;
      const ssize_t n = nghttp2_hd_inflate_hd2(inflater, &nv, &out_flags, in, left, 1);
      ASSERT_GE(n, 0);
      in += n;
      left -= static_cast<size_t>(n);
      if (out_flags & NGHTTP2_HD_INFLATE_EMIT) {
        if (std::string_view(reinterpret_cast<char*>(nv.name), nv.namelen) == "x-request-id") {
          value.assign(reinterpret_cast<char*>(nv.value), nv.valuelen);
          flags = nv.flags;
        }
      }
      if (out_flags & NGHTTP2_HD_INFLATE_FINAL) {
        nghttp2_hd_inflate_end_headers(inflater);
        break;
      }
    }
    EXPECT_EQ(value, ids[i]);
    EXPECT_EQ((flags & NGHTTP2_NV_FLAG_NO_INDEX) != 0, i > 0) << "head " << i;
  }
  nghttp2_hd_inflate_del(inflater);
  // The literal name "x-request-id" takes 10 bytes Huffman-coded; an index above 15 takes 2.
  EXPECT_LE(sizes[1] + 7, sizes[0]);
  EXPECT_EQ(sizes[2], sizes[1]);
}

// A head's fields taken from the session without a copy stay as they were while the session
// decodes later heads into the buffer it got in exchange.
TEST(H2Server, HeaderBlockTakenWithoutCopy) {
  Rec rec;
  rec.take_blocks = true;
  auto s = make_server(rec);
  Peer client(false);
  std::vector<int32_t> ids;
  for (int i = 0; i < 4; ++i) {
    Pairs rq = kGet;
    rq[3].second = "/p" + std::to_string(i);
    rq.emplace_back("x-i",
                    std::string(static_cast<size_t>(10 + 300 * i), static_cast<char>('a' + i)));
    ids.push_back(client.request(rq));
  }
  pump(*s, client);  // all four blocks decoded before any check
  ASSERT_EQ(rec.kept.size(), 4u);
  for (int i = 0; i < 4; ++i) {
    const Rec::Kept& k = rec.kept[ids[i]];
    EXPECT_EQ(k.request.method, "GET");
    EXPECT_EQ(k.request.path, "/p" + std::to_string(i));
    EXPECT_EQ(k.request.authority, "example.com");
    EXPECT_EQ(to_pairs(k.request.headers), rec.st[ids[i]].headers);
    EXPECT_EQ(find(to_pairs(k.request.headers), "x-i"),
              std::string(static_cast<size_t>(10 + 300 * i), static_cast<char>('a' + i)));
    ASSERT_GE(k.block.size(), 4u);
    EXPECT_EQ(k.block.fields()[0].name, ":method");  // the block as received
    EXPECT_EQ(k.request.headers.data(), k.block.fields().data() + 4);
  }
}

TEST(H2Server, PostBodyAndTrailersFromClient) {
  Rec rec;
  auto s = make_server(rec);
  Peer client(false);
  std::string body(100000, 'x');
  const int32_t id = client.request(post(), body, true, true);
  pump(*s, client);
  RecStream& r = rec.st[id];
  EXPECT_FALSE(r.head_end_stream);
  EXPECT_EQ(r.body.size(), body.size());
  EXPECT_EQ(r.body, body);
  EXPECT_EQ(find(r.trailers, "x-trailer"), "done");
  EXPECT_TRUE(r.ended);
  // A response sent from inside on_request (re-entrant submit) reaches the client.
  Rec rec2;
  rec2.respond_inline = true;
  auto s2 = make_server(rec2);
  Peer client2(false);
  const int32_t id2 = client2.request(kGet);
  pump(*s2, client2);
  EXPECT_EQ(client2.streams[id2].body, "inline");
  EXPECT_TRUE(client2.streams[id2].closed);
}

TEST(H2Server, FlowControlFollowsConsume) {
  Rec rec;
  rec.auto_consume = false;
  Limits lim;
  lim.initial_stream_window = 16384;
  lim.connection_window = 65535;
  auto s = make_server(rec, lim);
  Peer client(false);
  const std::string body(200000, 'y');
  const int32_t id = client.request(post(), body, true);
  pump(*s, client);
  RecStream& r = rec.st[id];
  // Nothing consumed: the client stops at the stream window.
  EXPECT_EQ(r.body.size(), 16384u);
  EXPECT_EQ(nghttp2_session_get_stream_remote_window_size(client.ng, id), 0);
  // Consuming part of it is not enough for a WINDOW_UPDATE (nghttp2 waits for half a window).
  s->consume(id, 100);
  pump(*s, client);
  EXPECT_EQ(r.body.size(), 16384u);
  // Consuming in steps lets it all through, never more than a window ahead.
  size_t consumed = 100;
  for (int i = 0; i < 1000 && !r.ended; ++i) {
    s->consume(id, r.body.size() - consumed);
    consumed = r.body.size();
    pump(*s, client);
    EXPECT_LE(r.body.size() - consumed, 16384u);
  }
  EXPECT_TRUE(r.ended);
  EXPECT_EQ(r.body, body);
}

TEST(H2Server, PaddingDoesNotLeakConnectionWindow) {
  // Padding counts against flow control but never reaches on_data: if nobody consumed it, a
  // long padded upload would shrink the connection window until the connection stalls.
  Rec rec;
  Limits lim;
  lim.connection_window = 65535;
  lim.initial_stream_window = 65535;
  auto s = make_server(rec, lim);
  Peer client(false, {}, false, /*pad=*/true);
  client.max_chunk = 16000;
  // 8 MiB in 16000 byte frames: 524 frames x 256 bytes of padding = twice the connection window.
  const std::string body(8 << 20, 'p');
  const int32_t id = client.request(post(), body, true);
  g_peer_bytes = 0;
  pump(*s, client);
  EXPECT_GT(g_peer_bytes, body.size() + 512 * 250);  // the padding was really sent
  EXPECT_EQ(rec.st[id].body.size(), body.size());
  EXPECT_TRUE(rec.st[id].ended);
}

TEST(H2Server, ResponseBodyDeferredUntilResume) {
  Rec rec;
  auto s = make_server(rec);
  Peer client(false);
  const int32_t id = client.request(kGet);
  pump(*s, client);
  RecStream& r = rec.st[id];
  ASSERT_TRUE(s->submit_response(id, 200, {}, true).has_value());
  pump(*s, client);
  EXPECT_EQ(find(client.streams[id].head, ":status"), "200");
  EXPECT_FALSE(client.streams[id].ended);
  const int reads = rec.body_reads;
  EXPECT_GE(reads, 1);
  // Deferred: pumping again does not ask for the body.
  pump(*s, client);
  EXPECT_EQ(rec.body_reads, reads);
  EXPECT_FALSE(s->want_write());
  r.send = "part1";
  s->resume(id);
  EXPECT_TRUE(s->want_write());
  pump(*s, client);
  EXPECT_EQ(client.streams[id].body, "part1");
  r.send += "part2";
  r.send_done = true;
  r.trailers_later = true;
  s->resume(id);
  pump(*s, client);
  EXPECT_EQ(client.streams[id].body, "part1part2");
  EXPECT_FALSE(client.streams[id].ended);  // waits for the trailers
  const Field tr[] = {{"grpc-status", "0"}};
  ASSERT_TRUE(s->submit_trailers(id, tr).has_value());
  pump(*s, client);
  EXPECT_EQ(find(client.streams[id].trailers, "grpc-status"), "0");
  EXPECT_TRUE(client.streams[id].closed);
}

TEST(H2Server, LargeResponseRespectsClientWindow) {
  Rec rec;
  Limits lim;
  lim.output_buffer_bytes = 4096;  // small: output is pulled in pieces
  auto s = make_server(rec, lim);
  Peer client(false, {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1000}}, true);
  const int32_t id = client.request(kGet);
  pump(*s, client);
  RecStream& r = rec.st[id];
  r.send = std::string(50000, 'z');
  r.send_done = true;
  ASSERT_TRUE(s->submit_response(id, 200, {}, true).has_value());
  pump(*s, client);
  EXPECT_EQ(client.streams[id].body.size(), 1000u);
  for (int i = 0; i < 200 && !client.streams[id].ended; ++i) {
    nghttp2_session_consume(client.ng, id, 1000);
    pump(*s, client);
  }
  EXPECT_EQ(client.streams[id].body, r.send);
}

// A malformed request head (RFC 9113 8.1.1) is answered, not only reset: a 400 whose body and
// x-outrigger-reason say why, as over HTTP/1.1. The proxy never hears of it.
TEST(H2Server, InvalidRequestHeadersGet400WithTheReason) {
  const std::vector<Pairs> bad = {
      {{":method", "GET"},
       {":scheme", "http"},
       {":authority", "h"},
       {":path", "/"},
       {"X-Upper", "1"}},
      {{":method", "GET"},
       {":scheme", "http"},
       {":authority", "h"},
       {":path", "/"},
       {"connection", "keep-alive"}},
      {{":method", "GET"},
       {":scheme", "http"},
       {":authority", "h"},
       {":path", "/"},
       {"transfer-encoding", "chunked"}},
      {{":method", "GET"},
       {":scheme", "http"},
       {":authority", "h"},
       {":path", "/"},
       {"te", "gzip"}},
      {{":method", "GET"}, {":scheme", "http"}, {"x-a", "1"}, {":authority", "h"}, {":path", "/"}},
      {{":method", "GET"}, {":scheme", "http"}, {":authority", "h"}},
      {{":method", "GET"},
       {":scheme", "http"},
       {":authority", "h"},
       {":path", "/"},
       {"host", "other"}},
      {{":method", "GET"}, {":scheme", "http"}, {":authority", "u@h"}, {":path", "/"}},
      {{":method", "GET"}, {":scheme", "http"}, {":authority", "h"}, {":path", "nope"}},
      {{":method", "GET"},
       {":scheme", "http"},
       {":authority", "h"},
       {":path", "/"},
       {"x-a", " padded"}},
      // Bytes nghttp2 used to check (it now runs with HTTP messaging off).
      {{":method", "GET"},
       {":scheme", "http"},
       {":authority", "h"},
       {":path", "/"},
       {"x-a", "trailing\t"}},
      {{":method", "GET"},
       {":scheme", "http"},
       {":authority", "h"},
       {":path", "/"},
       {"x-a", "a\rb"}},
      {{":method", "GET"},
       {":scheme", "http"},
       {":authority", "h"},
       {":path", "/"},
       {"x-a", std::string("a\0b", 3)}},
      {{":method", "GET"},
       {":scheme", "http"},
       {":authority", "h"},
       {":path", "/"},
       {"bad name", "1"}},
      {{":method", "GET"}, {":scheme", "http"}, {":authority", "h\n"}, {":path", "/"}},
      // Bytes HTTP/1.1 would read another way: no space or control byte in :path or the
      // authority, a real scheme, no control byte or DEL in a value, one content-length.
      {{":method", "GET"}, {":scheme", "http"}, {":authority", "h"}, {":path", "/a b"}},
      {{":method", "GET"}, {":scheme", "http"}, {":authority", "h"}, {":path", "/a\x7f"}},
      {{":method", "GET"}, {":scheme", "http"}, {":authority", "h x"}, {":path", "/"}},
      {{":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {"host", "h\"x"}},
      {{":method", "GET"}, {":scheme", "1http"}, {":authority", "h"}, {":path", "/"}},
      {{":method", "GET"}, {":scheme", "ht tp"}, {":authority", "h"}, {":path", "/"}},
      {{":method", "G T"}, {":scheme", "http"}, {":authority", "h"}, {":path", "/"}},
      {{":method", "GET"},
       {":scheme", "http"},
       {":authority", "h"},
       {":path", "/"},
       {"x-a", "a\x01b"}},
      {{":method", "GET"},
       {":scheme", "http"},
       {":authority", "h"},
       {":path", "/"},
       {"x-a", "long value with a DEL\x7f in its second word"}},
      {{":method", "GET"},
       {":scheme", "http"},
       {":authority", "h"},
       {":path", "/"},
       {"x-\x01", "1"}},
      {{":method", "GET"},
       {":scheme", "http"},
       {":authority", "h"},
       {":path", "/"},
       {"content-length", "0"},
       {"content-length", "0"}},
  };
  Rec rec;
  auto s = make_server(rec);
  Raw raw(*s);
  raw.drain();
  int32_t id = 1;
  for (const Pairs& p : bad) {
    ASSERT_TRUE(raw.send(raw.headers(id, p, true))) << id;
    auto frames = raw.drain();
    const Frame* head = find_frame(frames, NGHTTP2_HEADERS, id);
    ASSERT_NE(head, nullptr) << "no answer for case " << (id / 2);
    const Pairs fields = raw.decode(*head);
    EXPECT_EQ(find(fields, ":status"), "400") << id / 2;
    const std::string reason = find(fields, "x-outrigger-reason");
    EXPECT_TRUE(reason.starts_with("malformed HTTP/2 request: ")) << reason;
    const Frame* data = find_frame(frames, NGHTTP2_DATA, id);
    ASSERT_NE(data, nullptr) << id / 2;
    EXPECT_EQ(data->payload, "outrigger: " + reason + "\n");
    EXPECT_EQ(find(fields, "content-length"), std::to_string(data->payload.size()));
    EXPECT_TRUE(data->flags & NGHTTP2_FLAG_END_STREAM);
    // The request had ended: no reset follows the answer.
    EXPECT_EQ(find_frame(frames, NGHTTP2_RST_STREAM, id), nullptr) << id / 2;
    id += 2;
  }
  EXPECT_EQ(rec.requests, 0);
  EXPECT_EQ(s->counters().invalid_headers, bad.size());
  // The connection is still fine: a valid request goes through.
  ASSERT_TRUE(raw.send(raw.headers(id, simple_get(id), true)));
  raw.drain();
  EXPECT_EQ(rec.requests, 1);
  EXPECT_FALSE(s->done());
}

// A malformed request whose body is still coming: the 400 goes out in full, then RST_STREAM
// NO_ERROR says the body is not wanted (RFC 9113 8.1); DATA already on its way is dropped and
// the connection goes on. A HEAD gets the answer's head only.
TEST(H2Server, AnswerToAnUnfinishedMalformedRequestThenNoErrorReset) {
  Rec rec;
  auto s = make_server(rec);
  Raw raw(*s);
  raw.drain();
  const Pairs bad_post = {{":method", "POST"},
                          {":scheme", "http"},
                          {":authority", "h"},
                          {":path", "/"},
                          {"connection", "close"}};
  ASSERT_TRUE(raw.send(raw.headers(1, bad_post, false)));
  auto frames = raw.drain();
  ASSERT_GE(frames.size(), 3u);
  EXPECT_EQ(frames[0].type, NGHTTP2_HEADERS);
  EXPECT_EQ(find(raw.decode(frames[0]), ":status"), "400");
  EXPECT_EQ(frames[1].type, NGHTTP2_DATA);
  EXPECT_EQ(frames[1].payload, "outrigger: malformed HTTP/2 request: connection-specific field\n");
  EXPECT_EQ(frames[2].type, NGHTTP2_RST_STREAM);  // after the whole answer
  EXPECT_EQ(frames[2].stream, 1);
  EXPECT_EQ(payload_u32(frames[2], 0), kNoError);
  // The client's body crossed the reset: dropped, no connection error.
  ASSERT_TRUE(raw.send(frame(NGHTTP2_DATA, NGHTTP2_FLAG_END_STREAM, 1, "abc")));
  raw.drain();
  const Pairs bad_head = {{":method", "HEAD"},
                          {":scheme", "http"},
                          {":authority", "h"},
                          {":path", "/"},
                          {"te", "gzip"}};
  ASSERT_TRUE(raw.send(raw.headers(3, bad_head, true)));
  frames = raw.drain();
  const Frame* head = find_frame(frames, NGHTTP2_HEADERS, 3);
  ASSERT_NE(head, nullptr);
  EXPECT_TRUE(head->flags & NGHTTP2_FLAG_END_STREAM);  // no body after a HEAD
  const Pairs fields = raw.decode(*head);
  EXPECT_EQ(find(fields, ":status"), "400");
  EXPECT_EQ(find(fields, "x-outrigger-reason"), "malformed HTTP/2 request: te other than trailers");
  EXPECT_EQ(find_frame(frames, NGHTTP2_DATA, 3), nullptr);
  EXPECT_EQ(rec.requests, 0);
  EXPECT_EQ(s->counters().invalid_headers, 2u);
  ASSERT_TRUE(raw.send(raw.headers(5, simple_get(5), true)));
  raw.drain();
  EXPECT_EQ(rec.requests, 1);
  EXPECT_FALSE(s->done());
}

// The body must add up to the content-length (RFC 9113 8.1.1), and trailers end the stream:
// nghttp2 runs with HTTP messaging off, so these are the session's own checks.
TEST(H2Server, BodyMustMatchContentLength) {
  Rec rec;
  auto s = make_server(rec);
  Raw raw(*s);
  raw.drain();
  auto post_cl = [](std::string_view cl) {
    return Pairs{{":method", "POST"},
                 {":scheme", "http"},
                 {":authority", "h"},
                 {":path", "/"},
                 {"content-length", std::string(cl)}};
  };
  auto data = [](int32_t id, std::string_view body, bool end) {
    return frame(NGHTTP2_DATA, end ? NGHTTP2_FLAG_END_STREAM : 0, id, body);
  };
  auto reset_code = [&](int32_t id) -> int64_t {
    auto frames = raw.drain();
    const Frame* rst = find_frame(frames, NGHTTP2_RST_STREAM, id);
    return rst == nullptr ? -1 : payload_u32(*rst, 0);
  };
  // A head that ends the stream but promises a body: never reaches the proxy.
  ASSERT_TRUE(raw.send(raw.headers(1, post_cl("5"), true)));
  EXPECT_EQ(reset_code(1), kProtocolError);
  EXPECT_EQ(rec.st.count(1), 0u);
  // More DATA than promised: the extra bytes are not delivered, the stream is reset.
  ASSERT_TRUE(raw.send(raw.headers(3, post_cl("3"), false)));
  ASSERT_TRUE(raw.send(data(3, "hel", false) + data(3, "lo", true)));
  EXPECT_EQ(reset_code(3), kProtocolError);
  EXPECT_EQ(rec.st[3].body, "hel");
  EXPECT_FALSE(rec.st[3].ended);
  EXPECT_TRUE(rec.st[3].closed);
  EXPECT_EQ(rec.st[3].close.error_code, kProtocolError);
  // Less: the end of the stream is not reported, the stream is reset.
  ASSERT_TRUE(raw.send(raw.headers(5, post_cl("5"), false)));
  ASSERT_TRUE(raw.send(data(5, "abc", true)));
  EXPECT_EQ(reset_code(5), kProtocolError);
  EXPECT_EQ(rec.st[5].body, "abc");
  EXPECT_FALSE(rec.st[5].ended);
  // Less, ended by trailers.
  ASSERT_TRUE(raw.send(raw.headers(7, post_cl("5"), false)));
  ASSERT_TRUE(raw.send(data(7, "abc", false) + raw.headers(7, {{"x-t", "1"}}, true)));
  EXPECT_EQ(reset_code(7), kProtocolError);
  EXPECT_TRUE(rec.st[7].trailers.empty());
  EXPECT_FALSE(rec.st[7].ended);
  EXPECT_EQ(s->counters().body_length_mismatch, 4u);
  // Trailers without END_STREAM are malformed.
  ASSERT_TRUE(raw.send(raw.headers(9, post_cl("1"), false)));
  ASSERT_TRUE(raw.send(data(9, "a", false) + raw.headers(9, {{"x-t", "1"}}, false)));
  EXPECT_EQ(reset_code(9), kProtocolError);
  EXPECT_FALSE(rec.st[9].ended);
  EXPECT_EQ(s->counters().invalid_headers, 1u);
  // Exact bodies pass: in two frames, ended by trailers, and an empty one on the head.
  ASSERT_TRUE(raw.send(raw.headers(11, post_cl("5"), false)));
  ASSERT_TRUE(raw.send(data(11, "ab", false) + data(11, "cde", true)));
  ASSERT_TRUE(raw.send(raw.headers(13, post_cl("2"), false)));
  ASSERT_TRUE(raw.send(data(13, "ab", false) + raw.headers(13, {{"x-t", "1"}}, true)));
  ASSERT_TRUE(raw.send(raw.headers(15, post_cl("0"), true)));
  raw.drain();
  EXPECT_EQ(rec.st[11].body, "abcde");
  EXPECT_TRUE(rec.st[11].ended);
  EXPECT_TRUE(rec.st[13].ended);
  EXPECT_EQ(find(rec.st[13].trailers, "x-t"), "1");
  EXPECT_TRUE(rec.st[15].ended);
  EXPECT_EQ(s->counters().body_length_mismatch, 4u);
  // Refused bytes go back to the connection window: 6 x 16000 bytes over a 1-byte promise is
  // more than the 65,535-byte window, so the connection would fail if they were kept.
  int32_t id = 17;
  for (int i = 0; i < 6; ++i, id += 2) {
    ASSERT_TRUE(raw.send(raw.headers(id, post_cl("1"), false)));
    ASSERT_TRUE(raw.send(data(id, std::string(16000, 'x'), true)));
    EXPECT_EQ(reset_code(id), kProtocolError) << id;
  }
  ASSERT_TRUE(raw.send(raw.headers(id, post_cl("3"), false)));
  ASSERT_TRUE(raw.send(data(id, "end", true)));
  auto frames = raw.drain();
  EXPECT_EQ(find_frame(frames, NGHTTP2_GOAWAY), nullptr);
  EXPECT_TRUE(rec.st[id].ended);
  EXPECT_FALSE(s->done());
}

TEST(H2Server, HeaderListTooLargeGets431) {
  Rec rec;
  Limits lim;
  lim.max_header_list_size = 4096;
  auto s = make_server(rec, lim);
  Peer client(false);
  Pairs big = kGet;
  for (int i = 0; i < 8; ++i) big.emplace_back("x-big-" + std::to_string(i), std::string(900, 'a'));
  const int32_t id = client.request(big);
  const int32_t ok = client.request(kGet);
  pump(*s, client);
  EXPECT_EQ(find(client.streams[id].head, ":status"), "431");
  EXPECT_EQ(find(client.streams[id].head, "x-outrigger-reason"), "request header fields too large");
  EXPECT_EQ(client.streams[id].body, "outrigger: request header fields too large\n");
  EXPECT_TRUE(client.streams[id].closed);
  EXPECT_EQ(rec.st.count(id), 0u);  // never reached the proxy
  EXPECT_EQ(rec.st.count(ok), 1u);  // the connection goes on
  EXPECT_EQ(s->counters().header_list_too_large, 1u);
  EXPECT_EQ(nghttp2_session_get_remote_settings(client.ng, NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE),
            4096u);
}

TEST(H2Server, MaxConcurrentStreamsEnforced) {
  // Before the client acknowledged our SETTINGS: the extra stream is refused (retryable).
  {
    Rec rec;
    Limits lim;
    lim.max_concurrent_streams = 2;
    auto s = make_server(rec, lim);
    Raw raw(*s, /*ack_settings=*/false);
    for (int32_t id : {1, 3, 5}) ASSERT_TRUE(raw.send(raw.headers(id, simple_get(id), false)));
    const auto frames = raw.drain();
    EXPECT_EQ(rec.requests, 2);
    EXPECT_EQ(rec.st.count(5), 0u);
    EXPECT_EQ(s->counters().refused_streams, 1u);
    const Frame* rst = find_frame(frames, NGHTTP2_RST_STREAM, 5);
    ASSERT_NE(rst, nullptr);
    EXPECT_EQ(payload_u32(*rst, 0), kRefusedStream);
    EXPECT_EQ(find_frame(frames, NGHTTP2_GOAWAY), nullptr);
  }
  // After the ACK a client that still exceeds the limit is broken: nghttp2 ends the connection
  // with PROTOCOL_ERROR; the streams it had stay served up to the last one processed.
  {
    Rec rec;
    Limits lim;
    lim.max_concurrent_streams = 2;
    auto s = make_server(rec, lim);
    Raw raw(*s);
    for (int32_t id : {1, 3, 5}) (void)raw.send(raw.headers(id, simple_get(id), false));
    const auto frames = raw.drain();
    EXPECT_EQ(rec.requests, 2);
    EXPECT_EQ(s->counters().refused_streams, 1u);
    const Frame* ga = find_frame(frames, NGHTTP2_GOAWAY);
    ASSERT_NE(ga, nullptr);
    EXPECT_EQ(payload_u32(*ga, 4), kProtocolError);
    EXPECT_EQ(s->counters().connection_errors, 1u);
    EXPECT_NE(s->error().find("PROTOCOL_ERROR"), std::string::npos) << s->error();
  }
}

TEST(H2Server, ClientRespectsAdvertisedConcurrency) {
  Rec rec;
  Limits lim;
  lim.max_concurrent_streams = 3;
  auto s = make_server(rec, lim);
  Peer client(false);
  pump(*s, client);  // SETTINGS exchanged
  std::vector<int32_t> ids;
  for (int i = 0; i < 6; ++i) ids.push_back(client.request(kGet));
  pump(*s, client);
  EXPECT_EQ(rec.requests, 3);  // the client queues the rest
  for (int i = 0; i < 3; ++i) {
    rec.st[ids[i]].send_done = true;
    ASSERT_TRUE(s->submit_response(ids[i], 204, {}, false).has_value());
  }
  pump(*s, client);
  EXPECT_EQ(rec.requests, 6);
  EXPECT_EQ(s->counters().refused_streams, 0u);
}

TEST(H2Server, RapidResetEndsConnection) {
  Rec rec;
  auto s = make_server(rec);  // 200 per 10 s
  Raw raw(*s);
  raw.drain();
  bool ok = true;
  int32_t id = 1;
  for (int i = 0; i < 300 && ok; ++i, id += 2) {
    ok = raw.send(raw.headers(id, simple_get(id), true) +
                  frame(NGHTTP2_RST_STREAM, 0, id, u32(kCancel)));
  }
  EXPECT_FALSE(ok);
  EXPECT_EQ(rec.requests, 201);
  EXPECT_EQ(s->counters().rapid_reset, 1u);
  EXPECT_EQ(s->counters().peer_resets, 201u);
  auto frames = raw.drain();
  const Frame* ga = find_frame(frames, NGHTTP2_GOAWAY);
  ASSERT_NE(ga, nullptr);
  EXPECT_EQ(payload_u32(*ga, 4), kEnhanceYourCalm);
  EXPECT_EQ(static_cast<int32_t>(payload_u32(*ga, 0)), 401);  // last processed stream
  EXPECT_TRUE(s->done());
  EXPECT_FALSE(s->feed(bytes("x")).has_value());
}

int64_t g_now_ms = 0;

TEST(H2Server, RapidResetWindowSlides) {
  Rec rec;
  auto s = make_server(rec);
  g_now_ms = 1'000'000;
  s->set_clock([] { return g_now_ms; });
  Raw raw(*s);
  raw.drain();
  int32_t id = 1;
  // 150 resets, then 11 s later another 150: never 200 inside one window.
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < 150; ++i, id += 2) {
      ASSERT_TRUE(raw.send(raw.headers(id, simple_get(id), true) +
                           frame(NGHTTP2_RST_STREAM, 0, id, u32(kCancel))));
    }
    g_now_ms += 11'000;
  }
  EXPECT_EQ(s->counters().rapid_reset, 0u);
  EXPECT_EQ(s->counters().peer_resets, 300u);
  // Resets of streams whose response completed do not count.
  ASSERT_TRUE(raw.send(raw.headers(id, simple_get(id), true)));
  ASSERT_TRUE(s->submit_response(id, 204, {}, false).has_value());
  raw.drain();
  ASSERT_TRUE(raw.send(frame(NGHTTP2_RST_STREAM, 0, id, u32(kCancel))));
  EXPECT_EQ(s->counters().peer_resets, 300u);
}

TEST(H2Server, ContinuationFloodEndsConnection) {
  Rec rec;
  auto s = make_server(rec);  // 32 CONTINUATION frames at most
  Raw raw(*s);
  raw.drain();
  const std::string blk = raw.block(simple_get(1));
  std::string b = frame(NGHTTP2_HEADERS, 0, 1, blk.substr(0, 1));
  bool ok = raw.send(b);
  for (int i = 0; i < 40 && ok; ++i) {
    // Padding-free CONTINUATION frames carrying one harmless literal field each.
    ok = raw.send(frame(NGHTTP2_CONTINUATION, 0, 1, std::string("\x40\x01x\x01y", 5)));
  }
  EXPECT_FALSE(ok);
  EXPECT_EQ(s->counters().continuation_flood, 1u);
  auto frames = raw.drain();
  const Frame* ga = find_frame(frames, NGHTTP2_GOAWAY);
  ASSERT_NE(ga, nullptr);
  EXPECT_EQ(payload_u32(*ga, 4), kEnhanceYourCalm);
  EXPECT_TRUE(s->done());
  EXPECT_EQ(rec.requests, 0);
}

TEST(H2Server, HeaderBlockBytesLimit) {
  Rec rec;
  Limits lim;
  lim.max_header_block_bytes = 2000;
  auto s = make_server(rec, lim);
  Raw raw(*s);
  raw.drain();
  bool ok = raw.send(frame(NGHTTP2_HEADERS, 0, 1, raw.block(simple_get(1))));
  for (int i = 0; i < 4 && ok; ++i) {
    // Valid HPACK: each CONTINUATION carries one more ~600 byte field.
    ok = raw.send(frame(NGHTTP2_CONTINUATION, 0, 1,
                        raw.block({{"x-f" + std::to_string(i), std::string(600, 'v')}})));
  }
  EXPECT_FALSE(ok);
  EXPECT_EQ(s->counters().continuation_flood, 1u);
  const auto frames = raw.drain();
  const Frame* ga = find_frame(frames, NGHTTP2_GOAWAY);
  ASSERT_NE(ga, nullptr);
  EXPECT_EQ(payload_u32(*ga, 4), kEnhanceYourCalm);
}

TEST(H2Server, PingFloodEndsConnection) {
  Rec rec;
  auto s = make_server(rec);  // 1000 queued ACKs at most
  Raw raw(*s);
  raw.drain();
  // The client never reads: all PINGs arrive before any output is pulled.
  std::string pings;
  for (int i = 0; i < 1100; ++i) pings += frame(NGHTTP2_PING, 0, 0, std::string(8, 'p'));
  EXPECT_FALSE(raw.send(pings));
  EXPECT_EQ(s->counters().ping_flood, 1u);
  EXPECT_EQ(s->counters().settings_flood, 0u);
  const auto frames = raw.drain();
  ASSERT_FALSE(frames.empty());
  EXPECT_EQ(frames.back().type, NGHTTP2_GOAWAY);
  EXPECT_EQ(payload_u32(frames.back(), 4), kEnhanceYourCalm);
  EXPECT_LT(frames.size(), 10u);  // the queued ACKs are dropped, not written
  EXPECT_TRUE(s->done());
}

TEST(H2Server, PingsAnsweredWhenClientReads) {
  Rec rec;
  auto s = make_server(rec);
  Raw raw(*s);
  raw.drain();
  size_t acks = 0;
  for (int round = 0; round < 5; ++round) {
    std::string pings;
    for (int i = 0; i < 500; ++i) pings += frame(NGHTTP2_PING, 0, 0, std::string(8, 'q'));
    ASSERT_TRUE(raw.send(pings));
    for (const Frame& f : raw.drain()) acks += f.type == NGHTTP2_PING ? 1 : 0;
  }
  EXPECT_EQ(acks, 2500u);
  EXPECT_EQ(s->counters().ping_flood, 0u);
}

TEST(H2Server, SettingsFloodEndsConnection) {
  Rec rec;
  auto s = make_server(rec);
  Raw raw(*s);
  raw.drain();
  std::string settings;
  for (int i = 0; i < 1100; ++i) settings += frame(NGHTTP2_SETTINGS, 0, 0, "");
  EXPECT_FALSE(raw.send(settings));
  EXPECT_EQ(s->counters().settings_flood, 1u);
  const auto frames = raw.drain();
  const Frame* ga = find_frame(frames, NGHTTP2_GOAWAY);
  ASSERT_NE(ga, nullptr);
  EXPECT_EQ(payload_u32(*ga, 4), kEnhanceYourCalm);
}

TEST(H2Server, TooManySettingsEntries) {
  Rec rec;
  auto s = make_server(rec);  // 32 entries per frame
  Raw raw(*s);
  raw.drain();
  std::string entries;
  for (int i = 0; i < 40; ++i) entries += std::string("\x00\x03", 2) + u32(100);
  EXPECT_FALSE(raw.send(frame(NGHTTP2_SETTINGS, 0, 0, entries)));
  EXPECT_EQ(s->counters().settings_flood, 1u);
  const auto frames = raw.drain();
  const Frame* ga = find_frame(frames, NGHTTP2_GOAWAY);
  ASSERT_NE(ga, nullptr);
  EXPECT_EQ(payload_u32(*ga, 4), kEnhanceYourCalm);
}

TEST(H2Server, EmptyFrameFlood) {
  Rec rec;
  auto s = make_server(rec);  // 16 empty frames in a row at most
  Raw raw(*s);
  raw.drain();
  ASSERT_TRUE(raw.send(raw.headers(1, post(), false)));
  bool ok = true;
  for (int i = 0; i < 30 && ok; ++i) ok = raw.send(frame(NGHTTP2_DATA, 0, 1, ""));
  EXPECT_FALSE(ok);
  EXPECT_EQ(s->counters().empty_frame_flood, 1u);
  const auto frames = raw.drain();
  const Frame* ga = find_frame(frames, NGHTTP2_GOAWAY);
  ASSERT_NE(ga, nullptr);
  EXPECT_EQ(payload_u32(*ga, 4), kEnhanceYourCalm);
}

// What the two random-frame tests share: a seeded generator, the frames either peer builds the
// same way, and the check after each frame.
class FrameFuzz {
 public:
  explicit FrameFuzz(uint32_t seed) : rng_(seed) {}
  uint32_t pick(uint32_t n) { return static_cast<uint32_t>(rng_() % n); }
  uint32_t any() { return static_cast<uint32_t>(rng_()); }
  std::string bytes(size_t n) {
    std::string b(n, '\0');
    for (char& c : b) c = static_cast<char>(rng_());
    return b;
  }
  // Mostly one of the known streams, else an idle or a random id.
  int32_t stream(const std::vector<int32_t>& known) {
    if (!known.empty() && pick(8) != 0) return known[pick(static_cast<uint32_t>(known.size()))];
    return static_cast<int32_t>(pick(4) == 0 ? any() & 0x7fffffff : pick(12));
  }
  // Fills a well-formed DATA, RST_STREAM, SETTINGS, PING, GOAWAY or WINDOW_UPDATE frame (right
  // size, stream and flags, random content); false for the other types, which each test builds.
  bool common(uint8_t type, const std::vector<int32_t>& known, uint8_t* flags, int32_t* id,
              std::string* payload) {
    switch (type) {
      case NGHTTP2_DATA:
        *id = stream(known);
        *flags = pick(2) ? NGHTTP2_FLAG_END_STREAM : 0;
        *payload = bytes(pick(40));
        return true;
      case NGHTTP2_RST_STREAM:
        *id = stream(known);
        *payload = u32(pick(14));
        return true;
      case NGHTTP2_SETTINGS:
        if (pick(4) == 0) {
          *flags = NGHTTP2_FLAG_ACK;
          return true;
        }
        for (uint32_t k = pick(4); k > 0; --k) {
          const uint16_t sid = static_cast<uint16_t>(1 + pick(6));
          *payload += std::string{static_cast<char>(sid >> 8), static_cast<char>(sid & 0xff)};
          *payload += u32(pick(3) == 0 ? any() : pick(70000));
        }
        return true;
      case NGHTTP2_PING:
        *flags = pick(4) == 0 ? NGHTTP2_FLAG_ACK : 0;
        *payload = bytes(8);
        return true;
      case NGHTTP2_GOAWAY:
        *payload = u32(pick(9)) + u32(pick(3)) + bytes(pick(10));
        return true;
      case NGHTTP2_WINDOW_UPDATE:
        *id = pick(2) ? 0 : stream(known);
        *payload = u32(pick(8) == 0 ? 0 : 1 + pick(100000));
        return true;
      default:
        return false;
    }
  }
  // After one frame: nghttp2 answers a connection error with a GOAWAY (feed() itself fails only
  // for the limits we enforce, which send one too), and the session is done after it. So the
  // session accepted the frame, or it sent a GOAWAY with an error code. False when it is done.
  static bool goes_on(const std::vector<Frame>& out, bool fed, const Session& s, int round,
                      int* failed) {
    if (const Frame* ga = find_frame(out, NGHTTP2_GOAWAY)) {
      ++*failed;
      EXPECT_NE(payload_u32(*ga, 4), kNoError) << "round " << round;
      return false;
    }
    EXPECT_TRUE(fed) << "round " << round << ": failed without a GOAWAY: " << s.error();
    return true;
  }

 private:
  std::mt19937 rng_;
};

// Random frames (seeded, bounded) after a valid preface: the session either goes on or fails
// with a reason and a GOAWAY, and never crashes or corrupts memory (make test-asan runs this
// under AddressSanitizer). Half the HEADERS carry a valid block, so streams do open, get
// answered inline, reset and closed in odd orders; the rest are random bytes.
TEST(H2Server, RandomFramesNeitherCrashNorHang) {
  FrameFuzz fz(20261207);
  int failed = 0, served = 0, frames = 0;
  for (int round = 0; round < 300; ++round) {
    Rec rec;
    rec.respond_inline = fz.pick(2) == 0;
    auto s = make_server(rec);
    Raw raw(*s);
    raw.drain();
    int32_t next_id = 1;
    std::vector<int32_t> opened;
    bool alive = true;
    for (int i = 0; i < 40 && alive; ++i) {
      // Mostly well-formed frames (right sizes, stream ids and flags, so the session gets past
      // its framing checks and into streams), one in fifteen fully random.
      const bool wild = fz.pick(15) == 0;
      // Weighted: the frames a live client sends most; PUSH_PROMISE, CONTINUATION out of place
      // and GOAWAY (each ends the connection) rarely.
      static constexpr uint8_t kTypes[] = {0, 0, 0, 1, 1, 1, 1, 1, 2, 3, 3,
                                           4, 4, 6, 6, 8, 8, 8, 5, 7, 9};
      uint8_t type =
          kTypes[fz.pick(static_cast<uint32_t>(std::size(kTypes)) - (fz.pick(4) ? 3 : 0))];
      uint8_t flags = 0;
      int32_t id = 0;
      std::string payload;
      if (!fz.common(type, opened, &flags, &id, &payload)) {
        switch (type) {
          case NGHTTP2_HEADERS:
            id = fz.pick(4) == 0 ? fz.stream(opened) : next_id;
            if (id == next_id) next_id += 2;
            opened.push_back(id);
            flags = NGHTTP2_FLAG_END_HEADERS | (fz.pick(2) ? NGHTTP2_FLAG_END_STREAM : 0);
            payload = fz.pick(12) == 0 ? fz.bytes(fz.pick(30))
                                       : raw.block(fz.pick(2) ? simple_get(id) : post("/r"));
            break;
          case NGHTTP2_PRIORITY:
            id = fz.stream(opened);
            payload = fz.bytes(5);
            break;
          case NGHTTP2_PUSH_PROMISE:
            id = fz.stream(opened);
            payload = fz.bytes(4 + fz.pick(20));
            break;
          default:  // CONTINUATION
            id = fz.stream(opened);
            flags = NGHTTP2_FLAG_END_HEADERS;
            payload = fz.bytes(fz.pick(20));
            break;
        }
      }
      if (wild) {
        type = static_cast<uint8_t>(fz.pick(11) == 10 ? 0x20 + fz.pick(8) : fz.pick(10));
        flags = static_cast<uint8_t>(fz.any());
        id = fz.stream(opened);
        payload = fz.bytes(fz.pick(80));
      }
      const bool fed = raw.send(frame(type, flags, id, payload));
      ++frames;
      alive = FrameFuzz::goes_on(raw.drain(), fed, *s, round, &failed);
      // The session's open-stream count (kept incrementally) matches what it reported.
      ASSERT_EQ(s->open_streams(), rec.live_requests()) << "round " << round << " frame " << i;
    }
    served += rec.requests;
  }
  // Both outcomes happened, and sessions lived a while: the generator is neither all garbage
  // nor all valid.
  EXPECT_GT(failed, 30);
  EXPECT_LT(failed, 300);
  EXPECT_GT(served, 100);
  EXPECT_GT(frames, 600);
}

TEST(H2Server, PrefaceSniffing) {
  const std::string magic = NGHTTP2_CLIENT_MAGIC;
  EXPECT_EQ(magic.size(), 24u);
  EXPECT_EQ(check_preface(bytes(magic + "rest")), Preface::kH2);
  EXPECT_EQ(check_preface(bytes(magic)), Preface::kH2);
  EXPECT_EQ(check_preface(bytes(magic.substr(0, 10))), Preface::kNeedMore);
  EXPECT_EQ(check_preface(bytes("")), Preface::kNeedMore);
  EXPECT_EQ(check_preface(bytes("PUT / HTTP/1.1\r\n")), Preface::kNotH2);
  EXPECT_EQ(check_preface(bytes("PRI * HTTP/1.1\r\n\r\nSM\r\n\r\n")), Preface::kNotH2);
}

TEST(H2Server, BadPrefaceIsAnError) {
  Rec rec;
  auto s = make_server(rec);
  EXPECT_FALSE(s->feed(bytes("GET / HTTP/1.1\r\nHost: x\r\n\r\n")).has_value());
  EXPECT_FALSE(s->error().empty());
  std::string all;
  for (int i = 0; i < 10; ++i) {
    auto out = s->pending_output();
    if (out.empty()) break;
    all.append(reinterpret_cast<const char*>(out.data()), out.size());
    s->consume_output(out.size());
  }
  const auto frames = parse_frames(all);
  // Our preface's SETTINGS first (RFC 9113 3.4), though the client broke off before we wrote.
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[0].type, NGHTTP2_SETTINGS);
  EXPECT_EQ(frames[0].flags & NGHTTP2_FLAG_ACK, 0);
  const Frame* ga = find_frame(frames, NGHTTP2_GOAWAY);
  ASSERT_NE(ga, nullptr);
  EXPECT_EQ(payload_u32(*ga, 4), kProtocolError);
  EXPECT_TRUE(s->done());
}

// A server that floods a client before the client wrote anything still gets the client's
// connection preface (the magic, then SETTINGS) before the GOAWAY, not a bare GOAWAY: found by
// tests/fuzz/h2_session_fuzz.cc.
TEST(H2Client, FailureBeforeFirstWriteStillSendsThePreface) {
  Rec rec;
  Limits limits;
  limits.max_outbound_ack = 2;
  auto c = make_client(rec, limits);
  std::string flood = frame(NGHTTP2_SETTINGS, 0, 0, "");
  for (int i = 0; i < 8; ++i) flood += frame(NGHTTP2_PING, 0, 0, "12345678");
  EXPECT_FALSE(c->feed(bytes(flood)).has_value());
  EXPECT_EQ(c->counters().ping_flood, 1u);
  std::string all;
  for (int i = 0; i < 10; ++i) {
    auto out = c->pending_output();
    if (out.empty()) break;
    all.append(reinterpret_cast<const char*>(out.data()), out.size());
    c->consume_output(out.size());
  }
  constexpr std::string_view kMagic = NGHTTP2_CLIENT_MAGIC;
  ASSERT_EQ(all.substr(0, kMagic.size()), kMagic);
  const auto frames = parse_frames(std::string_view(all).substr(kMagic.size()));
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[0].type, NGHTTP2_SETTINGS);
  EXPECT_EQ(frames[0].flags & NGHTTP2_FLAG_ACK, 0);
  EXPECT_EQ(frames[1].type, NGHTTP2_GOAWAY);
  EXPECT_EQ(payload_u32(frames[1], 4), kEnhanceYourCalm);
  EXPECT_TRUE(c->done());
}

TEST(H2Server, PeerResetReported) {
  Rec rec;
  auto s = make_server(rec);
  Peer client(false);
  const int32_t id = client.request(post(), "", true);
  pump(*s, client);
  ASSERT_EQ(rec.requests, 1);
  nghttp2_submit_rst_stream(client.ng, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
  pump(*s, client);
  EXPECT_TRUE(rec.st[id].closed);
  EXPECT_TRUE(rec.st[id].close.reset_by_peer);
  EXPECT_EQ(rec.st[id].close.error_code, kCancel);
  EXPECT_EQ(s->counters().peer_resets, 1u);
  // reset_stream from our side.
  const int32_t id2 = client.request(kGet);
  pump(*s, client);
  s->reset_stream(id2, kInternalError);
  pump(*s, client);
  EXPECT_TRUE(rec.st[id2].closed);
  EXPECT_FALSE(rec.st[id2].close.reset_by_peer);
  EXPECT_EQ(client.streams[id2].close_code, kInternalError);
}

TEST(H2Server, GracefulDrainTwoStep) {
  Rec rec;
  auto s = make_server(rec);
  Peer client(false);
  const int32_t id = client.request(kGet);
  pump(*s, client);
  s->begin_drain();
  EXPECT_TRUE(s->draining());
  // Step 1 goes out with a PING; the client's ACK triggers step 2 inside pump().
  auto out = s->pending_output();
  client.feed(out);
  s->consume_output(out.size());
  EXPECT_EQ(client.goaway_last, (1u << 31) - 1);
  EXPECT_EQ(client.goaway_code, 0u);
  pump(*s, client);
  EXPECT_EQ(client.goaways, 2);
  EXPECT_EQ(client.goaway_last, id);
  EXPECT_FALSE(s->done());  // the stream in flight finishes first
  rec.st[id].send = "bye";
  rec.st[id].send_done = true;
  ASSERT_TRUE(s->submit_response(id, 200, {}, true).has_value());
  pump(*s, client);
  EXPECT_EQ(client.streams[id].body, "bye");
  EXPECT_TRUE(s->done());
}

TEST(H2Server, ClosedStreamBytesReturnToConnectionWindow) {
  Rec rec;
  rec.auto_consume = false;
  Limits lim;
  lim.initial_stream_window = 30000;
  lim.connection_window = 65535;
  auto s = make_server(rec, lim);
  Peer client(false);
  // Two streams fill most of the connection window; neither is consumed.
  const int32_t a = client.request(post("/a"), std::string(30000, 'a'), true);
  const int32_t b = client.request(post("/b"), std::string(30000, 'b'), true);
  pump(*s, client);
  EXPECT_EQ(rec.st[a].body.size() + rec.st[b].body.size(), 60000u);
  // The proxy resets both (e.g. the upstream failed) without consuming: the connection window
  // must come back, or the connection would stall for every later stream.
  s->reset_stream(a, kCancel);
  s->reset_stream(b, kCancel);
  pump(*s, client);
  const int32_t c = client.request(post("/c"), std::string(30000, 'c'), true);
  pump(*s, client);
  EXPECT_EQ(rec.st[c].body.size(), 30000u);
}

// ---------------------------------------------------------------------------------------------
// ClientSession

TEST(H2Client, RequestResponseWithBodiesAndTrailers) {
  Rec rec;
  auto c = make_client(rec);
  Peer server(true);
  server.auto_respond = true;
  Pairs req = post("/echo");
  req.emplace_back("X-Upper", "Kept As Is");
  std::vector<Field> fields;
  for (const auto& [n, v] : req) fields.push_back({n, v});
  fields.push_back({"connection", "close"});  // dropped on the way out
  auto id = c->submit_request(fields, true);
  ASSERT_TRUE(id.has_value()) << id.error();
  // The head goes out later (pump): the session holds its own copy of the bytes.
  for (auto& [n, v] : req) {
    std::fill(n.begin(), n.end(), '#');
    std::fill(v.begin(), v.end(), '#');
  }
  RecStream& r = rec.st[*id];
  r.send = "ping";
  r.send_done = true;
  const Field tr[] = {{"x-req-trailer", "1"}};
  ASSERT_TRUE(c->submit_trailers(*id, tr).has_value());
  pump(*c, server);
  EXPECT_EQ(server.streams[*id].body, "ping");
  EXPECT_EQ(find(server.streams[*id].head, ":path"), "/echo");
  EXPECT_EQ(find(server.streams[*id].head, "x-upper"), "Kept As Is");
  EXPECT_EQ(find(server.streams[*id].head, "connection"), "<none>");
  EXPECT_EQ(find(server.streams[*id].trailers, "x-req-trailer"), "1");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(find(r.headers, "x-peer"), "yes");
  EXPECT_EQ(r.body, "echo:ping");
  EXPECT_EQ(find(r.trailers, "x-trailer"), "done");
  EXPECT_TRUE(r.ended);
  EXPECT_TRUE(r.closed);
  EXPECT_EQ(r.close.error_code, kNoError);
  EXPECT_FALSE(r.close.unprocessed);
}

std::vector<Field> fields_of(const Pairs& p) {
  std::vector<Field> f;
  for (const auto& [n, v] : p) f.push_back({n, v});
  return f;
}

// The client side of RandomFramesNeitherCrashNorHang: an upstream that answers our requests
// with mostly well-formed, sometimes random frames (responses, 1xx, trailers, bodies, resets,
// SETTINGS, PING, GOAWAY, window updates, pushes it may not send).
TEST(H2Client, RandomFramesNeitherCrashNorHang) {
  FrameFuzz fz(20261208);
  int failed = 0, answered = 0, frames = 0;
  for (int round = 0; round < 300; ++round) {
    Hpack hpack;  // the upstream's encoder, one per connection
    Rec rec;
    auto c = make_client(rec);
    std::vector<int32_t> ids;
    for (int k = 0; k < 3; ++k) {
      auto id = c->submit_request(fields_of(post("/f")), fz.pick(2) == 0);
      ASSERT_TRUE(id.has_value()) << id.error();
      ids.push_back(*id);
    }
    drain_frames(*c);
    (void)c->feed(bytes(frame(NGHTTP2_SETTINGS, 0, 0, "")));
    bool alive = true;
    for (int i = 0; i < 30 && alive; ++i) {
      static constexpr uint8_t kTypes[] = {0, 0, 0, 1, 1, 1, 1, 3, 4, 6, 8, 8, 5, 7};
      uint8_t type =
          kTypes[fz.pick(static_cast<uint32_t>(std::size(kTypes)) - (fz.pick(4) ? 2 : 0))];
      uint8_t flags = 0;
      int32_t id = 0;
      std::string payload;
      if (!fz.common(type, ids, &flags, &id, &payload)) {
        if (type == NGHTTP2_HEADERS) {
          id = fz.stream(ids);
          flags = NGHTTP2_FLAG_END_HEADERS | (fz.pick(2) ? NGHTTP2_FLAG_END_STREAM : 0);
          static const char* kStatus[] = {"100", "103", "200", "204", "304", "404", "503", "99"};
          Pairs f;
          if (fz.pick(3) != 0) f.emplace_back(":status", kStatus[fz.pick(8)]);
          if (fz.pick(2) == 0) f.emplace_back("content-length", std::to_string(fz.pick(50)));
          if (fz.pick(4) == 0) f.emplace_back("x-t", "v");
          payload = fz.pick(12) == 0 ? fz.bytes(fz.pick(30)) : hpack.block(f);
        } else {  // PUSH_PROMISE, which a client never allows
          id = fz.stream(ids);
          payload = u32(2 + 2 * fz.pick(4)) + hpack.block({{":method", "GET"}, {":path", "/p"}});
          flags = NGHTTP2_FLAG_END_HEADERS;
        }
      }
      if (fz.pick(15) == 0) {
        type = static_cast<uint8_t>(fz.pick(10));
        flags = static_cast<uint8_t>(fz.any());
        id = fz.stream(ids);
        payload = fz.bytes(fz.pick(80));
      }
      const bool fed = c->feed(bytes(frame(type, flags, id, payload))).has_value();
      ++frames;
      alive = FrameFuzz::goes_on(drain_frames(*c), fed, *c, round, &failed);
      size_t live = 0;
      for (int32_t sid : ids) live += rec.st[sid].closed ? 0 : 1;
      ASSERT_EQ(c->open_streams(), live) << "round " << round << " frame " << i;
    }
    for (int32_t id : ids) answered += rec.st[id].status >= 200 ? 1 : 0;
  }
  EXPECT_GT(failed, 30);
  EXPECT_LT(failed, 300);
  EXPECT_GT(answered, 20);
  EXPECT_GT(frames, 600);
}

TEST(H2Client, HeaderBlockTakenWithoutCopy) {
  Rec rec;
  rec.take_blocks = true;
  auto c = make_client(rec);
  Peer server(true);
  server.auto_respond = true;
  std::vector<int32_t> ids;
  for (int i = 0; i < 3; ++i) {
    auto id = c->submit_request(fields_of(post("/x" + std::to_string(i))), false);
    ASSERT_TRUE(id.has_value()) << id.error();
    ids.push_back(*id);
  }
  pump(*c, server);
  for (int32_t id : ids) {
    const Rec::Kept& k = rec.kept[id];
    EXPECT_EQ(k.response.status, 200);
    EXPECT_EQ(to_pairs(k.response.headers), (Pairs{{"x-peer", "yes"}}));
    ASSERT_EQ(k.block.size(), 2u);
    EXPECT_EQ(k.block.fields()[0].name, ":status");
    FieldList copy = k.block;
    copy.drop_front(1);  // what H2Connection keeps: the regular fields
    EXPECT_EQ(to_pairs(copy.fields()), (Pairs{{"x-peer", "yes"}}));
    copy.drop_front(5);
    EXPECT_TRUE(copy.empty());
  }
}

TEST(H2Client, ConcurrencyLimitFromPeer) {
  Rec rec;
  auto c = make_client(rec);
  EXPECT_EQ(c->peer_max_concurrent_streams(), 100u);  // until the peer's SETTINGS
  Peer server(true, {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 2}});
  pump(*c, server);
  EXPECT_EQ(c->peer_max_concurrent_streams(), 2u);
  const Pairs get = simple_get(0);
  const auto f = fields_of(get);
  auto a = c->submit_request(f, false);
  auto b = c->submit_request(f, false);
  ASSERT_TRUE(a.has_value() && b.has_value());
  EXPECT_FALSE(c->can_open_stream());
  EXPECT_FALSE(c->submit_request(f, false).has_value());
  pump(*c, server);
  server.respond(*a, {{":status", "204"}}, "", false);
  pump(*c, server);
  EXPECT_EQ(rec.st[*a].status, 204);
  EXPECT_TRUE(rec.st[*a].closed);
  EXPECT_TRUE(c->can_open_stream());
  EXPECT_TRUE(c->submit_request(f, false).has_value());
}

TEST(H2Client, GoawayMarksLaterStreamsUnprocessed) {
  Rec rec;
  auto c = make_client(rec);
  Peer server(true);
  pump(*c, server);
  const Pairs get = simple_get(0);
  const auto f = fields_of(get);
  auto a = c->submit_request(f, false);
  auto b = c->submit_request(f, false);
  auto d = c->submit_request(f, false);
  pump(*c, server);
  // The server processed only the first stream.
  nghttp2_submit_goaway(server.ng, NGHTTP2_FLAG_NONE, *a, NGHTTP2_NO_ERROR, nullptr, 0);
  server.respond(*a, {{":status", "200"}}, "first", false);
  pump(*c, server);
  EXPECT_EQ(rec.goaways, 1);
  EXPECT_EQ(rec.goaway_last, *a);
  EXPECT_EQ(c->goaway_last_stream_id(), *a);
  EXPECT_TRUE(c->goaway_received());
  EXPECT_FALSE(c->can_open_stream());
  EXPECT_FALSE(c->submit_request(f, false).has_value());
  EXPECT_EQ(rec.st[*a].body, "first");
  EXPECT_FALSE(rec.st[*a].close.unprocessed);
  for (int32_t id : {*b, *d}) {
    EXPECT_TRUE(rec.st[id].closed) << id;
    EXPECT_TRUE(rec.st[id].close.unprocessed) << id;
  }
  EXPECT_TRUE(c->done());
}

TEST(H2Client, RequestNotSentBeforeGracefulGoawayIsUnprocessed) {
  // A graceful shutdown's first GOAWAY carries last-stream-id 2^31-1 (gRPC, nghttpx). A request
  // submitted but not yet written when it arrives is never sent: nghttp2 closes it with
  // REFUSED_STREAM, and it must count as unprocessed (retriable whatever the method), although
  // its id is below the GOAWAY's. Seen as a rare "upstream reset" in the GOAWAY integration test.
  Rec rec;
  auto c = make_client(rec);
  Peer server(true);
  pump(*c, server);
  const Pairs get = simple_get(0);
  const auto f = fields_of(get);  // views into `get`, which must outlive them
  auto a = c->submit_request(f, true);
  ASSERT_TRUE(a.has_value());
  nghttp2_submit_goaway(server.ng, NGHTTP2_FLAG_NONE, (1u << 31) - 1, NGHTTP2_NO_ERROR, nullptr, 0);
  (void)c->feed(bytes(server.take_output()));  // the GOAWAY arrives before the request went out
  pump(*c, server);
  EXPECT_TRUE(c->goaway_received());
  EXPECT_TRUE(rec.st[*a].closed);
  EXPECT_FALSE(rec.st[*a].close.reset_by_peer);
  EXPECT_EQ(rec.st[*a].close.error_code, kRefusedStream);
  EXPECT_TRUE(rec.st[*a].close.unprocessed);
  EXPECT_EQ(server.streams.count(*a), 0u);  // the server never saw it
}

TEST(H2Client, RefusedStreamIsRetryable) {
  Rec rec;
  auto c = make_client(rec);
  Peer server(true);
  pump(*c, server);
  auto a = c->submit_request(fields_of(simple_get(0)), false);
  pump(*c, server);
  nghttp2_submit_rst_stream(server.ng, NGHTTP2_FLAG_NONE, *a, NGHTTP2_REFUSED_STREAM);
  pump(*c, server);
  EXPECT_TRUE(rec.st[*a].closed);
  EXPECT_TRUE(rec.st[*a].close.reset_by_peer);
  EXPECT_TRUE(rec.st[*a].close.unprocessed);
  EXPECT_EQ(rec.st[*a].close.error_code, kRefusedStream);
}

TEST(H2Client, ResponseFlowControlAndInformational) {
  Rec rec;
  rec.auto_consume = false;
  Limits lim;
  lim.initial_stream_window = 20000;
  auto c = make_client(rec, lim);
  Peer server(true);
  pump(*c, server);
  auto a = c->submit_request(fields_of(simple_get(0)), false);
  pump(*c, server);
  const Pairs cont = {{":status", "100"}};
  std::vector<nghttp2_nv> nv;
  for (const auto& [n, v] : cont) {
    nv.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(n.data())),
                  reinterpret_cast<uint8_t*>(const_cast<char*>(v.data())), n.size(), v.size(), 0});
  }
  nghttp2_submit_headers(server.ng, NGHTTP2_FLAG_NONE, *a, nullptr, nv.data(), nv.size(), nullptr);
  const std::string body(100000, 'r');
  server.respond(*a, {{":status", "200"}, {"content-length", "100000"}}, body, false);
  pump(*c, server);
  RecStream& r = rec.st[*a];
  EXPECT_EQ(r.informational, 1);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_length, 100000);
  EXPECT_EQ(r.body.size(), 20000u);
  size_t consumed = 0;
  for (int i = 0; i < 100 && !r.ended; ++i) {
    c->consume(*a, r.body.size() - consumed);
    consumed = r.body.size();
    pump(*c, server);
  }
  EXPECT_EQ(r.body, body);
  EXPECT_TRUE(r.closed);
}

TEST(H2Client, RequestBodyDeferred) {
  Rec rec;
  auto c = make_client(rec);
  Peer server(true);
  server.auto_respond = true;
  server.respond_prefix = "";
  pump(*c, server);
  auto a = c->submit_request(fields_of(post()), true);
  pump(*c, server);
  EXPECT_TRUE(server.streams.count(*a) == 1 && !server.streams[*a].ended);
  rec.st[*a].send = "chunk1";
  c->resume(*a);
  pump(*c, server);
  EXPECT_EQ(server.streams[*a].body, "chunk1");
  rec.st[*a].send += "chunk2";
  rec.st[*a].send_done = true;
  c->resume(*a);
  pump(*c, server);
  EXPECT_EQ(rec.st[*a].body, "chunk1chunk2");
  EXPECT_TRUE(rec.st[*a].closed);
}

TEST(H2Client, OversizedResponseHeadReset) {
  Rec rec;
  Limits lim;
  lim.max_header_list_size = 2048;
  auto c = make_client(rec, lim);
  Peer server(true);
  pump(*c, server);
  auto a = c->submit_request(fields_of(simple_get(0)), false);
  pump(*c, server);
  server.respond(*a, {{":status", "200"}, {"x-big", std::string(4000, 'b')}}, "", false);
  pump(*c, server);
  EXPECT_EQ(rec.st[*a].status, 0);
  EXPECT_TRUE(rec.st[*a].closed);
  EXPECT_EQ(rec.st[*a].close.error_code, kEnhanceYourCalm);
  EXPECT_EQ(c->counters().header_list_too_large, 1u);
}

TEST(H2Client, ResponseFieldsWithBadBytesAreRefused) {
  // nghttp2 runs with HTTP messaging off: these byte checks are the session's own.
  // (An upper-case name cannot be sent from here: nghttp2_submit_response lower-cases names; the
  // request side's raw frames cover it.)
  const std::vector<Pairs> bad = {
      {{":status", "200"}, {"x-a", " padded"}},
      {{":status", "200"}, {"x-a", "trailing\t"}},
      {{":status", "200"}, {"x-a", "a\rb"}},
      {{":status", "200"}, {"x-a", std::string("a\0b", 3)}},
      {{":status", "200"}, {"bad name", "1"}},
  };
  Rec rec;
  auto c = make_client(rec);
  Peer server(true);
  pump(*c, server);
  for (const Pairs& p : bad) {
    auto a = c->submit_request(fields_of(simple_get(0)), false);
    ASSERT_TRUE(a.has_value());
    pump(*c, server);
    server.respond(*a, p, "", false);
    pump(*c, server);
    EXPECT_EQ(rec.st[*a].status, 0) << p[1].first;
    EXPECT_TRUE(rec.st[*a].closed) << p[1].first;
    EXPECT_EQ(rec.st[*a].close.error_code, kProtocolError) << p[1].first;
  }
  EXPECT_EQ(c->counters().invalid_headers, bad.size());
}

// Response rules the session checks itself (nghttp2 runs with HTTP messaging off): no 101, an
// interim response neither ends the stream nor has a content-length, no DATA before the final
// head, the body adds up to content-length (none after HEAD, 204, 304), trailers end the stream.
TEST(H2Client, MalformedResponsesAreReset) {
  Rec rec;
  auto c = make_client(rec);
  Peer server(true);
  pump(*c, server);
  auto nv_of = [](const Pairs& p) {
    std::vector<nghttp2_nv> nv;
    for (const auto& [n, v] : p) {
      nv.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(n.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(v.data())), n.size(), v.size(),
                    0});
    }
    return nv;
  };
  auto head = [&](int32_t id, const Pairs& p, bool end) {
    auto nv = nv_of(p);
    nghttp2_submit_headers(server.ng, end ? NGHTTP2_FLAG_END_STREAM : NGHTTP2_FLAG_NONE, id,
                           nullptr, nv.data(), nv.size(), nullptr);
  };
  auto start = [&](std::string_view method = "GET") {
    const Pairs get = simple_get(0);  // the fields below are views into it
    std::vector<Field> f = fields_of(get);
    f[0].value = method;
    auto id = c->submit_request(f, false);
    EXPECT_TRUE(id.has_value());
    pump(*c, server);
    return *id;
  };
  auto refused = [&](int32_t id) {
    pump(*c, server);
    const RecStream& r = rec.st[id];
    return r.closed && !r.ended && r.close.error_code == kProtocolError;
  };
  int32_t id = start();
  head(id, {{":status", "101"}}, false);
  EXPECT_TRUE(refused(id));
  EXPECT_EQ(rec.st[id].status, 0);
  id = start();
  head(id, {{":status", "103"}}, true);
  EXPECT_TRUE(refused(id));
  id = start();
  head(id, {{":status", "100"}, {"content-length", "0"}}, false);
  EXPECT_TRUE(refused(id));
  EXPECT_EQ(rec.st[id].informational, 0);
  id = start();  // DATA after an interim head only
  head(id, {{":status", "100"}}, false);
  server.respond(id, {}, "", false);
  {
    static const std::string kBody = "early";
    nghttp2_data_provider prd{};
    prd.read_callback = [](nghttp2_session*, int32_t, uint8_t* buf, size_t, uint32_t* flags,
                           nghttp2_data_source*, void*) -> ssize_t {
      std::memcpy(buf, kBody.data(), kBody.size());
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      return static_cast<ssize_t>(kBody.size());
    };
    nghttp2_submit_data(server.ng, NGHTTP2_FLAG_END_STREAM, id, &prd);
  }
  EXPECT_TRUE(refused(id));
  EXPECT_EQ(rec.st[id].informational, 1);
  EXPECT_TRUE(rec.st[id].body.empty());
  EXPECT_EQ(c->counters().invalid_headers, 4u);
  id = start();  // short body
  server.respond(id, {{":status", "200"}, {"content-length", "5"}}, "abc", false);
  EXPECT_TRUE(refused(id));
  EXPECT_EQ(rec.st[id].body, "abc");
  id = start();  // long body: the extra bytes are not delivered
  server.respond(id, {{":status", "200"}, {"content-length", "2"}}, "abc", false);
  EXPECT_TRUE(refused(id));
  EXPECT_TRUE(rec.st[id].body.empty());
  id = start();  // a 204 promising a body
  server.respond(id, {{":status", "204"}, {"content-length", "5"}}, "", false);
  EXPECT_TRUE(refused(id));
  id = start();  // a body after a 304
  server.respond(id, {{":status", "304"}}, "abc", false);
  EXPECT_TRUE(refused(id));
  id = start();  // trailers that do not end the stream
  head(id, {{":status", "200"}}, false);
  head(id, {{"x-t", "1"}}, false);
  EXPECT_TRUE(refused(id));
  EXPECT_TRUE(rec.st[id].trailers.empty());
  EXPECT_EQ(c->counters().body_length_mismatch, 3u);
  EXPECT_EQ(c->counters().invalid_headers, 6u);
  // Fine: HEAD and 304 with a content-length and no body, a 204 with content-length 0, an exact
  // body, an interim head before the final one.
  const int32_t h = start("HEAD");
  server.respond(h, {{":status", "200"}, {"content-length", "100"}}, "", false);
  const int32_t n = start();
  server.respond(n, {{":status", "304"}, {"content-length", "100"}}, "", false);
  const int32_t z = start();
  server.respond(z, {{":status", "204"}, {"content-length", "0"}}, "", false);
  const int32_t e = start();
  head(e, {{":status", "103"}}, false);
  server.respond(e, {{":status", "200"}, {"content-length", "3"}}, "abc", false);
  pump(*c, server);
  for (int32_t ok : {h, n, z, e}) {
    EXPECT_TRUE(rec.st[ok].ended) << ok;
    EXPECT_EQ(rec.st[ok].close.error_code, kNoError) << ok;
  }
  EXPECT_EQ(rec.st[e].body, "abc");
  EXPECT_EQ(rec.st[e].informational, 1);
  EXPECT_EQ(c->counters().body_length_mismatch, 3u);
  EXPECT_EQ(c->counters().invalid_headers, 6u);
}

// ---------------------------------------------------------------------------------------------
// Field validation

TEST(H2Fields, LowerCopyEveryByte) {
  // All 256 byte values at every offset of a 8-byte step and of the tail: only A-Z change.
  std::string in;
  for (int i = 0; i < 256; ++i) in.push_back(static_cast<char>(i));
  for (size_t shift = 0; shift < 9; ++shift) {
    const std::string src = in.substr(shift) + in.substr(0, shift);
    std::string out(src.size(), '\0');
    lower_copy(src.data(), src.size(), out.data());
    for (size_t i = 0; i < src.size(); ++i) {
      const auto c = static_cast<unsigned char>(src[i]);
      const auto want = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
      ASSERT_EQ(out[i], want) << "byte " << int(c) << " shift " << shift;
    }
  }
}

TEST(H2Fields, LowerCopyEveryLengthInPlaceToo) {
  // Lengths 0..40 cover the byte loop (<4), the two half words (4..7), whole words and the
  // overlapping last word; the bytes around the output stay untouched; in place works too.
  const std::string pattern = "Content-TYPE:X-Amzn-Trace-ID@[Z]`a{z}AZaz09-_~\x7f\x80\xc1";
  for (size_t n = 0; n <= 40; ++n) {
    const std::string src = pattern.substr(0, n);
    std::string want = src;
    for (char& c : want) c = c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c;
    std::string out(n + 2, '#');
    lower_copy(src.data(), n, out.data() + 1);
    EXPECT_EQ(out, "#" + want + "#") << "length " << n;
    std::string same = src;
    lower_copy(same.data(), n, same.data());
    EXPECT_EQ(same, want) << "in place, length " << n;
  }
}

TEST(H2Fields, ListKeepsViewsAcrossGrowthCopyAndMove) {
  FieldList l;
  const std::string long_value(3000, 'v');  // past the first 512-byte buffer: a re-base
  l.add("Content-Type", "text/plain");
  for (int i = 0; i < 40; ++i) l.add_lower("x-n" + std::to_string(i), std::to_string(i));
  l.add("X-Big", long_value);
  ASSERT_EQ(l.size(), 42u);
  EXPECT_EQ(l.fields()[0].name, "content-type");
  EXPECT_EQ(l.fields()[0].value, "text/plain");
  EXPECT_EQ(l.fields()[40].name, "x-n39");
  EXPECT_EQ(l.fields()[41].name, "x-big");
  EXPECT_EQ(l.get("x-big"), long_value);
  EXPECT_EQ(l.get("x-n7"), "7");
  EXPECT_FALSE(l.get("X-Big").has_value());  // lookups take lower-case names

  FieldList copy = l;
  l.clear();
  l.add("a", "b");
  ASSERT_EQ(copy.size(), 42u);
  EXPECT_EQ(copy.get("content-type"), "text/plain");
  EXPECT_EQ(copy.fields()[41].value, long_value);
  FieldList moved = std::move(copy);
  EXPECT_EQ(moved.get("x-n0"), "0");
  copy = moved;  // assignment into a moved-from list
  EXPECT_EQ(copy.size(), 42u);
  EXPECT_EQ(l.size(), 1u);
  EXPECT_EQ(l.fields()[0].value, "b");
}

TEST(H2Fields, ValidateRequest) {
  auto v = [](const Pairs& p) { return validate_request(fields_of(p)); };
  EXPECT_EQ(v(simple_get(0)), FieldError::kNone);
  EXPECT_EQ(v({{":method", "CONNECT"}, {":authority", "h:443"}}), FieldError::kNone);
  EXPECT_EQ(v({{":method", "CONNECT"}, {":authority", "h:443"}, {":path", "/"}}),
            FieldError::kMissingPseudo);
  EXPECT_EQ(v({{":method", "OPTIONS"}, {":scheme", "http"}, {":authority", "h"}, {":path", "*"}}),
            FieldError::kNone);
  EXPECT_EQ(v({{":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {"host", "h"}}),
            FieldError::kNone);
  EXPECT_EQ(v({{":method", "GET"}, {":scheme", "http"}, {":path", "/"}}),
            FieldError::kBadAuthority);
  // host[:port] only: brackets around an IP-literal, one colon before a port of digits.
  for (const char* a : {"[eu.orders.internal", "[::1]x", "a]b", "::1", "h:8x", "[]"}) {
    EXPECT_EQ(v({{":method", "GET"}, {":scheme", "http"}, {":authority", a}, {":path", "/"}}),
              FieldError::kBadAuthority)
        << a;
    EXPECT_EQ(v({{":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {"host", a}}),
              FieldError::kBadAuthority)
        << a;
  }
  EXPECT_EQ(v({{":method", "GET"}, {":scheme", "http"}, {":authority", "[::1]:8443"},
               {":path", "/"}}),
            FieldError::kNone);
  // A :path's bytes are those an HTTP/1.1 request-target may have: no space, control byte or
  // raw non-ASCII byte (the HTTP/1.1 parser answers those with 400; found by translate_fuzz).
  for (const char* p : {"/caf\xc3\xa9", "/a b", "/\x80", "/\xff"}) {
    EXPECT_EQ(v({{":method", "GET"}, {":scheme", "http"}, {":authority", "h"}, {":path", p}}),
              FieldError::kBadPath)
        << p;
  }
  for (const char* p : {"/a\x7f", "/a\tb"}) {  // refused as field values already
    EXPECT_NE(v({{":method", "GET"}, {":scheme", "http"}, {":authority", "h"}, {":path", p}}),
              FieldError::kNone)
        << p;
  }
  EXPECT_EQ(v({{":method", "GET"}, {":scheme", "http"}, {":authority", "h"},
               {":path", "/caf%C3%A9?q=\"x\"&r={}|^`"}}),
            FieldError::kNone);
  EXPECT_EQ(v({{":method", "GET"}, {":method", "GET"}, {":scheme", "http"}, {":path", "/"}}),
            FieldError::kDuplicatePseudo);
  EXPECT_EQ(v({{":method", "GET"}, {":status", "200"}}), FieldError::kUnknownPseudo);
  Pairs te = simple_get(0);
  te.emplace_back("te", "trailers");
  EXPECT_EQ(v(te), FieldError::kNone);
  te.back().second = "trailers, gzip";
  EXPECT_EQ(v(te), FieldError::kBadTe);
  Pairs cl = simple_get(0);
  cl.emplace_back("content-length", "12x");
  EXPECT_EQ(v(cl), FieldError::kBadContentLength);
  for (const char* n :
       {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"}) {
    Pairs p = simple_get(0);
    p.emplace_back(n, "x");
    EXPECT_EQ(v(p), FieldError::kConnectionSpecific) << n;
  }
  Pairs sp = simple_get(0);
  sp.emplace_back("x", std::string("a\r\nb"));
  EXPECT_EQ(v(sp), FieldError::kBadValue);
  EXPECT_EQ(validate_response(fields_of({{":status", "200"}, {"a", "b"}}), false),
            FieldError::kNone);
  EXPECT_EQ(validate_response(fields_of({{"a", "b"}, {":status", "200"}}), false),
            FieldError::kPseudoAfterRegular);
  EXPECT_EQ(validate_response(fields_of({{":status", "200"}}), true), FieldError::kUnknownPseudo);
}

// ---------------------------------------------------------------------------------------------
// Translation

http::RequestHead parse_h1(std::string_view raw) {
  http::HeadParser p;
  http::RequestHead h;
  EXPECT_EQ(p.parse_request(raw, &h), http::ParseResult::kDone) << http::error_reason(p.error());
  return h;
}

TEST(H2Translate, H1RequestToH2) {
  static const std::string raw =
      "POST /up?x=1 HTTP/1.1\r\nHost: Example.com\r\nConnection: keep-alive, X-Hop\r\n"
      "X-Hop: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers, deflate\r\nTransfer-Encoding: chunked\r\n"
      "Upgrade: foo\r\nProxy-Connection: x\r\nX-Forwarded-For: 1.2.3.4\r\nAccept: */*\r\n\r\n";
  const http::RequestHead h = parse_h1(raw);
  FieldList out;
  h1_request_to_h2(h, "http", &out, kind_bit(http::HeaderKind::kXForwardedFor));
  const Pairs p = to_pairs(out.fields());
  const Pairs want = {{":method", "POST"},  {":scheme", "http"}, {":authority", "Example.com"},
                      {":path", "/up?x=1"}, {"te", "trailers"},  {"accept", "*/*"}};
  EXPECT_EQ(p, want);
  EXPECT_EQ(validate_request(out.fields()), FieldError::kNone);
  // TE without trailers is dropped; CONNECT carries :authority only.
  http::RequestHead c = parse_h1("GET / HTTP/1.1\r\nHost: h:443\r\nTE: gzip\r\n\r\n");
  c.method = "CONNECT";  // the h1 parser does not take CONNECT; the translation still knows it
  c.target = "h:443";
  FieldList co;
  h1_request_to_h2(c, "http", &co);
  const Pairs cw = {{":method", "CONNECT"}, {":authority", "h:443"}};
  EXPECT_EQ(to_pairs(co.fields()), cw);
}

TEST(H2Translate, OwnHeadGivesWhatParsingItGives) {
  // Heads of the shape the forwarding code writes: the short cut must match parse + translate.
  const std::vector<std::string> heads = {
      "GET / HTTP/1.1\r\nhost: a.example\r\nx-forwarded-for: 10.0.0.1\r\n"
      "x-forwarded-proto: http\r\n\r\n",
      "POST /stage/svc?q=1&r=%20 HTTP/1.1\r\nhost: b:8443\r\nContent-Type: application/grpc\r\n"
      "Accept: */*\r\nCookie: a=1\r\nCookie: b=2\r\nx-request-id: 7f\r\n"
      "transfer-encoding: chunked\r\nx-amz-date: 20261206T000000Z\r\n"
      "authorization: AWS4-HMAC-SHA256 Credential=x, SignedHeaders=host, Signature=ab\r\n\r\n",
      "PUT /p HTTP/1.1\r\nhost: c\r\nX-Empty:\r\nx-tabbed:\t v \t\r\ncontent-length: 3\r\n\r\n",
      "OPTIONS * HTTP/1.1\r\nhost: d\r\n\r\n",
  };
  for (const std::string& raw : heads) {
    SCOPED_TRACE(raw);
    const http::RequestHead h = parse_h1(raw);
    FieldList want;
    h1_request_to_h2(h, "https", &want);
    std::string text = raw;
    std::vector<Field> got{{"stale", "entry"}};  // cleared first
    ASSERT_TRUE(own_h1_request_to_h2(&text, "https", &got));
    EXPECT_EQ(to_pairs(got), to_pairs(want.fields()));
    // Views into the head, whose names are now lower case: the same request for HTTP/1.1.
    const char* const begin = text.data();
    for (const Field& f : got) {
      if (f.name[0] == ':' || f.name == "te") continue;
      EXPECT_TRUE(f.name.data() >= begin && f.name.data() < begin + text.size()) << f.name;
      EXPECT_TRUE(f.value.data() >= begin && f.value.data() < begin + text.size()) << f.name;
    }
    const http::RequestHead again = parse_h1(text);
    EXPECT_EQ(again.header_count, parse_h1(raw).header_count);
    std::string lowered = raw;
    for (size_t i = 0; i < lowered.size(); ++i) {
      if (text[i] != lowered[i]) {
        EXPECT_EQ(text[i], std::tolower(static_cast<unsigned char>(lowered[i]))) << i;
      }
    }
  }
  // Not of the shape: no request line end, a line without a colon, no empty line, no target.
  std::vector<Field> f;
  for (std::string bad : {"GET / HTTP/1.1", "GET / HTTP/1.1\r\nhost a\r\n\r\n",
                          "GET / HTTP/1.1\r\nhost: a\r\n", "GET HTTP/1.1\r\nhost: a\r\n\r\n"}) {
    EXPECT_FALSE(own_h1_request_to_h2(&bad, "http", &f)) << bad;
  }
}

TEST(H2Translate, H2RequestToH1) {
  const Pairs hdrs = {
      {"cookie", "a=1"}, {"accept", "*/*"}, {"cookie", "b=2"}, {"te", "trailers"}, {"host", "svc"}};
  const auto hf = fields_of(hdrs);
  Request rq;
  rq.method = "POST";
  rq.scheme = "https";
  rq.authority = "svc";
  rq.path = "/p?q=1";
  rq.headers = hf;
  rq.end_stream = false;
  // With content-length: no chunked framing. End of stream on the head: no body at all.
  EXPECT_EQ(h1_framing(false, -1), H1Framing::kChunked);
  EXPECT_EQ(h1_framing(false, 10), H1Framing::kContentLength);
  EXPECT_EQ(h1_framing(true, -1), H1Framing::kNone);

  http::RequestHead head;
  std::string scratch;
  ASSERT_TRUE(to_h1_request_head(rq, &head, &scratch));
  EXPECT_EQ(head.method, "POST");
  EXPECT_EQ(head.target, "/p?q=1");
  EXPECT_EQ(head.path, "/p");
  EXPECT_EQ(head.authority, "svc");
  EXPECT_EQ(head.body, http::BodyKind::kChunked);
  ASSERT_EQ(head.header_count, 4u);  // the two cookies became one
  EXPECT_EQ(head.headers[0].value, "a=1; b=2");
  EXPECT_TRUE(head.find(http::HeaderKind::kTe)->hop);
  EXPECT_EQ(head.find(http::HeaderKind::kHost)->value, "svc");

  // An empty crumb adds nothing: no dangling "; " (found by translate_fuzz).
  const Pairs crumbs = {{"cookie", ""}, {"cookie", "a=1"}, {"cookie", ""}, {"cookie", "b=2"},
                        {"cookie", ""}};
  const auto cf = fields_of(crumbs);
  rq.headers = cf;
  ASSERT_TRUE(to_h1_request_head(rq, &head, &scratch));
  ASSERT_EQ(head.header_count, 1u);
  EXPECT_EQ(head.headers[0].value, "a=1; b=2");
}

TEST(H2Translate, Responses) {
  const Pairs ph = {{"content-type", "text/plain"}, {"content-length", "5"}};
  const auto f = fields_of(ph);
  std::string out;
  append_h1_response_head(404, f, H1Framing::kContentLength, &out);
  EXPECT_EQ(out, "HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n");

  static const std::string raw =
      "HTTP/1.1 200 OK\r\nContent-Type: a/b\r\nTransfer-Encoding: chunked\r\n"
      "Connection: close\r\nTrailer: grpc-status\r\nX-Y: z\r\n\r\n";
  http::HeadParser p;
  http::ResponseHead rs;
  ASSERT_EQ(p.parse_response(raw, false, &rs), http::ParseResult::kDone);
  std::vector<Field> h2{{"stale", "x"}};
  h1_response_to_h2(rs, &h2);
  const Pairs want = {{"Content-Type", "a/b"}, {"X-Y", "z"}};  // views: the peer's case
  EXPECT_EQ(to_pairs(h2), want);
  for (const Field& f : h2) {
    EXPECT_TRUE(f.name.data() >= raw.data() && f.name.data() < raw.data() + raw.size());
  }
  // What a session sends for them: lower-case names, connection-specific ones of any case left
  // out (sendable), te only as trailers.
  h2.push_back({"Keep-Alive", "1"});
  h2.push_back({"TE", "gzip"});
  h2.push_back({"Te", "trailers"});
  Rec rec;
  auto s = make_server(rec);
  Peer client(false);
  const int32_t id = client.request(kGet);
  pump(*s, client);
  ASSERT_TRUE(s->submit_response(id, 200, h2, false).has_value());
  pump(*s, client);
  EXPECT_EQ(client.streams[id].head,
            (Pairs{{":status", "200"}, {"content-type", "a/b"}, {"x-y", "z"}, {"te", "trailers"}}));
}

TEST(H2Translate, Trailers) {
  // Through the real chunked decoder.
  std::string body = "3\r\nabc\r\n0\r\nGrpc-Status: 0\r\nContent-Length: 3\r\nX-Sum: 9\r\n\r\n";
  http::ChunkedDecoder dec;
  auto r = dec.decode(body.data(), body.size());
  ASSERT_EQ(r.status, http::ChunkedDecoder::Status::kDone);
  FieldList t;
  h1_trailers_to_h2(dec.trailers(), &t);
  const Pairs want = {{"grpc-status", "0"}, {"x-sum", "9"}};
  EXPECT_EQ(to_pairs(t.fields()), want);
  std::string last;
  append_h1_last_chunk(t.fields(), &last);
  EXPECT_EQ(last, "0\r\ngrpc-status: 0\r\nx-sum: 9\r\n\r\n");
  // And it decodes again.
  std::string again = "1\r\nx\r\n" + last;
  http::ChunkedDecoder dec2;
  EXPECT_EQ(dec2.decode(again.data(), again.size()).status, http::ChunkedDecoder::Status::kDone);
}

// ---------------------------------------------------------------------------------------------
// gRPC

TEST(H2Grpc, Timeout) {
  using namespace std::chrono;
  EXPECT_EQ(*parse_grpc_timeout("100m"), milliseconds(100));
  EXPECT_EQ(*parse_grpc_timeout("5S"), seconds(5));
  EXPECT_EQ(*parse_grpc_timeout("2M"), minutes(2));
  EXPECT_EQ(*parse_grpc_timeout("1H"), hours(1));
  EXPECT_EQ(*parse_grpc_timeout("7u"), microseconds(7));
  EXPECT_EQ(*parse_grpc_timeout("9n"), nanoseconds(9));
  EXPECT_EQ(*parse_grpc_timeout("99999999n"), nanoseconds(99999999));
  EXPECT_EQ(*parse_grpc_timeout("99999999H"), nanoseconds::max());
  EXPECT_FALSE(parse_grpc_timeout("123456789S").has_value());  // 9 digits
  EXPECT_FALSE(parse_grpc_timeout("S").has_value());
  EXPECT_FALSE(parse_grpc_timeout("10s").has_value());
  EXPECT_FALSE(parse_grpc_timeout("1.5S").has_value());
  EXPECT_FALSE(parse_grpc_timeout("-1S").has_value());
  EXPECT_EQ(format_grpc_timeout(milliseconds(250)), "250000u");
  EXPECT_EQ(*parse_grpc_timeout(format_grpc_timeout(seconds(1000))), seconds(1000));
  EXPECT_EQ(format_grpc_timeout(hours(200000)), "12000000M");
  EXPECT_EQ(format_grpc_timeout(hours(2000000)), "2000000H");
}

TEST(H2Grpc, DetectionAndErrors) {
  EXPECT_TRUE(is_grpc_content_type("application/grpc"));
  EXPECT_TRUE(is_grpc_content_type("application/grpc+proto"));
  EXPECT_TRUE(is_grpc_content_type("application/grpc;charset=utf-8"));
  EXPECT_TRUE(is_grpc_content_type("Application/GRPC"));
  EXPECT_FALSE(is_grpc_content_type("application/grpc-web"));
  EXPECT_FALSE(is_grpc_content_type("application/json"));
  EXPECT_TRUE(is_grpc_request(fields_of({{"content-type", "application/grpc"}})));
  EXPECT_FALSE(is_grpc_request(fields_of({{"accept", "application/grpc"}})));

  EXPECT_EQ(grpc_percent_encode("a b%c\n\xc3\xa9"), "a b%25c%0A%C3%A9");
  EXPECT_EQ(grpc_percent_decode("a b%25c%0A%C3%A9"), "a b%c\n\xc3\xa9");
  EXPECT_EQ(grpc_percent_decode("bad%zz%4"), "bad%zz%4");

  FieldList f;
  grpc_error_fields(GrpcStatus::kUnavailable, "upstream down: 100%", &f);
  const Pairs want = {{"content-type", "application/grpc"},
                      {"grpc-status", "14"},
                      {"grpc-message", "upstream down: 100%25"}};
  EXPECT_EQ(to_pairs(f.fields()), want);
  EXPECT_EQ(grpc_status_for_http(503), GrpcStatus::kUnavailable);
  EXPECT_EQ(grpc_status_for_http(404), GrpcStatus::kUnimplemented);
  EXPECT_EQ(grpc_status_for_http(418), GrpcStatus::kUnknown);

  // A trailers-only response through the real sessions.
  Rec rec;
  auto s = make_server(rec);
  Peer client(false);
  const int32_t id = client.request({{":method", "POST"},
                                     {":scheme", "http"},
                                     {":authority", "svc"},
                                     {":path", "/pkg.Svc/M"},
                                     {"content-type", "application/grpc"},
                                     {"te", "trailers"},
                                     {"grpc-timeout", "1S"}});
  pump(*s, client);
  ASSERT_EQ(rec.requests, 1);
  EXPECT_TRUE(is_grpc_request(fields_of(rec.st[id].headers)));
  EXPECT_EQ(*parse_grpc_timeout(find(rec.st[id].headers, "grpc-timeout")), std::chrono::seconds(1));
  FieldList e;
  grpc_error_fields(GrpcStatus::kDeadlineExceeded, "deadline", &e);
  ASSERT_TRUE(s->submit_response(id, 200, e.fields(), false).has_value());
  pump(*s, client);
  EXPECT_EQ(find(client.streams[id].head, ":status"), "200");
  EXPECT_EQ(find(client.streams[id].head, "grpc-status"), "4");
  EXPECT_TRUE(client.streams[id].closed);
  EXPECT_EQ(client.streams[id].close_code, 0u);
}

}  // namespace
}  // namespace outrigger::h2

// ---------------------------------------------------------------------------------------------
// nghttp2's allocator: malloc/calloc/realloc/free semantics over operator new/delete

#if !defined(__SANITIZE_ADDRESS__)
TEST(H2Allocator, MallocCallocReallocFreeSemantics) {
  nghttp2_mem* m = outrigger::h2::allocator();
  ASSERT_NE(m, nullptr);
  auto* p = static_cast<unsigned char*>(m->malloc(30, m->mem_user_data));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 16, 0u);
  for (int i = 0; i < 30; ++i) p[i] = static_cast<unsigned char>(i);
  auto* q = static_cast<unsigned char*>(m->realloc(p, 1000, m->mem_user_data));
  ASSERT_NE(q, nullptr);
  for (int i = 0; i < 30; ++i) ASSERT_EQ(q[i], i);
  for (int i = 30; i < 1000; ++i) q[i] = static_cast<unsigned char>(i * 7);
  auto* big = static_cast<unsigned char*>(m->realloc(q, 100000, m->mem_user_data));
  ASSERT_NE(big, nullptr);
  for (int i = 30; i < 1000; ++i) ASSERT_EQ(big[i], static_cast<unsigned char>(i * 7));
  auto* small = static_cast<unsigned char*>(m->realloc(big, 10, m->mem_user_data));
  ASSERT_NE(small, nullptr);
  for (int i = 0; i < 10; ++i) ASSERT_EQ(small[i], i);
  m->free(small, m->mem_user_data);
  auto* z = static_cast<unsigned char*>(m->calloc(50, 8, m->mem_user_data));
  ASSERT_NE(z, nullptr);
  for (int i = 0; i < 400; ++i) ASSERT_EQ(z[i], 0);
  m->free(z, m->mem_user_data);
  EXPECT_EQ(m->calloc(SIZE_MAX / 2, 4, m->mem_user_data), nullptr);  // count * size overflows
  m->free(nullptr, m->mem_user_data);                                // free(NULL) semantics
  auto* r = m->realloc(nullptr, 64, m->mem_user_data);               // realloc(NULL, n) = malloc
  ASSERT_NE(r, nullptr);
  m->free(r, m->mem_user_data);
}
#endif
