#include "proxy/h2/session.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <chrono>
#include <cstring>

#include "proxy/h2/allocator.h"

namespace outrigger::h2 {
namespace {

constexpr uint8_t kDrainPing[8] = {'o', 'r', '-', 'd', 'r', 'a', 'i', 'n'};

int64_t steady_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Fields whose value is new on every message: request and trace ids. Indexing them (RFC 7541
// 6.2.1) only churns the HPACK dynamic table, and nghttp2 keeps same-name entries in one hash
// chain, so each lookup walked every stored id (callgrind: ~190 memcmp calls per proxied h2-h2
// request). They go out as never-indexed literals (RFC 7541 6.2.3, nghttp2's NO_INDEX), which
// also tells later hops not to index them. A never-indexed literal still names its field by index
// when the name is in a table, so one message in kIdIndexEvery per session indexes them (the first
// does): the name then comes from the dynamic table instead of a Huffman-coded literal each time
// (-1.0 % instructions per h2-h2 request), while the table holds at most a few ids. `date` is not
// one of them: it changes once a second, so on a busy connection it is one table entry per second
// and an index for every other response, instead of a Huffman-coded literal each time (-2.6 %
// instructions per h2c-h1 request, flat over a 30,000-request run).
bool unique_valued(std::string_view name) noexcept {  // any case (see sendable)
  if (name.empty() || ((name[0] | 0x20) != 'x' && (name[0] | 0x20) != 't')) return false;
  switch (name.size()) {
    case 11:
      return base::name_is(name, "traceparent");
    case 12:
      return base::name_is(name, "x-request-id") || base::name_is(name, "x-b3-traceid");
    case 15:
      return base::name_is(name, "x-amzn-trace-id");
    default:
      return false;
  }
}

constexpr uint32_t kIdIndexEvery = 256;

// index_ids: index unique-valued fields too (see unique_valued).
nghttp2_nv make_nv(std::string_view name, std::string_view value, bool index_ids = false) {
  const bool never = !index_ids && unique_valued(name);
  return {reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
          reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
          static_cast<uint8_t>(never ? NGHTTP2_NV_FLAG_NO_INDEX : NGHTTP2_NV_FLAG_NONE)};
}

// nghttp2 copies name/value pairs on submit, so one scratch array per thread serves every call.
// Written by index, not with vector::push_back (an out-of-line call per field, about 25
// instructions each, 20 fields per proxied HTTP/2 request); the caller asks for room for every
// pair it may add.
class NvList {
 public:
  explicit NvList(nghttp2_nv* room) : room_(room) {}
  void push_back(const nghttp2_nv& nv) noexcept { room_[size_++] = nv; }
  nghttp2_nv* data() const noexcept { return room_; }
  size_t size() const noexcept { return size_; }

 private:
  nghttp2_nv* room_;
  size_t size_ = 0;
};

NvList nv_scratch(size_t n) {
  thread_local std::vector<nghttp2_nv> nv;
  if (nv.size() < n) nv.resize(std::max(n, 2 * nv.size()));
  return NvList(nv.data());
}

// Copies the bytes of a head about to be submitted into the stream's head buffer, names
// lower-cased, and points the pairs there with nghttp2's no-copy flags: nghttp2 then neither
// copies them nor lower-cases names byte by byte (about 2,000 instructions per proxied HTTP/2
// request). nghttp2 reads them once, when it packs the HEADERS frame, which happens before the
// stream closes (or never: a frame for a closed or cancelled stream is dropped unread), and the
// stream's state lives until it closes. Only a stream's first head, and only up to
// kMaxPinnedHead bytes; anything else is left to nghttp2 to copy.
constexpr size_t kMaxPinnedHead = 16384;

// A copy of n bytes without a call for the short strings of a head (most names and values).
inline void copy_short(char* out, const uint8_t* in, size_t n) noexcept {
  if (n > 16) {
    std::memcpy(out, in, n);
  } else if (n >= 8) {  // two words, overlapping when n < 16
    uint64_t a, b;
    std::memcpy(&a, in, 8);
    std::memcpy(&b, in + n - 8, 8);
    std::memcpy(out, &a, 8);
    std::memcpy(out + n - 8, &b, 8);
  } else if (n >= 4) {
    uint32_t a, b;
    std::memcpy(&a, in, 4);
    std::memcpy(&b, in + n - 4, 4);
    std::memcpy(out, &a, 4);
    std::memcpy(out + n - 4, &b, 4);
  } else {
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<char>(in[i]);
  }
}

void pin_head(PinnedHead& hb, nghttp2_nv* nv, size_t n) {
  if (hb.pinned) return;
  size_t names = 0, values = 0;
  for (size_t i = 0; i < n; ++i) {
    names += nv[i].namelen;
    values += nv[i].valuelen;
  }
  if (names + values > hb.cap) {
    if (names + values > kMaxPinnedHead) return;
    const size_t cap = std::max<size_t>(512, std::bit_ceil(names + values));
    hb.bytes = std::make_unique_for_overwrite<char[]>(cap);
    hb.cap = cap;
  }
  // All names first, lower-cased together in one pass, then the values.
  char* name = hb.bytes.get();
  char* value = name + names;
  for (size_t i = 0; i < n; ++i) {
    nghttp2_nv& x = nv[i];
    copy_short(name, x.name, x.namelen);
    x.name = reinterpret_cast<uint8_t*>(name);
    name += x.namelen;
    copy_short(value, x.value, x.valuelen);
    x.value = reinterpret_cast<uint8_t*>(value);
    value += x.valuelen;
    x.flags |= NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE;
  }
  lower_copy(hb.bytes.get(), names, hb.bytes.get());
  hb.pinned = true;
}

std::string lib_error(std::string_view what, int rv) {
  std::string s(what);
  s += ": ";
  s += nghttp2_strerror(rv);
  return s;
}

bool parse_uint(std::string_view v, int64_t* out) {
  if (v.empty() || v.size() > 18) return false;
  int64_t n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + (c - '0');
  }
  *out = n;
  return true;
}

}  // namespace

std::string_view error_code_name(uint32_t code) noexcept {
  switch (code) {
    case kNoError:
      return "NO_ERROR";
    case kProtocolError:
      return "PROTOCOL_ERROR";
    case kInternalError:
      return "INTERNAL_ERROR";
    case kFlowControlError:
      return "FLOW_CONTROL_ERROR";
    case kSettingsTimeout:
      return "SETTINGS_TIMEOUT";
    case kStreamClosed:
      return "STREAM_CLOSED";
    case kFrameSizeError:
      return "FRAME_SIZE_ERROR";
    case kRefusedStream:
      return "REFUSED_STREAM";
    case kCancel:
      return "CANCEL";
    case kCompressionError:
      return "COMPRESSION_ERROR";
    case kConnectError:
      return "CONNECT_ERROR";
    case kEnhanceYourCalm:
      return "ENHANCE_YOUR_CALM";
    case kInadequateSecurity:
      return "INADEQUATE_SECURITY";
    case kHttp11Required:
      return "HTTP_1_1_REQUIRED";
    default:
      return "UNKNOWN";
  }
}

Preface check_preface(std::span<const uint8_t> b) noexcept {
  constexpr std::string_view kMagic = NGHTTP2_CLIENT_MAGIC;
  const size_t n = std::min(b.size(), kMagic.size());
  if (n == 0) return Preface::kNeedMore;
  if (std::memcmp(b.data(), kMagic.data(), n) != 0) return Preface::kNotH2;
  return n == kMagic.size() ? Preface::kH2 : Preface::kNeedMore;
}

// Names in any case: an HTTP/1.1 peer's fields come as they were received, and nghttp2
// lower-cases names when it copies them.
bool sendable(const Field& f) noexcept {
  if (f.name.empty() || f.name[0] == ':') return false;
  if (is_connection_specific(f.name)) return false;
  if (base::name_is(f.name, "te") && f.value != "trailers") return false;
  return true;
}

Request request_of(std::span<const Field> fields) noexcept {
  Request rq;
  size_t first_regular = fields.size();
  for (size_t i = 0; i < fields.size(); ++i) {
    const Field& f = fields[i];
    if (f.name.empty() || f.name[0] != ':') {
      first_regular = i;
      break;
    }
    if (f.name == ":method")
      rq.method = f.value;
    else if (f.name == ":scheme")
      rq.scheme = f.value;
    else if (f.name == ":authority")
      rq.authority = f.value;
    else if (f.name == ":path")
      rq.path = f.value;
  }
  rq.headers = fields.subspan(first_regular);
  for (const Field& f : rq.headers) {
    if (f.name == "host" && rq.authority.empty()) rq.authority = f.value;
    if (f.name == "content-length") parse_uint(f.value, &rq.content_length);
  }
  return rq;
}

Counters& Counters::operator+=(const Counters& o) noexcept {
  streams_opened += o.streams_opened;
  invalid_headers += o.invalid_headers;
  header_list_too_large += o.header_list_too_large;
  refused_streams += o.refused_streams;
  peer_resets += o.peer_resets;
  rapid_reset += o.rapid_reset;
  continuation_flood += o.continuation_flood;
  settings_flood += o.settings_flood;
  ping_flood += o.ping_flood;
  empty_frame_flood += o.empty_frame_flood;
  connection_errors += o.connection_errors;
  goaway_received += o.goaway_received;
  body_length_mismatch += o.body_length_mismatch;
  return *this;
}

// ---------------------------------------------------------------------------------------------
// nghttp2 callbacks

struct Session::Glue {
  static Session& S(void* ud) { return *static_cast<Session*>(ud); }

