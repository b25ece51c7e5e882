// gRPC helpers for the proxy: request detection, grpc-timeout parsing, and trailers-only local
// error responses (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md).
//
// Thread affinity: none (pure functions).
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <span>
#include <string>
#include <string_view>

#include "proxy/h2/fields.h"

namespace outrigger::h2 {

// gRPC status codes.
enum class GrpcStatus : uint8_t {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

// content-type is application/grpc, optionally followed by "+proto", "+json", ";params".
bool is_grpc_content_type(std::string_view content_type) noexcept;
// A request is gRPC when its content-type field says so.
bool is_grpc_request(std::span<const Field> fields) noexcept;

// grpc-timeout: 1 to 8 ASCII digits then one unit of H M S m u n. Saturates at
// nanoseconds::max() (99999999H does not fit).
std::expected<std::chrono::nanoseconds, std::string> parse_grpc_timeout(std::string_view v);
// The value for a grpc-timeout field: the finest unit whose count fits 8 digits (rounded up).
std::string format_grpc_timeout(std::chrono::nanoseconds d);

// grpc-message percent-encoding: bytes outside 0x20-0x7e and '%' become %XX.
std::string grpc_percent_encode(std::string_view message);
// Inverse; malformed escapes are kept as they are (as gRPC implementations do).
std::string grpc_percent_decode(std::string_view encoded);

// The fields of a trailers-only error response, to be sent with HTTP status 200 and END_STREAM
// on the head (ServerSession::submit_response(stream, 200, fields, false)): content-type
// application/grpc, grpc-status, grpc-message (percent-encoded, omitted when empty).
void grpc_error_fields(GrpcStatus status, std::string_view message, FieldList* out);

// The gRPC status for an HTTP status from a non-gRPC reply (gRPC's http-grpc-status-mapping):
// 400 INTERNAL, 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 UNIMPLEMENTED, 429/502/503/504
// UNAVAILABLE, anything else UNKNOWN.
GrpcStatus grpc_status_for_http(int http_status) noexcept;

}  // namespace outrigger::h2
