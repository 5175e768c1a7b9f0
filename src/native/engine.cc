// The epoll loop, commands, registration, the end of a tunnel and the idle
// scan. The byte moving itself is in pump_splice.cc and pump_copy.cc.
#include "engine.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <new>

namespace wsplice {

namespace {

int64_t NowMs() {
  // COARSE is a vDSO read with ~4 ms resolution: plenty for idle timeouts, and
  // it is read once per epoll wake-up, never per byte.
  timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) != 0) clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

std::string Errno(const std::string& what, int err) { return what + ": " + strerror(err); }


bool CheckStream(int fd, const char* which, std::string* err) {
  int type = 0;
  socklen_t len = sizeof type;
  if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) {
    *err = Errno(std::string(which) + " fd", fd < 0 ? EBADF : errno);
    return false;
  }
  if (type != SOCK_STREAM) {
    *err = std::string(which) + " fd is not a stream socket";
    return false;
  }
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)) {
    *err = Errno(std::string(which) + " O_NONBLOCK", errno);
    return false;
  }
  return true;
}

void Drain(int fd) {
  // Discard unread input (MSG_TRUNC: no copy) so close() sends FIN, not RST.
  for (int i = 0; i < 16; i++) {
    ssize_t n = recv(fd, nullptr, 1 << 20, MSG_TRUNC | MSG_DONTWAIT);
    if (n <= 0 && !(n < 0 && errno == EINTR)) break;
  }
}

}  // namespace

// ---------------------------------------------------------------- JS thread

uint64_t Engine::Open(int cfd, int ufd, int64_t idleMs, int mode, bool websocket, bool upstreamOwned, double* counters, std::string* err) {
  if (!CheckStream(cfd, "client", err) || (!upstreamOwned && !CheckStream(ufd, "upstream", err)) || !EnsureThread(err)) return 0;
  if (upstreamOwned && ufd < 0) {
    *err = Errno("upstream fd", EBADF);
    return 0;
  }
  // dup: our own reference to each open file description. JS may then close
  // its fds (destroy its sockets) without the connection closing.
  int c = fcntl(cfd, F_DUPFD_CLOEXEC, 3);
  if (c < 0) {
    *err = Errno("dup(client)", errno);
    return 0;
  }
  int u = upstreamOwned ? ufd : fcntl(ufd, F_DUPFD_CLOEXEC, 3);
  if (u < 0) {
    *err = Errno("dup(upstream)", errno);
    close(c);
    return 0;
  }
  Tunnel* t = new (std::nothrow) Tunnel();
  if (t == nullptr) {
    close(c);
    if (!upstreamOwned) close(u);
    *err = "out of memory";
    return 0;
  }
  t->id = ++nextId_;
  t->c.t = t->u.t = t;
  t->c.fd = c;
  t->c.client = true;
  t->u.fd = u;
  t->up.src = &t->c;
  t->up.dst = &t->u;
  t->down.src = &t->u;
  t->down.dst = &t->c;
  bool splice0 = mode == kModeSplice;  // adaptive starts in copy mode (cheap for small frames)
  t->up.splice = t->down.splice = splice0;
  t->up.adaptive = t->down.adaptive = mode == kModeAdaptive;
  t->up.track = t->down.track = websocket;
  t->idleMs = idleMs > 0 ? idleMs : 0;
  t->counters = counters;
  // Once pushed, the tunnel belongs to the relay thread, which may finish and
  // free it before Push returns: never touch `t` after this line.
  const uint64_t id = t->id;
  Push(Cmd{Cmd::kOpen, t, id, 0});
  return id;
}

bool Engine::EnsureThread(std::string* err) {
  if (running_) return true;
  ep_ = epoll_create1(EPOLL_CLOEXEC);
  if (ep_ < 0) {
    *err = Errno("epoll_create1", errno);
    return false;
  }
  wake_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_ < 0) {
    *err = Errno("eventfd", errno);
    close(ep_);
    ep_ = -1;
    return false;
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;  // nullptr marks the eventfd
  if (epoll_ctl(ep_, EPOLL_CTL_ADD, wake_, &ev) != 0) {
    *err = Errno("epoll_ctl(eventfd)", errno);
    close(wake_);
    close(ep_);
    wake_ = ep_ = -1;
    return false;
  }
  // The relay thread takes no signals: Node's handlers stay on the main
  // thread, and a SIGPIPE from splice(2) to a closed peer is never delivered.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = pthread_create(&thread_, nullptr, &Engine::ThreadMain, this);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (rc != 0) {
    *err = Errno("pthread_create", rc);
    close(wake_);
    close(ep_);
    wake_ = ep_ = -1;
    return false;
  }
  running_ = true;
  return true;
}