  static int on_begin_frame(nghttp2_session*, const nghttp2_frame_hd* hd, void* ud) {
    Session& s = S(ud);
    if (s.fatal_) return NGHTTP2_ERR_CALLBACK_FAILURE;
    s.last_frame_type_ = hd->type;
    const bool end_stream = (hd->flags & NGHTTP2_FLAG_END_STREAM) != 0;
    switch (hd->type) {
      case NGHTTP2_DATA:
      case NGHTTP2_HEADERS:
      case NGHTTP2_CONTINUATION:
        if (hd->length == 0 && !end_stream) {
          if (++s.empty_frames_ > s.limits_.max_empty_frames) {
            ++s.counters_.empty_frame_flood;
            s.fail(kEnhanceYourCalm, "empty frame flood");
            return NGHTTP2_ERR_CALLBACK_FAILURE;
          }
        } else {
          s.empty_frames_ = 0;
        }
        break;
      default:
        break;
    }
    if (hd->type == NGHTTP2_HEADERS) {
      s.block_continuations_ = 0;
      s.block_bytes_ = hd->length;
    } else if (hd->type == NGHTTP2_CONTINUATION) {
      ++s.block_continuations_;
      s.block_bytes_ += hd->length;
    } else if (hd->type == NGHTTP2_SETTINGS && (hd->flags & NGHTTP2_FLAG_ACK) == 0 &&
               hd->length / 6 > s.limits_.max_settings) {
      ++s.counters_.settings_flood;
      s.fail(kEnhanceYourCalm, "too many SETTINGS entries");
      return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    if ((hd->type == NGHTTP2_HEADERS || hd->type == NGHTTP2_CONTINUATION) &&
        (s.block_continuations_ > s.limits_.max_continuations ||
         s.block_bytes_ > s.limits_.max_header_block_bytes)) {
      ++s.counters_.continuation_flood;
      s.fail(kEnhanceYourCalm, "CONTINUATION flood");
      return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    return 0;
  }

  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* ud) {
    Session& s = S(ud);
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    Stream* st = s.find(frame->hd.stream_id);
    if (st == nullptr) {
      if (!s.server_ || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
      st = &s.add_stream(frame->hd.stream_id);
    }
    st->header_bytes = 0;
    st->oversized = false;
    s.hfields_.clear();
    return 0;
  }

  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                       size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void* ud) {
    Session& s = S(ud);
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    Stream* st = s.find(frame->hd.stream_id);
    if (st == nullptr || st->oversized) return 0;
    st->header_bytes += namelen + valuelen + 32;
    if (st->header_bytes > s.limits_.max_header_list_size) {
      st->oversized = true;
      return 0;
    }
    s.hfields_.add_lower({reinterpret_cast<const char*>(name), namelen},
                         {reinterpret_cast<const char*>(value), valuelen});
    return 0;
  }

  static std::span<const Field> block_fields(Session& s) { return s.hfields_.fields(); }

  static void reject_headers(Session& s, Stream& st, uint32_t code) {
    st.local_reset = code;  // reported even when the stream closes before the RST goes out
    nghttp2_submit_rst_stream(s.ng_, NGHTTP2_FLAG_NONE, st.id, code);
  }

  // A request the session answers itself, before the proxy hears of it: a status and a reason,
  // in the body ("outrigger: REASON") and in x-outrigger-reason, as the HTTP/1.1 side answers.
  // RFC 9113 8.1.1 lets a server respond to a malformed request before it ends the stream. If
  // the request has not ended when the answer is out, the stream is then reset with NO_ERROR
  // (on_frame_send): RFC 9113 8.1's way to say its body is not wanted.
  static void answer(ServerSession& s, Stream& st, int status, std::string_view reason,
                     std::span<const Field> fields) {
    const bool head_request = is_head_request(fields);
    st.answered_locally = true;
    st.local_body.assign("outrigger: ").append(reason).append("\n");
    char length[24];
    const auto [end, ec] = std::to_chars(length, length + sizeof length, st.local_body.size());
    char code[4] = {};
    std::to_chars(code, code + 3, status);
    const nghttp2_nv nv[] = {
        make_nv(":status", std::string_view(code, 3)),
        make_nv("content-type", "text/plain; charset=utf-8"),
        make_nv("content-length", std::string_view(length, static_cast<size_t>(end - length))),
        make_nv("x-outrigger-reason", reason),
    };
    if (head_request) st.local_body_sent = st.local_body.size();  // a HEAD answer has no body
    nghttp2_data_provider prd{};
    prd.read_callback = read_local_body;
    nghttp2_submit_response(s.ng_, st.id, nv, std::size(nv), head_request ? nullptr : &prd);
    s.sevents_->on_local_answer(st.id, status, reason, fields);
  }

  static ssize_t read_local_body(nghttp2_session*, int32_t stream_id, uint8_t* buf,
                                 size_t length, uint32_t* flags, nghttp2_data_source*, void* ud) {
    Stream* st = S(ud).find(stream_id);
    if (st == nullptr) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    const size_t n = std::min(length, st->local_body.size() - st->local_body_sent);
    std::memcpy(buf, st->local_body.data() + st->local_body_sent, n);
    st->local_body_sent += n;
    if (st->local_body_sent == st->local_body.size()) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
  }

  // The request head's :method is HEAD (a malformed head may have none).
  static bool is_head_request(std::span<const Field> fields) {
    for (const Field& f : fields) {
      if (f.name.empty() || f.name[0] != ':') break;
      if (f.name == ":method") return f.value == "HEAD";
    }
    return false;
  }

  // A malformed message (RFC 9113 8.1.1): the stream is reset with PROTOCOL_ERROR.
  static int malformed(Session& s, Stream& st) {
    ++s.counters_.invalid_headers;
    reject_headers(s, st, kProtocolError);
    return 0;
  }

  // At the end of a received message: its DATA added up to its content-length (RFC 9113 8.1.1).
  // False when it did not; the stream is then reset.
  static bool body_complete(Session& s, Stream& st) {
    if (st.body_expected < 0 || st.body_received == st.body_expected) return true;
    ++s.counters_.body_length_mismatch;
    reject_headers(s, st, kProtocolError);
    return false;
  }

  static int server_headers(ServerSession& s, const nghttp2_frame* frame, Stream& st) {
    const bool end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
      std::span<const Field> fields = block_fields(s);
      if (st.oversized) {
        ++s.counters_.header_list_too_large;
        // (The fields kept are those before the limit: :method comes first.)
        answer(s, st, 431, "request header fields too large", fields);
        return 0;
      }
      if (const FieldError e = validate_request(fields); e != FieldError::kNone) {
        // A malformed request head (RFC 9113 8.1.1): a 400 that says why, not only a reset.
        ++s.counters_.invalid_headers;
        const std::string reason = "malformed HTTP/2 request: " + std::string(field_error_name(e));
        answer(s, st, 400, reason, fields);
        return 0;
      }
      Request rq = request_of(fields);
      rq.end_stream = end_stream;
      st.body_expected = rq.method == "CONNECT" ? -1 : rq.content_length;
      if (end_stream && !body_complete(s, st)) return 0;
      st.known = true;
      ++s.known_count_;
      ++s.counters_.streams_opened;
      s.sevents_->on_request(st.id, rq);
      if (end_stream && s.find(st.id) != nullptr) s.events_->on_end_stream(st.id);
      return 0;
    }
    // Trailers.
    if (!st.known) return 0;
    if (st.oversized) {
      ++s.counters_.header_list_too_large;
      reject_headers(s, st, kEnhanceYourCalm);
      return 0;
    }
    std::span<const Field> fields = block_fields(s);
    // Trailers end the stream (RFC 9113 8.1).
    if (validate_response(fields, true) != FieldError::kNone || !end_stream) {
      return malformed(s, st);
    }
    if (!body_complete(s, st)) return 0;
    s.events_->on_trailers(st.id, fields);
    if (end_stream && s.find(st.id) != nullptr) s.events_->on_end_stream(st.id);
    return 0;
  }

