#include "proxy/h2/small_blocks.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace outrigger::h2 {
namespace {

struct Header {
  uint32_t cls;
  uint32_t pad;
  uint64_t size;
};
static_assert(sizeof(Header) == SmallBlocks::kHeader);  // keeps malloc's 16-byte alignment

constexpr uint32_t kNoClass = 0xff;
constexpr size_t kMaxBlock = size_t{SmallBlocks::kMinBlock} << (SmallBlocks::kClasses - 1);

uint32_t class_of(size_t total) {
  uint32_t c = 0;
  while ((size_t{SmallBlocks::kMinBlock} << c) < total) ++c;
  return c;
}
Header& header(void* raw) { return *static_cast<Header*>(raw); }
void* stamp(void* raw, uint32_t c, size_t n) {
  if (raw == nullptr) return nullptr;
  header(raw) = {c, 0, n};
  return static_cast<char*>(raw) + SmallBlocks::kHeader;
}

}  // namespace

SmallBlocks::~SmallBlocks() {
  for (auto& list : free_) {
    for (void* raw : list) std::free(raw);
  }
}

void* SmallBlocks::alloc(size_t n) {
  if (n > kMaxBlock - kHeader) return stamp(std::malloc(n + kHeader), kNoClass, n);
  const uint32_t c = class_of(n + kHeader);
  auto& list = free_[c];
  if (!list.empty()) {
    void* raw = list.back();
    list.pop_back();
    return stamp(raw, c, n);
  }
  return stamp(std::malloc(size_t{kMinBlock} << c), c, n);
}

void SmallBlocks::release(void* p) {
  if (p == nullptr) return;
  void* raw = static_cast<char*>(p) - kHeader;
  const uint32_t c = header(raw).cls;
  if (c != kNoClass && free_[c].size() < (kCachedBytesPerClass >> c) / kMinBlock) {
    free_[c].push_back(raw);
    return;
  }
  std::free(raw);
}

void* SmallBlocks::resize(void* p, size_t n) {
  if (p == nullptr) return alloc(n);
  void* raw = static_cast<char*>(p) - kHeader;
  const Header h = header(raw);
  if (h.cls != kNoClass && n + kHeader <= (size_t{kMinBlock} << h.cls)) {
    header(raw).size = n;
    return p;
  }
  void* q = alloc(n);
  if (q == nullptr) return nullptr;
  std::memcpy(q, p, std::min<size_t>(h.size, n));
  release(p);
  return q;
}

namespace {
SmallBlocks& local() {
  thread_local SmallBlocks blocks;
  return blocks;
}
}  // namespace

nghttp2_mem* SmallBlocks::mem() {
#if defined(__SANITIZE_ADDRESS__)
  return nullptr;  // nghttp2's default: malloc
#else
  static nghttp2_mem m = {
      nullptr,
      [](size_t n, void*) { return local().alloc(n); },
      [](void* p, void*) { local().release(p); },
      [](size_t count, size_t size, void*) -> void* {
        if (size != 0 && count > SIZE_MAX / size) return nullptr;
        void* p = local().alloc(count * size);
        if (p != nullptr) std::memset(p, 0, count * size);
        return p;
      },
      [](void* p, size_t n, void*) { return local().resize(p, n); },
  };
  return &m;
#endif
}

}  // namespace outrigger::h2
