#include "proxy/h2/allocator.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

// GCC defines __SANITIZE_ADDRESS__ under -fsanitize=address; clang (up to 16 at least) only
// answers __has_feature(address_sanitizer). The fuzz targets are built with clang.
#if defined(__SANITIZE_ADDRESS__)
#define OUTRIGGER_H2_PLAIN_MALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define OUTRIGGER_H2_PLAIN_MALLOC 1
#endif
#endif

namespace outrigger::h2 {

nghttp2_mem* allocator() {
#if defined(OUTRIGGER_H2_PLAIN_MALLOC)
  return nullptr;
#else
  static nghttp2_mem m = {
      nullptr,
      [](size_t n, void*) { return ::operator new(n, std::nothrow); },
      [](void* p, void*) { ::operator delete(p); },
      [](size_t count, size_t size, void*) -> void* {
        if (size != 0 && count > SIZE_MAX / size) return nullptr;
        void* p = ::operator new(count* size, std::nothrow);
        if (p != nullptr) std::memset(p, 0, count * size);
        return p;
      },
      [](void* p, size_t n, void*) { return std::realloc(p, n); },
  };
  return &m;
#endif
}

}  // namespace outrigger::h2