void Engine::Stop() {
  for (auto& kv : staged_) {
    Release(kv.second);
    delete kv.second;
  }
  staged_.clear();
  if (!running_) return;
  Push(Cmd{Cmd::kQuit, nullptr, 0, 0});
  pthread_join(thread_, nullptr);
  running_ = false;
  close(wake_);
  close(ep_);
  wake_ = ep_ = -1;
}

void Engine::Push(const Cmd& cmd) {
  bool wasEmpty;
  {
    std::lock_guard<std::mutex> lock(mu_);
    wasEmpty = queue_.empty();
    queue_.push_back(cmd);
  }
  // One wake-up per batch of commands: the thread drains the whole queue.
  if (wasEmpty) {
    uint64_t one = 1;
    while (write(wake_, &one, sizeof one) < 0 && errno == EINTR) {
    }
  }
}

void* Engine::ThreadMain(void* self) {
  static_cast<Engine*>(self)->Run();
  return nullptr;
}

// ---------------------------------------------------------------- relay thread

void Engine::Run() {
  epoll_event evs[kMaxEvents];
  while (!quit_) {
    int timeout = -1;
    if (!again_.empty()) {
      timeout = 0;
    } else if (nextDeadline_ != INT64_MAX) {
      int64_t d = nextDeadline_ - NowMs();
      timeout = d <= 0 ? 0 : static_cast<int>(d > 3600000 ? 3600000 : d + 1);
    }
    int n = epoll_wait(ep_, evs, kMaxEvents, timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      fprintf(stderr, "wsplice relay: epoll_wait: %s\n", strerror(errno));
      n = 0;  // do not spin hard on a broken epoll set; idle scan still runs
      usleep(1000);
    }
    now_ = NowMs();
    for (int i = 0; i < n; i++) {
      if (evs[i].data.ptr == nullptr) {
        uint64_t v;
        while (read(wake_, &v, sizeof v) < 0 && errno == EINTR) {
        }
        DrainCommands();
        continue;
      }
      Side* s = static_cast<Side*>(evs[i].data.ptr);
      Tunnel* t = s->t;
      if (t->dead) continue;  // finished earlier in this batch; freed after it
      uint32_t e = evs[i].events;
      if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) s->readable = true;
      if (e & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) s->rdhup = true;
      if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR)) s->writable = true;
      Service(t, (e & EPOLLERR) ? s : nullptr);
    }
    if (!again_.empty()) {
      againWork_.swap(again_);  // both vectors keep their capacity: no allocation
      for (Tunnel* t : againWork_) {
        t->queued = false;
        if (!t->dead) Service(t, nullptr);
      }
      againWork_.clear();
    }
    if (now_ >= nextDeadline_) ScanIdle();
    for (Tunnel* t : graveyard_) delete t;
    graveyard_.clear();
  }
  // Quit: close every tunnel silently (the environment is going away).
  DrainCommands();
  while (!live_.empty()) Finish(live_.back(), kShutdown, false);
  for (Tunnel* t : graveyard_) delete t;
  graveyard_.clear();
}

void Engine::DrainCommands() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    work_.swap(queue_);
  }
  for (const Cmd& c : work_) {
    switch (c.kind) {
      case Cmd::kOpen:
        if (quit_) {
          Release(c.t);  // never registered
          delete c.t;
        } else {
          Add(c.t);
        }
        break;
      case Cmd::kClose: {
        auto it = byId_.find(c.id);
        if (it != byId_.end()) Finish(it->second, c.reason, true);
        break;
      }
      case Cmd::kGoAway: {
        auto it = byId_.find(c.id);
        if (it != byId_.end()) StartGoAway(it->second);
        break;
      }
      case Cmd::kQuit:
        quit_ = true;
        break;
      case Cmd::kDetach:
        for (uint64_t id : c.job->ids) DetachOne(c.job, id);
        {
          std::lock_guard<std::mutex> lock(c.job->mu);
          c.job->done = true;
        }
        c.job->cv.notify_one();
        break;
    }
  }
  work_.clear();
}

