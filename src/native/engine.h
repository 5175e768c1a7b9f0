// The relay engine: one epoll thread that moves the bytes of established
// tunnels, with splice(2) through a pipe per direction (zero copy), with
// recv/send through a small buffer, or adaptively per direction. No N-API in
// here: the glue (addon.cc) hands fds in and hears ends through a Reporter.
//
// Threading: the JS thread only dup()s fds, allocates a Tunnel and pushes
// commands onto a mutex-guarded queue, then pokes an eventfd. Only the relay
// thread touches the epoll set and the tunnels after that.
#pragma once

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "frames.h"
#include "tables.h"

namespace wsplice {

constexpr size_t kScratch = 128 * 1024;   // recv size in copy mode (one per thread)
constexpr ssize_t kBulkRead = 64 * 1024;  // adaptive: a read this large means bulk -> splice
constexpr ssize_t kSmallRead = 4096;      // adaptive: splice reads under this are "small"
constexpr int kSmallRun = 8;              // ...this many in a row with an empty pipe -> copy
constexpr size_t kByteBudget = 4u << 20;  // per direction per wake-up, then yield (fairness)
constexpr int kOpBudget = 64;             // same, in loop turns (small-message floods)
constexpr int kMaxEvents = 256;
constexpr int kMinPipe = 64 * 1024;       // smaller pipes: copy mode instead
constexpr int64_t kGoAwayMs = 1000;       // go-away: mid-frame wait plus the peers' close, at most

struct Tunnel;

// The JS thread may read a counter slot at any time: publish the whole 8 bytes at once.
inline void StoreCounter(double* slot, uint64_t v) {
  double d = static_cast<double>(v);
  uint64_t bits;
  memcpy(&bits, &d, sizeof bits);
  __atomic_store_n(reinterpret_cast<uint64_t*>(slot), bits, __ATOMIC_RELAXED);
}

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
  bool splice = true;     // current mechanism
  bool adaptive = false;
  bool noSplice = false;  // a pipe could not be had (or only a tiny one): copy for good
  bool eof = false;       // src read EOF
  bool shut = false;      // shutdown(dst, SHUT_WR) done
  uint8_t smallRun = 0;
  int pr = -1, pw = -1;   // pipe (splice mode), created lazily
  size_t inPipe = 0;      // bytes sitting in the pipe
  size_t cap = 0;         // pipe capacity in bytes
  char* buf = nullptr;    // copy-mode leftover after a short send (lazy)
  uint32_t off = 0, len = 0;
  uint64_t bytes = 0;     // bytes written to dst
  bool track = false;     // a WebSocket tunnel: follow the frames of this direction
  bool closeSent = false; // go-away: our Close went to dst (then FIN); src is only drained
  bool smallFrames = false; // tracked: copying because frames were small (splice again for a large payload)
  bool restoreCopy = false; // adopted with a copy leftover in the pipe: back to copy once it is out
  Frames fr;
};

struct Tunnel {
  uint64_t id = 0;
  Side c, u;
  Dir up, down;             // up: client -> upstream; down: upstream -> client
  int64_t idleMs = 0;
  int64_t last = 0;
  int64_t started = 0;
  int firstEof = -1;        // 0 client sent FIN first, 1 upstream did
  bool goAway = false;      // drain: Close 1001 each way at the next boundary, then FIN
  int64_t goAwayBy = 0;     // ...and at this time whatever is left ends with a FIN
  bool dead = false;
  bool queued = false;      // in the again list
  bool registered = false;  // both fds in epoll
  size_t idx = 0;           // index in live_
  double* counters = nullptr;  // [bytesUp, bytesDown] in a JS-owned ArrayBuffer
  bool adopted = false;     // came from another relay (handover.cc): ages below, not now
  int64_t adoptAgeMs = 0, adoptQuietMs = 0;
};

// One tunnel as it leaves a relay for another (handover.cc): plain data, copied byte for byte
// into the hand-over message; the receiver checks kMovedVersion and sizeof first.
struct MovedDir {
  uint64_t bytes;
  uint64_t frLen, frPayload;
  uint32_t inPipe;
  uint8_t splice, adaptive, noSplice, eof, shut, smallRun, track, smallFrames;
  uint8_t frState, frMasked, frLeft, pad;
};
struct MovedTunnel {
  uint64_t id;
  int64_t idleMs, ageMs, quietMs;
  int32_t firstEof;
  uint32_t fdMask;  // which of the six fds follow: client, upstream, up pipe r/w, down pipe r/w
  MovedDir up, down;
};
constexpr uint32_t kMovedVersion = 1;
constexpr int kMovedFds = 6;

// A batch of detaches the JS thread waits for (the relay thread fills it).
struct DetachJob {
  std::vector<uint64_t> ids;
  std::vector<MovedTunnel> out;  // one per moved tunnel
  std::vector<int> fds;          // kMovedFds per moved tunnel, -1 where absent
  std::vector<uint64_t> movedIds;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
};

