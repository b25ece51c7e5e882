// How many CPUs this process may really use: affinity mask, capped by the cgroup v2 cpu.max quota.
#pragma once

#include <string_view>

namespace outrigger::base {

// ceil(quota / period) from cpu.max ("max 100000" = no cap), min'ed with the affinity count; >= 1.
unsigned usable_cpus();
// Parses the content of a cgroup v2 cpu.max file; returns 0 when unlimited or unparsable.
unsigned cpus_from_cpu_max(std::string_view content);

}  // namespace outrigger::base
