#include "proxy/upstream/retry.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>

namespace outrigger::upstream {

namespace {

constexpr bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

using base::trim_ows;

// Uniform in [0, n) from a 64-bit random value without a division (Lemire's multiply-shift).
uint64_t scale(uint64_t random, uint64_t n) noexcept {
  return static_cast<uint64_t>((static_cast<unsigned __int128>(random) * n) >> 64);
}

bool is_gateway_error(int status) noexcept {
  return status == 502 || status == 503 || status == 504;
}

struct Cursor {
  std::string_view s;
  size_t i = 0;
  bool lit(std::string_view t) noexcept {
    if (s.substr(i, t.size()) != t) return false;
    i += t.size();
    return true;
  }
  // Exactly n digits.
  bool num(size_t n, int* out) noexcept {
    if (i + n > s.size()) return false;
    int v = 0;
    for (size_t k = 0; k < n; ++k) {
      if (!is_digit(s[i + k])) return false;
      v = v * 10 + (s[i + k] - '0');
    }
    i += n;
    *out = v;
    return true;
  }
  // One of the names, its index in *out.
  template <size_t N>
  bool one_of(const std::array<std::string_view, N>& names, int* out) noexcept {
    for (size_t k = 0; k < N; ++k) {
      if (lit(names[k])) {
        *out = static_cast<int>(k);
        return true;
      }
    }
    return false;
  }
  bool done() const noexcept { return i == s.size(); }
};

constexpr std::array<std::string_view, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
constexpr std::array<std::string_view, 7> kDays = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
constexpr std::array<std::string_view, 7> kLongDays = {
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"};

bool time_of_day(Cursor& c, int* h, int* m, int* s) noexcept {
  return c.num(2, h) && c.lit(":") && c.num(2, m) && c.lit(":") && c.num(2, s) && *h < 24 &&
         *m < 60 && *s <= 60;  // 60: a leap second (RFC 9110 5.6.7)
}

// In seconds: a system_clock::time_point counts nanoseconds in an int64_t, which ends in 2262,
// and an HTTP-date's four-digit year goes to 9999.
std::optional<std::chrono::sys_seconds> make_time(int y, int mon, int d, int h, int m,
                                                  int s) noexcept {
  using namespace std::chrono;
  const year_month_day ymd{year{y}, month{static_cast<unsigned>(mon)},
                           day{static_cast<unsigned>(d)}};
  if (!ymd.ok()) return std::nullopt;
  return sys_days(ymd) + hours(h) + minutes(m) + seconds(s);
}

// RFC 9110 5.6.7: IMF-fixdate, and the obsolete RFC 850 and asctime forms.
std::optional<std::chrono::sys_seconds> parse_http_date(
    std::string_view v, std::chrono::system_clock::time_point now) noexcept {
  int wd = 0, d = 0, mon = 0, y = 0, h = 0, mi = 0, s = 0;
  {  // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
    Cursor c{v};
    if (c.one_of(kDays, &wd) && c.lit(", ") && c.num(2, &d) && c.lit(" ") &&
        c.one_of(kMonths, &mon) && c.lit(" ") && c.num(4, &y) && c.lit(" ") &&
        time_of_day(c, &h, &mi, &s) && c.lit(" GMT") && c.done()) {
      return make_time(y, mon + 1, d, h, mi, s);
    }
  }
  {  // RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT"
    Cursor c{v};
    if (c.one_of(kLongDays, &wd) && c.lit(", ") && c.num(2, &d) && c.lit("-") &&
        c.one_of(kMonths, &mon) && c.lit("-") && c.num(2, &y) && c.lit(" ") &&
        time_of_day(c, &h, &mi, &s) && c.lit(" GMT") && c.done()) {
      // A two-digit year more than 50 years in the future is the most recent past year with those
      // digits (RFC 9110 5.6.7).
      const int this_year = static_cast<int>(
          std::chrono::year_month_day(std::chrono::floor<std::chrono::days>(now)).year());
      int full = this_year - this_year % 100 + y;
      if (full > this_year + 50) full -= 100;
      return make_time(full, mon + 1, d, h, mi, s);
    }
  }
  {  // asctime: "Sun Nov  6 08:49:37 1994"
    Cursor c{v};
    if (c.one_of(kDays, &wd) && c.lit(" ") && c.one_of(kMonths, &mon) && c.lit(" ")) {
      bool ok = false;
      if (c.lit(" ")) {
        ok = c.num(1, &d);
      } else {
        ok = c.num(2, &d);
      }
      if (ok && c.lit(" ") && time_of_day(c, &h, &mi, &s) && c.lit(" ") && c.num(4, &y) &&
          c.done()) {
        return make_time(y, mon + 1, d, h, mi, s);
      }
    }
  }
  return std::nullopt;
}

const http::Header* find_header(const http::MessageHead& h, std::string_view name) noexcept {
  for (size_t i = 0; i < h.header_count; ++i) {
    if (http::iequals(h.headers[i].name, name)) return &h.headers[i];
  }
  return nullptr;
}

}  // namespace

uint32_t retry_on_bit(std::string_view name) noexcept {
  if (name == "connect-failure") return retry_on::kConnectFailure;
  if (name == "refused-stream") return retry_on::kRefusedStream;
  if (name == "reset") return retry_on::kReset;
  if (name == "gateway-error") return retry_on::kGatewayError;
  if (name == "5xx") return retry_on::k5xx;
  if (name == "retriable-status-codes") return retry_on::kRetriableStatusCodes;
  if (name == "retriable-headers") return retry_on::kRetriableHeaders;
  if (name == "cancelled") return retry_on::kGrpcCancelled;
  if (name == "deadline-exceeded") return retry_on::kGrpcDeadlineExceeded;
  if (name == "resource-exhausted") return retry_on::kGrpcResourceExhausted;
  if (name == "internal") return retry_on::kGrpcInternal;
  if (name == "unavailable") return retry_on::kGrpcUnavailable;
  return 0;
}

std::expected<uint32_t, std::string> parse_retry_on(std::string_view list) {
  uint32_t mask = 0;
  while (!list.empty()) {
    const size_t comma = list.find(',');
    const std::string_view item = trim_ows(list.substr(0, comma));
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    if (item.empty()) continue;
    const uint32_t bit = retry_on_bit(item);
    if (bit == 0) return std::unexpected("unknown retry_on condition '" + std::string(item) + "'");
    mask |= bit;
  }
  return mask;
}

std::expected<uint32_t, std::string> parse_retry_on(std::span<const std::string> names) {
  uint32_t mask = 0;
  for (const std::string& n : names) {
    const uint32_t bit = retry_on_bit(trim_ows(n));
    if (bit == 0) return std::unexpected("unknown retry_on condition '" + n + "'");
    mask |= bit;
  }
  return mask;
}

std::string_view retry_decision_name(RetryDecision d) noexcept {
  switch (d) {
    case RetryDecision::kRetry:
      return "retry";
    case RetryDecision::kNotRetriable:
      return "not_retriable";
    case RetryDecision::kExhausted:
      return "exhausted";
    case RetryDecision::kNotIdempotent:
      return "not_idempotent";
    case RetryDecision::kBodyNotReplayable:
      return "body_not_replayable";
  }
  return "unknown";
}

bool RetryPolicy::retriable(const AttemptOutcome& o) const noexcept {
  using namespace retry_on;
  switch (o.result) {
    // As in Envoy: 5xx includes connect-failure, refused-stream and resets (the router would answer
    // 5xx itself); gateway-error covers what the router would answer as 502/503/504.
    case AttemptResult::kConnectFailure:
      return (retry_on & (kConnectFailure | k5xx | kGatewayError)) != 0;
    case AttemptResult::kRefusedStream:
      return (retry_on & (kRefusedStream | k5xx)) != 0;
    case AttemptResult::kReset:
    case AttemptResult::kPerTryTimeout:
      return (retry_on & (kReset | k5xx | kGatewayError)) != 0;
    case AttemptResult::kResponse:
      break;
  }
  if (grpc_retriable(o)) return true;
  const int s = o.status;
  if ((retry_on & k5xx) && s >= 500 && s <= 599) return true;
  if ((retry_on & kGatewayError) && is_gateway_error(s)) return true;
  if ((retry_on & kRetriableStatusCodes) &&
      std::find(retriable_status_codes.begin(), retriable_status_codes.end(), s) !=
          retriable_status_codes.end()) {
    return true;
  }
  if ((retry_on & kRetriableHeaders) && o.headers != nullptr) {
    for (const RetriableHeader& rh : retriable_headers) {
      for (size_t i = 0; i < o.headers->header_count; ++i) {
        const http::Header& h = o.headers->headers[i];
        if (http::iequals(h.name, rh.name) && (!rh.value || h.value == *rh.value)) return true;
      }
    }
  }
  return false;
}

bool RetryPolicy::grpc_retriable(const AttemptOutcome& o) const noexcept {
  using namespace retry_on;
  if ((retry_on & kGrpcAny) == 0 || o.result != AttemptResult::kResponse || o.headers == nullptr) {
    return false;
  }
  const http::Header* h = find_header(*o.headers, "grpc-status");
  if (h == nullptr) return false;
  uint32_t code = 0;
  const std::string_view v = h->value;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), code);
  if (ec != std::errc() || end != v.data() + v.size()) return false;
  switch (code) {
    case 1:
      return (retry_on & kGrpcCancelled) != 0;
    case 4:
      return (retry_on & kGrpcDeadlineExceeded) != 0;
    case 8:
      return (retry_on & kGrpcResourceExhausted) != 0;
    case 13:
      return (retry_on & kGrpcInternal) != 0;
    case 14:
      return (retry_on & kGrpcUnavailable) != 0;
    default:
      return false;
  }
}

