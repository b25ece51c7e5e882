// Fixed-size I/O buffers recycled through a per-worker free list, so that an idle connection
// holds no buffer and a busy one never calls malloc per read.
//
// Thread affinity: worker-local (a pool and its buffers never cross threads).
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

namespace outrigger::base {

inline constexpr size_t kBufferSize = 64 * 1024;

struct Buffer {
  char data[kBufferSize];
};

class BufferPool {
 public:
  explicit BufferPool(size_t max_cached = 256) : max_cached_(max_cached) {}
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;
  ~BufferPool() {
    for (Buffer* b : free_) delete b;
  }
  Buffer* get() {
    ++in_use_;
    if (free_.empty()) return new Buffer;  // uninitialised on purpose: no page is touched early
    Buffer* b = free_.back();
    free_.pop_back();
    return b;
  }
  void put(Buffer* b) noexcept {
    if (b == nullptr) return;
    --in_use_;
    if (free_.size() < max_cached_) {
      free_.push_back(b);
    } else {
      delete b;
      ++released_;
    }
  }
  // Buffers returned to the allocator since the last call (the worker trims the heap when many).
  size_t take_released() noexcept { size_t r = released_; released_ = 0; return r; }
  size_t in_use() const noexcept { return in_use_; }

 private:
  std::vector<Buffer*> free_;
  size_t max_cached_;
  size_t in_use_ = 0;
  size_t released_ = 0;
};

}  // namespace outrigger::base
