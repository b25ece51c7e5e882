// libFuzzer target for the sans-IO HTTP/2 sessions (proxy/h2/session.h): our glue around
// nghttp2, on both sides. A downstream client controls every byte a ServerSession reads, an
// upstream server every byte a ClientSession reads, and the proxy's calls (responses, bodies,
// trailers, resets, drains) interleave with them. Built and run like h1_fuzz.cc
// (tests/CMakeLists.txt, run.sh); by hand:
//   tests/fuzz/run.sh build/release/tests/h2_session_fuzz 600 tests/fuzz/corpus/h2_session
//
// Input: one byte of set-up (bit 0: client side; bits 1-2: small limits so the abuse limits are
// reached; bit 3: the proxy takes header blocks with swap_header_block; bit 4: the server answers
// inside on_request), then operations until the input ends. The peer's frames are built by the
// harness from a type, flags, stream id and payload (HEADERS blocks from fields, HPACK-encoded
// here as literals, indexed or not), so the fuzzer need not learn frame lengths or HPACK; raw
// bytes can be fed too. The proxy's side: submit a response or request, queue body bytes, end
// the body (with or without trailers), resume, consume, reset, drain, terminate, move the clock.
//
// Besides memory errors and undefined behaviour (the sanitizers), the properties checked:
//  * per stream, events come in order: the head first (on_request, or on_informational* then
//    on_response), then DATA, trailers at most once, end-stream at most once and nothing after
//    it but the close, and on_stream_close exactly once, last;
//  * a client stream's events concern a stream it submitted; a server's on_request a new id;
//  * a request the server answers itself (on_local_answer: 400 or 431, a printable reason) is
//    a new id and gets no other event, not even a body read;
//  * a stream's DATA never exceeds the content-length it announced;
//  * open_streams() equals the streams told to the proxy and not yet closed;
//  * the output is the connection preface (the client's magic, then SETTINGS), then whole frames
//    (9-byte header and its length), never more than the output bound plus one frame at a time;
//    the server sends HEADERS only on client stream ids and never PUSH_PROMISE;
//  * once feed() fails, draining the output ends the connection: done(), nothing more to write.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/h2/session.h"
#include "tests/fuzz/fuzz.h"

namespace {
using namespace outrigger::h2;
using namespace std::literals;


int64_t g_now = 0;
int64_t fake_now() { return g_now; }

class Input {
 public:
  Input(const uint8_t* p, size_t n) : p_(p), n_(n) {}
  bool empty() const { return n_ == 0; }
  uint8_t u8() {
    if (n_ == 0) return 0;
    --n_;
    return *p_++;
  }
  uint32_t u16() { return static_cast<uint32_t>(u8()) << 8 | u8(); }
  std::string_view bytes(size_t k) {
    k = std::min(k, n_);
    std::string_view s(reinterpret_cast<const char*>(p_), k);
    p_ += k;
    n_ -= k;
    return s;
  }

