// Pure translation between HTTP/1.1 message heads (proxy/http/h1.h) and HTTP/2 field lists, for
// a proxy that speaks h1 on one side and h2 on the other.
//
// Thread affinity: none (pure functions).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/h2/fields.h"
#include "proxy/h2/session.h"
#include "proxy/http/h1.h"

namespace outrigger::h2 {

constexpr uint32_t kind_bit(http::HeaderKind k) noexcept { return 1u << static_cast<uint32_t>(k); }

// h1 request head -> h2 request fields: :method, :scheme (the target's, else `scheme`),
// :authority (Host, or the absolute-form authority), :path (CONNECT: :method and :authority
// only), then the forwardable fields with lower-case names. Dropped: hop-by-hop fields as the h1
// parser marked them (connection, keep-alive, proxy-connection, transfer-encoding, upgrade,
// trailer, proxy-authorization, names listed in Connection), Host, and te unless it lists
// "trailers" (then "te: trailers"). skip_kinds: kind_bit()s of fields the caller adds itself.
void h1_request_to_h2(const http::RequestHead& rq, std::string_view scheme, FieldList* out,
                      uint32_t skip_kinds = 0);

// The same fields as h1_request_to_h2 gives for the parsed head, taken straight from a request
// head this proxy wrote itself: the request line, then "name: value" lines, each ending in CRLF,
// up to the empty line (origin-form target, no hop-by-hop fields but transfer-encoding). Saves
// parsing our own output again on the way to an HTTP/2 upstream. False when the text is not of
// that shape. Copies nothing: the field names in *head are lower-cased in place (HTTP/1.1 names
// are case-insensitive, so the head stays the same request) and *out (cleared first) gets views
// into *head, into `scheme` and into static strings, valid while those are unchanged.
bool own_h1_request_to_h2(std::string* head, std::string_view scheme, std::vector<Field>* out);

// h1 response head -> h2 response fields (the status goes to submit_response separately), as
// views into rs (*out is cleared first). Names keep the HTTP/1.1 peer's case: the sessions'
// submit functions take any case (nghttp2 lower-cases names as it copies them).
void h1_response_to_h2(const http::ResponseHead& rs, std::vector<Field>* out,
                       uint32_t skip_kinds = 0);

// How an h2 message body is framed on HTTP/1.1.
enum class H1Framing : uint8_t { kNone, kContentLength, kChunked };
// end_stream: the head carried END_STREAM. A body without content-length is chunked.
H1Framing h1_framing(bool end_stream, int64_t content_length) noexcept;

// h2 response -> h1 status line and fields ("HTTP/1.1 200 OK\r\n..."), "Transfer-Encoding:
// chunked" for kChunked; no blank line at the end.
void append_h1_response_head(int status, std::span<const Field> fields, H1Framing framing,
                             std::string* out);

// h2 request -> http::RequestHead for the h1 router and forwarding code: method, target (:path),
// path (without query), authority, scheme, headers with kinds (te is marked hop-by-hop), body
// kind from h1_framing(). Cookie fields are joined into *cookie_scratch (one "cookie" header).
// Views point into rq's fields and *cookie_scratch. False when there are more than
// http::kMaxHeaders fields.
bool to_h1_request_head(const Request& rq, http::RequestHead* out, std::string* cookie_scratch);

// An h1 chunked trailer block (http::ChunkedDecoder::trailers(): "name: value\r\n" lines) -> h2
// trailers, without the fields RFC 9110 6.5.1 keeps out of trailers (framing, routing,
// authentication, content and control data, connection-specific).
void h1_trailers_to_h2(std::string_view block, FieldList* out);
// h2 trailers -> the end of an h1 chunked body: "0\r\n", trailer lines, "\r\n".
void append_h1_last_chunk(std::span<const Field> trailers, std::string* out);
// Name, in any case, is one RFC 9110 6.5.1 keeps out of trailers.
bool forbidden_in_trailers(std::string_view name) noexcept;

}  // namespace outrigger::h2
