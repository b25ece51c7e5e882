// Per-thread free lists by size class for nghttp2's allocations (nghttp2_mem).
//
// nghttp2 allocates several small blocks per stream (stream state, header buffers, HPACK entries;
// callgrind counted ~6 mallocs per proxied request). A session lives on one worker thread; a
// block freed on another thread only joins that thread's lists. Each block carries a 16-byte
// header (its class and requested size), so free and realloc need no size. Lists are bounded
// (64 KiB of cached blocks per class and thread). Sanitizer builds hand nghttp2 plain malloc
// (mem() returns null), so ASan still sees every nghttp2 block; the class itself is unit-tested.
//
// Thread affinity: a SmallBlocks object is used by one thread; mem() uses the calling thread's.
#pragma once

#include <nghttp2/nghttp2.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace outrigger::h2 {

class SmallBlocks {
 public:
  SmallBlocks() = default;
  SmallBlocks(const SmallBlocks&) = delete;
  SmallBlocks& operator=(const SmallBlocks&) = delete;
  ~SmallBlocks();

  // malloc/free/realloc semantics (16-byte aligned; null on failure; resize(p, n) keeps p valid
  // when it fails).
  void* alloc(size_t n);
  void release(void* p);
  void* resize(void* p, size_t n);
  size_t cached(uint32_t cls) const noexcept { return free_[cls].size(); }

  static constexpr uint32_t kMinBlock = 64;
  static constexpr uint32_t kClasses = 7;  // 64 B .. 4 KiB including the header
  static constexpr size_t kHeader = 16;
  static constexpr size_t kCachedBytesPerClass = 64 * 1024;

  // The nghttp2_mem for sessions on the calling thread's lists; null in sanitizer builds.
  static nghttp2_mem* mem();

 private:
  std::array<std::vector<void*>, kClasses> free_;
};

}  // namespace outrigger::h2