  static int client_headers(ClientSession& s, const nghttp2_frame* frame, Stream& st) {
    const bool end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (!st.known) return 0;
    if (st.oversized) {
      ++s.counters_.header_list_too_large;
      reject_headers(s, st, kEnhanceYourCalm);
      return 0;
    }
    std::span<const Field> fields = block_fields(s);
    const bool trailers = st.got_final_head;
    if (validate_response(fields, trailers) != FieldError::kNone) return malformed(s, st);
    if (trailers) {
      if (!end_stream) return malformed(s, st);  // trailers end the stream (RFC 9113 8.1)
      if (!body_complete(s, st)) return 0;
      s.events_->on_trailers(st.id, fields);
      if (end_stream && s.find(st.id) != nullptr) s.events_->on_end_stream(st.id);
      return 0;
    }
    Response rs;
    const std::string_view status = fields[0].value;  // validated: :status first, 3 digits
    rs.status = (status[0] - '0') * 100 + (status[1] - '0') * 10 + (status[2] - '0');
    rs.headers = fields.subspan(1);
    for (const Field& f : rs.headers) {
      if (f.name == "content-length") parse_uint(f.value, &rs.content_length);
    }
    rs.end_stream = end_stream;
    // HTTP/2 has no 101 (RFC 9113 8.6); an interim response neither ends the stream nor has a
    // content-length (RFC 9110 8.6); a 204's content-length can only be 0.
    if (rs.status == 101) return malformed(s, st);
    if (rs.status < 200) {
      if (end_stream || rs.content_length >= 0) return malformed(s, st);
      s.cevents_->on_informational(st.id, rs);
      return 0;
    }
    if (rs.status == 204 && rs.content_length > 0) return malformed(s, st);
    st.body_expected =
        st.head_request || rs.status == 204 || rs.status == 304 ? 0 : rs.content_length;
    if (end_stream && !body_complete(s, st)) return 0;
    st.got_final_head = true;
    s.cevents_->on_response(st.id, rs);
    if (end_stream && s.find(st.id) != nullptr) s.events_->on_end_stream(st.id);
    return 0;
  }

  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* ud) {
    Session& s = S(ud);
    if (s.fatal_) return NGHTTP2_ERR_CALLBACK_FAILURE;
    switch (frame->hd.type) {
      case NGHTTP2_HEADERS: {
        Stream* st = s.find(frame->hd.stream_id);
        if (st == nullptr) return 0;
        return s.server_ ? server_headers(static_cast<ServerSession&>(s), frame, *st)
                         : client_headers(static_cast<ClientSession&>(s), frame, *st);
      }
      case NGHTTP2_DATA: {
        if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) == 0) return 0;
        Stream* st = s.find(frame->hd.stream_id);
        if (st == nullptr || !st->known || st->local_reset != kNoError) return 0;
        if (!s.server_ && !st->got_final_head) return malformed(s, *st);  // no final head yet
        if (body_complete(s, *st)) s.events_->on_end_stream(st->id);
        return 0;
      }
      case NGHTTP2_RST_STREAM: {
        Stream* st = s.find(frame->hd.stream_id);
        if (st == nullptr) return 0;
        st->reset_by_peer = true;
        if (st->response_done) return 0;
        ++s.counters_.peer_resets;
        if (s.server_ && s.note_reset()) {
          ++s.counters_.rapid_reset;
          s.fail(kEnhanceYourCalm, "rapid reset");
          return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
        return 0;
      }
      case NGHTTP2_GOAWAY: {
        s.goaway_received_ = true;
        ++s.counters_.goaway_received;
        if (!s.server_) {
          static_cast<ClientSession&>(s).goaway_last_stream_id_ = frame->goaway.last_stream_id;
        }
        s.events_->on_goaway(frame->goaway.last_stream_id, frame->goaway.error_code);
        return 0;
      }
      case NGHTTP2_PING: {
        if (s.server_ && (frame->hd.flags & NGHTTP2_FLAG_ACK) != 0 &&
            std::memcmp(frame->ping.opaque_data, kDrainPing, 8) == 0) {
          auto& ss = static_cast<ServerSession&>(s);
          if (ss.drain_step_ == 1) ss.goaway(kNoError);
        }
        return 0;
      }
      default:
        return 0;
    }
  }

  static int on_invalid_frame_recv(nghttp2_session*, const nghttp2_frame* frame, int lib_error,
                                   void* ud) {
    Session& s = S(ud);
    if (frame == nullptr || frame->hd.type != NGHTTP2_HEADERS) return 0;
    // (HTTP messaging is off: no NGHTTP2_ERR_HTTP_HEADER comes here; fields are ours to check.)
    if (lib_error == NGHTTP2_ERR_REFUSED_STREAM ||
        (s.server_ && lib_error == NGHTTP2_ERR_PROTO &&
         s.open_streams() >= s.limits_.max_concurrent_streams)) {
      ++s.counters_.refused_streams;
    }
    return 0;
  }

  static int on_data_chunk(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data,
                           size_t len, void* ud) {
    Session& s = S(ud);
    Stream* st = s.find(stream_id);
    if (st == nullptr || !st->known || st->local_reset != kNoError) {
      nghttp2_session_consume(s.ng_, stream_id, len);  // nobody will consume these bytes
      return 0;
    }
    st->body_received += static_cast<int64_t>(len);
    const bool early = !s.server_ && !st->got_final_head;  // DATA before a final response head
    if (early || (st->body_expected >= 0 && st->body_received > st->body_expected)) {
      nghttp2_session_consume(s.ng_, stream_id, len);
      if (early) {
        malformed(s, *st);
      } else {
        ++s.counters_.body_length_mismatch;
        reject_headers(s, *st, kProtocolError);
      }
      return 0;
    }
    st->unconsumed += len;
    s.events_->on_data(stream_id, {data, len});
    return 0;
  }

  static int on_frame_send(nghttp2_session*, const nghttp2_frame* frame, void* ud) {
    Session& s = S(ud);
    if (frame->hd.type == NGHTTP2_SETTINGS && (frame->hd.flags & NGHTTP2_FLAG_ACK) == 0) {
      s.settings_sent_ = true;
    }
    if (frame->hd.type == NGHTTP2_HEADERS && !s.server_) {
      if (Stream* st = s.find(frame->hd.stream_id)) st->head_sent = true;
    }
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
      if (Stream* st = s.find(frame->hd.stream_id)) {
        st->response_done = true;
        // Our own answer is out and the request is still coming: not wanted (RFC 9113 8.1).
        if (st->answered_locally &&
            nghttp2_session_get_stream_remote_close(s.ng_, frame->hd.stream_id) == 0) {
          nghttp2_submit_rst_stream(s.ng_, NGHTTP2_FLAG_NONE, frame->hd.stream_id, kNoError);
        }
      }
    } else if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != kNoError) {
      ++s.counters_.connection_errors;
      if (s.error_.empty()) {
        s.error_ = "sent GOAWAY ";
        s.error_ += error_code_name(frame->goaway.error_code);
        if (!s.lib_message_.empty()) s.error_ += ": " + s.lib_message_;
      }
    }
    return 0;
  }

  static int on_stream_close(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* ud) {
    Session& s = S(ud);
    std::unique_ptr<Stream>* slot = s.streams_.find(stream_id);
    if (slot == nullptr) return 0;
    std::unique_ptr<Stream> st = std::move(*slot);
    s.streams_.erase(stream_id);
    if (s.last_id_ == stream_id) s.last_ = nullptr;
    if (st->unconsumed > 0) {
      nghttp2_session_consume_connection(s.ng_, st->unconsumed);
    }
    const bool known = st->known;
    if (known) --s.known_count_;
    CloseInfo info;
    info.error_code = error_code != kNoError ? error_code : st->local_reset;
    info.reset_by_peer = st->reset_by_peer;
    if (!s.server_) {
      const auto& cs = static_cast<ClientSession&>(s);
      // Also a request whose HEADERS never went out: nghttp2 closes it with REFUSED_STREAM when
      // a GOAWAY arrived before it could be sent, whatever that GOAWAY's last-stream-id (a
      // graceful shutdown's first GOAWAY says 2^31-1).
      info.unprocessed = (st->reset_by_peer && error_code == kRefusedStream) || !st->head_sent ||
                         (cs.goaway_last_stream_id_ >= 0 && stream_id > cs.goaway_last_stream_id_);
    }
    s.recycle(std::move(st));
    if (known) s.events_->on_stream_close(stream_id, info);
    return 0;
  }

  static ssize_t read_body(nghttp2_session*, int32_t stream_id, uint8_t* buf, size_t length,
                           uint32_t* flags, nghttp2_data_source*, void* ud) {
    Session& s = S(ud);
    const BodyRead r = s.events_->on_body_read(stream_id, {buf, length});
    if (r.n > length) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    switch (r.status) {
      case BodyRead::Status::kData:
        if (r.n == 0) return NGHTTP2_ERR_DEFERRED;
        return static_cast<ssize_t>(r.n);
      case BodyRead::Status::kDeferred:
        return NGHTTP2_ERR_DEFERRED;
      case BodyRead::Status::kEnd: {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        Stream* st = s.find(stream_id);
        if (st != nullptr && st->has_trailers) {
          *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
          s.send_trailers(*st, st->trailers.fields());
          st->has_trailers = false;
          st->trailers.clear();
        }
        return static_cast<ssize_t>(r.n);
      }
      case BodyRead::Status::kEndBeforeTrailers: {
        *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        if (Stream* st = s.find(stream_id)) st->trailers_pending = true;
        return static_cast<ssize_t>(r.n);
      }
    }
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  }

  static int on_error(nghttp2_session*, int, const char* msg, size_t len, void* ud) {
    Session& s = S(ud);
    s.lib_message_.assign(msg, std::min<size_t>(len, 200));
    return 0;
  }

  static const nghttp2_session_callbacks* callbacks() {
    static const nghttp2_session_callbacks* cbs = [] {
      nghttp2_session_callbacks* c = nullptr;
      nghttp2_session_callbacks_new(&c);
      nghttp2_session_callbacks_set_on_begin_frame_callback(c, on_begin_frame);
      nghttp2_session_callbacks_set_on_begin_headers_callback(c, on_begin_headers);
      nghttp2_session_callbacks_set_on_header_callback(c, on_header);
      nghttp2_session_callbacks_set_on_frame_recv_callback(c, on_frame_recv);
      nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(c, on_invalid_frame_recv);
      nghttp2_session_callbacks_set_on_data_chunk_recv_callback(c, on_data_chunk);
      nghttp2_session_callbacks_set_on_frame_send_callback(c, on_frame_send);
      nghttp2_session_callbacks_set_on_stream_close_callback(c, on_stream_close);
      nghttp2_session_callbacks_set_error_callback2(c, on_error);
      return c;  // process lifetime
    }();
    return cbs;
  }
};

