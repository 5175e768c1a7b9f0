// The copy half of Pump: recv into the thread's scratch buffer, send from it;
// a short send parks the rest in the direction's own buffer.
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "engine.h"

namespace wsplice {

bool Engine::CopyStep(Tunnel* t, Dir& d, size_t* moved, bool* progress) {
  if (d.len > 0 && d.dst->writable) {
    ssize_t n = send(d.dst->fd, d.buf + d.off, d.len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      d.off += n;
      d.len -= n;
      d.bytes += n;
      *moved += n;
      *progress = true;
    } else if (n < 0) {
      if (errno == EAGAIN) d.dst->writable = false;
      else if (errno != EINTR) return Fail(t, d.dst, errno);
    }
  }
  if (d.len != 0 || d.eof || !d.src->readable) return true;
  if (t->goAway && d.track && d.fr.atBoundary()) return true;  // the Close goes here (go_away.cc)
  ssize_t n = recv(d.src->fd, scratch_, kScratch, MSG_DONTWAIT);
  if (n == 0) {
    d.eof = true;
    if (t->firstEof < 0) t->firstEof = d.src->client ? 0 : 1;
    *progress = true;
    return true;
  }
  if (n < 0) {
    if (errno == EAGAIN) d.src->readable = false;
    else if (errno != EINTR) return Fail(t, d.src, errno);
    return true;
  }
  *progress = true;
  const ssize_t got = n;
  if (d.track) {
    // Follow the frames; going away, pass only up to the next boundary (the rest is dropped).
    n = static_cast<ssize_t>(d.fr.Advance(reinterpret_cast<const uint8_t*>(scratch_), n, t->goAway));
    if (n == 0) return true;
  }
  ssize_t m = 0;
  if (d.dst->writable) {
    m = send(d.dst->fd, scratch_, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (m < 0) {
      if (errno != EAGAIN && errno != EINTR) return Fail(t, d.dst, errno);
      if (errno == EAGAIN) d.dst->writable = false;
      m = 0;
    }
    d.bytes += m;
    *moved += m;
  }
  if (m < n) {
    // Short send: keep the rest (allocated once per direction, on the first
    // backpressure only) and stop reading this side until it drains.
    if (d.buf == nullptr) {
      d.buf = static_cast<char*>(malloc(kScratch));
      if (d.buf == nullptr) return Fail(t, d.dst, ENOMEM);
    }
    memcpy(d.buf, scratch_ + m, n - m);
    d.off = 0;
    d.len = static_cast<uint32_t>(n - m);
  }
  const bool bigPayload = d.fr.state == Frames::kPayload && d.fr.payload >= static_cast<uint64_t>(kBulkRead);
  if ((d.adaptive || d.smallFrames) && got >= kBulkRead && d.len == 0 && !d.noSplice && (!d.track || bigPayload)) {
    d.splice = true;  // bulk: splice from now on (pipe made lazily)
    d.smallRun = 0;
  } else if (static_cast<size_t>(got) < kScratch && !d.src->rdhup) {
    // A short recv drained the socket: skip the EAGAIN recv (one syscall per
    // message saved). Safe with EPOLLET: every later arrival raises a new edge;
    // a FIN already signalled (rdhup) is not, so then we read on until EOF.
    // (Not for splice: a short splice can also mean the pipe ran out of slots.)
    d.src->readable = false;
  }
  return true;
}

}  // namespace wsplice
