// TcpStream and TcpListener: sockets over the I/O loop of ops.hpp.
#include "io/address.hpp"
#include "io/ops.hpp"

#include <weft/io.hpp>
#include <weft/this_fiber.hpp>

#include <fmt/format.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

namespace weft::detail {

namespace {

// open_socket() makes a non-blocking, close-on-exec socket owned by an Fd.
io::Fd open_socket(int family, int type, std::string_view what, const io::Endpoint& ep) {
  const int s = ::socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s < 0) throw_io_error(errno, fmt::format("{} {}", what, ep));
  return io::Fd(s);
}

// try_connect() connects `fd` to `a`: 0, or the error. The wait for the
// handshake is a yield point: interrupted, the caller's Fd closes the socket.
int try_connect(const io::Fd& fd, const SocketAddress& a, const char* what) {
  const int s = fd.get();
  if (::connect(s, a.get(), a.length) == 0) return 0;
  if (errno != EINPROGRESS && errno != EINTR) return errno;
  (void)wait_ready(s, FdAccess::generation(fd), IoDirection::write, Deadline::max(), what);
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
  return err;
}

}  // namespace
}  // namespace weft::detail

namespace weft::io {

using detail::FdAccess;
using detail::IoDirection;
using detail::socket_fd;

TcpStream TcpStream::adopt(Fd fd) noexcept { return TcpStream(std::move(fd)); }

TcpStream TcpStream::connect(std::string_view host, std::uint16_t port,
                             weft::source_location where) {
  weft::detail::note_site(where);
  constexpr const char* kWhat = "weft::io::TcpStream::connect";
  detail::throw_if_interrupted();
  const Endpoint ep{std::string(host), port};
  int err = EADDRNOTAVAIL;
  for (const detail::SocketAddress& a : detail::resolve(host, port, SOCK_STREAM, false, kWhat)) {
    Fd fd = detail::open_socket(a.family(), SOCK_STREAM, kWhat, ep);
    err = detail::try_connect(fd, a, kWhat);
    if (err == 0) return TcpStream(std::move(fd));
  }
  detail::throw_io_error(err, fmt::format("{} {}", kWhat, ep));
}

std::size_t TcpStream::read_some(std::span<std::byte> buf, weft::source_location where) {
  weft::detail::note_site(where);
  constexpr const char* kWhat = "weft::io::TcpStream::read_some";
  const int fd = socket_fd(fd_, kWhat);
  return detail::transfer(fd, FdAccess::generation(fd_), IoDirection::read, buf.empty(), kWhat,
                          [&] { return ::recv(fd, buf.data(), buf.size(), 0); });
}

void TcpStream::read_exact(std::span<std::byte> buf, weft::source_location where) {
  std::size_t done = 0;
  while (done < buf.size()) {
    const std::size_t n = read_some(buf.subspan(done), where);
    if (n == 0)
      throw EndOfStream(
          fmt::format("weft::io::TcpStream::read_exact fd {}: end of stream after {} of {} bytes",
                      fd_.get(), done, buf.size()));
    done += n;
  }
}

std::size_t TcpStream::write_some(std::span<const std::byte> buf, weft::source_location where) {
  weft::detail::note_site(where);
  constexpr const char* kWhat = "weft::io::TcpStream::write_some";
  const int fd = socket_fd(fd_, kWhat);
  // MSG_NOSIGNAL: a peer that went away is EPIPE, not a SIGPIPE.
  return detail::transfer(fd, FdAccess::generation(fd_), IoDirection::write, buf.empty(), kWhat,
                          [&] { return ::send(fd, buf.data(), buf.size(), MSG_NOSIGNAL); });
}

void TcpStream::write_all(std::span<const std::byte> buf, weft::source_location where) {
  std::size_t done = 0;
  do {
    done += write_some(buf.subspan(done), where);
  } while (done < buf.size());
}

void TcpStream::shutdown_write() {
  constexpr const char* kWhat = "weft::io::TcpStream::shutdown_write";
  const int fd = socket_fd(fd_, kWhat);
  if (::shutdown(fd, SHUT_WR) != 0)
    detail::throw_io_error(errno, fmt::format("{} fd {}", kWhat, fd));
}

void TcpStream::set_nodelay(bool on) {
  constexpr const char* kWhat = "weft::io::TcpStream::set_nodelay";
  const int fd = socket_fd(fd_, kWhat);
  const int v = on ? 1 : 0;
  if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof v) != 0)
    detail::throw_io_error(errno, fmt::format("{} fd {}", kWhat, fd));
}

Endpoint TcpStream::local_endpoint() const {
  constexpr const char* kWhat = "weft::io::TcpStream::local_endpoint";
  return detail::endpoint_of_fd(socket_fd(fd_, kWhat), true, kWhat);
}

Endpoint TcpStream::peer_endpoint() const {
  constexpr const char* kWhat = "weft::io::TcpStream::peer_endpoint";
  return detail::endpoint_of_fd(socket_fd(fd_, kWhat), false, kWhat);
}

TcpListener TcpListener::bind(std::string_view host, std::uint16_t port, int backlog) {
  constexpr const char* kWhat = "weft::io::TcpListener::bind";
  const Endpoint ep{std::string(host), port};
  int err = EADDRNOTAVAIL;
  for (const detail::SocketAddress& a : detail::resolve(host, port, SOCK_STREAM, true, kWhat)) {
    Fd fd = detail::open_socket(a.family(), SOCK_STREAM, kWhat, ep);
    const int one = 1;
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        ::bind(fd.get(), a.get(), a.length) != 0 || ::listen(fd.get(), backlog) != 0) {
      err = errno;
      continue;
    }
    return TcpListener(std::move(fd));
  }
  detail::throw_io_error(err, fmt::format("{} {}", kWhat, ep));
}

TcpStream TcpListener::accept(weft::source_location where) {
  weft::detail::note_site(where);
  constexpr const char* kWhat = "weft::io::TcpListener::accept";
  const int fd = socket_fd(fd_, kWhat);
  for (;;) {
    const ssize_t s = detail::io_call(
        fd, FdAccess::generation(fd_), IoDirection::read, Deadline::max(), kWhat,
        [&] { return ::accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC); });
    if (s >= 0) return TcpStream(Fd(static_cast<int>(s)));
    // The connection died in the backlog: take the next one (as Go does).
    if (errno == ECONNABORTED || errno == EPROTO) continue;
    detail::throw_io_error(errno, fmt::format("{} fd {}", kWhat, fd));
  }
}

Endpoint TcpListener::local_endpoint() const {
  constexpr const char* kWhat = "weft::io::TcpListener::local_endpoint";
  return detail::endpoint_of_fd(socket_fd(fd_, kWhat), true, kWhat);
}

}  // namespace weft::io
