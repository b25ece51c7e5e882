// Structured logging: one JSON object per line on stderr, for operators and for tests.
//
// Thread affinity: any thread; a line is written with one write(2) so lines never interleave.
// Not for the per-request hot path (the access log has its own buffered writer).
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace outrigger::log {

enum class Level { kDebug, kInfo, kWarn, kError };

// A field's value is written as a JSON string unless raw is set (numbers, nested JSON).
struct Field {
  std::string_view key;
  std::string value;
  bool raw = false;
};
Field num(std::string_view key, long long v);
Field raw(std::string_view key, std::string json);

void write(Level level, std::string_view msg, std::initializer_list<Field> fields = {});
inline void info(std::string_view msg, std::initializer_list<Field> f = {}) { write(Level::kInfo, msg, f); }
inline void warn(std::string_view msg, std::initializer_list<Field> f = {}) { write(Level::kWarn, msg, f); }
inline void error(std::string_view msg, std::initializer_list<Field> f = {}) { write(Level::kError, msg, f); }

// Appends s to out as a JSON string literal (with quotes), escaping control bytes and invalid UTF-8
// as \u00XX so a hostile header can never break the line.
void append_json_string(std::string& out, std::string_view s);
// RFC 3339 UTC time with milliseconds, e.g. 2026-11-22T10:00:00.123Z.
void append_time_now(std::string& out);

}  // namespace outrigger::log
