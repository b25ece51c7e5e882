// The stream-id table (proxy/base/id_table.h) against std::unordered_map, with ids that collide.
#include "proxy/base/id_table.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <random>
#include <unordered_map>

namespace outrigger::base {
namespace {

TEST(IdTable, InsertFindEraseIterate) {
  IdTable<int> t;
  EXPECT_TRUE(t.empty());
  EXPECT_EQ(t.find(1), nullptr);
  EXPECT_FALSE(t.erase(1));
  t[1] = 10;
  t[3] = 30;
  t[5] = 50;
  EXPECT_EQ(t.size(), 3u);
  ASSERT_NE(t.find(3), nullptr);
  EXPECT_EQ(*t.find(3), 30);
  EXPECT_TRUE(t.erase(3));
  EXPECT_EQ(t.find(3), nullptr);
  EXPECT_EQ(*t.find(5), 50);
  std::map<int32_t, int> seen;
  for (const auto& [id, v] : t) seen[id] = v;
  EXPECT_EQ(seen, (std::map<int32_t, int>{{1, 10}, {5, 50}}));
  t.clear();
  EXPECT_TRUE(t.empty());
  EXPECT_EQ(t.find(1), nullptr);
}

TEST(IdTable, ValuesAreReleasedOnErase) {
  IdTable<std::shared_ptr<int>> t;
  auto p = std::make_shared<int>(7);
  t[9] = p;
  EXPECT_EQ(p.use_count(), 2);
  t.erase(9);
  EXPECT_EQ(p.use_count(), 1);
}

// Random inserts, lookups and erases of ids from a few patterns: increasing odd ids (a
// connection's streams), sparse ids 128 apart, and random ids, at every table size from 16 slots
// to thousands (so probing runs, wrap-around at the array's end and backward shifts all happen);
// after every step the table holds exactly what an unordered_map holds.
TEST(IdTable, MatchesUnorderedMapUnderRandomOperations) {
  for (int pattern = 0; pattern < 3; ++pattern) {
    std::mt19937 rng(100 + pattern);
    IdTable<int> t;
    std::unordered_map<int32_t, int> ref;
    int32_t next_odd = 1;
    auto pick_new = [&]() -> int32_t {
      switch (pattern) {
        case 0:
          return (next_odd += 2);
        case 1:
          return 1 + 2 * 64 * static_cast<int32_t>(rng() % 200);  // sparse, 128 apart
        default:
          return 1 + static_cast<int32_t>(rng() % 100000);
      }
    };
    for (int step = 0; step < 60000; ++step) {
      const unsigned op = rng() % 10;
      if (op < 5) {
        const int32_t id = pick_new();
        const int v = static_cast<int>(rng());
        t[id] = v;
        ref[id] = v;
      } else if (op < 8 && !ref.empty()) {
        auto it = ref.begin();
        std::advance(it, rng() % std::min<size_t>(ref.size(), 8));
        const int32_t id = it->first;
        ASSERT_TRUE(t.erase(id)) << id;
        ref.erase(it);
        ASSERT_EQ(t.find(id), nullptr);
      } else {
        const int32_t id = pick_new();
        const int* got = t.find(id);
        auto it = ref.find(id);
        ASSERT_EQ(got != nullptr, it != ref.end()) << id;
        if (got != nullptr) {
          ASSERT_EQ(*got, it->second);
        }
      }
      ASSERT_EQ(t.size(), ref.size());
      if (step % 997 == 0) {
        std::unordered_map<int32_t, int> walked;
        for (const auto& [id, v] : t) walked.emplace(id, v);
        ASSERT_EQ(walked, ref) << "pattern " << pattern << " step " << step;
        for (const auto& [id, v] : ref) {
          ASSERT_NE(t.find(id), nullptr) << id;
          ASSERT_EQ(*t.find(id), v);
        }
      }
      if (ref.size() > 3000) {  // keep sizes varied: drain now and then
        for (auto it = ref.begin(); it != ref.end();) {
          ASSERT_TRUE(t.erase(it->first));
          it = ref.erase(it);
        }
      }
    }
  }
}

}  // namespace
}  // namespace outrigger::base
