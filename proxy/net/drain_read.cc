#include "proxy/net/drain_read.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <boost/asio/execution/context.hpp>
#include <boost/asio/query.hpp>
#include <cerrno>
#include <cstring>

#ifndef TCP_INQ  // Linux 4.18; glibc 2.36 has it, older headers may not
#define TCP_INQ 36
#define TCP_CM_INQ TCP_INQ
#endif

namespace outrigger::net {
namespace drain_detail {

// Looked up each time (a registry walk under a mutex): a per-thread cache keyed by the context's
// address could outlive its context, and tests make and destroy many.
ad::reactor& reactor_of(tcp::socket& s) {
  return boost::asio::use_service<ad::reactor>(
      boost::asio::query(s.get_executor(), boost::asio::execution::context));
}

ad::reactor_op::status recv_with_hint(int fd, boost::asio::mutable_buffer b,
                                      boost::system::error_code& ec, std::size_t& n) {
  for (;;) {
    iovec iov{b.data(), b.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = control;
    m.msg_controllen = sizeof control;
    const ssize_t r = ::recvmsg(fd, &m, 0);
    if (r > 0) {
      ec = boost::system::error_code();
      n = static_cast<std::size_t>(r);
      for (cmsghdr* c = CMSG_FIRSTHDR(&m); c != nullptr; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level == SOL_TCP && c->cmsg_type == TCP_CM_INQ) {
          int left;
          std::memcpy(&left, CMSG_DATA(c), sizeof left);
          return left == 0 ? ad::reactor_op::done_and_exhausted : ad::reactor_op::done;
        }
      }
      return ad::reactor_op::done;  // no hint: maybe more, try again next time
    }
    n = 0;
    if (r == 0) {
      ec = boost::asio::error::eof;
      return ad::reactor_op::done_and_exhausted;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return ad::reactor_op::not_done;
    ec = boost::system::error_code(errno, boost::asio::error::get_system_category());
    return ad::reactor_op::done_and_exhausted;
  }
}

}  // namespace drain_detail

void enable_read_hints(boost::asio::ip::tcp::socket& s) noexcept {
  const int on = 1;
  (void)::setsockopt(s.native_handle(), SOL_TCP, TCP_INQ, &on, sizeof on);
}

}  // namespace outrigger::net
