// wsplice native relay: moves the bytes of established tunnels on one epoll
// thread, with splice(2) through a pipe per direction (zero copy) or with
// recv/send through a small buffer, or adaptively per direction.
//
// Threading: the JS thread only dup()s fds, allocates a Tunnel and pushes
// commands onto a mutex-guarded queue, then pokes an eventfd. Only the relay
// thread touches the epoll set and the tunnels after that. Completion goes back
// through one threadsafe function. No C++ exceptions (built -fno-exceptions).
#include <napi.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

// Close reasons and modes: the one definition. The addon exports both tables
// (`reasons`, `modes`), so JS reads the numbers instead of repeating them.
#define WSPLICE_REASONS(X)            \
  X(kClientClosed, "client-closed")   \
  X(kUpstreamClosed, "upstream-closed") \
  X(kClientError, "client-error")     \
  X(kUpstreamError, "upstream-error") \
  X(kIdleTimeout, "idle-timeout")     \
  X(kShutdown, "shutdown")

#define WSPLICE_MODES(X)        \
  X(kModeSplice, "splice")      \
  X(kModeCopy, "copy")          \
  X(kModeAdaptive, "adaptive")

#define WSPLICE_ENUM(id, name) id,
enum Reason : int { WSPLICE_REASONS(WSPLICE_ENUM) kReasonCount };
enum Mode : int { WSPLICE_MODES(WSPLICE_ENUM) kModeCount };
#undef WSPLICE_ENUM

#define WSPLICE_NAME(id, name) name,
const char* const kReasonNames[] = {WSPLICE_REASONS(WSPLICE_NAME)};
const char* const kModeNames[] = {WSPLICE_MODES(WSPLICE_NAME)};
#undef WSPLICE_NAME

constexpr size_t kScratch = 128 * 1024;      // recv size in copy mode (one per thread)
constexpr ssize_t kBulkRead = 64 * 1024;     // adaptive: a read this large means bulk -> splice
constexpr ssize_t kSmallRead = 4096;         // adaptive: splice reads under this are "small"
constexpr int kSmallRun = 8;                 // ...this many in a row with an empty pipe -> copy
constexpr size_t kByteBudget = 4u << 20;     // per direction per wake-up, then yield (fairness)
constexpr int kOpBudget = 64;                // same, in loop turns (small-message floods)
constexpr int kMaxEvents = 256;
constexpr int kMinPipe = 64 * 1024;          // smaller pipes: copy mode instead
constexpr unsigned kSpliceFlags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;

int64_t NowMs() {
  // COARSE is a vDSO read with ~4 ms resolution: plenty for idle timeouts, and
  // it is read once per epoll wake-up, never per byte.
  timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) != 0) clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

std::string Errno(const char* what, int err) {
  return std::string(what) + ": " + strerror(err);
}

struct Tunnel;

struct Side {
  Tunnel* t = nullptr;
  int fd = -1;
  bool client = false;
  // Edge-triggered readiness we believe in: set by events (EPOLL_CTL_ADD
  // reports the initial state as an event), cleared on EAGAIN.
  bool readable = false;
  bool writable = false;
  bool rdhup = false;  // the peer's FIN (or a reset) has been signalled
};

struct Dir {
  Side* src = nullptr;
  Side* dst = nullptr;
  bool splice = true;       // current mechanism
  bool adaptive = false;
  bool noSplice = false;    // a pipe could not be had (or only a tiny one): copy for good
  bool eof = false;         // src read EOF
  bool shut = false;        // shutdown(dst, SHUT_WR) done
  uint8_t smallRun = 0;
  int pr = -1, pw = -1;     // pipe (splice mode), created lazily
  size_t inPipe = 0;        // bytes sitting in the pipe
  size_t cap = 0;           // pipe capacity in bytes
  char* buf = nullptr;      // copy-mode leftover after a short send (lazy)
  uint32_t off = 0, len = 0;
  uint64_t bytes = 0;       // bytes written to dst
};

