// Name resolution and address conversions (address.hpp).
#include "io/address.hpp"

#include "io/ops.hpp"

#include <weft/blocking.hpp>

#include <fmt/format.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <cstring>
#include <memory>
#include <string>
#include <system_error>

namespace weft::detail {

namespace {

// getaddrinfo's EAI_* codes as an error category, so that a resolution
// failure is a std::system_error like every other I/O error.
class GaiCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "getaddrinfo"; }
  std::string message(int code) const override { return ::gai_strerror(code); }
};

const std::error_category& gai_category() noexcept {
  static const GaiCategory category;
  return category;
}

struct AddrinfoDeleter {
  void operator()(addrinfo* a) const noexcept { ::freeaddrinfo(a); }
};
using AddrinfoPtr = std::unique_ptr<addrinfo, AddrinfoDeleter>;

// lookup() is one getaddrinfo call; returns its EAI code (errno in `err`
// for EAI_SYSTEM).
int lookup(const std::string& host, const std::string& service, int flags, int socktype,
           AddrinfoPtr& out, int& err) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = socktype;
  hints.ai_flags = flags | AI_NUMERICSERV;
  addrinfo* result = nullptr;
  const int rc =
      ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &result);
  err = errno;
  out.reset(result);
  return rc;
}

}  // namespace

std::vector<SocketAddress> resolve(std::string_view host_view, std::uint16_t port, int socktype,
                                   bool passive, std::string_view what) {
  const std::string host(host_view);
  const std::string service = std::to_string(port);
  const int flags = passive ? AI_PASSIVE : AI_ADDRCONFIG;
  AddrinfoPtr list;
  int err = 0;
  // A numeric host converts without a lookup (and without the pool).
  int rc = lookup(host, service, flags | AI_NUMERICHOST, socktype, list, err);
  if (rc == EAI_NONAME && !host.empty()) {
    // getaddrinfo blocks (DNS): on the blocking pool, so the worker stays
    // free, and an interrupt of the caller waits for it and then throws.
    rc = weft::blocking([&] { return lookup(host, service, flags, socktype, list, err); });
  }
  const std::string where = fmt::format("{} {}", what, io::Endpoint{host, port});
  if (rc == EAI_SYSTEM) throw_io_error(err, where);
  if (rc != 0) throw std::system_error(rc, gai_category(), where);
  std::vector<SocketAddress> out;
  for (const addrinfo* a = list.get(); a != nullptr; a = a->ai_next) {
    SocketAddress s;
    std::memcpy(&s.storage, a->ai_addr, a->ai_addrlen);
    s.length = a->ai_addrlen;
    out.push_back(s);
  }
  return out;
}

SocketAddress numeric_address(const io::Endpoint& e, std::string_view what) {
  SocketAddress s;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&s.storage);
  if (::inet_pton(AF_INET, e.host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(e.port);
    s.length = sizeof(sockaddr_in);
    return s;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&s.storage);
  if (::inet_pton(AF_INET6, e.host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(e.port);
    s.length = sizeof(sockaddr_in6);
    return s;
  }
  throw std::invalid_argument(fmt::format("{} {}: not a numeric IPv4 or IPv6 address", what, e));
}

io::Endpoint endpoint_of(const sockaddr* a) {
  char text[INET6_ADDRSTRLEN] = {};
  if (a->sa_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(a);
    ::inet_ntop(AF_INET, &v4->sin_addr, text, sizeof text);
    return io::Endpoint{text, ntohs(v4->sin_port)};
  }
  if (a->sa_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(a);
    ::inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof text);
    return io::Endpoint{text, ntohs(v6->sin6_port)};
  }
  return io::Endpoint{};
}

int socket_fd(const io::Fd& fd, const char* what) {
  const int n = fd.get();
  if (n < 0) throw_io_error(EBADF, fmt::format("{} on an empty or closed socket", what));
  return n;
}

io::Endpoint endpoint_of_fd(int fd, bool local, std::string_view what) {
  sockaddr_storage s{};
  socklen_t len = sizeof s;
  auto* a = reinterpret_cast<sockaddr*>(&s);
  if ((local ? ::getsockname(fd, a, &len) : ::getpeername(fd, a, &len)) != 0)
    throw_io_error(errno, fmt::format("{} fd {}", what, fd));
  return endpoint_of(a);
}

}  // namespace weft::detail
