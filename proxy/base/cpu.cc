#include "proxy/base/cpu.h"

#include <sched.h>

#include <charconv>
#include <fstream>
#include <sstream>
#include <string>

namespace outrigger::base {

unsigned cpus_from_cpu_max(std::string_view content) {
  // "<quota> <period>" or "max <period>"
  const size_t sp = content.find(' ');
  if (sp == std::string_view::npos) return 0;
  std::string_view quota = content.substr(0, sp);
  std::string_view period = content.substr(sp + 1);
  while (!period.empty() && (period.back() == '\n' || period.back() == ' ')) period.remove_suffix(1);
  if (quota == "max") return 0;
  long long q = 0, p = 0;
  if (std::from_chars(quota.data(), quota.data() + quota.size(), q).ec != std::errc{} ||
      std::from_chars(period.data(), period.data() + period.size(), p).ec != std::errc{} || q <= 0 ||
      p <= 0) {
    return 0;
  }
  return static_cast<unsigned>((q + p - 1) / p);
}

namespace {
std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The process's own cgroup v2 directory from /proc/self/cgroup ("0::/path").
std::string own_cgroup_dir() {
  std::string content = read_file("/proc/self/cgroup");
  const size_t pos = content.find("0::");
  if (pos == std::string::npos) return "/sys/fs/cgroup";
  std::string rel = content.substr(pos + 3);
  rel = rel.substr(0, rel.find('\n'));
  return "/sys/fs/cgroup" + (rel == "/" ? std::string() : rel);
}
}  // namespace

unsigned usable_cpus() {
  unsigned n = 1;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) n = static_cast<unsigned>(CPU_COUNT(&set));
  // Walk up from our cgroup: the tightest cpu.max on the path applies (Fargate sets it on the task).
  std::string dir = own_cgroup_dir();
  for (int depth = 0; depth < 32 && dir.size() >= std::string("/sys/fs/cgroup").size(); ++depth) {
    const unsigned q = cpus_from_cpu_max(read_file(dir + "/cpu.max"));
    if (q > 0 && q < n) n = q;
    if (dir == "/sys/fs/cgroup") break;
    dir = dir.substr(0, dir.rfind('/'));
  }
  return n == 0 ? 1 : n;
}

}  // namespace outrigger::base
