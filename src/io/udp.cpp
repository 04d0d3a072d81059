// UdpSocket over the I/O loop of ops.hpp.
#include "io/address.hpp"
#include "io/ops.hpp"

#include <weft/io.hpp>
#include <weft/this_fiber.hpp>

#include <fmt/format.h>

#include <sys/socket.h>

namespace weft::io {

UdpSocket UdpSocket::bind(std::string_view host, std::uint16_t port) {
  constexpr const char* kWhat = "weft::io::UdpSocket::bind";
  const Endpoint ep{std::string(host), port};
  int err = EADDRNOTAVAIL;
  for (const detail::SocketAddress& a : detail::resolve(host, port, SOCK_DGRAM, true, kWhat)) {
    const int s = ::socket(a.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0) {
      err = errno;
      continue;
    }
    Fd fd(s);
    if (::bind(s, a.get(), a.length) != 0) {
      err = errno;
      continue;
    }
    return UdpSocket(std::move(fd));
  }
  detail::throw_io_error(err, fmt::format("{} {}", kWhat, ep));
}

std::size_t UdpSocket::send_to(std::span<const std::byte> buf, const Endpoint& to,
                               weft::source_location where) {
  weft::detail::note_site(where);
  constexpr const char* kWhat = "weft::io::UdpSocket::send_to";
  const int fd = detail::socket_fd(fd_, kWhat);
  const detail::SocketAddress a = detail::numeric_address(to, kWhat);
  const ssize_t n = detail::io_call(
      fd, detail::FdAccess::generation(fd_), detail::IoDirection::write, Deadline::max(), kWhat,
      [&] { return ::sendto(fd, buf.data(), buf.size(), MSG_NOSIGNAL, a.get(), a.length); });
  if (n < 0) detail::throw_io_error(errno, fmt::format("{} {}", kWhat, to));
  return static_cast<std::size_t>(n);
}

std::pair<std::size_t, Endpoint> UdpSocket::receive_from(std::span<std::byte> buf,
                                                         weft::source_location where) {
  weft::detail::note_site(where);
  constexpr const char* kWhat = "weft::io::UdpSocket::receive_from";
  const int fd = detail::socket_fd(fd_, kWhat);
  sockaddr_storage from{};
  socklen_t len = 0;
  const ssize_t n = detail::io_call(fd, detail::FdAccess::generation(fd_),
                                    detail::IoDirection::read, Deadline::max(), kWhat, [&] {
                                      len = sizeof from;
                                      return ::recvfrom(fd, buf.data(), buf.size(), 0,
                                                        reinterpret_cast<sockaddr*>(&from), &len);
                                    });
  if (n < 0) detail::throw_io_error(errno, fmt::format("{} fd {}", kWhat, fd));
  return {static_cast<std::size_t>(n), detail::endpoint_of(reinterpret_cast<sockaddr*>(&from))};
}

Endpoint UdpSocket::local_endpoint() const {
  constexpr const char* kWhat = "weft::io::UdpSocket::local_endpoint";
  return detail::endpoint_of_fd(detail::socket_fd(fd_, kWhat), true, kWhat);
}

}  // namespace weft::io
