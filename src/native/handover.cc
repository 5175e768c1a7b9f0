// The hand-over of live tunnels between relays (and processes): Detach pauses a tunnel and takes
// it out whole (fds, pipes with what is in flight, counters, frame cursor, idle clock); Adopt
// makes a tunnel of that in another engine, staged until StartAdopted. Nothing is read or written
// on the sockets meanwhile, so the peers see only a pause.
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <new>

#include "engine.h"

namespace wsplice {

namespace {

void Out(MovedDir& o, const Dir& d) {
  o = MovedDir{};
  o.bytes = d.bytes;
  o.frLen = d.fr.len;
  o.frPayload = d.fr.payload;
  o.inPipe = static_cast<uint32_t>(d.inPipe);
  o.splice = d.splice && !d.restoreCopy;
  o.adaptive = d.adaptive;
  o.noSplice = d.noSplice;
  o.eof = d.eof;
  o.shut = d.shut;
  o.smallRun = d.smallRun;
  o.track = d.track;
  o.smallFrames = d.smallFrames;
  o.frState = d.fr.state;
  o.frMasked = d.fr.masked;
  o.frLeft = d.fr.left;
}

void In(Dir& d, const MovedDir& o) {
  d.bytes = o.bytes;
  d.fr.len = o.frLen;
  d.fr.payload = o.frPayload;
  d.fr.state = o.frState;
  d.fr.masked = o.frMasked != 0;
  d.fr.left = o.frLeft;
  d.inPipe = o.inPipe;
  d.splice = o.splice != 0;
  d.adaptive = o.adaptive != 0;
  d.noSplice = o.noSplice != 0;
  d.eof = o.eof != 0;
  d.shut = o.shut != 0;
  d.smallRun = o.smallRun;
  d.track = o.track != 0;
  d.smallFrames = o.smallFrames != 0;
  if (d.inPipe > 0 && !d.splice) {
    d.splice = true;  // the copy pump's leftover travelled in the pipe: out first, then copy
    d.restoreCopy = true;
  }
}

bool CheckPipe(int fd) {
  int fl = fcntl(fd, F_GETFL);
  return fl >= 0 && ((fl & O_NONBLOCK) != 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0);
}

}  // namespace

// ---------------------------------------------------------------- JS thread

void Engine::Detach(DetachJob* job) {
  if (!running_ || job->ids.empty()) return;
  Cmd c{Cmd::kDetach, nullptr, 0, 0};
  c.job = job;
  Push(c);
  std::unique_lock<std::mutex> lock(job->mu);
  job->cv.wait(lock, [job] { return job->done; });
}

uint64_t Engine::Adopt(const MovedTunnel& m, const int* fds, double* counters, std::string* err) {
  if ((m.fdMask & 3u) != 3u) {
    *err = "a moved tunnel without both sockets";
    return 0;
  }
  for (int i = 0; i < 2; i++) {
    int type = 0;
    socklen_t len = sizeof type;
    int fl = fcntl(fds[i], F_GETFL);
    if (getsockopt(fds[i], SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM || fl < 0 ||
        (!(fl & O_NONBLOCK) && fcntl(fds[i], F_SETFL, fl | O_NONBLOCK) != 0)) {
      *err = "a moved tunnel's fd is not a stream socket";
      return 0;
    }
  }
  for (int i = 2; i < kMovedFds; i++) {
    if ((m.fdMask & (1u << i)) && (fds[i] < 0 || !CheckPipe(fds[i]))) {
      *err = "a moved tunnel's pipe fd is unusable";
      return 0;
    }
  }
  if (!EnsureThread(err)) return 0;
  Tunnel* t = new (std::nothrow) Tunnel();
  if (t == nullptr) {
    *err = "out of memory";
    return 0;
  }
  t->id = ++nextId_;
  t->c.t = t->u.t = t;
  t->c.fd = fds[0];
  t->c.client = true;
  t->u.fd = fds[1];
  t->up.src = &t->c;
  t->up.dst = &t->u;
  t->down.src = &t->u;
  t->down.dst = &t->c;
  In(t->up, m.up);
  In(t->down, m.down);
  Dir* dirs[2] = {&t->up, &t->down};
  for (int k = 0; k < 2; k++) {
    Dir& d = *dirs[k];
    if ((m.fdMask & (1u << (2 + 2 * k))) && (m.fdMask & (1u << (3 + 2 * k)))) {
      d.pr = fds[2 + 2 * k];
      d.pw = fds[3 + 2 * k];
      pipes += 2;
      int cap = fcntl(d.pw, F_GETPIPE_SZ);
      d.cap = cap > 0 ? static_cast<size_t>(cap) : d.inPipe;
    } else {
      d.inPipe = 0;  // never: bytes in flight always come with their pipe
      d.restoreCopy = false;
    }
  }
  t->idleMs = m.idleMs;
  t->firstEof = m.firstEof;
  t->counters = counters;
  t->adopted = true;
  t->adoptAgeMs = m.ageMs;
  t->adoptQuietMs = m.quietMs;
  staged_.emplace(t->id, t);
  return t->id;
}

bool Engine::StartAdopted(uint64_t id) {
  auto it = staged_.find(id);
  if (it == staged_.end()) return false;
  Tunnel* t = it->second;
  staged_.erase(it);
  Push(Cmd{Cmd::kOpen, t, id, 0});
  return true;
}

void Engine::DiscardAdopted(uint64_t id) {
  auto it = staged_.find(id);
  if (it == staged_.end()) return;
  Release(it->second);
  delete it->second;
  staged_.erase(it);
}

// ---------------------------------------------------------------- relay thread

// A copy-mode leftover (bytes read, not yet sent) moves into the direction's pipe, which then
// travels with the tunnel. False (nothing changed) when no pipe can hold it.
bool Engine::LeftoverToPipe(Dir& d) {
  if (d.len == 0) return true;
  bool made = false;
  if (d.pr < 0) {
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return false;
    pipes += 2;
    d.pr = fds[0];
    d.pw = fds[1];
    made = true;
  }
  int cap = fcntl(d.pw, F_GETPIPE_SZ);
  if (cap < static_cast<int>(d.len)) cap = fcntl(d.pw, F_SETPIPE_SZ, static_cast<int>(d.len));
  ssize_t n = cap >= static_cast<int>(d.len) ? write(d.pw, d.buf + d.off, d.len) : -1;
  if (n != static_cast<ssize_t>(d.len)) {
    // Part of it in the pipe: take it out again (the buffer still holds it all).
    while (n > 0 && read(d.pr, scratch_, kScratch) > 0) {
    }
    if (made) ClosePipeFds(d);
    return false;
  }
  d.cap = static_cast<size_t>(cap);
  d.inPipe = d.len;
  d.restoreCopy = !d.splice;
  d.splice = true;
  d.off = d.len = 0;
  return true;
}

void Engine::DetachOne(DetachJob* job, uint64_t id) {
  auto it = byId_.find(id);
  if (it == byId_.end()) return;
  Tunnel* t = it->second;
  if (t->dead || t->goAway || !t->registered) return;
  if (!LeftoverToPipe(t->up) || !LeftoverToPipe(t->down)) return;
  if (epoll_ctl(ep_, EPOLL_CTL_DEL, t->c.fd, nullptr) != 0) closeErrors++;
  if (epoll_ctl(ep_, EPOLL_CTL_DEL, t->u.fd, nullptr) != 0) closeErrors++;
  Unlink(t);
  t->dead = true;  // events already fetched for it in this batch are skipped
  MovedTunnel m{};
  m.id = t->id;
  m.idleMs = t->idleMs;
  m.ageMs = now_ - t->started;
  m.quietMs = now_ - t->last;
  m.firstEof = t->firstEof;
  int fds[kMovedFds] = {t->c.fd, t->u.fd, -1, -1, -1, -1};
  Dir* dirs[2] = {&t->up, &t->down};
  for (int k = 0; k < 2; k++) {
    Dir& d = *dirs[k];
    if (d.pr >= 0 && d.inPipe == 0) ClosePipeFds(d);  // empty: the other side makes its own when needed
    if (d.pr >= 0) {
      fds[2 + 2 * k] = d.pr;
      fds[3 + 2 * k] = d.pw;
      pipes -= 2;  // the caller's now
      d.pr = d.pw = -1;
    }
    free(d.buf);
    d.buf = nullptr;
  }
  Out(m.up, t->up);
  Out(m.down, t->down);
  for (int i = 0; i < kMovedFds; i++) {
    if (fds[i] >= 0) m.fdMask |= 1u << i;
    job->fds.push_back(fds[i]);
  }
  t->c.fd = t->u.fd = -1;
  StoreCounter(&t->counters[0], t->up.bytes);
  StoreCounter(&t->counters[1], t->down.bytes);
  job->out.push_back(m);
  job->movedIds.push_back(id);
  graveyard_.push_back(t);
}

}  // namespace wsplice