 private:
  const uint8_t* p_;
  size_t n_;
};

// HPACK integer with an N-bit prefix (RFC 7541 5.1); `first` holds the representation's bits.
void hpack_int(std::string& out, uint8_t first, int prefix, size_t v) {
  const size_t max = (size_t{1} << prefix) - 1;
  if (v < max) {
    out += static_cast<char>(first | v);
    return;
  }
  out += static_cast<char>(first | max);
  v -= max;
  while (v >= 128) {
    out += static_cast<char>(0x80 | (v & 0x7f));
    v >>= 7;
  }
  out += static_cast<char>(v);
}

void hpack_string(std::string& out, std::string_view s) {
  hpack_int(out, 0, 7, s.size());  // no Huffman
  out += s;
}

// One field in a representation the input picks: indexed (static or dynamic table), literal
// with incremental indexing, without indexing, never indexed, or a table size update first.
void hpack_field(std::string& out, Input& in, std::string_view name, std::string_view value) {
  const uint8_t how = in.u8();
  switch (how % 6) {
    case 0:
      hpack_int(out, 0x80, 7, 1 + in.u8() % 80);  // an index, maybe past the table
      return;
    case 1:
      out += '\x40';
      break;
    case 2:
      out += '\x10';
      break;
    case 3:
      hpack_int(out, 0x20, 5, in.u16() % 8192);  // dynamic table size update
      out += '\x00';
      break;
    default:
      out += '\x00';
      break;
  }
  hpack_string(out, name);
  hpack_string(out, value);
}

// Field names the fuzzer picks from; arbitrary ones come from the input.
constexpr std::string_view kNames[] = {
    ":method",      ":scheme",     ":authority", ":path",       ":status",   "content-length",
    "te",           "connection",  "host",       "cookie",      "grpc-timeout", "content-type",
    "trailer",      "x-a",         ":protocol",  "upgrade",     "keep-alive", "transfer-encoding",
};
constexpr std::string_view kValues[] = {"GET", "POST", "HEAD", "CONNECT", "http", "https",
                                        "a.example:8080", "/", "/x?y", "200", "204", "100",
                                        "0", "5", "trailers", "", "[::1]:1"};

std::string_view pick_name(Input& in) {
  const uint8_t b = in.u8();
  if (b < 200) return kNames[b % std::size(kNames)];
  return in.bytes(in.u8() % 24);
}
std::string_view pick_value(Input& in) {
  const uint8_t b = in.u8();
  if (b < 200) return kValues[b % std::size(kValues)];
  return in.bytes(in.u8() % 48);
}

struct Fields {
  std::vector<std::string> text;  // owns what the views point to
  std::vector<Field> list;
  void add(std::string_view n, std::string_view v) {
    text.emplace_back(n);
    text.emplace_back(v);
  }
  std::span<const Field> done() {
    list.clear();
    for (size_t i = 0; i + 1 < text.size(); i += 2) list.push_back({text[i], text[i + 1]});
    return list;
  }
};

// A well-formed head first (request or response), then fields from the input.
void head_fields(Input& in, bool request, Fields& f) {
  const uint8_t shape = in.u8();
  if ((shape & 1) == 0) {
    if (request) {
      f.add(":method", (shape & 2) ? "POST" : "GET");
      f.add(":scheme", "http");
      f.add(":authority", "a.example");
      f.add(":path", "/");
    } else {
      f.add(":status", (shape & 2) ? "200" : (shape & 4) ? "100" : "204");
    }
  }
  const int extra = in.u8() % 8;
  for (int i = 0; i < extra; ++i) {
    const std::string_view n = pick_name(in);
    f.add(n, pick_value(in));
  }
}

struct StreamLog {
  bool opened = false;  // on_request / on_response / submitted
  bool answered = false;  // on_local_answer
  bool final_head = false;
  bool trailers = false;
  bool ended = false;
  bool closed = false;
  int64_t content_length = -1;
  uint64_t data = 0;
  uint64_t unconsumed = 0;
  // body we send
  std::string send;
  size_t sent = 0;
  bool send_done = false;
  bool trailers_later = false;
};

class Proxy final : public ServerEvents, public ClientEvents {
 public:
  explicit Proxy(bool client) : client_(client) {}

