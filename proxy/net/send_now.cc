#include "proxy/net/send_now.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <boost/asio/error.hpp>
#include <cassert>
#include <cerrno>

namespace outrigger::net {

std::optional<IoResult> send_now(boost::asio::ip::tcp::socket& s,
                                 std::span<const boost::asio::const_buffer> b, size_t* sent) {
  *sent = 0;
  constexpr size_t kMaxPieces = 16;
  if (b.size() > kMaxPieces || !s.is_open()) return std::nullopt;  // Asio's path says why
  std::array<iovec, kMaxPieces> iov;
  size_t total = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    iov[i] = {const_cast<void*>(b[i].data()), b[i].size()};
    total += b[i].size();
  }
  if (total == 0) return IoResult{boost::system::error_code(), 0};
  msghdr m{};
  m.msg_iov = iov.data();
  m.msg_iovlen = b.size();
  for (;;) {
    const ssize_t n = ::sendmsg(s.native_handle(), &m, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) {
      if (static_cast<size_t>(n) == total) return IoResult{boost::system::error_code(), total};
      *sent = static_cast<size_t>(n);
      return std::nullopt;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return std::nullopt;
    return IoResult{boost::system::error_code(errno, boost::asio::error::get_system_category()), 0};
  }
}

std::span<const boost::asio::const_buffer> skip_bytes(std::span<const boost::asio::const_buffer> b,
                                                      size_t skip,
                                                      std::span<boost::asio::const_buffer> room) {
  assert(b.size() <= room.size());
  size_t k = 0;
  for (const boost::asio::const_buffer& piece : b) {
    if (skip >= piece.size()) {
      skip -= piece.size();
      continue;
    }
    room[k++] = piece + skip;
    skip = 0;
  }
  return room.first(k);
}

}  // namespace outrigger::net