// ---------------------------------------------------------------------------------------------
// Session

Session::Session(StreamEvents* events, const Limits& limits, bool server)
    : events_(events), limits_(limits), server_(server), now_(steady_now_ms) {}

Session::~Session() {
  if (ng_ != nullptr) nghttp2_session_del(ng_);
}

bool Session::init() {
  nghttp2_option* opt = nullptr;
  if (nghttp2_option_new(&opt) != 0) {
    error_ = "nghttp2_option_new failed";
    return false;
  }
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_no_closed_streams(opt, 1);
  // RFC 9113's message rules (field names and values, pseudo-headers, content-length against
  // DATA, trailers, interim responses) are ours: validate_request/validate_response and the
  // callbacks below. nghttp2's copy of them checked every field a second time (5.4 % of the
  // instructions of a proxied h2-h2 request).
  nghttp2_option_set_no_http_messaging(opt, 1);
  nghttp2_option_set_max_outbound_ack(opt, limits_.max_outbound_ack);
  nghttp2_option_set_max_settings(opt, 1u << 20);  // ours (on_begin_frame) counts it
  nghttp2_option_set_max_send_header_block_length(opt, limits_.max_send_header_block);
  nghttp2_option_set_max_deflate_dynamic_table_size(opt, limits_.max_deflate_table);
  // nghttp2's own CONTINUATION and reset limits stay as a backstop behind ours (which trip first
  // and are counted).
  nghttp2_option_set_max_continuations(opt, limits_.max_continuations + 1);
  if (server_) {
    nghttp2_option_set_stream_reset_rate_limit(
        opt, std::max<uint64_t>(1000, 2ull * limits_.max_rapid_resets), 33);
  }
  int rv = server_ ? nghttp2_session_server_new3(&ng_, Glue::callbacks(), this, opt, allocator())
                   : nghttp2_session_client_new3(&ng_, Glue::callbacks(), this, opt, allocator());
  nghttp2_option_del(opt);
  if (rv != 0) {
    error_ = lib_error("nghttp2 session", rv);
    ng_ = nullptr;
    return false;
  }
  std::array<nghttp2_settings_entry, 4> iv;
  size_t n = 0;
  if (server_) {
    iv[n++] = {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, limits_.max_concurrent_streams};
  } else {
    iv[n++] = {NGHTTP2_SETTINGS_ENABLE_PUSH, 0};
  }
  iv[n++] = {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, limits_.initial_stream_window};
  iv[n++] = {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, limits_.max_header_list_size};
  rv = nghttp2_submit_settings(ng_, NGHTTP2_FLAG_NONE, iv.data(), n);
  if (rv == 0 && limits_.connection_window > NGHTTP2_INITIAL_CONNECTION_WINDOW_SIZE) {
    rv = nghttp2_session_set_local_window_size(ng_, NGHTTP2_FLAG_NONE, 0,
                                               static_cast<int32_t>(limits_.connection_window));
  }
  if (rv != 0) {
    error_ = lib_error("nghttp2 settings", rv);
    return false;
  }
  return true;
}