void Engine::Add(Tunnel* t) {
  t->idx = live_.size();
  live_.push_back(t);
  byId_.emplace(t->id, t);
  t->started = t->last = now_;
  if (t->adopted) {
    // Its life and its quiet time so far are the other relay's: the idle deadline carries on.
    t->started = now_ - t->adoptAgeMs;
    t->last = now_ - t->adoptQuietMs;
  }
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.ptr = &t->c;
  if (epoll_ctl(ep_, EPOLL_CTL_ADD, t->c.fd, &ev) != 0) {
    fprintf(stderr, "wsplice relay: epoll_ctl(ADD client): %s\n", strerror(errno));
    Finish(t, kClientError, true);
    return;
  }
  ev.data.ptr = &t->u;
  if (epoll_ctl(ep_, EPOLL_CTL_ADD, t->u.fd, &ev) != 0) {
    fprintf(stderr, "wsplice relay: epoll_ctl(ADD upstream): %s\n", strerror(errno));
    if (epoll_ctl(ep_, EPOLL_CTL_DEL, t->c.fd, nullptr) != 0) closeErrors++;
    Finish(t, kUpstreamError, true);
    return;
  }
  t->registered = true;
  if (t->idleMs > 0 && t->last + t->idleMs < nextDeadline_) nextDeadline_ = t->last + t->idleMs;
  // No service here: ADD on an edge-triggered fd that is already readable
  // (bytes sent during the hand-over) or writable queues an event for it,
  // so the next epoll_wait services the tunnel without probing syscalls.
}

void Engine::Service(Tunnel* t, Side* errSide) {
  if (!Pump(t, t->up)) return;
  if (!Pump(t, t->down)) return;
  StoreCounter(&t->counters[0], t->up.bytes);
  StoreCounter(&t->counters[1], t->down.bytes);
  if (errSide != nullptr) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(errSide->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err != 0) {
      Fail(t, errSide, err);
      return;
    }
  }
  if (t->up.shut && t->down.shut) {
    // Going away, the tunnel ends once both Closes are out and both peers answered with FIN.
    if (!t->goAway) Finish(t, t->firstEof == 1 ? kUpstreamClosed : kClientClosed, true);
    else if (t->up.eof && t->down.eof) Finish(t, kShutdown, true);
  }
}

// Moves what it can in one direction, a turn at a time, within the fairness
// budget. Returns false once the tunnel is finished.
bool Engine::Pump(Tunnel* t, Dir& d) {
  size_t moved = 0;
  bool any = false;
  for (int turn = 0; turn < kOpBudget; turn++) {
    bool progress = false;
    if (t->goAway && !GoAwayStep(t, d, &progress)) return false;
    if (d.closeSent) {
      if (!progress) break;
      continue;
    }
    // Pipes are made when there is something to read: a direction that
    // never carries data costs no fds and no pipe quota.
    if (d.splice && d.pr < 0 && d.src->readable && !d.eof && (d.noSplice || !EnsurePipe(d))) {
      d.splice = false;  // no usable pipe (EMFILE, tiny): copy instead
      d.noSplice = true;
    }
    if (d.splice) {
      if (d.pr >= 0 && !SpliceStep(t, d, &moved, &progress)) return false;
    } else if (!CopyStep(t, d, &moved, &progress)) {
      return false;
    }
    if (d.eof && !d.shut && d.inPipe == 0 && d.len == 0) {
      // Half-close: the source sent FIN and everything before it is delivered.
      d.shut = true;
      if (shutdown(d.dst->fd, SHUT_WR) != 0 && errno != ENOTCONN) return Fail(t, d.dst, errno);
    }
    if (!progress) break;
    any = true;
    if (moved >= kByteBudget || turn == kOpBudget - 1) {
      // Fairness: come back after the other ready tunnels (edge-triggered,
      // so no new edge would remind us).
      Requeue(t);
      break;
    }
  }
  if (any) t->last = now_;
  return true;
}

void Engine::Requeue(Tunnel* t) {
  if (t->queued) return;
  t->queued = true;
  again_.push_back(t);
}

