// A tiny, bounded JSON reader for the small documents AWS endpoints return (credentials, task
// metadata): it validates the whole text, lists an object's members with their raw value text, and
// decodes strings. No DOM, no dependency; nested values are validated and skipped, not built.
//
// Thread affinity: pure functions, any thread. Error strings never quote the input (a credentials
// document holds secrets), only positions and reasons.
#pragma once

#include <cstddef>
#include <expected>
#include <string>
#include <string_view>
#include <vector>

namespace outrigger::aws::json {

enum class Kind { kString, kNumber, kObject, kArray, kTrue, kFalse, kNull };

struct Value {
  Kind kind = Kind::kNull;
  std::string_view raw;  // the value's exact text in the document (strings keep their quotes)
};

struct Member {
  std::string key;  // decoded
  Value value;
};

inline constexpr int kMaxDepth = 32;

// The members of the object that is the whole of text (surrounding whitespace allowed), in
// document order (duplicates kept). Fails on any syntax error, on nesting deeper than kMaxDepth and
// on trailing bytes.
std::expected<std::vector<Member>, std::string> parse_object(std::string_view text);
// The elements of an array value (raw text of a Value of kind kArray, or any JSON array text).
std::expected<std::vector<Value>, std::string> parse_array(std::string_view text);
// The UTF-8 text of a string value (its raw text, quotes included). Surrogate pairs are joined;
// a lone surrogate is an error.
std::expected<std::string, std::string> decode_string(std::string_view raw);

// The decoded string member named key (the last one if repeated): an error when the member is
// absent or not a string. For required fields of a flat document.
std::expected<std::string, std::string> string_member(const std::vector<Member>& members,
                                                      std::string_view key);
// The member named key (the last one if repeated), or nullptr.
const Member* find_member(const std::vector<Member>& members, std::string_view key);

}  // namespace outrigger::aws::json