struct Tunnel {
  uint64_t id = 0;
  Side c, u;
  Dir up, down;             // up: client -> upstream; down: upstream -> client
  int64_t idleMs = 0;
  int64_t last = 0;
  int64_t started = 0;
  int firstEof = -1;        // 0 client sent FIN first, 1 upstream did
  bool dead = false;
  bool queued = false;      // in the again list
  bool registered = false;  // both fds in epoll
  size_t idx = 0;           // index in live_
  double* counters = nullptr;  // [bytesUp, bytesDown] in a JS-owned ArrayBuffer
};

struct Done {
  double id, up, down, durMs;
  int reason;
};

struct Cmd {
  enum Kind { kOpen, kClose, kQuit } kind;
  Tunnel* t;
  uint64_t id;
  int reason;
};

void StoreCounter(double* slot, uint64_t v) {
  // The JS thread may read the slot at any time: publish the whole 8 bytes at once.
  double d = static_cast<double>(v);
  uint64_t bits;
  memcpy(&bits, &d, sizeof bits);
  __atomic_store_n(reinterpret_cast<uint64_t*>(slot), bits, __ATOMIC_RELAXED);
}

class Engine;
void CallJs(Napi::Env env, Napi::Function fn, Engine* engine, Done* done);
using Tsfn = Napi::TypedThreadSafeFunction<Engine, Done, CallJs>;

class Engine {
 public:
  explicit Engine(Napi::Env env, Napi::Function onDone) {
    tsfn_ = Tsfn::New(env, onDone, "wsplice-relay", 0, 1, this);
    tsfn_.Unref(env);  // only live tunnels keep the process alive
  }

  ~Engine() { Stop(); }

  std::atomic<int> pipes{0};            // pipe fds open (leak checks)
  std::atomic<uint64_t> closeErrors{0};
  std::atomic<int> pipeSize{1 << 20};
  int active = 0;                       // JS thread only: opened, not yet reported

