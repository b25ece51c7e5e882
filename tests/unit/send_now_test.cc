// net::send_now and net::skip_bytes over real loopback TCP sockets: a write the socket takes at
// once, one it takes in part (the rest then goes through async_write, in order), a full socket,
// and a peer that is gone.
#include "proxy/net/send_now.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <string>
#include <vector>

#include "tests/unit/loopback_pair.h"

namespace outrigger::net {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

using Pair = test::LoopbackPair;

std::string pattern(size_t n, char seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i % 23);
  return s;
}

TEST(SendNow, ASmallWriteGoesOutAtOnceAcrossPieces) {
  Pair p;
  const std::string a = "GET / HTTP/1.1\r\n", b = "host: x\r\n\r\n";
  const asio::const_buffer bufs[] = {asio::buffer(a), asio::buffer(b)};
  size_t sent = 99;
  auto r = send_now(p.writer, bufs, &sent);
  ASSERT_TRUE(r);
  EXPECT_FALSE(std::get<0>(*r));
  EXPECT_EQ(std::get<1>(*r), a.size() + b.size());
  std::string got(a.size() + b.size(), '\0');
  asio::read(p.reader, asio::buffer(got));
  EXPECT_EQ(got, a + b);
}

// A socket takes part of a write bigger than its buffers: the rest, written with async_write from
// skip_bytes, arrives after it, byte for byte.
TEST(SendNow, APartWriteIsFinishedInOrderByAsyncWrite) {
  Pair p;
  const std::string head = pattern(1000, 'a'), body = pattern(32 << 20, 'A'), tail = "\r\n";
  const asio::const_buffer bufs[] = {asio::buffer(head), asio::buffer(body), asio::buffer(tail)};
  const size_t total = head.size() + body.size() + tail.size();
  size_t sent = 0;
  auto r = send_now(p.writer, bufs, &sent);
  ASSERT_FALSE(r) << "32 MiB went into the socket buffers at once";
  EXPECT_GT(sent, 0u);
  EXPECT_LT(sent, total);
  asio::const_buffer room[3];
  auto rest = skip_bytes(bufs, sent, room);
  size_t rest_bytes = 0;
  for (const auto& x : rest) rest_bytes += x.size();
  EXPECT_EQ(rest_bytes, total - sent);
  std::string got(total, '\0');
  size_t got_n = 0;
  error_code wec, rec;
  asio::async_write(p.writer, rest, [&](error_code ec, size_t) { wec = ec; });
  asio::async_read(p.reader, asio::buffer(got), [&](error_code ec, size_t n) {
    rec = ec;
    got_n = n;
  });
  p.io.run_for(std::chrono::seconds(10));
  EXPECT_FALSE(wec);
  EXPECT_FALSE(rec);
  ASSERT_EQ(got_n, total);
  EXPECT_TRUE(got == head + body + tail) << "bytes out of order or lost";
}

// Nobody reads: writes go in until the buffers on both ends are full, then nothing goes.
TEST(SendNow, AFullSocketSendsNothingAndSaysSo) {
  Pair p;
  const std::string chunk = pattern(64 << 10, 'x');
  const asio::const_buffer one[] = {asio::buffer(chunk)};
  size_t sent = 0, total = 0;
  bool full = false;
  for (int i = 0; i < 4096 && !full; ++i) {  // at most 256 MiB
    const auto r = send_now(p.writer, one, &sent);
    if (r) {
      ASSERT_FALSE(std::get<0>(*r));
      total += std::get<1>(*r);
    } else {
      full = sent == 0;
      total += sent;
    }
  }
  EXPECT_TRUE(full) << total << " bytes went in and the socket never filled";
}

TEST(SendNow, APeerThatIsGoneIsAnError) {
  Pair p;
  p.reader.set_option(asio::socket_base::linger(true, 0));
  p.reader.close();  // RST
  const std::string x = "x";
  const asio::const_buffer one[] = {asio::buffer(x)};
  size_t sent = 0;
  std::optional<IoResult> r;
  for (int i = 0; i < 100 && !(r && std::get<0>(*r)); ++i) r = send_now(p.writer, one, &sent);
  ASSERT_TRUE(r);
  EXPECT_TRUE(std::get<0>(*r)) << "no error after the peer reset the connection";
}

TEST(SendNow, SkipBytesAcrossPieceBoundaries) {
  const std::string a = "abc", b = "", c = "defgh";
  const asio::const_buffer bufs[] = {asio::buffer(a), asio::buffer(b), asio::buffer(c)};
  asio::const_buffer room[3];
  auto flat = [](std::span<const asio::const_buffer> v) {
    std::string s;
    for (const auto& x : v) s.append(static_cast<const char*>(x.data()), x.size());
    return s;
  };
  EXPECT_EQ(flat(skip_bytes(bufs, 0, room)), "abcdefgh");
  EXPECT_EQ(flat(skip_bytes(bufs, 2, room)), "cdefgh");
  EXPECT_EQ(flat(skip_bytes(bufs, 3, room)), "defgh");
  EXPECT_EQ(skip_bytes(bufs, 3, room).size(), 1u);  // emptied pieces are dropped
  EXPECT_EQ(flat(skip_bytes(bufs, 7, room)), "h");
  EXPECT_TRUE(skip_bytes(bufs, 8, room).empty());
}

}  // namespace
}  // namespace outrigger::net
