// Access log: one JSON object per request, buffered per worker and written in whole lines.
//
// Thread affinity: AccessLogBuffer is worker-local; AccessLogSink is shared and serialises the
// (rare, batched) writes of whole buffers with a mutex that is never taken per request.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

namespace outrigger::server {

class AccessLogSink {
 public:
  // fd is borrowed for stdout; a path is opened O_APPEND. Returns null on open failure (with error).
  static std::unique_ptr<AccessLogSink> open_stdout();
  static std::unique_ptr<AccessLogSink> open_file(const std::string& path, std::string* error);
  ~AccessLogSink();
  void write(std::string_view lines);

 private:
  explicit AccessLogSink(int fd, bool owned) : fd_(fd), owned_(owned) {}
  std::mutex mu_;
  int fd_;
  bool owned_;
};

struct AccessLogEntry {
  std::string_view listener, route, method, authority, path, protocol, upstream, request_id;
  std::string_view cluster;  // the cluster the request went to ("" = none)
  std::string_view upstream_protocol;  // "HTTP/1.1" or "HTTP/2" when an attempt was made
  std::string_view caller;   // verified caller "account/service" on TLS listeners, else ""
  uint32_t attempts = 0;     // upstream attempts (1 + retries); 0 = none was made
  int status = 0;
  uint64_t bytes_received = 0, bytes_sent = 0;
  double duration_ms = 0;
};

class AccessLogBuffer {
 public:
  explicit AccessLogBuffer(AccessLogSink* sink) : sink_(sink) {}
  bool enabled() const { return sink_ != nullptr; }
  void append(const AccessLogEntry& e);
  void flush();  // called by the worker tick and when the buffer passes its threshold

 private:
  AccessLogSink* sink_;
  std::string buf_;
};

}  // namespace outrigger::server
