// net::async_read_drain over real loopback TCP sockets: what it reads, that a read after a
// drained one still sees later bytes, that a FIN which came with the last bytes is seen without
// any new event, and cancellation.
#include "proxy/net/drain_read.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <optional>
#include <string>

#include "tests/unit/loopback_pair.h"

namespace outrigger::net {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

struct Pair : test::LoopbackPair {
  explicit Pair(bool hints = true) {
    if (hints) enable_read_hints(reader);
  }

  // Lets the reactor take the socket's pending epoll edge with no read queued, so a later read
  // gets no new edge for the bytes (and FIN) that are already in.
  void settle() {
    asio::steady_timer t(io, std::chrono::milliseconds(20));
    t.async_wait([](error_code) {});
    io.restart();
    io.run_for(std::chrono::seconds(1));
  }

  // Starts one read and runs the context until it completes or 2 s pass.
  std::optional<std::pair<error_code, std::string>> read(size_t size = 4096) {
    std::string buf(size, '\0');
    std::optional<std::pair<error_code, std::string>> out;
    async_read_drain(reader, asio::buffer(buf),
                     [&](error_code ec, size_t n) { out.emplace(ec, buf.substr(0, n)); });
    io.restart();
    io.run_for(std::chrono::seconds(2));
    return out;
  }
};

TEST(DrainRead, ReadsWhatIsThereAndThenWaitsForMore) {
  for (bool hints : {true, false}) {
    Pair p(hints);
    asio::write(p.writer, asio::buffer(std::string("hello")));
    auto r = p.read();
    ASSERT_TRUE(r) << hints;
    EXPECT_FALSE(r->first);
    EXPECT_EQ(r->second, "hello");
    // The socket is drained now; bytes written while the next read waits still arrive.
    asio::steady_timer later(p.io, std::chrono::milliseconds(50));
    later.async_wait(
        [&](error_code) { asio::write(p.writer, asio::buffer(std::string("world"))); });
    r = p.read();
    ASSERT_TRUE(r) << "a read after a drained one never completed (hints " << hints << ")";
    EXPECT_EQ(r->second, "world");
  }
}

TEST(DrainRead, ABufferSmallerThanTheDataLeavesTheRestForTheNextRead) {
  Pair p;
  asio::write(p.writer, asio::buffer(std::string("abcdefgh")));
  auto r = p.read(3);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->second, "abc");
  r = p.read(3);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->second, "def");
  r = p.read(3);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->second, "gh");
}

// The last bytes and the FIN are both in, and their epoll edge is taken, before the read: the read
// gets the bytes, and the next one must see the end of the stream although no new edge will come.
// (A short read alone would say "drained" here and wait forever; the TCP_INQ hint says a FIN is
// left.)
TEST(DrainRead, AFinThatCameWithTheLastBytesIsSeen) {
  for (bool hints : {true, false}) {
    Pair p(hints);
    asio::write(p.writer, asio::buffer(std::string("last")));
    p.writer.shutdown(tcp::socket::shutdown_send);
    p.settle();
    auto r = p.read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->second, "last");
    r = p.read();
    ASSERT_TRUE(r) << "end of stream not seen (hints " << hints << ")";
    EXPECT_EQ(r->first, asio::error::eof);
    EXPECT_EQ(r->second, "");
  }
}

TEST(DrainRead, AThreadBoundToAContextReadsItsSocketsAndOthers) {
  Pair p;
  Pair other;
  {
    const ThreadReactor bind(p.io);
    asio::write(p.writer, asio::buffer(std::string("mine")));
    asio::write(other.writer, asio::buffer(std::string("theirs")));
    auto r = p.read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->second, "mine");
    r = other.read();  // not the bound context: looked up
    ASSERT_TRUE(r);
    EXPECT_EQ(r->second, "theirs");
  }
  // Unbound again: a context made after the binding ended is looked up too.
  Pair later;
  asio::write(later.writer, asio::buffer(std::string("later")));
  auto r = later.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->second, "later");
}

TEST(DrainRead, CancelEndsAWaitingRead) {
  Pair p;
  asio::steady_timer t(p.io, std::chrono::milliseconds(20));
  t.async_wait([&](error_code) { p.reader.cancel(); });
  auto r = p.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->first, asio::error::operation_aborted);
}

TEST(DrainRead, AClosedSocketSaysBadDescriptor) {
  Pair p;
  p.reader.close();
  auto r = p.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->first, asio::error::bad_descriptor);
}

}  // namespace
}  // namespace outrigger::net