  // JS thread.
  bool EnsureThread(std::string* err) {
    if (running_) return true;
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0) { *err = Errno("epoll_create1", errno); return false; }
    wake_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_ < 0) { *err = Errno("eventfd", errno); close(ep_); ep_ = -1; return false; }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = nullptr;  // nullptr marks the eventfd
    if (epoll_ctl(ep_, EPOLL_CTL_ADD, wake_, &ev) != 0) {
      *err = Errno("epoll_ctl(eventfd)", errno);
      close(wake_); close(ep_); wake_ = ep_ = -1;
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
      close(wake_); close(ep_); wake_ = ep_ = -1;
      return false;
    }
    running_ = true;
    return true;
  }

  // JS thread (or cleanup hook). Closes everything, reports nothing.
  void Stop() {
    if (running_) {
      Push(Cmd{Cmd::kQuit, nullptr, 0, 0});
      pthread_join(thread_, nullptr);
      running_ = false;
      close(wake_);
      close(ep_);
      wake_ = ep_ = -1;
    }
    if (!released_) {
      released_ = true;
      tsfn_.Release();
    }
  }

  void Push(const Cmd& cmd) {
    bool wasEmpty;
    {
      std::lock_guard<std::mutex> lock(mu_);
      wasEmpty = queue_.empty();
      queue_.push_back(cmd);
    }
    // One wake-up per batch of commands: the thread drains the whole queue.
    if (wasEmpty) {
      uint64_t one = 1;
      while (write(wake_, &one, sizeof one) < 0 && errno == EINTR) {}
    }
  }

  uint64_t NextId() { return ++nextId_; }
  Tsfn& tsfn() { return tsfn_; }
  bool running() const { return running_; }

 private:
  static void* ThreadMain(void* self) {
    static_cast<Engine*>(self)->Run();
    return nullptr;
  }

  // ---- relay thread from here on ----

  void Run() {
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
          while (read(wake_, &v, sizeof v) < 0 && errno == EINTR) {}
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

  void DrainCommands() {
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
        case Cmd::kQuit:
          quit_ = true;
          break;
      }
    }
    work_.clear();
  }

  void Add(Tunnel* t) {
    t->idx = live_.size();
    live_.push_back(t);
    byId_.emplace(t->id, t);
    t->started = t->last = now_;
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

  void Service(Tunnel* t, Side* errSide) {
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
    if (t->up.shut && t->down.shut) Finish(t, t->firstEof == 1 ? kUpstreamClosed : kClientClosed, true);
  }

  bool EnsurePipe(Dir& d) {
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

  void Activity(Tunnel* t) { t->last = now_; }

  // Moves what it can in one direction. Returns false once the tunnel is finished.
  bool Pump(Tunnel* t, Dir& d) {
    size_t moved = 0;
    bool any = false;
    for (int turn = 0; turn < kOpBudget; turn++) {
      bool progress = false;
      // Pipes are made when there is something to read: a direction that
      // never carries data costs no fds and no pipe quota.
      if (d.splice && d.pr < 0 && d.src->readable && !d.eof && (d.noSplice || !EnsurePipe(d))) {
        d.splice = false;  // no usable pipe (EMFILE, tiny): copy instead
        d.noSplice = true;
      }
      if (d.splice && d.pr < 0) {
        // nothing to read yet, and nothing in a pipe
      } else if (d.splice) {
        if (d.inPipe > 0 && d.dst->writable) {
          ssize_t n = splice(d.pr, nullptr, d.dst->fd, nullptr, d.inPipe, kSpliceFlags);
          if (n > 0) {
            d.inPipe -= n;
            d.bytes += n;
            moved += n;
            progress = true;
          } else if (n < 0) {
            if (errno == EAGAIN) d.dst->writable = false;
            else if (errno != EINTR) return Fail(t, d.dst, errno);
          }
        }
        if (!d.eof && d.src->readable && d.inPipe < d.cap) {
          ssize_t n = splice(d.src->fd, nullptr, d.pw, nullptr, d.cap - d.inPipe, kSpliceFlags);
          if (n > 0) {
            d.inPipe += n;
            progress = true;
            if (d.adaptive) d.smallRun = n < kSmallRead ? (d.smallRun < 255 ? d.smallRun + 1 : 255) : 0;
          } else if (n == 0) {
            d.eof = true;
            if (t->firstEof < 0) t->firstEof = d.src->client ? 0 : 1;
            progress = true;
          } else if (errno == EAGAIN) {
            // EAGAIN is ambiguous here: the socket is drained OR the pipe ran
            // out of slots (one slot per skb fragment, so it can be "full" below
            // cap bytes). Believe "drained" only when the pipe is empty; else
            // retry after the pipe drains, or we would wait for an edge that
            // never comes.
            if (d.inPipe == 0) d.src->readable = false;
          } else if (errno != EINTR) {
            return Fail(t, d.src, errno);
          }
        }
        if (d.adaptive && d.inPipe == 0 && d.smallRun >= kSmallRun) {
          d.splice = false;  // keep the pipe: cheap to switch back
          d.smallRun = 0;
        }
      } else {
        if (d.len > 0 && d.dst->writable) {
          ssize_t n = send(d.dst->fd, d.buf + d.off, d.len, MSG_NOSIGNAL | MSG_DONTWAIT);
          if (n > 0) {
            d.off += n;
            d.len -= n;
            d.bytes += n;
            moved += n;
            progress = true;
          } else if (n < 0) {
            if (errno == EAGAIN) d.dst->writable = false;
            else if (errno != EINTR) return Fail(t, d.dst, errno);
          }
        }
        if (d.len == 0 && !d.eof && d.src->readable) {
          ssize_t n = recv(d.src->fd, scratch_, kScratch, MSG_DONTWAIT);
          if (n > 0) {
            progress = true;
            ssize_t m = 0;
            if (d.dst->writable) {
              m = send(d.dst->fd, scratch_, n, MSG_NOSIGNAL | MSG_DONTWAIT);
              if (m < 0) {
                if (errno == EAGAIN || errno == EINTR) {
                  if (errno == EAGAIN) d.dst->writable = false;
                  m = 0;
                } else {
                  return Fail(t, d.dst, errno);
                }
              }
              d.bytes += m;
              moved += m;
            }
            if (m < n) {
              // Short send: keep the rest (allocated once per direction, on the
              // first backpressure only) and stop reading this side until it drains.
              if (d.buf == nullptr) {
                d.buf = static_cast<char*>(malloc(kScratch));
                if (d.buf == nullptr) return Fail(t, d.dst, ENOMEM);
              }
              memcpy(d.buf, scratch_ + m, n - m);
              d.off = 0;
              d.len = static_cast<uint32_t>(n - m);
            }
            if (d.adaptive && n >= kBulkRead && d.len == 0 && !d.noSplice) {
              d.splice = true;  // bulk: splice from now on (pipe made lazily)
              d.smallRun = 0;
            } else if (static_cast<size_t>(n) < kScratch && !d.src->rdhup) {
              // A short recv drained the socket: skip the EAGAIN recv (one
              // syscall per message saved). Safe with EPOLLET: every later
              // arrival raises a new edge; a FIN already signalled (rdhup) is
              // not, so then we read on until EOF. (Not for splice: a short
              // splice can also mean the pipe ran out of slots.)
              d.src->readable = false;
            }
          } else if (n == 0) {
            d.eof = true;
            if (t->firstEof < 0) t->firstEof = d.src->client ? 0 : 1;
            progress = true;
          } else if (errno == EAGAIN) {
            d.src->readable = false;
          } else if (errno != EINTR) {
            return Fail(t, d.src, errno);
          }
        }
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
        if (!t->queued) {
          t->queued = true;
          again_.push_back(t);
        }
        break;
      }
    }
    if (any) Activity(t);
    return true;
  }

  bool Fail(Tunnel* t, Side* s, int err) {
    // A reset/EPIPE on a side that already sent its FIN is that side closing,
    // not an error (it closed fully while the other direction still flowed).
    Dir& from = s->client ? t->up : t->down;
    bool closed = (err == EPIPE || err == ECONNRESET) && from.eof;
    int reason = s->client ? (closed ? kClientClosed : kClientError) : (closed ? kUpstreamClosed : kUpstreamError);
    Finish(t, reason, true);
    return false;
  }

  static void Drain(int fd) {
    // Discard unread input (MSG_TRUNC: no copy) so close() sends FIN, not RST.
    for (int i = 0; i < 16; i++) {
      ssize_t n = recv(fd, nullptr, 1 << 20, MSG_TRUNC | MSG_DONTWAIT);
      if (n <= 0 && !(n < 0 && errno == EINTR)) break;
    }
  }

  void Reset(int fd) {
    // SO_LINGER {on, 0}: close() sends RST and drops anything unsent.
    linger l{1, 0};
    if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l) != 0) closeErrors++;
  }

  void CloseFd(int& fd) {
    if (fd >= 0 && close(fd) != 0 && errno != EINTR) closeErrors++;
    fd = -1;
  }

  void ClosePipeFds(Dir& d) {
    if (d.pr >= 0) {
      CloseFd(d.pr);
      CloseFd(d.pw);
      pipes -= 2;
    }
  }

  void ClosePipe(Dir& d) {
    ClosePipeFds(d);
    free(d.buf);
    d.buf = nullptr;
  }

  void Release(Tunnel* t) {
    CloseFd(t->c.fd);
    CloseFd(t->u.fd);
    ClosePipe(t->up);
    ClosePipe(t->down);
  }

  void Finish(Tunnel* t, int reason, bool report) {
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
    // Unlink from the registries (swap-remove keeps live_ dense).
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
    if (report) {
      StoreCounter(&t->counters[0], t->up.bytes);
      StoreCounter(&t->counters[1], t->down.bytes);
      Done* done = new (std::nothrow) Done{static_cast<double>(t->id), static_cast<double>(t->up.bytes),
                                           static_cast<double>(t->down.bytes),
                                           static_cast<double>(NowMs() - t->started), reason};
      if (done != nullptr && tsfn_.NonBlockingCall(done) != napi_ok) delete done;
    }
    graveyard_.push_back(t);  // freed after the current epoll batch
  }

  void ScanIdle() {
    int64_t next = INT64_MAX;
    for (size_t i = 0; i < live_.size();) {
      Tunnel* t = live_[i];
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

  Tsfn tsfn_;
  bool released_ = false;
  bool running_ = false;
  pthread_t thread_{};
  int ep_ = -1;
  int wake_ = -1;
  uint64_t nextId_ = 0;
  std::mutex mu_;
  std::vector<Cmd> queue_;  // guarded by mu_
  // Relay thread only:
  std::vector<Cmd> work_;
  bool quit_ = false;
  int64_t now_ = 0;
  int64_t nextDeadline_ = INT64_MAX;
  std::vector<Tunnel*> live_;
  std::unordered_map<uint64_t, Tunnel*> byId_;
  std::vector<Tunnel*> again_, againWork_, graveyard_;
  char scratch_[kScratch];
};

void CallJs(Napi::Env env, Napi::Function fn, Engine* engine, Done* done) {
  if (env != nullptr && fn != nullptr) {
    if (--engine->active == 0) engine->tsfn().Unref(env);
    fn.Call({Napi::Number::New(env, done->id), Napi::Number::New(env, done->up),
             Napi::Number::New(env, done->down), Napi::Number::New(env, done->durMs),
             Napi::Number::New(env, done->reason)});
  }
  delete done;
}

class Addon : public Napi::Addon<Addon> {
 public:
  Addon(Napi::Env env, Napi::Object exports) {
    DefineAddon(exports, {
                             InstanceMethod("init", &Addon::Setup),
                             InstanceMethod("open", &Addon::Open),
                             InstanceMethod("close", &Addon::Close),
                             InstanceMethod("configure", &Addon::Configure),
                             InstanceMethod("stats", &Addon::Stats),
                             InstanceValue("reasons", Table(env, kReasonNames, kReasonCount), napi_enumerable),
                             InstanceValue("modes", Modes(env), napi_enumerable),
                         });
  }

  ~Addon() { delete engine_; }

 private:
  static Napi::Array Table(Napi::Env env, const char* const* names, int n) {
    Napi::Array a = Napi::Array::New(env, n);
    for (int i = 0; i < n; i++) a.Set(i, Napi::String::New(env, names[i]));
    return a;
  }

  static Napi::Object Modes(Napi::Env env) {
    Napi::Object o = Napi::Object::New(env);
    for (int i = 0; i < kModeCount; i++) o.Set(kModeNames[i], Napi::Number::New(env, i));
    return o;
  }

  // init(onDone): once per environment.
  Napi::Value Setup(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (engine_ != nullptr) return env.Undefined();
    if (info.Length() < 1 || !info[0].IsFunction()) {
      Napi::TypeError::New(env, "init(onDone: Function)").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    engine_ = new Engine(env, info[0].As<Napi::Function>());
    // Registered after the TSFN's own hook, so it runs first (LIFO): join the
    // thread and release the TSFN while both still exist.
    env.AddCleanupHook([](Engine* e) { e->Stop(); }, engine_);
    return env.Undefined();
  }

  // open(clientFd, upstreamFd, idleMs, mode, counters: Float64Array(2)) -> id
  Napi::Value Open(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (engine_ == nullptr) {
      Napi::Error::New(env, "init() first").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (info.Length() < 5 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsNumber() ||
        !info[3].IsNumber() || !info[4].IsTypedArray()) {
      Napi::TypeError::New(env, "open(clientFd, upstreamFd, idleMs, mode, counters)").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    int cfd = info[0].As<Napi::Number>().Int32Value();
    int ufd = info[1].As<Napi::Number>().Int32Value();
    double idle = info[2].As<Napi::Number>().DoubleValue();
    int mode = info[3].As<Napi::Number>().Int32Value();
    Napi::TypedArray ta = info[4].As<Napi::TypedArray>();
    if (ta.TypedArrayType() != napi_float64_array || ta.ElementLength() < 2) {
      Napi::TypeError::New(env, "counters must be a Float64Array(2)").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (mode < 0 || mode >= kModeCount) {
      Napi::RangeError::New(env, "bad mode").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    std::string err;
    if (!CheckStream(cfd, "client", &err) || !CheckStream(ufd, "upstream", &err) ||
        !engine_->EnsureThread(&err)) {
      Napi::Error::New(env, err).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    // dup: our own reference to each open file description. JS may then close
    // its fds (destroy its sockets) without the connection closing.
    int c = fcntl(cfd, F_DUPFD_CLOEXEC, 3);
    if (c < 0) {
      Napi::Error::New(env, Errno("dup(client)", errno)).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    int u = fcntl(ufd, F_DUPFD_CLOEXEC, 3);
    if (u < 0) {
      int e = errno;
      close(c);
      Napi::Error::New(env, Errno("dup(upstream)", e)).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Tunnel* t = new (std::nothrow) Tunnel();
    if (t == nullptr) {
      close(c);
      close(u);
      Napi::Error::New(env, "out of memory").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    t->id = engine_->NextId();
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
    t->idleMs = idle > 0 ? static_cast<int64_t>(idle) : 0;
    t->counters = reinterpret_cast<double*>(static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset());
    if (engine_->active++ == 0) engine_->tsfn().Ref(env);
    // Once pushed, the tunnel belongs to the relay thread, which may finish and
    // free it before Push returns: never touch `t` after this line.
    const uint64_t id = t->id;
    engine_->Push(Cmd{Cmd::kOpen, t, id, 0});
    return Napi::Number::New(env, static_cast<double>(id));
  }

  static bool CheckStream(int fd, const char* which, std::string* err) {
    int type = 0;
    socklen_t len = sizeof type;
    if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) {
      *err = Errno((std::string(which) + " fd").c_str(), fd < 0 ? EBADF : errno);
      return false;
    }
    if (type != SOCK_STREAM) {
      *err = std::string(which) + " fd is not a stream socket";
      return false;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)) {
      *err = Errno((std::string(which) + " O_NONBLOCK").c_str(), errno);
      return false;
    }
    return true;
  }

  // close(id, reason): ends a native tunnel; onDone follows with that reason.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (engine_ == nullptr || !engine_->running() || info.Length() < 2) return env.Undefined();
    double id = info[0].As<Napi::Number>().DoubleValue();
    int reason = info[1].As<Napi::Number>().Int32Value();
    if (reason < 0 || reason >= kReasonCount) reason = kShutdown;
    engine_->Push(Cmd{Cmd::kClose, nullptr, static_cast<uint64_t>(id), reason});
    return env.Undefined();
  }

  // configure(pipeSizeBytes)
  Napi::Value Configure(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (engine_ != nullptr && info.Length() >= 1 && info[0].IsNumber()) {
      int v = info[0].As<Napi::Number>().Int32Value();
      if (v > 0) engine_->pipeSize = v < kMinPipe ? kMinPipe : v;
    }
    return env.Undefined();
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("active", engine_ ? engine_->active : 0);
    o.Set("pipeFds", engine_ ? engine_->pipes.load() : 0);
    o.Set("closeErrors", engine_ ? static_cast<double>(engine_->closeErrors.load()) : 0.0);
    o.Set("threadRunning", engine_ ? engine_->running() : false);
    return o;
  }

  Engine* engine_ = nullptr;
};

}  // namespace

NODE_API_ADDON(Addon)
