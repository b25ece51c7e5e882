#include "proxy/base/log.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>

namespace outrigger::log {

Field num(std::string_view key, long long v) { return Field{key, std::to_string(v), true}; }
Field raw(std::string_view key, std::string json) { return Field{key, std::move(json), true}; }

void append_json_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        // Control bytes and every non-ASCII byte are escaped: the output is always valid JSON
        // and ASCII, whatever a client put in a header.
        if (c < 0x20 || c >= 0x7f) {
          out += "\\u00";
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 15]);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
}

void append_time_now(std::string& out) {
  const auto now = std::chrono::system_clock::now();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  const int n = std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                              tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                              static_cast<int>(ms % 1000));
  out.append(buf, static_cast<size_t>(n));
}

void write(Level level, std::string_view msg, std::initializer_list<Field> fields) {
  static constexpr std::string_view kNames[] = {"debug", "info", "warn", "error"};
  std::string line;
  line.reserve(128);
  line += "{\"time\":\"";
  append_time_now(line);
  line += "\",\"level\":\"";
  line += kNames[static_cast<int>(level)];
  line += "\",\"msg\":";
  append_json_string(line, msg);
  for (const Field& f : fields) {
    line.push_back(',');
    append_json_string(line, f.key);
    line.push_back(':');
    if (f.raw) {
      line += f.value;
    } else {
      append_json_string(line, f.value);
    }
  }
  line += "}\n";
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    const ssize_t n = ::write(STDERR_FILENO, p, left);
    if (n <= 0) break;  // stderr gone: nothing sensible to do
    p += n;
    left -= static_cast<size_t>(n);
  }
}

}  // namespace outrigger::log
