#include "proxy/h2/grpc.h"

#include <algorithm>
#include <charconv>
#include <limits>

#include "proxy/http/h1.h"

namespace outrigger::h2 {

bool is_grpc_content_type(std::string_view ct) noexcept {
  constexpr std::string_view kType = "application/grpc";
  if (ct.size() < kType.size() || !http::iequals(ct.substr(0, kType.size()), kType)) return false;
  if (ct.size() == kType.size()) return true;
  const char next = ct[kType.size()];
  return next == '+' || next == ';';
}

bool is_grpc_request(std::span<const Field> fields) noexcept {
  for (const Field& f : fields) {
    if (f.name == "content-type") return is_grpc_content_type(f.value);
  }
  return false;
}

std::expected<std::chrono::nanoseconds, std::string> parse_grpc_timeout(std::string_view v) {
  if (v.size() < 2 || v.size() > 9)
    return std::unexpected("grpc-timeout: 1 to 8 digits and a unit");
  const std::string_view digits = v.substr(0, v.size() - 1);
  int64_t n = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::unexpected("grpc-timeout: not a number");
    n = n * 10 + (c - '0');
  }
  int64_t unit_ns = 0;
  switch (v.back()) {
    case 'H':
      unit_ns = 3'600'000'000'000;
      break;
    case 'M':
      unit_ns = 60'000'000'000;
      break;
    case 'S':
      unit_ns = 1'000'000'000;
      break;
    case 'm':
      unit_ns = 1'000'000;
      break;
    case 'u':
      unit_ns = 1'000;
      break;
    case 'n':
      unit_ns = 1;
      break;
    default:
      return std::unexpected("grpc-timeout: unit is not one of H M S m u n");
  }
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  if (n > kMax / unit_ns) return std::chrono::nanoseconds::max();
  return std::chrono::nanoseconds(n * unit_ns);
}

std::string format_grpc_timeout(std::chrono::nanoseconds d) {
  static constexpr struct {
    int64_t ns;
    char unit;
  } kUnits[] = {{1, 'n'},
                {1'000, 'u'},
                {1'000'000, 'm'},
                {1'000'000'000, 'S'},
                {60'000'000'000, 'M'},
                {3'600'000'000'000, 'H'}};
  const int64_t ns = std::max<int64_t>(0, d.count());
  for (const auto& u : kUnits) {
    const int64_t v = ns / u.ns + (ns % u.ns != 0 ? 1 : 0);
    if (v <= 99'999'999) {
      char buf[16];
      auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
      std::string s(buf, end);
      s.push_back(u.unit);
      return s;
    }
  }
  return "99999999H";
}

std::string grpc_percent_encode(std::string_view m) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(m.size());
  for (char ch : m) {
    const auto c = static_cast<uint8_t>(ch);
    if (c >= 0x20 && c <= 0x7e && c != '%') {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string grpc_percent_decode(std::string_view e) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(e.size());
  for (size_t i = 0; i < e.size(); ++i) {
    if (e[i] == '%' && i + 2 < e.size()) {
      const int a = hex(e[i + 1]), b = hex(e[i + 2]);
      if (a >= 0 && b >= 0) {
        out.push_back(static_cast<char>(a * 16 + b));
        i += 2;
        continue;
      }
    }
    out.push_back(e[i]);
  }
  return out;
}

void grpc_error_fields(GrpcStatus status, std::string_view message, FieldList* out) {
  char buf[4];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, static_cast<int>(status));
  out->add("content-type", "application/grpc");
  out->add("grpc-status", std::string_view(buf, static_cast<size_t>(end - buf)));
  if (!message.empty()) out->add("grpc-message", grpc_percent_encode(message));
}

GrpcStatus grpc_status_for_http(int s) noexcept {
  switch (s) {
    case 400:
      return GrpcStatus::kInternal;
    case 401:
      return GrpcStatus::kUnauthenticated;
    case 403:
      return GrpcStatus::kPermissionDenied;
    case 404:
      return GrpcStatus::kUnimplemented;
    case 429:
    case 502:
    case 503:
    case 504:
      return GrpcStatus::kUnavailable;
    default:
      return GrpcStatus::kUnknown;
  }
}

}  // namespace outrigger::h2