// What the engine reports when a tunnel ends (heap-allocated; the Reporter owns it).
struct Done {
  double id, up, down, durMs;
  int reason;
};

class Reporter {
 public:
  virtual ~Reporter() = default;
  // Relay thread. Takes ownership of `done`.
  virtual void Report(Done* done) = 0;
};

struct Cmd {
  enum Kind { kOpen, kClose, kGoAway, kQuit, kDetach } kind;
  Tunnel* t;
  uint64_t id;
  int reason;
  DetachJob* job = nullptr;
};

class Engine {
 public:
  explicit Engine(Reporter* reporter) : reporter_(reporter) {}
  ~Engine() { Stop(); }

  std::atomic<int> pipes{0};  // pipe fds open (leak checks)
  std::atomic<uint64_t> closeErrors{0};
  std::atomic<int> pipeSize{1 << 20};

  // JS thread. Takes its own (dup'ed) reference to both fds; returns the
  // tunnel id, or 0 with `err` set.
  // `websocket`: follow the frame boundaries (for GoAway).
  // `upstreamOwned`: the upstream fd is a dial's (dial.cc: a non-blocking TCP socket it made), and
  // the engine takes it as it is (no check, no dup); the caller keeps it when this fails.
  uint64_t Open(int clientFd, int upstreamFd, int64_t idleMs, int mode, bool websocket, bool upstreamOwned, double* counters, std::string* err);
  void Close(uint64_t id, int reason) { Push(Cmd{Cmd::kClose, nullptr, id, reason}); }
  // A WebSocket tunnel: Close 1001 to the client (unmasked) and to the upstream (masked), each
  // at the next frame boundary of its direction, then FIN; ended with reason kShutdown, at the
  // latest after kGoAwayMs.
  void GoAway(uint64_t id) { Push(Cmd{Cmd::kGoAway, nullptr, id, kShutdown}); }
  // ---- hand-over (handover.cc), JS thread ----
  // Pause and take out the tunnels `job->ids` names (those still relayed and not going away):
  // leftovers of the copy pump go into the direction's pipe, empty pipes are closed, and the fds
  // are the caller's. Waits for the relay thread. Such a tunnel is never reported.
  void Detach(DetachJob* job);
  // A tunnel from a MovedTunnel and its fds (owned on success). Staged: it moves no byte until
  // StartAdopted. Returns the new id, or 0 with `err`.
  uint64_t Adopt(const MovedTunnel& m, const int* fds, double* counters, std::string* err);
  bool StartAdopted(uint64_t id);
  // A staged tunnel given back: its fds are closed (the sender still holds its own).
  void DiscardAdopted(uint64_t id);
  // JS thread (or cleanup hook). Closes everything, reports nothing.
  void Stop();
  bool running() const { return running_; }

 private:
  bool EnsureThread(std::string* err);
  void Push(const Cmd& cmd);
  static void* ThreadMain(void* self);

  // ---- relay thread (engine.cc) ----
  void Run();
  void DrainCommands();
  void Add(Tunnel* t);
  void Service(Tunnel* t, Side* errSide);
  bool Pump(Tunnel* t, Dir& d);
  bool Fail(Tunnel* t, Side* s, int err);
  void Finish(Tunnel* t, int reason, bool report);
  void Unlink(Tunnel* t);
  void DetachOne(DetachJob* job, uint64_t id);
  bool LeftoverToPipe(Dir& d);
  void ScanIdle();
  void Requeue(Tunnel* t);
  void Release(Tunnel* t);
  void CloseFd(int& fd);
  void ClosePipeFds(Dir& d);
  void Reset(int fd);
  // ---- the two halves of Pump ----
  // Each moves what one turn can in direction `d`; false once the tunnel is finished.
  bool SpliceStep(Tunnel* t, Dir& d, size_t* moved, bool* progress);  // pump_splice.cc
  bool CopyStep(Tunnel* t, Dir& d, size_t* moved, bool* progress);    // pump_copy.cc
  bool EnsurePipe(Dir& d);                                             // pump_splice.cc
  bool FrameLimit(Tunnel* t, Dir& d, uint8_t* peek, size_t* npeek, size_t* want);  // pump_splice.cc
  // ---- go-away (go_away.cc) ----
  void StartGoAway(Tunnel* t);
  bool GoAwayStep(Tunnel* t, Dir& d, bool* progress);

  Reporter* reporter_;
  bool running_ = false;
  pthread_t thread_{};
  int ep_ = -1;
  int wake_ = -1;
  uint64_t nextId_ = 0;
  std::mutex mu_;
  std::vector<Cmd> queue_;  // guarded by mu_
  std::unordered_map<uint64_t, Tunnel*> staged_;  // JS thread only: adopted, not started
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

}  // namespace wsplice
