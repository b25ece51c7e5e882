// Generated request ids (proxy/base/uuid.h) against a plain snprintf reference.
#include "proxy/base/uuid.h"

#include <gtest/gtest.h>

#include <cinttypes>
#include <cstdio>
#include <random>
#include <string>

namespace outrigger::base {
namespace {

std::string reference(uint64_t a, uint64_t b) {
  char buf[40];
  std::snprintf(
      buf, sizeof buf, "%08" PRIx64 "-%04" PRIx64 "-4%03" PRIx64 "-%04" PRIx64 "-%012" PRIx64,
      a >> 32, (a >> 16) & 0xffff, a & 0xfff, ((b >> 48) & 0x3fff) | 0x8000, static_cast<uint64_t>(b & 0xffffffffffffull));
  return buf;
}

TEST(Uuid, Hex8MatchesPrintf) {
  std::mt19937_64 rng(1);
  for (uint32_t x : {0u, 9u, 10u, 15u, 0x12345678u, 0x9abcdef0u, 0xffffffffu, 0xa0b0c0d0u}) {
    char out[8];
    hex8(x, out);
    char ref[9];
    std::snprintf(ref, sizeof ref, "%08x", x);
    EXPECT_EQ(std::string(out, 8), ref);
  }
  for (int i = 0; i < 100000; ++i) {
    const auto x = static_cast<uint32_t>(rng());
    char out[8];
    hex8(x, out);
    char ref[9];
    std::snprintf(ref, sizeof ref, "%08x", x);
    ASSERT_EQ(std::string(out, 8), ref) << x;
  }
}

TEST(Uuid, Version4LayoutFromRandomBits) {
  std::mt19937_64 rng(2);
  for (int i = 0; i < 100000; ++i) {
    const uint64_t a = i == 0 ? 0 : i == 1 ? ~0ull : rng();
    const uint64_t b = i == 0 ? 0 : i == 1 ? ~0ull : rng();
    char out[36];
    format_uuid_v4(a, b, out);
    const std::string s(out, 36);
    ASSERT_EQ(s, reference(a, b));
    ASSERT_EQ(s[14], '4');
    ASSERT_NE(std::string("89ab").find(s[19]), std::string::npos) << s;
  }
}

}  // namespace
}  // namespace outrigger::base
