// The splice half of Pump: socket -> pipe -> socket, no byte ever in user space.
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
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

// A WebSocket direction: limit `*want` so one splice never passes a frame boundary (a header is
// peeked, at most 14 bytes; a payload is passed by count). False when nothing may be read now.
bool Engine::FrameLimit(Tunnel* t, Dir& d, uint8_t* peek, size_t* npeek, size_t* want) {
  if (d.fr.state == Frames::kPayload) {
    if (d.fr.payload < *want) *want = static_cast<size_t>(d.fr.payload);
    return true;
  }
  if (t->goAway && d.fr.atBoundary()) return false;  // the Close goes here (go_away.cc)
  ssize_t n = recv(d.src->fd, peek, 14, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0 && errno == EAGAIN) {
    d.src->readable = false;
    return false;
  }
  if (n <= 0) return true;  // EOF or an error: the splice reports it
  *npeek = static_cast<size_t>(n);
  uint64_t lim = d.fr.ToBoundary(peek, *npeek);
  if (lim < static_cast<uint64_t>(kSmallRead)) {
    // Small frames: a splice per frame costs a few syscalls per few bytes; the copy pump finds
    // their boundaries in its buffer instead. Switch once the pipe is empty (bytes stay in order).
    if (d.inPipe == 0) {
      d.splice = false;
      d.smallFrames = true;
    }
    return false;
  }
  if (lim < *want) *want = static_cast<size_t>(lim);
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
  uint8_t peek[14];
  size_t npeek = 0;
  size_t want = d.cap - d.inPipe;
  // An adopted copy leftover goes out of the pipe first; then the direction copies again.
  if (d.restoreCopy && d.inPipe == 0) {
    d.restoreCopy = false;
    d.splice = false;
    *progress = true;
    return true;
  }
  bool mayRead = !d.restoreCopy && !d.eof && d.src->readable && d.inPipe < d.cap;
  if (mayRead && d.track && !FrameLimit(t, d, peek, &npeek, &want)) {
    mayRead = false;
    if (!d.splice) *progress = true;  // switched to copy: the next turn reads
  }
  if (mayRead) {
    ssize_t n = splice(d.src->fd, nullptr, d.pw, nullptr, want, kSpliceFlags);
    if (n > 0) {
      if (d.track) {
        size_t k = static_cast<size_t>(n) < npeek ? static_cast<size_t>(n) : npeek;
        d.fr.Advance(peek, k, false);
        if (static_cast<size_t>(n) > k) d.fr.Skip(n - k);  // payload bytes, by count
      }
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
