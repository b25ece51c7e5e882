#include <gtest/gtest.h>

#include "proxy/base/cpu.h"

namespace outrigger::base {
TEST(Cpu, CpuMaxParsing) {
  EXPECT_EQ(cpus_from_cpu_max("max 100000\n"), 0u);
  EXPECT_EQ(cpus_from_cpu_max("100000 100000\n"), 1u);
  EXPECT_EQ(cpus_from_cpu_max("150000 100000\n"), 2u);  // 1.5 CPUs -> 2 workers
  EXPECT_EQ(cpus_from_cpu_max("25000 100000"), 1u);
  EXPECT_EQ(cpus_from_cpu_max("400000 100000"), 4u);
  EXPECT_EQ(cpus_from_cpu_max("garbage"), 0u);
  EXPECT_GE(usable_cpus(), 1u);
}
}  // namespace outrigger::base
