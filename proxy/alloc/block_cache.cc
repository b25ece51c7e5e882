// Global operator new/delete with a per-thread cache of small blocks in front of malloc.
//
// Why: an HTTP/2 stream makes about 15 short-lived allocations (coroutine frames, Asio operations,
// stream state), and a worker has 100+ streams in flight, so the same sizes are freed and asked
// for again in bursts of 100+. glibc's tcache keeps 7 blocks per size; the rest go through
// _int_malloc/_int_free, which was 14 % of the instructions of the h2c-h1 bench case
// (bench/RESULTS.md, 2026-12-07). tcmalloc fixes that but holds ~4 MiB more at rest.
//
// How: sizes up to kMaxCached are rounded up to a size class; a freed block goes onto its thread's
// list for that class (LIFO, so the next request of that class gets a cache-warm block), up to a
// per-class count and a per-thread byte budget; beyond those, and for bigger sizes, it is malloc
// and free as before. Every block comes from malloc, so a block may be freed on another thread or
// by plain free(). An unsized delete (Asio frees its operations and frames that way) files the
// block under the largest class that fits in malloc_usable_size(): never a class bigger than the
// block. A thread's cache is handed back to malloc when the thread ends.
//
// Built only into binaries with OUTRIGGER_MALLOC=cached (the default); never with sanitizers,
// whose own operator new must see every allocation.
#include "proxy/alloc/block_cache.h"

