// Generated request ids: the text of a random (version 4) UUID.
#pragma once

#include <cstdint>
#include <cstring>

namespace outrigger::base {

// Eight lower-case hex digits of x, most significant first, without a loop or a table: the
// nibbles are spread one per byte, the bytes put in printing order, and '0' or 'a' - 10 added to
// all eight at once.
inline void hex8(uint32_t x, char* out) noexcept {
  uint64_t v = x;
  v = ((v & 0xffff0000ull) << 16) | (v & 0x0000ffffull);
  v = ((v & 0x0000ff000000ff00ull) << 8) | (v & 0x000000ff000000ffull);
  v = ((v & 0x00f000f000f000f0ull) << 4) | (v & 0x000f000f000f000full);
  v = __builtin_bswap64(v);  // byte 0 (first in memory) now holds the top nibble
  const uint64_t letters = ((v + 0x0606060606060606ull) >> 4) & 0x0101010101010101ull;  // >= 10
  v += 0x3030303030303030ull + letters * ('a' - '0' - 10);
  std::memcpy(out, &v, 8);
}

// xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx from 128 random bits (RFC 9562 4.4: version 4 in the
// top nibble of the third group, variant 10 in the top bits of the fourth).
inline void format_uuid_v4(uint64_t a, uint64_t b, char out[36]) noexcept {
  a = (a & ~(0xfull << 12)) | (0x4ull << 12);
  b = (b & ~(0x3ull << 62)) | (0x2ull << 62);
  char d[32];
  hex8(static_cast<uint32_t>(a >> 32), d);
  hex8(static_cast<uint32_t>(a), d + 8);
  hex8(static_cast<uint32_t>(b >> 32), d + 16);
  hex8(static_cast<uint32_t>(b), d + 24);
  std::memcpy(out, d, 8);
  out[8] = '-';
  std::memcpy(out + 9, d + 8, 4);
  out[13] = '-';
  std::memcpy(out + 14, d + 12, 4);
  out[18] = '-';
  std::memcpy(out + 19, d + 16, 4);
  out[23] = '-';
  std::memcpy(out + 24, d + 20, 12);
}

}  // namespace outrigger::base