bool RetryPolicy::method_retriable(std::string_view method) const noexcept {
  if (!idempotent_only) return true;
  // Methods are case-sensitive (RFC 9110 9.1).
  return std::find(idempotent_methods.begin(), idempotent_methods.end(), method) !=
         idempotent_methods.end();
}

RetryDecision RetryPolicy::should_retry(const AttemptOutcome& o, std::string_view method,
                                        uint32_t retries_done,
                                        bool body_replayable) const noexcept {
  if (!retriable(o)) return RetryDecision::kNotRetriable;
  if (retries_done >= num_retries) return RetryDecision::kExhausted;
  const bool never_reached =
      o.result == AttemptResult::kConnectFailure || o.result == AttemptResult::kRefusedStream;
  if (!never_reached && !grpc_retriable(o) && !method_retriable(method)) {
    return RetryDecision::kNotIdempotent;
  }
  if (!body_replayable) return RetryDecision::kBodyNotReplayable;
  return RetryDecision::kRetry;
}

milliseconds RetryPolicy::next_backoff(uint32_t retry_number, uint64_t random) const noexcept {
  const int64_t base = backoff_base.count();
  const int64_t cap = backoff_max.count();
  if (base <= 0 || cap <= 0) return milliseconds(0);
  const uint32_t n = std::max<uint32_t>(retry_number, 1);
  // (2^n - 1) x base, saturating at the cap.
  int64_t ceiling = cap;
  if (n < 62) {
    const int64_t factor = (int64_t{1} << n) - 1;
    if (factor <= cap / base) ceiling = std::min(cap, factor * base);
  }
  return milliseconds(static_cast<int64_t>(scale(random, static_cast<uint64_t>(ceiling))));
}

