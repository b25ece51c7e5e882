#include "proxy/server/access_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "proxy/base/log.h"

namespace outrigger::server {

namespace {
constexpr size_t kFlushThreshold = 32 * 1024;
}

std::unique_ptr<AccessLogSink> AccessLogSink::open_stdout() {
  return std::unique_ptr<AccessLogSink>(new AccessLogSink(STDOUT_FILENO, false));
}

std::unique_ptr<AccessLogSink> AccessLogSink::open_file(const std::string& path, std::string* error) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    *error = path + ": " + std::strerror(errno);
    return nullptr;
  }
  return std::unique_ptr<AccessLogSink>(new AccessLogSink(fd, true));
}

AccessLogSink::~AccessLogSink() {
  if (owned_) ::close(fd_);
}

void AccessLogSink::write(std::string_view lines) {
  std::lock_guard lock(mu_);
  while (!lines.empty()) {
    const ssize_t n = ::write(fd_, lines.data(), lines.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // a closed stdout must not take the proxy down
    lines.remove_prefix(static_cast<size_t>(n));
  }
}

void AccessLogBuffer::append(const AccessLogEntry& e) {
  if (sink_ == nullptr) return;
  std::string& b = buf_;
  b += "{\"time\":\"";
  log::append_time_now(b);
  b += "\",\"listener\":";
  log::append_json_string(b, e.listener);
  b += ",\"route\":";
  log::append_json_string(b, e.route);
  b += ",\"method\":";
  log::append_json_string(b, e.method);
  b += ",\"authority\":";
  log::append_json_string(b, e.authority);
  b += ",\"path\":";
  log::append_json_string(b, e.path);
  b += ",\"protocol\":";
  log::append_json_string(b, e.protocol);
  b += ",\"status\":";
  b += std::to_string(e.status);
  b += ",\"bytes_received\":";
  b += std::to_string(e.bytes_received);
  b += ",\"bytes_sent\":";
  b += std::to_string(e.bytes_sent);
  char dur[32];
  const int n = std::snprintf(dur, sizeof dur, "%.3f", e.duration_ms);
  b += ",\"duration_ms\":";
  b.append(dur, static_cast<size_t>(n));
  b += ",\"upstream\":";
  log::append_json_string(b, e.upstream);
  b += ",\"cluster\":";
  log::append_json_string(b, e.cluster);
  b += ",\"attempts\":";
  b += std::to_string(e.attempts);
  if (!e.upstream_protocol.empty()) {
    b += ",\"upstream_protocol\":\"";
    b += e.upstream_protocol;
    b += '"';
  }
  if (!e.caller.empty()) {
    b += ",\"caller\":";
    log::append_json_string(b, e.caller);
  }
  b += ",\"request_id\":";
  log::append_json_string(b, e.request_id);
  b += "}\n";
  if (b.size() >= kFlushThreshold) flush();
}

void AccessLogBuffer::flush() {
  if (buf_.empty() || sink_ == nullptr) return;
  sink_->write(buf_);
  buf_.clear();
}

}  // namespace outrigger::server
