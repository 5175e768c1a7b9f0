#include "channel.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace wsplice {
namespace channel {

namespace {

std::string Errno(const char* what) { return std::string(what) + ": " + strerror(errno); }

bool Address(const std::string& path, sockaddr_un* sa, std::string* err) {
  memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof sa->sun_path) {
    *err = "hand-over socket path must be 1.." + std::to_string(sizeof sa->sun_path - 1) + " bytes";
    return false;
  }
  memcpy(sa->sun_path, path.data(), path.size());
  return true;
}

}  // namespace

bool Pair(int out[2], std::string* err) {
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, out) == 0) return true;
  *err = Errno("socketpair");
  return false;
}

int Listen(const std::string& path, std::string* err) {
  sockaddr_un sa;
  if (!Address(path, &sa, err)) return -1;
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    *err = Errno("socket");
    return -1;
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || listen(fd, 1) != 0) {
    *err = Errno(("hand-over socket " + path).c_str());
    close(fd);
    return -1;
  }
  return fd;
}

int Accept(int fd, std::string* err) {
  int c = accept4(fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (c < 0 && errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) *err = Errno("accept");
  return c;
}

int Connect(const std::string& path, std::string* err) {
  sockaddr_un sa;
  if (!Address(path, &sa, err)) return -1;
  // Blocking connect: on a Unix socket it completes (or fails) at once unless the backlog is full.
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *err = Errno("socket");
    return -1;
  }
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    *err = Errno(("hand-over socket " + path).c_str());
    close(fd);
    return -1;
  }
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) {
    *err = Errno("O_NONBLOCK");
    close(fd);
    return -1;
  }
  return fd;
}

int Send(int fd, const void* data, size_t len, const int* fds, int nfds, std::string* err) {
  if (len == 0 || len > kMaxMessage || nfds < 0 || nfds > kMaxFds) {
    *err = "hand-over message out of bounds";
    return -1;
  }
  iovec iov{const_cast<void*>(data), len};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int) * kMaxFds)];
  if (nfds > 0) {
    mh.msg_control = ctl;
    mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    cmsghdr* c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  }
  for (;;) {
    ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) return 1;
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return 0;
    *err = Errno("hand-over send");
    return -1;
  }
}

long Recv(int fd, void* buf, size_t cap, std::vector<int>* fds, std::string* err) {
  iovec iov{buf, cap};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int) * kMaxFds)];
  mh.msg_control = ctl;
  mh.msg_controllen = sizeof ctl;
  ssize_t n;
  do {
    n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN) return -2;
    *err = Errno("hand-over recv");
    return -1;
  }
  for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c != nullptr; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const int* p = reinterpret_cast<const int*>(CMSG_DATA(c));
    for (size_t i = 0; i < k; i++) fds->push_back(p[i]);
  }
  if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
    // A message cut short cannot be trusted: what came with it is closed, never half-used.
    for (int f : *fds) close(f);
    fds->clear();
    *err = "hand-over message truncated";
    return -1;
  }
  return static_cast<long>(n);
}

bool Wait(int fd, bool write, int ms) {
  pollfd p{fd, static_cast<short>(write ? POLLOUT : POLLIN), 0};
  int r;
  do {
    r = poll(&p, 1, ms);
  } while (r < 0 && errno == EINTR);
  return r > 0;
}

}  // namespace channel
}  // namespace wsplice
