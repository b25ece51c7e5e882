// The per-thread block cache behind operator new/delete (proxy/alloc/block_cache.cc). Compiled
// only when the test binary is linked with it (OUTRIGGER_MALLOC=cached, not sanitizer builds).
#include "proxy/alloc/block_cache.h"

#include <gtest/gtest.h>
#include <malloc.h>
#include <openssl/crypto.h>

#include <cstdint>
#include <cstring>
#include <new>
#include <random>
#include <thread>
#include <vector>

namespace outrigger::alloc {
namespace {

// Runs f on a new thread, so it starts with an empty cache and its cache is flushed at the end.
template <typename F>
void on_fresh_thread(F f) {
  std::thread t(f);
  t.join();
}

TEST(BlockCache, SizedDeleteKeepsTheBlockForTheNextRequestOfItsClass) {
  on_fresh_thread([] {
    EXPECT_EQ(cached_bytes(), 0u);
    void* p = ::operator new(100);
    ::operator delete(p, 100);
    EXPECT_EQ(cached_bytes(), size_class(100));
    EXPECT_EQ(size_class(100), 112u);
    void* q = ::operator new(97);  // same 112-byte class
    EXPECT_EQ(q, p);
    EXPECT_EQ(cached_bytes(), 0u);
    ::operator delete(q, 97);
  });
}

TEST(BlockCache, SizeClasses) {
  EXPECT_EQ(size_class(0), 16u);
  EXPECT_EQ(size_class(1), 16u);
  EXPECT_EQ(size_class(16), 16u);
  EXPECT_EQ(size_class(17), 32u);
  EXPECT_EQ(size_class(1024), 1024u);
  EXPECT_EQ(size_class(1025), 1280u);
  EXPECT_EQ(size_class(6400), 6400u);
  EXPECT_EQ(size_class(6401), 6656u);
  EXPECT_EQ(size_class(8192), 8192u);
  EXPECT_EQ(size_class(8193), 12288u);
  EXPECT_EQ(size_class(17800), 20480u);  // an OpenSSL 3.0 record buffer
  EXPECT_EQ(size_class(kMaxCached), kMaxCached);
  EXPECT_EQ(size_class(kMaxCached + 1), kMaxCached + 1);  // not a class: malloc as asked
}

TEST(BlockCache, BigBlocksAreNotKept) {
  on_fresh_thread([] {
    void* p = ::operator new(kMaxCached + 1);
    ::operator delete(p, kMaxCached + 1);
    void* q = ::operator new(2 * kMaxCached);
    ::operator delete(q);
    EXPECT_EQ(cached_bytes(), 0u);
  });
}

// An unsized delete files a block under the largest class that fits in it; whatever a later
// request gets must hold at least the bytes it asked for. Random sizes, both kinds of delete,
// every live block filled with its own pattern and checked before it is freed.
TEST(BlockCache, EveryBlockHoldsWhatWasAskedForAcrossSizedAndUnsizedDeletes) {
  on_fresh_thread([] {
    std::mt19937 rng(12345);
    std::uniform_int_distribution<size_t> size(0, kMaxCached + 512);
    struct Live {
      uint8_t* p;
      size_t n;
      uint8_t fill;
      bool sized;
    };
    std::vector<Live> live;
    auto check_and_free = [](const Live& l) {
      for (size_t i = 0; i < l.n; ++i) {
        if (l.p[i] != l.fill) {
          ADD_FAILURE() << "block of " << l.n << " bytes changed at byte " << i;
          break;
        }
      }
      if (l.sized) {
        ::operator delete(l.p, l.n);
      } else {
        ::operator delete(l.p);
      }
    };
    for (int step = 0; step < 200000; ++step) {
      if (live.empty() || rng() % 2 == 0) {
        const size_t n = size(rng);
        auto* p = static_cast<uint8_t*>(::operator new(n));
        ASSERT_EQ(reinterpret_cast<uintptr_t>(p) % 16, 0u);
        ASSERT_GE(malloc_usable_size(p), n);
        const auto fill = static_cast<uint8_t>(step);
        std::memset(p, fill, n);
        live.push_back({p, n, fill, rng() % 3 != 0});
      } else {
        const size_t i = rng() % live.size();
        check_and_free(live[i]);
        live[i] = live.back();
        live.pop_back();
      }
    }
    for (const Live& l : live) check_and_free(l);
    EXPECT_GT(cached_bytes(), 0u);
    EXPECT_LE(cached_bytes(), kThreadBudget);
  });
}

TEST(BlockCache, AClassKeepsAtMostItsBudget) {
  on_fresh_thread([] {
    std::vector<void*> blocks;
    blocks.reserve(2000);  // no vector growth freeing blocks of its own into the cache
    for (int i = 0; i < 2000; ++i) blocks.push_back(::operator new(64));
    for (void* p : blocks) ::operator delete(p, 64);
    EXPECT_EQ(cached_bytes(), kMaxBlocks * 64);  // count cap
    blocks.clear();
    for (int i = 0; i < 1000; ++i) blocks.push_back(::operator new(8192));
    for (void* p : blocks) ::operator delete(p, 8192);
    EXPECT_EQ(cached_bytes(), kMaxBlocks * 64 + kClassBudget);  // byte cap: 128 blocks
    blocks.clear();
    for (int i = 0; i < 100; ++i) blocks.push_back(::operator new(kMaxCached));
    for (void* p : blocks) ::operator delete(p);  // unsized: filed by malloc_usable_size
    EXPECT_EQ(cached_bytes(), kMaxBlocks * 64 + 2 * kClassBudget);  // 32 of the largest class
  });
}

TEST(BlockCache, AThreadKeepsAtMostItsBudget) {
  on_fresh_thread([] {
    std::vector<std::pair<void*, size_t>> blocks;
    blocks.reserve(30000);
    for (size_t n = 1024 + 256; n <= kMaxCached; n += 256) {
      for (size_t i = 0; i < kClassBudget / n + 1; ++i) blocks.emplace_back(::operator new(n), n);
    }
    for (auto [p, n] : blocks) ::operator delete(p, n);
    EXPECT_LE(cached_bytes(), kThreadBudget);
    EXPECT_GT(cached_bytes(), kThreadBudget - kMaxCached);
  });
}

// A block may be freed on another thread than the one that allocated it (an HTTP/2 session's
// blocks are freed where the session ends); it joins the freeing thread's cache.
TEST(BlockCache, BlocksFreedOnAnotherThreadJoinThatThreadsCache) {
  std::vector<void*> blocks;
  blocks.reserve(100);
  on_fresh_thread([&] {
    for (int i = 0; i < 100; ++i) blocks.push_back(::operator new(200));
  });
  on_fresh_thread([&] {
    for (void* p : blocks) ::operator delete(p, 200);
    EXPECT_EQ(cached_bytes(), 100 * size_class(200));
  });
}

// When a thread ends, what its cache held goes back to malloc: malloc's in-use bytes come back
// to where they were before the thread.
TEST(BlockCache, AnEndingThreadHandsItsCacheBackToMalloc) {
  const size_t before = mallinfo2().uordblks;
  size_t held = 0;
  on_fresh_thread([&] {
    std::vector<void*> blocks;
    blocks.reserve(500);
    for (int i = 0; i < 500; ++i) blocks.push_back(::operator new(1000));
    for (void* p : blocks) ::operator delete(p, 1000);
    held = cached_bytes();
  });
  EXPECT_EQ(held, 500 * size_class(1000));
  const size_t after = mallinfo2().uordblks;
  EXPECT_LT(after, before + held / 4) << "before " << before << ", after " << after;
}

// OpenSSL allocates through the cache too (CRYPTO_set_mem_functions before main): a record
// buffer's worth freed by OPENSSL_free is kept, and the next OPENSSL_malloc of its class gets it.
TEST(BlockCache, OpenSslAllocationsGoThroughTheCache) {
  ASSERT_TRUE(openssl_routed());
  on_fresh_thread([] {
    void* p = OPENSSL_malloc(17800);
    ASSERT_NE(p, nullptr);
    std::memset(p, 0x5a, 17800);
    OPENSSL_free(p);
    EXPECT_EQ(cached_bytes(), size_class(17800));
    void* q = OPENSSL_malloc(17000);
    EXPECT_EQ(q, p);
    EXPECT_EQ(cached_bytes(), 0u);
    void* r = OPENSSL_realloc(q, 40000);  // malloc's realloc on a cache block
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(static_cast<unsigned char*>(r)[16999], 0x5a);
    OPENSSL_free(r);
    EXPECT_EQ(cached_bytes(), 0u);  // above the largest class: back to malloc
  });
}

}  // namespace
}  // namespace outrigger::alloc