Session::Stream* Session::find(int32_t id) {
  if (id == last_id_ && last_ != nullptr) return last_;
  std::unique_ptr<Stream>* slot = streams_.find(id);
  if (slot == nullptr) return nullptr;
  last_id_ = id;
  last_ = slot->get();
  return last_;
}

std::unique_ptr<Session::Stream> Session::take_spare() {
  if (spare_.empty()) return std::make_unique<Stream>();
  std::unique_ptr<Stream> st = std::move(spare_.back());
  spare_.pop_back();
  return st;
}

Session::Stream& Session::insert_stream(int32_t id, std::unique_ptr<Stream> st) {
  auto& p = streams_[id];
  p = std::move(st);
  p->id = id;
  last_id_ = id;
  last_ = p.get();
  return *p;
}

Session::Stream& Session::add_stream(int32_t id) { return insert_stream(id, take_spare()); }

void Session::recycle(std::unique_ptr<Stream> st) {
  if (spare_.size() >= kSpareStreams) return;  // st is freed
  st->trailers.clear();
  FieldList keep = std::move(st->trailers);  // its capacity is reused
  PinnedHead head = std::move(st->head);
  *st = Stream{};
  st->trailers = std::move(keep);
  if (head.cap <= 2048) {
    st->head.bytes = std::move(head.bytes);
    st->head.cap = head.cap;
  }
  spare_.push_back(std::move(st));
}

