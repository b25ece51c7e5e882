// Scalar syntaxes of the config language (durations, sizes, addresses, names, host patterns),
// each parser returning a short lower-case reason on failure. Internal to config/.
//
// Thread affinity: none (pure functions).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/model.h"

namespace outrigger::config::syntax {

// Largest duration accepted: its nanosecond count still fits in int64 (~292 years), so the
// runtime can convert any configured duration to a clock's native unit without overflow.
inline constexpr int64_t kMaxDurationMs = INT64_MAX / 1'000'000;

// "250ms", "5s", "2m", "1h". On failure *reason says why ("missing unit; use ms, s, m or h").
bool parse_duration(std::string_view text, Duration* out, std::string* reason);
// The shortest exact spelling with a single unit: 0 -> "0s", 1500 -> "1500ms", 120000 -> "2m".
std::string format_duration(Duration d);

// "1048576", "64KiB", "16MiB", "1GiB", "1TiB" (binary units only).
bool parse_size(std::string_view text, uint64_t* out, std::string* reason);

// Decimal integer with an optional leading '-' (so negatives can be reported as out of range).
bool parse_int(std::string_view text, int64_t* out);

bool is_ipv4_literal(std::string_view text);
bool is_ipv6_literal(std::string_view text);  // without brackets
// An RFC 1123 host name (labels of letters, digits, '-' and '_', 1..63 each, 253 in total, an
// optional trailing dot) whose last label is not all digits (that would be a mistyped IPv4).
bool is_dns_name(std::string_view text);

// Full parse_host_port with the reason for failure. IPv6 hosts come back in canonical form.
bool parse_host_port(std::string_view text, bool require_ip, HostPort* out, std::string* reason);

// Listener, route and cluster names: [A-Za-z0-9_.-]+ (they appear in stats and logs).
bool is_valid_name(std::string_view text);

// Route host patterns: "*", "*.suffix", or an exact host (DNS name, IPv4, or bracketed IPv6),
// without a port. *normalized is lower case.
bool parse_host_pattern(std::string_view text, std::string* normalized, std::string* reason);

// Levenshtein distance, for "did you mean" hints.
size_t edit_distance(std::string_view a, std::string_view b);
// The candidate nearest to `word` when it is near enough to be a likely typo, else "".
std::string closest(std::string_view word, const std::vector<std::string>& candidates);

// A double-quoted, escaped rendering of `text` for messages and JSON. Malformed UTF-8 becomes
// U+FFFD (the loader refuses it in values, so what the admin /config prints loads back the same).
std::string quote(std::string_view text);
// The length of the well-formed UTF-8 sequence at text[i] (1 for ASCII), or 0 when the bytes
// there are not one (RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF).
size_t utf8_length_at(std::string_view text, size_t i) noexcept;
// The offset of the first byte that does not start a well-formed UTF-8 sequence, or npos.
size_t first_bad_utf8(std::string_view text) noexcept;

}  // namespace outrigger::config::syntax
