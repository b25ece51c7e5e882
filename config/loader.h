// Loads YAML into a validated, immutable Config, or reports every error with file:line:column.
//
// Thread affinity: none (pure functions). Used by `outrigger validate`, `outrigger run` and the
// SIGHUP reload on the main thread. Exceptions never escape these functions.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/model.h"

namespace outrigger::config {

struct Diagnostic {
  SourceLoc loc;  // 1-based; line/column 0 when the error has no position (e.g. unreadable file)
  std::string message;
  std::string to_string() const;  // "FILE:LINE:COLUMN: message"
};

struct LoadResult {
  std::shared_ptr<const Config> config;  // null when errors is non-empty
  std::vector<Diagnostic> errors;
  bool ok() const { return config != nullptr; }
};

LoadResult load_file(const std::string& path);
LoadResult load_string(std::string_view yaml, std::string_view file_name);

// Parses "250ms", "5s", "2m", "1h", "1500us" is rejected (ms is the finest unit); no bare numbers.
bool parse_duration(std::string_view text, Duration* out);
// Parses "1.2.3.4:80", "[::1]:80", "name:443"; port 0..65535. require_ip: host must be an IP
// literal.
bool parse_host_port(std::string_view text, bool require_ip, HostPort* out, std::string* error);

// The effective config as JSON for the admin /config endpoint: every default filled in, keys and
// words as in the YAML schema (durations "5s"/"250ms"), so the output loads back unchanged.
enum class JsonStyle { kPretty, kCompact };
std::string to_json(const Config& config);  // kPretty
std::string to_json(const Config& config, JsonStyle style);

}  // namespace outrigger::config
