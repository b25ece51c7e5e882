// A connected pair of real loopback TCP sockets on one io_context, for tests of the socket-level
// code in proxy/net (drain_read_test.cc, send_now_test.cc).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

namespace outrigger::test {

struct LoopbackPair {
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket reader{io};  // the accepted side
  boost::asio::ip::tcp::socket writer{io};  // the connecting side

  LoopbackPair() {
    using boost::asio::ip::tcp;
    tcp::acceptor acc(io, tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
    writer.connect(acc.local_endpoint());
    reader = acc.accept();
  }
};

}  // namespace outrigger::test