void Session::fail(uint32_t code, std::string why) {
  if (fatal_) return;
  fatal_ = true;
  fatal_code_ = code;
  fatal_goaway_queued_ = true;
  error_ = std::move(why);
  if (code != kNoError) ++counters_.connection_errors;
}

bool Session::note_reset() {
  const int64_t width = std::max<int64_t>(1, limits_.rapid_reset_window_ms / kBuckets);
  const int64_t slot = now_() / width;
  if (slot - reset_slot_ >= kBuckets) {
    reset_buckets_.fill(0);
  } else {
    for (int64_t k = reset_slot_ + 1; k <= slot; ++k) reset_buckets_[k % kBuckets] = 0;
  }
  reset_slot_ = std::max(slot, reset_slot_);
  ++reset_buckets_[slot % kBuckets];
  uint64_t sum = 0;
  for (uint32_t b : reset_buckets_) sum += b;
  return sum > limits_.max_rapid_resets;
}

int Session::send_trailers(Stream& st, std::span<const Field> fields) {
  NvList nv = nv_scratch(fields.size());
  for (const Field& f : fields) {
    if (sendable(f)) nv.push_back(make_nv(f.name, f.value));
  }
  return nghttp2_submit_trailer(ng_, st.id, nv.data(), nv.size());
}

