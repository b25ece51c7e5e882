// A map from HTTP/2 stream id to V, for the per-connection stream tables.
//
// std::unordered_map cost every stream a node allocation (cold memory with hundreds of streams in
// flight) and every lookup a division by a prime bucket count; the three stream tables of an
// h2-h2 request were about 300 instructions of it. This is open addressing in a power-of-two
// array, at most half full, with linear probing and no node. The slot comes from a Fibonacci
// (multiplicative) hash: stream ids are consecutive odd numbers, and with id >> 1 as the slot
// they would form one long run, which makes every erase (it shifts the rest of its run back, so
// there are no tombstones) walk all the streams in flight.
//
// Like std::unordered_map, it must not change while it is iterated (erase moves entries).
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace outrigger::base {

template <typename V>
class IdTable {
 public:
  using value_type = std::pair<int32_t, V>;  // first == 0: an empty slot (0 is never a stream)

  template <typename Slot>
  class Iter {
   public:
    Iter(Slot* p, Slot* end) : p_(p), end_(end) { skip(); }
    Slot& operator*() const { return *p_; }
    Slot* operator->() const { return p_; }
    Iter& operator++() {
      ++p_;
      skip();
      return *this;
    }
    bool operator==(const Iter& o) const { return p_ == o.p_; }

   private:
    void skip() {
      while (p_ != end_ && p_->first == 0) ++p_;
    }
    Slot* p_;
    Slot* end_;
  };
  using iterator = Iter<value_type>;
  using const_iterator = Iter<const value_type>;

  size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }

  // The value of id (> 0), or null.
  V* find(int32_t id) noexcept {
    if (size_ == 0) return nullptr;
    for (size_t i = home(id);; i = (i + 1) & mask_) {
      if (slots_[i].first == id) return &slots_[i].second;
      if (slots_[i].first == 0) return nullptr;
    }
  }

  // The value of id (> 0), inserted value-initialised when absent.
  V& operator[](int32_t id) {
    if ((size_ + 1) * 2 > slots_.size()) grow();
    size_t i = home(id);
    for (; slots_[i].first != 0; i = (i + 1) & mask_) {
      if (slots_[i].first == id) return slots_[i].second;
    }
    slots_[i].first = id;
    ++size_;
    return slots_[i].second;
  }

  // Removes id; false when it was absent.
  bool erase(int32_t id) noexcept {
    if (size_ == 0) return false;
    size_t i = home(id);
    for (; slots_[i].first != id; i = (i + 1) & mask_) {
      if (slots_[i].first == 0) return false;
    }
    // Backward shift: an entry after the hole moves into it unless its home lies cyclically in
    // (hole, entry], where the hole would put it before its home.
    for (size_t j = (i + 1) & mask_; slots_[j].first != 0; j = (j + 1) & mask_) {
      const size_t k = home(slots_[j].first);
      const bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
      if (stays) continue;
      slots_[i] = std::move(slots_[j]);
      i = j;
    }
    slots_[i] = value_type();
    --size_;
    return true;
  }

  void clear() noexcept {
    for (value_type& s : slots_) s = value_type();
    size_ = 0;
  }

  iterator begin() { return {slots_.data(), slots_.data() + slots_.size()}; }
  iterator end() { return {slots_.data() + slots_.size(), slots_.data() + slots_.size()}; }
  const_iterator begin() const { return {slots_.data(), slots_.data() + slots_.size()}; }
  const_iterator end() const {
    return {slots_.data() + slots_.size(), slots_.data() + slots_.size()};
  }

 private:
  size_t home(int32_t id) const noexcept {
    return (static_cast<uint32_t>(id) * 0x9E3779B9u) >>
           shift_;  // the top bits: 2^32 / golden ratio
  }

  void grow() {
    std::vector<value_type> old = std::move(slots_);
    slots_.clear();
    slots_.resize(old.empty() ? 16 : old.size() * 2);
    mask_ = slots_.size() - 1;
    shift_ = 32 - static_cast<unsigned>(__builtin_ctzll(slots_.size()));
    for (value_type& s : old) {
      if (s.first == 0) continue;
      size_t i = home(s.first);
      while (slots_[i].first != 0) i = (i + 1) & mask_;
      slots_[i] = std::move(s);
    }
  }

  std::vector<value_type> slots_;
  size_t mask_ = 0;
  unsigned shift_ = 32;
  size_t size_ = 0;
};

}  // namespace outrigger::base
