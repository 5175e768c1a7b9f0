// The splice half of Pump: socket -> pipe -> socket, no byte ever in user space.
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "engine.h"

namespace wsplice {

namespace {
constexpr unsigned kSpliceFlags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;
}

bool Engine::EnsurePipe(Dir& d) {
  int fds[2];
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return false;
  pipes += 2;
  d.pr = fds[0];
  d.pw = fds[1];
  int want = pipeSize.load(std::memory_order_relaxed);
  int got = fcntl(d.pw, F_SETPIPE_SZ, want);
  if (got < 0) got = fcntl(d.pw, F_GETPIPE_SZ);  // over the per-user limit: keep the default
  if (got < kMinPipe) {
    // Past fs.pipe-user-pages-soft an unprivileged user's pipes get 2 slots:
    // splicing 8 KiB at a time costs more than copying. Copy instead.
    ClosePipeFds(d);
    d.noSplice = true;
    return false;
  }
  d.cap = static_cast<size_t>(got);
  return true;
}

bool Engine::SpliceStep(Tunnel* t, Dir& d, size_t* moved, bool* progress) {
  if (d.inPipe > 0 && d.dst->writable) {
    ssize_t n = splice(d.pr, nullptr, d.dst->fd, nullptr, d.inPipe, kSpliceFlags);
    if (n > 0) {
      d.inPipe -= n;
      d.bytes += n;
      *moved += n;
      *progress = true;
    } else if (n < 0) {
      if (errno == EAGAIN) d.dst->writable = false;
      else if (errno != EINTR) return Fail(t, d.dst, errno);
    }
  }
  if (!d.eof && d.src->readable && d.inPipe < d.cap) {
    ssize_t n = splice(d.src->fd, nullptr, d.pw, nullptr, d.cap - d.inPipe, kSpliceFlags);
    if (n > 0) {
      d.inPipe += n;
      *progress = true;
      if (d.adaptive) d.smallRun = n < kSmallRead ? (d.smallRun < 255 ? d.smallRun + 1 : 255) : 0;
    } else if (n == 0) {
      d.eof = true;
      if (t->firstEof < 0) t->firstEof = d.src->client ? 0 : 1;
      *progress = true;
    } else if (errno == EAGAIN) {
      // EAGAIN is ambiguous here: the socket is drained OR the pipe ran out of
      // slots (one slot per skb fragment, so it can be "full" below cap bytes).
      // Believe "drained" only when the pipe is empty; else retry after the
      // pipe drains, or we would wait for an edge that never comes.
      if (d.inPipe == 0) d.src->readable = false;
    } else if (errno != EINTR) {
      return Fail(t, d.src, errno);
    }
  }
  if (d.adaptive && d.inPipe == 0 && d.smallRun >= kSmallRun) {
    d.splice = false;  // keep the pipe: cheap to switch back
    d.smallRun = 0;
  }
  return true;
}

}  // namespace wsplice