std::optional<milliseconds> RetryPolicy::retry_delay(const AttemptOutcome& o, uint32_t retry_number,
                                                     std::chrono::system_clock::time_point now,
                                                     uint64_t random) const noexcept {
  if (honor_retry_after && o.result == AttemptResult::kResponse && o.headers != nullptr) {
    if (const http::Header* h = find_header(*o.headers, "retry-after")) {
      if (const auto after = parse_retry_after(h->value, now)) {
        if (*after > retry_after_max) return std::nullopt;
        return *after;
      }
    }
  }
  return next_backoff(retry_number, random);
}

std::optional<milliseconds> parse_retry_after(std::string_view value,
                                              std::chrono::system_clock::time_point now) noexcept {
  value = trim_ows(value);
  if (value.empty()) return std::nullopt;
  // RFC 9111 1.2.2: a delta-seconds too large to hold is taken as 2^31; so is a date further off.
  constexpr int64_t kMax = int64_t{1} << 31;
  if (std::all_of(value.begin(), value.end(), is_digit)) {
    int64_t secs = 0;
    for (char c : value) {
      secs = secs * 10 + (c - '0');
      if (secs >= kMax) {
        secs = kMax;
        break;
      }
    }
    return std::chrono::duration_cast<milliseconds>(std::chrono::seconds(secs));
  }
  const auto when = parse_http_date(value, now);
  if (!when) return std::nullopt;
  // In milliseconds since the epoch, where year 9999 fits; the wait rounded up to a millisecond.
  const milliseconds at = when->time_since_epoch();
  const milliseconds from = std::chrono::floor<milliseconds>(now.time_since_epoch());
  if (at <= from) return milliseconds(0);
  return std::min<milliseconds>(at - from, std::chrono::seconds(kMax));
}

std::optional<milliseconds> parse_timeout_ms(std::string_view value) noexcept {
  value = trim_ows(value);
  if (value.empty() || value.size() > 8) return std::nullopt;
  int64_t ms = 0;
  for (char c : value) {
    if (!is_digit(c)) return std::nullopt;
    ms = ms * 10 + (c - '0');
  }
  if (ms < 1 || ms > 86'400'000) return std::nullopt;
  return milliseconds(ms);
}

uint32_t RetryBudget::allowed() const noexcept {
  const double pct = std::max(0.0, opts_.budget_percent);
  const double by_share = pct / 100.0 * static_cast<double>(active_requests_);
  const uint32_t share = by_share >= 4e9 ? UINT32_MAX : static_cast<uint32_t>(by_share);
  return std::max(share, opts_.min_retry_concurrency);
}

bool RetryBudget::try_acquire() noexcept {
  if (active_retries_ >= allowed()) {
    ++overflows_;
    return false;
  }
  ++active_retries_;
  return true;
}

}  // namespace outrigger::upstream
