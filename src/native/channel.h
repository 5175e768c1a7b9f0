// The Unix socket the hand-over runs on (SOCK_SEQPACKET: one message per send, fds passed with
// SCM_RIGHTS). Plain syscalls on non-blocking fds libuv never sees; the JS side polls.
#pragma once

#include <stddef.h>

#include <string>
#include <vector>

namespace wsplice {
namespace channel {

constexpr size_t kMaxMessage = 192 * 1024;  // under the default socket buffer (wmem_default)
constexpr int kMaxFds = 252;                // SCM_MAX_FD is 253

// Each returns -1 (or false) with `err` set.
bool Pair(int out[2], std::string* err);
int Listen(const std::string& path, std::string* err);
int Accept(int fd, std::string* err);  // -1 with err empty: nobody yet
int Connect(const std::string& path, std::string* err);
// 1 sent, 0 would block, -1 error.
int Send(int fd, const void* data, size_t len, const int* fds, int nfds, std::string* err);
// Bytes received (0: the peer closed), -2 would block, -1 error. `fds` gets what came with it.
long Recv(int fd, void* buf, size_t cap, std::vector<int>* fds, std::string* err);
// Ready for reading (`write` false) or writing within `ms`.
bool Wait(int fd, bool write, int ms);

}  // namespace channel
}  // namespace wsplice