  void on_request(int32_t id, const Request& r) override {
    check(!client_);
    StreamLog& s = st[id];
    check(!s.opened && !s.answered && !s.closed);  // a new stream
    check(id % 2 == 1);
    s.opened = s.final_head = true;
    s.content_length = r.content_length;
    check(!r.method.empty());
    if (take_blocks) session->swap_header_block(&kept[id]);
    if (respond_inline) {
      (void)static_cast<ServerSession*>(session)->submit_response(id, 200, {}, true);
      s.send = "inline";
      s.send_done = true;
    }
  }
  void on_local_answer(int32_t id, int status, std::string_view reason,
                       std::span<const Field>) override {
    check(!client_);
    StreamLog& s = st[id];
    check(!s.opened && !s.answered && !s.closed);  // a new stream, and its only event
    check(id % 2 == 1);
    check(status == 400 || status == 431);
    check(!reason.empty());
    for (char c : reason) check(c >= 0x20 && c < 0x7f);
    s.answered = true;
  }
  void on_response(int32_t id, const Response& r) override {
    check(client_);
    auto it = st.find(id);
    check(it != st.end());
    StreamLog& s = it->second;
    check(s.opened && !s.final_head && !s.closed);
    check(r.status >= 200 && r.status <= 999);
    s.final_head = true;
    s.content_length = r.content_length;
    if (take_blocks) session->swap_header_block(&kept[id]);
  }
  void on_informational(int32_t id, const Response& r) override {
    check(client_);
    auto it = st.find(id);
    check(it != st.end());
    check(it->second.opened && !it->second.final_head && !it->second.closed);
    check(r.status >= 100 && r.status < 200);
  }
  void on_data(int32_t id, std::span<const uint8_t> d) override {
    StreamLog& s = live(id);
    check(s.final_head && !s.trailers && !s.ended);
    s.data += d.size();
    s.unconsumed += d.size();
    if (s.content_length >= 0) check(s.data <= static_cast<uint64_t>(s.content_length));
    if (auto_consume) {
      session->consume(id, d.size());
      s.unconsumed = 0;
    }
  }
  void on_trailers(int32_t id, std::span<const Field> t) override {
    StreamLog& s = live(id);
    check(s.final_head && !s.trailers && !s.ended);
    s.trailers = true;
    for (const Field& f : t) check(!f.name.empty() && f.name[0] != ':');
  }
  void on_end_stream(int32_t id) override {
    StreamLog& s = live(id);
    check(s.final_head && !s.ended);
    s.ended = true;
  }
  void on_stream_close(int32_t id, const CloseInfo&) override {
    StreamLog& s = live(id);
    s.closed = true;
    ++closes;
  }
  BodyRead on_body_read(int32_t id, std::span<uint8_t> out) override {
    auto it = st.find(id);
    check(it != st.end());  // only streams with a body we submitted
    StreamLog& s = it->second;
    check(!s.answered);  // the session sends its own answer's body
    check(!s.closed && s.sent <= s.send.size());
    const size_t n = std::min(out.size(), s.send.size() - s.sent);
    std::copy_n(s.send.data() + s.sent, n, out.data());
    s.sent += n;
    if (s.sent == s.send.size() && s.send_done) {
      return {n, s.trailers_later ? BodyRead::Status::kEndBeforeTrailers : BodyRead::Status::kEnd};
    }
    if (n == 0) return {0, BodyRead::Status::kDeferred};
    return {n, BodyRead::Status::kData};
  }
  void on_goaway(int32_t, uint32_t) override { ++goaways; }

  StreamLog& live(int32_t id) {
    auto it = st.find(id);
    check(it != st.end() && it->second.opened && !it->second.closed);
    return it->second;
  }
  size_t open_count() const {
    size_t n = 0;
    for (const auto& [id, s] : st) n += s.opened && !s.closed;
    return n;
  }
  // The n-th open stream (by id), or 0.
  int32_t nth_open(uint8_t n) const {
    std::vector<int32_t> ids;
    for (const auto& [id, s] : st) {
      if (s.opened && !s.closed) ids.push_back(id);
    }
    return ids.empty() ? 0 : ids[n % ids.size()];
  }

  bool client_;
  Session* session = nullptr;
  std::map<int32_t, StreamLog> st;
  std::map<int32_t, FieldList> kept;
  bool take_blocks = false;
  bool respond_inline = false;
  bool auto_consume = true;
  int closes = 0, goaways = 0;
};

// The session's output as the peer reads it: whole frames, parsed as they complete.
class Wire {
 public:
  explicit Wire(bool client) : client_(client) {}
  void take(std::span<const uint8_t> b) {
    buf_.append(reinterpret_cast<const char*>(b.data()), b.size());
    if (client_ && !preface_seen_) {
      constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
      if (buf_.size() < kPreface.size()) return;
      check(std::string_view(buf_).substr(0, kPreface.size()) == kPreface);
      buf_.erase(0, kPreface.size());
      preface_seen_ = true;
    }
    for (;;) {
      if (buf_.size() < 9) return;
      const auto* h = reinterpret_cast<const uint8_t*>(buf_.data());
      const size_t len = size_t{h[0]} << 16 | size_t{h[1]} << 8 | h[2];
      const uint8_t type = h[3];
      const uint32_t id = (uint32_t{h[5]} << 24 | uint32_t{h[6]} << 16 | uint32_t{h[7]} << 8 | h[8]) &
                          0x7fffffff;
      check(len <= 16384);  // nobody raised our peer's SETTINGS_MAX_FRAME_SIZE use
      if (buf_.size() < 9 + len) return;
      if (!first_frame_seen_) {  // the preface's SETTINGS first (RFC 9113 3.4)
        check(type == 0x4 && (h[4] & 1) == 0);
        first_frame_seen_ = true;
      }
      if (type == 0x1 && !client_) check(id % 2 == 1);
      if (!client_) check(type != 0x5);  // no server push
      if (type == 0x0 || type == 0x1 || type == 0x3) check(id != 0);
      if (type == 0x4 || type == 0x6 || type == 0x7) check(id == 0);
      buf_.erase(0, 9 + len);
    }
  }
  bool whole() const { return buf_.empty(); }

