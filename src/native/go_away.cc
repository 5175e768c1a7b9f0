// The drain's go-away for WebSocket tunnels: in each direction, once everything up to a frame
// boundary is delivered, a Close 1001 ("going away") goes to that direction's receiver (unmasked
// to the client, masked to the upstream, as a client must), then a FIN; what the sender still
// sends is discarded. The tunnel ends when both directions are closed so (Service sees both
// shut), or with a FIN at goAwayBy.
#include <errno.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "engine.h"

namespace wsplice {

void Engine::StartGoAway(Tunnel* t) {
  if (t->goAway || !t->up.track) return;
  t->goAway = true;
  t->goAwayBy = now_ + kGoAwayMs;
  if (t->goAwayBy < nextDeadline_) nextDeadline_ = t->goAwayBy;
  Service(t, nullptr);  // a direction already at a boundary closes now: no event would come
}

// False once the tunnel is finished. Before our Close: nothing (the pumps run, stopping at the
// boundary). At the boundary with nothing pending: the Close and the FIN. After: drain the source.
bool Engine::GoAwayStep(Tunnel* t, Dir& d, bool* progress) {
  if (!d.closeSent) {
    if (d.shut) {
      d.closeSent = true;  // the sender's FIN already went through: nothing to say that way
    } else if (d.fr.atBoundary() && d.inPipe == 0 && d.len == 0 && d.dst->writable) {
      uint8_t frame[8] = {0x88, 0x02, 0x03, 0xe9};
      size_t n = 4;
      if (!d.dst->client) {
        uint8_t key[4] = {0x5a, 0x17, 0xc3, 0x91};
        if (getrandom(key, sizeof key, GRND_NONBLOCK) != sizeof key) key[0] ^= static_cast<uint8_t>(t->id);
        frame[1] = 0x82;
        for (int i = 0; i < 4; i++) frame[2 + i] = key[i];
        frame[6] = 0x03 ^ key[0];
        frame[7] = 0xe9 ^ key[1];
        n = 8;
      }
      ssize_t m = send(d.dst->fd, frame, n, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (m < 0 && errno == EAGAIN) {
        d.dst->writable = false;
        return true;
      }
      if (m < 0 && errno != EINTR) return Fail(t, d.dst, errno);
      d.closeSent = true;
      d.shut = true;
      d.bytes += m > 0 ? m : 0;
      if (shutdown(d.dst->fd, SHUT_WR) != 0 && errno != ENOTCONN) return Fail(t, d.dst, errno);
      *progress = true;
    }
    return true;
  }
  if (d.eof || !d.src->readable) return true;
  ssize_t n = recv(d.src->fd, nullptr, 1 << 20, MSG_TRUNC | MSG_DONTWAIT);
  if (n == 0) {
    d.eof = true;
    *progress = true;
  } else if (n > 0) {
    *progress = true;
  } else if (errno == EAGAIN) {
    d.src->readable = false;
  } else if (errno != EINTR) {
    d.eof = true;  // a reset after our Close: that side is gone
  }
  return true;
}

}  // namespace wsplice
