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

namespace {
// The calling thread's binding (ThreadReactor); the context outlives it by construction.
struct Binding {
  boost::asio::execution_context* context;
  ad::reactor* reactor;
};
constinit thread_local Binding t_binding{nullptr, nullptr};
}  // namespace

ad::reactor& reactor_of(tcp::socket& s) {
  boost::asio::execution_context& c =
      boost::asio::query(s.get_executor(), boost::asio::execution::context);
  if (&c == t_binding.context) return *t_binding.reactor;
  return boost::asio::use_service<ad::reactor>(c);
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

ThreadReactor::ThreadReactor(boost::asio::io_context& io) {
  drain_detail::t_binding = {&io, &boost::asio::use_service<drain_detail::ad::reactor>(io)};
}

ThreadReactor::~ThreadReactor() { drain_detail::t_binding = {nullptr, nullptr}; }

void enable_read_hints(boost::asio::ip::tcp::socket& s) noexcept {
  const int on = 1;
  (void)::setsockopt(s.native_handle(), SOL_TCP, TCP_INQ, &on, sizeof on);
}

}  // namespace outrigger::net
