// async_read_drain: socket.async_read_some for TCP sockets, minus the recv that fails with EAGAIN.
//
// Asio's epoll reactor tries a read at once ("speculatively") unless it knows the socket is
// drained, and Boost 1.81 only knows that after a read of 0 bytes. So every read that follows a
// request/response turn (the next request on a keep-alive connection, an upstream's answer right
// after the request went out) first costs a recv that fails with EAGAIN, then waits for epoll:
// 1.1 wasted syscalls per request in the h1-keepalive bench case, 0.7 in h2c-h1, at ~1 µs each on
// this VM (bench/RESULTS.md, 2026-12-07).
//
// A short read alone does not prove the socket drained: a FIN (or more bytes) may have arrived
// with the same epoll edge, and with edge-triggered epoll no new edge would come for it. So this
// operation reads with recvmsg and Linux's TCP_INQ hint (enable_read_hints, once per socket): the
// kernel says how many bytes are left after the read, and reports 1 when only a FIN is left
// ("keep reading"). Only "0 left" tells the reactor that the socket is drained, so the next read
// waits for epoll's next edge instead of trying. Without the hint (not enabled, or an old kernel)
// it behaves exactly like async_read_some.
//
// Same contract as async_read_some: completion (error_code, bytes), eof at the end of the stream;
// one outstanding read per socket; cancelled by socket.cancel() or close() with
// operation_aborted. No per-operation cancellation slot (nothing here uses one).
#pragma once

#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/detail/bind_handler.hpp>
#include <boost/asio/detail/fenced_block.hpp>
#include <boost/asio/detail/handler_alloc_helpers.hpp>
#include <boost/asio/detail/handler_cont_helpers.hpp>
#include <boost/asio/detail/handler_work.hpp>
#include <boost/asio/detail/reactor.hpp>
#include <boost/asio/detail/reactor_op.hpp>
#include <boost/asio/detail/socket_ops.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>
#include <cstddef>
#include <utility>

namespace outrigger::net {
namespace drain_detail {

namespace ad = boost::asio::detail;
using boost::asio::ip::tcp;

// The reactor and socket state behind a tcp::socket. Asio keeps them protected; naming the member
// through a derived class is the standard-conforming way to reach it.
struct SocketAccess : tcp::socket {
  static auto& impl(tcp::socket& s) { return (s.*(&SocketAccess::impl_)).get_implementation(); }
};
ad::reactor& reactor_of(tcp::socket& s);
// One non-blocking recvmsg: not_done on EAGAIN; done_and_exhausted when the kernel's hint says
// nothing is left, and (as in Asio) at end of stream or on an error; done otherwise.
ad::reactor_op::status recv_with_hint(int fd, boost::asio::mutable_buffer b,
                                      boost::system::error_code& ec, std::size_t& n);

template <typename Handler, typename IoExecutor>
class DrainRecvOp : public ad::reactor_op {
 public:
  BOOST_ASIO_DEFINE_HANDLER_PTR(DrainRecvOp);

  DrainRecvOp(ad::socket_type fd, boost::asio::mutable_buffer b, Handler& h, const IoExecutor& ex)
      : reactor_op(boost::system::error_code(), &DrainRecvOp::perform_recv, &DrainRecvOp::finish),
        fd_(fd),
        buf_(b),
        handler_(std::move(h)),
        work_(handler_, ex) {}

  static status perform_recv(reactor_op* base) {
    auto* o = static_cast<DrainRecvOp*>(base);
    return recv_with_hint(o->fd_, o->buf_, o->ec_, o->bytes_transferred_);
  }

  static void finish(void* owner, ad::operation* base, const boost::system::error_code&,
                     std::size_t) {
    auto* o = static_cast<DrainRecvOp*>(base);
    ptr p = {std::addressof(o->handler_), o, o};
    ad::handler_work<Handler, IoExecutor> w(std::move(o->work_));
    // The handler leaves the operation's memory before it is freed and the upcall is made.
    ad::binder2<Handler, boost::system::error_code, std::size_t> call(o->handler_, o->ec_,
                                                                      o->bytes_transferred_);
    p.h = std::addressof(call.handler_);
    p.reset();
    if (owner != nullptr) {
      ad::fenced_block b(ad::fenced_block::half);
      w.complete(call, call.handler_);
    }
  }

 private:
  ad::socket_type fd_;
  boost::asio::mutable_buffer buf_;
  Handler handler_;
  ad::handler_work<Handler, IoExecutor> work_;
};

struct Initiate {
  template <typename Handler>
  void operator()(Handler&& handler, tcp::socket* s, boost::asio::mutable_buffer b) const {
    using H = std::decay_t<Handler>;
    using Op = DrainRecvOp<H, tcp::socket::executor_type>;
    H h(std::forward<Handler>(handler));
    const bool continuation = boost_asio_handler_cont_helpers::is_continuation(h);
    auto& impl = SocketAccess::impl(*s);
    ad::reactor& reactor = reactor_of(*s);
    typename Op::ptr p = {std::addressof(h), Op::ptr::allocate(h), nullptr};
    p.p = new (p.v) Op(impl.socket_, b, h, s->get_executor());
    if (b.size() == 0 || impl.socket_ == ad::invalid_socket) {
      // Like Asio: an empty read completes at once; a closed socket says bad_descriptor.
      if (b.size() != 0) p.p->ec_ = boost::asio::error::bad_descriptor;
      reactor.post_immediate_completion(p.p, continuation);
    } else if ((impl.state_ & ad::socket_ops::non_blocking) == 0 &&
               !ad::socket_ops::set_internal_non_blocking(impl.socket_, impl.state_, true,
                                                          p.p->ec_)) {
      reactor.post_immediate_completion(p.p, continuation);
    } else {
      reactor.start_op(ad::reactor::read_op, impl.socket_, impl.reactor_data_, p.p, continuation,
                       true);
    }
    p.v = p.p = nullptr;
  }
};

}  // namespace drain_detail

// Binds the calling thread to an io_context while alive (a worker thread, around io.run()), so
// reads on that context's sockets find its reactor without a service-registry lookup (a mutex and
// a list walk: 2.7 % of the instructions of an HTTP/1.1 request). Sockets of other contexts, and
// threads without a binding, still look it up.
class ThreadReactor {
 public:
  explicit ThreadReactor(boost::asio::io_context& io);
  ~ThreadReactor();
  ThreadReactor(const ThreadReactor&) = delete;
  ThreadReactor& operator=(const ThreadReactor&) = delete;
};

// Asks the kernel for the bytes-left hint on this socket's reads (TCP_INQ, Linux 4.18+); one
// setsockopt per connection. Harmless to skip: reads then behave like async_read_some.
void enable_read_hints(boost::asio::ip::tcp::socket& s) noexcept;

template <typename Token>
auto async_read_drain(boost::asio::ip::tcp::socket& s, boost::asio::mutable_buffer b,
                      Token&& token) {
  return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
      drain_detail::Initiate{}, token, &s, b);
}

}  // namespace outrigger::net