std::expected<void, std::string> Session::feed(std::span<const uint8_t> in) {
  if (fatal_) return std::unexpected(error_);
  const ssize_t rv = nghttp2_session_mem_recv(ng_, in.data(), in.size());
  if (rv >= 0 && !fatal_) return {};
  if (!fatal_) {
    switch (rv) {
      case NGHTTP2_ERR_FLOODED:
        if (last_frame_type_ == NGHTTP2_PING) {
          ++counters_.ping_flood;
          fail(kEnhanceYourCalm, "PING flood");
        } else {
          ++counters_.settings_flood;
          fail(kEnhanceYourCalm, "SETTINGS flood");
        }
        break;
      case NGHTTP2_ERR_TOO_MANY_CONTINUATIONS:
        ++counters_.continuation_flood;
        fail(kEnhanceYourCalm, "CONTINUATION flood");
        break;
      case NGHTTP2_ERR_BAD_CLIENT_MAGIC:
        fail(kProtocolError, "bad client preface");
        break;
      default:
        fail(kInternalError, lib_error("nghttp2", static_cast<int>(rv)) +
                                 (lib_message_.empty() ? "" : " (" + lib_message_ + ")"));
        break;
    }
  }
  return std::unexpected(error_);
}

std::span<const uint8_t> Session::pending_output() {
  if (out_off_ > 0) {
    out_.erase(out_.begin(), out_.begin() + static_cast<ptrdiff_t>(out_off_));
    out_off_ = 0;
  }
  while (!fatal_ && out_.size() < limits_.output_buffer_bytes) {
    const uint8_t* p = nullptr;
    const ssize_t n = nghttp2_session_mem_send(ng_, &p);
    if (n < 0) {
      fail(kInternalError, lib_error("nghttp2 send", static_cast<int>(n)));
      break;
    }
    if (n == 0) break;
    out_.insert(out_.end(), p, p + n);
    magic_sent_ = true;
  }
  if (fatal_ && fatal_goaway_queued_ && !fatal_goaway_written_) {
    // nghttp2 can no longer be used: write the GOAWAY ourselves (out_ ends on a frame boundary),
    // after the connection preface when the connection failed before nghttp2 sent it (a peer's
    // first bytes broke a limit before we wrote anything): the client's magic, and an empty
    // SETTINGS frame, which a preface may be.
    if (!server_ && !magic_sent_) {
      constexpr std::string_view kMagic = NGHTTP2_CLIENT_MAGIC;
      out_.insert(out_.end(), kMagic.begin(), kMagic.end());
    }
    if (!settings_sent_) {
      const uint8_t settings[9] = {0, 0, 0, NGHTTP2_SETTINGS, 0, 0, 0, 0, 0};
      out_.insert(out_.end(), settings, settings + sizeof settings);
    }
    const uint32_t last =
        ng_ != nullptr ? static_cast<uint32_t>(nghttp2_session_get_last_proc_stream_id(ng_)) : 0;
    const uint8_t f[17] = {0,
                           0,
                           8,
                           NGHTTP2_GOAWAY,
                           0,
                           0,
                           0,
                           0,
                           0,
                           static_cast<uint8_t>((last >> 24) & 0x7f),
                           static_cast<uint8_t>(last >> 16),
                           static_cast<uint8_t>(last >> 8),
                           static_cast<uint8_t>(last),
                           static_cast<uint8_t>(fatal_code_ >> 24),
                           static_cast<uint8_t>(fatal_code_ >> 16),
                           static_cast<uint8_t>(fatal_code_ >> 8),
                           static_cast<uint8_t>(fatal_code_)};
    out_.insert(out_.end(), f, f + sizeof f);
    fatal_goaway_written_ = true;
  }
  return {out_.data(), out_.size()};
}

void Session::consume_output(size_t n) { out_off_ += std::min(n, out_.size() - out_off_); }

bool Session::want_write() const {
  if (out_off_ < out_.size()) return true;
  if (fatal_) return fatal_goaway_queued_ && !fatal_goaway_written_;
  return nghttp2_session_want_write(ng_) != 0;
}

bool Session::done() const {
  if (out_off_ < out_.size()) return false;
  if (fatal_) return !fatal_goaway_queued_ || fatal_goaway_written_;
  return nghttp2_session_want_read(ng_) == 0 && nghttp2_session_want_write(ng_) == 0;
}