bool Engine::Fail(Tunnel* t, Side* s, int err) {
  // A reset/EPIPE on a side that already sent its FIN is that side closing,
  // not an error (it closed fully while the other direction still flowed).
  Dir& from = s->client ? t->up : t->down;
  bool closed = (err == EPIPE || err == ECONNRESET) && from.eof;
  int reason = s->client ? (closed ? kClientClosed : kClientError) : (closed ? kUpstreamClosed : kUpstreamError);
  Finish(t, reason, true);
  return false;
}

void Engine::Reset(int fd) {
  // SO_LINGER {on, 0}: close() sends RST and drops anything unsent.
  linger l{1, 0};
  if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l) != 0) closeErrors++;
}

void Engine::CloseFd(int& fd) {
  if (fd >= 0 && close(fd) != 0 && errno != EINTR) closeErrors++;
  fd = -1;
}

void Engine::ClosePipeFds(Dir& d) {
  if (d.pr >= 0) {
    CloseFd(d.pr);
    CloseFd(d.pw);
    pipes -= 2;
  }
}

void Engine::Release(Tunnel* t) {
  CloseFd(t->c.fd);
  CloseFd(t->u.fd);
  for (Dir* d : {&t->up, &t->down}) {
    ClosePipeFds(*d);
    free(d->buf);
    d->buf = nullptr;
  }
}

void Engine::Finish(Tunnel* t, int reason, bool report) {
  if (t->dead) return;
  t->dead = true;
  // Out of the epoll set BEFORE close: the set is keyed by the open file
  // description, and a later fd with the same number must not inherit it.
  if (t->registered) {
    if (epoll_ctl(ep_, EPOLL_CTL_DEL, t->c.fd, nullptr) != 0) closeErrors++;
    if (epoll_ctl(ep_, EPOLL_CTL_DEL, t->u.fd, nullptr) != 0) closeErrors++;
  }
  if (reason == kShutdown || reason == kIdleTimeout) {
    // Proxy-initiated end: FIN both ways, not RST.
    if (!t->down.shut) shutdown(t->c.fd, SHUT_WR);
    if (!t->up.shut) shutdown(t->u.fd, SHUT_WR);
  }
  // A reset is relayed as a reset (as the JS relay does): the healthy peer
  // learns the other end is gone, not that it said goodbye.
  // (A side whose EOF was read has nothing unread: no drain needed.)
  if (reason == kClientError) Reset(t->u.fd);
  else if (!t->down.eof) Drain(t->u.fd);
  if (reason == kUpstreamError) Reset(t->c.fd);
  else if (!t->up.eof) Drain(t->c.fd);
  Release(t);
  Unlink(t);
  if (report) {
    StoreCounter(&t->counters[0], t->up.bytes);
    StoreCounter(&t->counters[1], t->down.bytes);
    Done* done = new (std::nothrow) Done{static_cast<double>(t->id), static_cast<double>(t->up.bytes),
                                         static_cast<double>(t->down.bytes),
                                         static_cast<double>(NowMs() - t->started), reason};
    if (done != nullptr) reporter_->Report(done);
  }
  graveyard_.push_back(t);  // freed after the current epoll batch
}

void Engine::Unlink(Tunnel* t) {
  // Out of the registries (swap-remove keeps live_ dense).
  Tunnel* lastT = live_.back();
  live_[t->idx] = lastT;
  lastT->idx = t->idx;
  live_.pop_back();
  byId_.erase(t->id);
  if (t->queued) {
    for (size_t i = 0; i < again_.size(); i++) {
      if (again_[i] == t) {
        again_[i] = again_.back();
        again_.pop_back();
        break;
      }
    }
    t->queued = false;
  }
}

void Engine::ScanIdle() {
  int64_t next = INT64_MAX;
  for (size_t i = 0; i < live_.size();) {
    Tunnel* t = live_[i];
    if (t->goAway) {
      if (t->goAwayBy <= now_) {
        Finish(t, kShutdown, true);  // FIN for whatever is left
        continue;
      }
      if (t->goAwayBy < next) next = t->goAwayBy;
    }
    if (t->idleMs > 0) {
      int64_t dl = t->last + t->idleMs;
      if (dl <= now_) {
        Finish(t, kIdleTimeout, true);  // swap-removed: live_[i] is another tunnel now
        continue;
      }
      if (dl < next) next = dl;
    }
    i++;
  }
  nextDeadline_ = next;
}

}  // namespace wsplice