 private:
  bool client_;
  bool preface_seen_ = false;
  bool first_frame_seen_ = false;
  std::string buf_;
};

std::string frame(uint8_t type, uint8_t flags, uint32_t id, std::string_view payload) {
  std::string f;
  const size_t n = payload.size();
  f += static_cast<char>(n >> 16);
  f += static_cast<char>(n >> 8);
  f += static_cast<char>(n);
  f += static_cast<char>(type);
  f += static_cast<char>(flags);
  f += static_cast<char>((id >> 24) & 0x7f);
  f += static_cast<char>(id >> 16);
  f += static_cast<char>(id >> 8);
  f += static_cast<char>(id);
  f += payload;
  return f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  if (size < 1 || size > 16384) return 0;
  Input in(bytes, size);
  const uint8_t setup = in.u8();
  const bool client = (setup & 1) != 0;
  Limits limits;
  switch ((setup >> 1) & 3) {
    case 1:
      limits.max_concurrent_streams = 3;
      limits.max_header_list_size = 256;
      limits.max_continuations = 2;
      limits.max_header_block_bytes = 512;
      limits.max_rapid_resets = 3;
      limits.max_empty_frames = 2;
      limits.max_settings = 4;
      limits.max_outbound_ack = 4;
      break;
    case 2:
      limits.initial_stream_window = 100;
      limits.connection_window = 65535;
      limits.output_buffer_bytes = 64;
      break;
    default:
      break;
  }
  Proxy proxy(client);
  proxy.take_blocks = (setup & 8) != 0;
  proxy.respond_inline = (setup & 16) != 0;
  std::unique_ptr<Session> session;
  if (client) {
    auto s = ClientSession::create(&proxy, limits);
    check(s.has_value());
    session = std::move(*s);
  } else {
    auto s = ServerSession::create(&proxy, limits);
    check(s.has_value());
    session = std::move(*s);
  }
  g_now = 1'000'000;
  session->set_clock(fake_now);
  proxy.session = session.get();
  auto* server = client ? nullptr : static_cast<ServerSession*>(session.get());
  auto* cs = client ? static_cast<ClientSession*>(session.get()) : nullptr;
  Wire wire(client);
  bool failed = false;
  // The peer's preface: the client's magic (then a SETTINGS frame), or the server's SETTINGS.
  std::string first = client ? "" : "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  first += frame(0x4, 0, 0, {});

  auto feed = [&](std::string_view b) {
    if (b.empty()) return;
    auto r = session->feed({reinterpret_cast<const uint8_t*>(b.data()), b.size()});
    if (!r) failed = true;
  };
  auto drain = [&](size_t max) {
    auto out = session->pending_output();
    check(out.size() <= limits.output_buffer_bytes + 16384 + 9 + 17);
    const size_t n = std::min(max, out.size());
    wire.take(out.first(n));
    session->consume_output(n);
  };
  if ((setup & 32) == 0) feed(first);

  for (int step = 0; step < 2000 && !in.empty(); ++step) {
    const uint8_t op = in.u8();
    switch (op % 16) {
      case 0: {  // a frame of any type
        const uint8_t type = in.u8() % 12;
        const uint8_t flags = in.u8();
        const uint32_t id = in.u8();
        feed(frame(type, flags, id, in.bytes(in.u8())));
        break;
      }
      case 1:
      case 2: {  // HEADERS (+ CONTINUATION) from fields
        const uint8_t flags = in.u8();
        const uint32_t id = (in.u8() % 16) * 2 + 1;
        Fields f;
        head_fields(in, !client, f);
        std::string block;
        for (const Field& x : f.done()) hpack_field(block, in, x.name, x.value);
        const size_t cut = (flags & 0x20) ? in.u8() % (block.size() + 1) : block.size();
        const uint8_t hflags = (flags & 0x01) | (cut == block.size() ? 0x04 : 0);
        std::string wire_bytes = frame(0x1, hflags, id, std::string_view(block).substr(0, cut));
        if (cut < block.size()) {
          wire_bytes += frame(0x9, 0x04, id, std::string_view(block).substr(cut));
        }
        feed(wire_bytes);
        break;
      }
      case 3: {  // DATA
        const uint8_t flags = in.u8() & 0x09;
        const uint32_t id = (in.u8() % 16) * 2 + 1;
        feed(frame(0x0, flags, id, in.bytes(in.u8())));
        break;
      }
      case 4:  // raw bytes
        feed(in.bytes(in.u8()));
        break;
      case 5:
        drain(in.u8() < 128 ? SIZE_MAX : in.u16());
        break;
      case 6: {  // server: a response; client: a request
        Fields f;
        head_fields(in, client, f);
        const bool has_body = (in.u8() & 1) != 0;
        if (server) {
          const int32_t id = proxy.nth_open(in.u8());
          const int status = 100 + in.u16() % 900;
          (void)server->submit_response(id, status, f.done(), has_body);
        } else if (auto id = cs->submit_request(f.done(), has_body)) {
          StreamLog& s = proxy.st[*id];
          check(!s.opened);
          s.opened = true;
        }
        break;
      }
      case 7: {  // body bytes to send, maybe the end
        const int32_t id = proxy.nth_open(in.u8());
        if (id == 0) break;
        StreamLog& s = proxy.st[id];
        const uint8_t how = in.u8();
        if (!s.send_done) s.send.append(static_cast<size_t>(in.u16() % 40000), 'b');
        if (how & 1) {
          s.send_done = true;
          s.trailers_later = (how & 2) != 0;
        }
        session->resume(id);
        break;
      }
      case 8: {  // trailers
        const int32_t id = proxy.nth_open(in.u8());
        Fields f;
        const int n = in.u8() % 4;
        for (int i = 0; i < n; ++i) {
          const std::string_view name = pick_name(in);
          f.add(name, pick_value(in));
        }
        (void)session->submit_trailers(id, f.done());
        break;
      }
      case 9:
        session->reset_stream(proxy.nth_open(in.u8()), in.u8() % 14);
        break;
      case 10: {  // consume what was delivered (with auto-consume off)
        proxy.auto_consume = (in.u8() & 1) != 0;
        for (auto& [id, s] : proxy.st) {
          session->consume(id, s.unconsumed);
          s.unconsumed = 0;
        }
        break;
      }
      case 11:
        if (server) {
          if (in.u8() & 1) {
            server->begin_drain();
          } else {
            server->goaway(in.u8() % 14);
          }
        }
        break;
      case 12:
        if (in.u8() == 0xff) session->terminate(in.u8() % 14);
        break;
      case 13:
        g_now += in.u16();
        break;
      case 14: {  // RST_STREAM from the peer, many at once (rapid reset)
        const int n = 1 + in.u8() % 8;
        std::string b;
        for (int i = 0; i < n; ++i) b += frame(0x3, 0, (in.u8() % 16) * 2 + 1, "\0\0\0\x8"sv);
        feed(b);
        break;
      }
      default: {  // SETTINGS or PING, maybe flooding
        const int n = 1 + in.u8() % 8;
        std::string b;
        for (int i = 0; i < n; ++i) {
          b += (op & 16) ? frame(0x6, 0, 0, "12345678")
                         : frame(0x4, 0, 0, in.bytes(6 * (in.u8() % 3)));
        }
        feed(b);
        break;
      }
    }
    check(session->open_streams() == proxy.open_count());
  }
  // The rest of the output, in bounded rounds (a body the proxy supplies can be long).
  for (int i = 0; i < 64 && session->want_write(); ++i) drain(SIZE_MAX);
  if (failed) {
    check(session->done());
    check(!session->want_write());
    check(wire.whole());
  }
  return 0;
}