void Session::consume(int32_t stream, size_t n) {
  if (fatal_) return;
  Stream* st = find(stream);
  if (st == nullptr) return;
  n = std::min<uint64_t>(n, st->unconsumed);
  if (n == 0) return;
  st->unconsumed -= n;
  nghttp2_session_consume(ng_, stream, n);
}

void Session::resume(int32_t stream) {
  if (fatal_) return;
  nghttp2_session_resume_data(ng_, stream);
}

std::expected<void, std::string> Session::submit_trailers(int32_t stream,
                                                          std::span<const Field> fields) {
  if (fatal_) return std::unexpected(error_);
  Stream* st = find(stream);
  if (st == nullptr) return std::unexpected("no such stream");
  if (st->trailers_pending) {
    st->trailers_pending = false;
    if (int rv = send_trailers(*st, fields); rv != 0) {
      return std::unexpected(lib_error("trailers", rv));
    }
    return {};
  }
  st->trailers.clear();
  for (const Field& f : fields) st->trailers.add(f.name, f.value);
  st->has_trailers = true;
  return {};
}

void Session::reset_stream(int32_t stream, uint32_t code) {
  if (fatal_) return;
  nghttp2_submit_rst_stream(ng_, NGHTTP2_FLAG_NONE, stream, code);
}

void Session::terminate(uint32_t code) {
  if (fatal_) return;
  nghttp2_session_terminate_session(ng_, code);  // on_frame_send counts the GOAWAY
}

// ---------------------------------------------------------------------------------------------
// ServerSession

std::expected<std::unique_ptr<ServerSession>, std::string> ServerSession::create(
    ServerEvents* events, const Limits& limits) {
  std::unique_ptr<ServerSession> s(new ServerSession(events, limits));
  if (!s->init()) return std::unexpected(s->error_);
  return s;
}

std::expected<void, std::string> ServerSession::submit_response(int32_t stream, int status,
                                                                std::span<const Field> fields,
                                                                bool has_body) {
  if (fatal_) return std::unexpected(error_);
  if (status < 100 || status > 999) return std::unexpected("bad status");
  char code[4];
  std::to_chars(code, code + 3, status);
  NvList nv = nv_scratch(fields.size() + 1);
  nv.push_back(make_nv(":status", std::string_view(code, 3)));
  const bool index_ids = heads_++ % kIdIndexEvery == 0;
  for (const Field& f : fields) {
    if (sendable(f)) nv.push_back(make_nv(f.name, f.value, index_ids));
  }
  if (Stream* st = find(stream)) pin_head(st->head, nv.data(), nv.size());
  nghttp2_data_provider prd{};
  prd.read_callback = Glue::read_body;
  const int rv =
      nghttp2_submit_response(ng_, stream, nv.data(), nv.size(), has_body ? &prd : nullptr);
  if (rv != 0) return std::unexpected(lib_error("response", rv));
  return {};
}

void ServerSession::begin_drain() {
  if (fatal_ || drain_step_ > 0) return;
  drain_step_ = 1;
  nghttp2_submit_shutdown_notice(ng_);
  nghttp2_submit_ping(ng_, NGHTTP2_FLAG_NONE, kDrainPing);
}

void ServerSession::goaway(uint32_t code) {
  if (fatal_ || drain_step_ >= 2) return;
  drain_step_ = 2;
  nghttp2_submit_goaway(ng_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(ng_), code,
                        nullptr, 0);
}

// ---------------------------------------------------------------------------------------------
// ClientSession

std::expected<std::unique_ptr<ClientSession>, std::string> ClientSession::create(
    ClientEvents* events, const Limits& limits) {
  std::unique_ptr<ClientSession> s(new ClientSession(events, limits));
  if (!s->init()) return std::unexpected(s->error_);
  return s;
}

uint32_t ClientSession::peer_max_concurrent_streams() const {
  return nghttp2_session_get_remote_settings(ng_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
}

bool ClientSession::can_open_stream() const {
  if (fatal_ || goaway_received_) return false;
  if (nghttp2_session_check_request_allowed(ng_) == 0) return false;
  return streams_.size() < peer_max_concurrent_streams();
}

std::expected<int32_t, std::string> ClientSession::submit_request(std::span<const Field> fields,
                                                                  bool has_body) {
  if (fatal_) return std::unexpected(error_);
  if (!can_open_stream()) {
    return std::unexpected(goaway_received_ ? "connection is going away"
                                            : "peer's concurrent stream limit reached");
  }
  NvList nv = nv_scratch(fields.size());
  bool head = false;
  for (const Field& f : fields) {
    if (f.name.empty() || f.name[0] != ':') continue;
    nv.push_back(make_nv(f.name, f.value));
    if (f.name == ":method" && f.value == "HEAD") head = true;
  }
  const bool index_ids = heads_++ % kIdIndexEvery == 0;
  for (const Field& f : fields) {
    if (sendable(f)) nv.push_back(make_nv(f.name, f.value, index_ids));
  }
  std::unique_ptr<Stream> fresh = take_spare();
  pin_head(fresh->head, nv.data(), nv.size());
  nghttp2_data_provider prd{};
  prd.read_callback = Glue::read_body;
  const int32_t id = nghttp2_submit_request(ng_, nullptr, nv.data(), nv.size(),
                                            has_body ? &prd : nullptr, nullptr);
  if (id < 0) {
    recycle(std::move(fresh));
    return std::unexpected(lib_error("request", id));
  }
  Stream& st = insert_stream(id, std::move(fresh));
  st.known = true;
  ++known_count_;
  st.head_request = head;
  ++counters_.streams_opened;
  return id;
}

}  // namespace outrigger::h2
