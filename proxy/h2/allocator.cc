#include "proxy/h2/allocator.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

namespace outrigger::h2 {

nghttp2_mem* allocator() {
#if defined(__SANITIZE_ADDRESS__)
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
