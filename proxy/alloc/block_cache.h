// The per-thread block cache behind operator new/delete (block_cache.cc), for tests and metrics.
// Only linked into binaries built with OUTRIGGER_MALLOC=cached.
#pragma once

#include <cstddef>

namespace outrigger::alloc {

// Limits: per size class at most kClassBudget bytes and kMaxBlocks blocks, per thread at most
// kThreadBudget bytes; blocks above kMaxCached bytes are never kept.
inline constexpr std::size_t kMaxCached = 32768;
inline constexpr std::size_t kClassBudget = 1 << 20;
inline constexpr std::size_t kMaxBlocks = 512;
inline constexpr std::size_t kThreadBudget = 8 << 20;

// Bytes the calling thread holds in its cache (freed blocks kept for reuse).
std::size_t cached_bytes();
// The block size a request of n bytes is served with (n itself above the largest class).
std::size_t size_class(std::size_t n);
// Whether OpenSSL's allocations go through the cache too (set before main; false if OpenSSL had
// allocated before that, when it keeps its own).
bool openssl_routed();

}  // namespace outrigger::alloc