#include <malloc.h>
#include <openssl/crypto.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace outrigger::alloc {
namespace {

// 16-byte steps up to 1 KiB (classes 1..64), 256-byte steps up to 8 KiB (65..92), then 4 KiB
// steps up to 32 KiB (93..98): OpenSSL's record buffers (about 17.5 KiB) and our TLS read buffer
// come and go with every request on a connection, so they are worth keeping too.
constexpr std::size_t class_of(std::size_t n) {
  if (n <= 1024) return (n + 15) >> 4;
  if (n <= 8192) return 64 + ((n - 1024 + 255) >> 8);
  return 92 + ((n - 8192 + 4095) >> 12);
}
constexpr std::size_t class_size(std::size_t c) {
  if (c <= 64) return c << 4;
  if (c <= 92) return 1024 + ((c - 64) << 8);
  return 8192 + ((c - 92) << 12);
}
// The largest class whose size is at most u (u >= 16).
constexpr std::size_t floor_class(std::size_t u) {
  if (u <= 1024) return u >> 4;
  if (u < 12288) return 64 + ((std::min<std::size_t>(u, 8192) - 1024) >> 8);
  return 92 + ((u - 8192) >> 12);
}
constexpr std::size_t kClasses = class_of(kMaxCached) + 1;
static_assert(class_size(class_of(kMaxCached)) == kMaxCached);
static_assert(class_size(class_of(1025)) >= 1025 && class_size(class_of(1024)) == 1024);
static_assert(floor_class(1279) == 64 && floor_class(1280) == 65 && floor_class(63) == 3);
static_assert(class_of(8192) == 92 && class_of(8193) == 93 && class_size(93) == 12288);
static_assert(floor_class(8192) == 92 && floor_class(12287) == 92 && floor_class(12288) == 93);
static_assert(floor_class(kMaxCached) == class_of(kMaxCached));

constexpr std::uint32_t class_cap(std::size_t c) {
  const std::size_t by_bytes = kClassBudget / class_size(c);
  return static_cast<std::uint32_t>(by_bytes < kMaxBlocks ? by_bytes : kMaxBlocks);
}

struct FreeBlock {
  FreeBlock* next;
};

// Zero-initialised and trivially destructible, so an access is a plain TLS load (no guard).
struct Cache {
  FreeBlock* head[kClasses];
  std::uint32_t count[kClasses];
  std::size_t bytes;
  bool registered;  // the Flusher below exists for this thread
  bool closed;      // the thread is ending: straight to malloc/free from now on
};
constinit thread_local Cache t_cache{};

void flush(Cache& c) {
  for (std::size_t k = 0; k < kClasses; ++k) {
    for (FreeBlock* b = c.head[k]; b != nullptr;) {
      FreeBlock* next = b->next;
      std::free(b);
      b = next;
    }
    c.head[k] = nullptr;
    c.count[k] = 0;
  }
  c.bytes = 0;
}

// Its destructor runs at thread exit (and for the main thread before static destructors).
struct Flusher {
  ~Flusher() {
    t_cache.closed = true;
    flush(t_cache);
  }
};

[[gnu::noinline]] void register_flusher(Cache& c) {
  c.registered = true;
  static thread_local Flusher flusher;
  (void)&flusher;
}

[[gnu::always_inline]] inline void* allocate(std::size_t n) {
  if (n <= kMaxCached) {
    const std::size_t k = class_of(n | (n == 0));
    Cache& c = t_cache;
    if (FreeBlock* b = c.head[k]) {
      c.head[k] = b->next;
      --c.count[k];
      c.bytes -= class_size(k);
      return b;
    }
    n = class_size(k);
  }
  return std::malloc(n);
}

// Keeps p (at least class_size(k) bytes, from malloc) for reuse, or frees it.
[[gnu::always_inline]] inline void keep(void* p, std::size_t k) {
  Cache& c = t_cache;
  const std::size_t size = class_size(k);
  if (c.count[k] < class_cap(k) && c.bytes + size <= kThreadBudget && !c.closed) {
    if (!c.registered) [[unlikely]]
      register_flusher(c);
    auto* b = static_cast<FreeBlock*>(p);
    b->next = c.head[k];
    c.head[k] = b;
    ++c.count[k];
    c.bytes += size;
    return;
  }
  std::free(p);
}

[[gnu::always_inline]] inline void release(void* p, std::size_t n) {
  if (p == nullptr) return;
  if (n <= kMaxCached) {
    keep(p, class_of(n | (n == 0)));
  } else {
    std::free(p);
  }
}

[[gnu::always_inline]] inline void release_unsized(void* p) {
  if (p == nullptr) return;
  const std::size_t u = malloc_usable_size(p);
  if (u >= 16 && u < kMaxCached + 4096) {  // the largest class takes what is up to 4 KiB above it
    keep(p, floor_class(u));
  } else {
    std::free(p);
  }
}

void* allocate_or_throw(std::size_t n) {
  void* p = allocate(n);
  if (p == nullptr) [[unlikely]]
    throw std::bad_alloc();
  return p;
}

// OpenSSL's allocations, through the same cache: OpenSSL 3.0 makes about six per TLS request
// and, with SSL_MODE_RELEASE_BUFFERS, takes and frees its two record buffers each time (callgrind,
// bench h1-mtls: 1.7k of 32k instructions per request in malloc and free). Every block is a
// malloc block, so realloc can be malloc's own.
void* openssl_malloc(std::size_t n, const char*, int) { return allocate(n); }
void* openssl_realloc(void* p, std::size_t n, const char*, int) {
  if (p == nullptr) return allocate(n);
  if (n == 0) {  // as CRYPTO_realloc: free, and no block
    release_unsized(p);
    return nullptr;
  }
  return std::realloc(p, n);
}
void openssl_free(void* p, const char*, int) { release_unsized(p); }

// Before main, while OpenSSL has allocated nothing yet (it refuses new functions after that).
const bool g_openssl_routed =
    CRYPTO_set_mem_functions(openssl_malloc, openssl_realloc, openssl_free) == 1;

}  // namespace

std::size_t cached_bytes() { return t_cache.bytes; }
bool openssl_routed() { return g_openssl_routed; }
std::size_t size_class(std::size_t n) {
  return n <= kMaxCached ? class_size(class_of(n | (n == 0))) : n;
}

}  // namespace outrigger::alloc

// The replaceable forms of [new.delete.single] and [new.delete.array]. The aligned (align_val_t)
// forms stay the library's: they pair with each other, and nothing here calls them per request.
void* operator new(std::size_t n) { return outrigger::alloc::allocate_or_throw(n); }
void* operator new[](std::size_t n) { return outrigger::alloc::allocate_or_throw(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  return outrigger::alloc::allocate(n);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return outrigger::alloc::allocate(n);
}
void operator delete(void* p) noexcept { outrigger::alloc::release_unsized(p); }
void operator delete[](void* p) noexcept { outrigger::alloc::release_unsized(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept {
  outrigger::alloc::release_unsized(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  outrigger::alloc::release_unsized(p);
}
void operator delete(void* p, std::size_t n) noexcept { outrigger::alloc::release(p, n); }
void operator delete[](void* p, std::size_t n) noexcept { outrigger::alloc::release(p, n); }
