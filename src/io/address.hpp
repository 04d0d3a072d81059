// Socket addresses: name resolution and the conversions between sockaddr and
// io::Endpoint (src/io/socket.cpp, udp.cpp).
#pragma once

#include <weft/io.hpp>

#include <sys/socket.h>

#include <string_view>
#include <vector>

namespace weft::detail {

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;
  const sockaddr* get() const noexcept { return reinterpret_cast<const sockaddr*>(&storage); }
  int family() const noexcept { return storage.ss_family; }
};

// resolve() turns host:port into addresses for `socktype`, in getaddrinfo's
// order. Numeric hosts convert directly; names are resolved with
// getaddrinfo on the blocking pool (weft::blocking). An empty host with
// `passive` is the wildcard address. Errors: std::system_error whose message
// starts with `what` and the endpoint.
std::vector<SocketAddress> resolve(std::string_view host, std::uint16_t port, int socktype,
                                   bool passive, std::string_view what);
// numeric_address() converts a numeric Endpoint (no resolution): UDP's send_to.
SocketAddress numeric_address(const io::Endpoint& e, std::string_view what);
// endpoint_of() is the numeric host and port of an address.
io::Endpoint endpoint_of(const sockaddr* a);
// socket_fd() is a socket class's fd, or EBADF naming the call on an empty one.
int socket_fd(const io::Fd& fd, const char* what);
// endpoint_of_fd() is getsockname (local) or getpeername of `fd`.
io::Endpoint endpoint_of_fd(int fd, bool local, std::string_view what);

}  // namespace weft::detail
