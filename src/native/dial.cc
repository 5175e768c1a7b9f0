// Upstream connections dialled without a JS socket: a non-blocking connect,
// the request head written, the response bytes read back to JS, all from one
// epoll set of the addon's, watched by one poll on the main loop (no thread
// hop: the events are the main thread's anyway, and a dial costs a fraction
// of a net.Socket). JS parses the response: on a valid 101 it takes the fd for
// the engine; any other response (a plain request's, a refused upgrade's) is
// read to its end here, paused and resumed by JS's backpressure.
#include "dial.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <new>

namespace wsplice {

namespace {
// Events taken from the set per turn of the loop; more wait for the next turn (the set is level-triggered).
constexpr int kBatch = 64;
constexpr uint32_t kReading = EPOLLIN | EPOLLRDHUP;
}  // namespace

Dials::~Dials() { CloseAll(); }

bool Dials::Init(Napi::Env env, Napi::Function onEvent, Napi::Buffer<uint8_t> readBuf) {
  onEvent_ = Napi::Persistent(onEvent);
  // Response bytes land in JS's own buffer (its memory never moves while referenced): JS copies
  // them out into an ordinary Buffer, so no Buffer is made here per read.
  readRef_ = Napi::Persistent(readBuf);
  readAt_ = readBuf.Data();
  readLen_ = readBuf.Length();
  ctx_ = new Napi::AsyncContext(env, "wsplice-dial");
  env_ = env;
  uv_loop_s* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) return false;
  ep_ = epoll_create1(EPOLL_CLOEXEC);
  if (ep_ < 0) return false;
  auto* poll = new (std::nothrow) uv_poll_t();
  if (poll == nullptr || uv_poll_init(loop, poll, ep_) != 0) {
    delete poll;
    close(ep_);
    ep_ = -1;
    return false;
  }
  poll->data = this;
  uv_poll_start(poll, UV_READABLE, &Dials::OnPoll);
  // Only a dial in progress keeps the process alive, as its socket would.
  uv_unref(reinterpret_cast<uv_handle_t*>(poll));
  poll_ = poll;
  return true;
}

void Dials::Shutdown() {
  CloseAll();
  if (poll_ != nullptr) {
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    poll_ = nullptr;
  }
  if (ep_ >= 0) close(ep_);
  ep_ = -1;
}

// Returns the id, 0 when `ip` is not a numeric address (the caller dials in JS), or -errno.
int64_t Dials::Open(const std::string& ip, int port, const uint8_t* data, size_t len) {
  sockaddr_storage ss{};
  socklen_t slen;
  int family;
  auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, ip.c_str(), &s4->sin_addr) == 1) {
    family = s4->sin_family = AF_INET;
    s4->sin_port = htons(static_cast<uint16_t>(port));
    slen = sizeof *s4;
  } else if (inet_pton(AF_INET6, ip.c_str(), &s6->sin6_addr) == 1) {
    family = s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(static_cast<uint16_t>(port));
    slen = sizeof *s6;
  } else {
    return 0;
  }
  if (poll_ == nullptr) return 0;
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  Dial* d = new (std::nothrow) Dial();
  if (d == nullptr) {
    close(fd);
    return -ENOMEM;
  }
  d->fd = fd;
  d->id = ++nextId_;
  d->out.assign(data, data + len);
  // A refusal on loopback may come at once; it is reported from the loop, as a socket's would be
  // (a socket whose connect failed polls as writable and hung up).
  if (connect(fd, reinterpret_cast<sockaddr*>(&ss), slen) != 0 && errno != EINPROGRESS) d->err = errno;
  if (!Watch(d, EPOLLOUT)) {
    int err = errno;
    close(fd);
    delete d;
    return -err;
  }
  if (live_.empty()) uv_ref(reinterpret_cast<uv_handle_t*>(poll_));
  live_[d->id] = d;
  return static_cast<int64_t>(d->id);
}

// Puts `d` in the set for `events` (0: out of it); the id is the key, never the pointer, so an
// event taken in the same batch as `d`'s close finds nothing.
bool Dials::Watch(Dial* d, uint32_t events) {
  if (d->events == events) return true;
  epoll_event e{};
  e.events = events;
  e.data.u64 = d->id;
  int op = d->events == 0 ? EPOLL_CTL_ADD : events == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
  if (epoll_ctl(ep_, op, d->fd, &e) != 0) return false;
  d->events = events;
  return true;
}

uint32_t Dials::Wanted(const Dial* d) {
  if (!d->connected) return EPOLLOUT;
  return (d->out.empty() ? 0 : EPOLLOUT) | (d->paused || d->ended ? 0 : kReading);
}

bool Dials::Pause(uint32_t id, bool paused) {
  Dial* d = Find(id);
  if (d == nullptr) return false;
  if (d->paused == paused) return true;
  d->paused = paused;
  // No event from here (this runs inside JS): a resumed dial's waiting bytes come on the loop's next turn.
  if (Watch(d, Wanted(d))) return true;
  d->paused = !paused;
  return false;
}

Dial* Dials::Find(uint32_t id) {
  auto it = live_.find(id);
  return it == live_.end() ? nullptr : it->second;
}

// Stops watching and forgets `d` (freed here); its fd is the caller's to close or keep.
int Dials::Forget(Dial* d) {
  Watch(d, 0);
  live_.erase(d->id);
  int fd = d->fd;
  delete d;
  if (live_.empty() && poll_ != nullptr) uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
  return fd;
}

void Dials::Close(uint32_t id, bool reset) {
  Dial* d = Find(id);
  if (d == nullptr) return;
  int fd = Forget(d);
  if (reset) {
    linger l{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  }
  close(fd);
}

int Dials::Release(uint32_t id) {
  Dial* d = Find(id);
  return d == nullptr || !d->connected ? -1 : Forget(d);
}

// Writes what the kernel takes of `data` now on a released dial's fd; bytes written, or -errno.
long Dials::Write(int fd, const uint8_t* data, size_t len) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = send(fd, data + done, len - done, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) done += static_cast<size_t>(n);
    else if (n < 0 && errno == EINTR) continue;
    else if (n < 0 && errno != EAGAIN && done == 0) return -errno;
    else break;
  }
  return static_cast<long>(done);
}

void Dials::CloseAll() {
  while (!live_.empty()) Close(live_.begin()->first, false);
}

void Dials::Emit(uint32_t id, int kind, napi_value arg) {
  Napi::Env env = env_;
  napi_value args[3] = {Napi::Number::New(env, id), Napi::Number::New(env, kind), arg};
  napi_value global;
  napi_get_global(env, &global);
  napi_value result;
  napi_status st = napi_make_callback(env, *ctx_, global, onEvent_.Value(), 3, args, &result);
  if (st == napi_pending_exception) {
    napi_value e;
    napi_get_and_clear_last_exception(env, &e);
    napi_fatal_exception(env, e);
  }
}

void Dials::Fail(Dial* d, int err) {
  Napi::Env env = env_;
  uint32_t id = d->id;
  int fd = Forget(d);
  close(fd);
  Emit(id, kError, Napi::String::New(env, uv_err_name(-err)));
}

void Dials::OnPoll(uv_poll_t* h, int status, int) {
  auto* self = static_cast<Dials*>(h->data);
  if (status < 0) return;  // the set itself failed (it does not): its dials time out as a silent backend would
  epoll_event evs[kBatch];
  int n = epoll_wait(self->ep_, evs, kBatch, 0);
  for (int i = 0; i < n; i++) {
    Dial* d = self->Find(static_cast<uint32_t>(evs[i].data.u64));
    if (d == nullptr) continue;  // closed by JS during this batch
    Napi::HandleScope scope(self->env_);
    self->Handle(d, evs[i].events);
  }
}

// Connect done (or failed), then the head out, then the response in. JS may close or take the
// dial in any event it is given: `d` is found again by its id after each.
void Dials::Handle(Dial* d, uint32_t ev) {
  const uint32_t id = d->id;
  if (!d->connected) {
    int err = d->err;
    socklen_t len = sizeof err;
    if (err == 0 && getsockopt(d->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err == 0 && (ev & EPOLLOUT) == 0) err = ECONNRESET;  // hung up or failed with no error to say
    if (err != 0) return Fail(d, err);
    d->connected = true;
    Emit(id, kConnected, env_.Undefined());
    if ((d = Find(id)) == nullptr) return;  // JS closed it on the spot
  }
  if ((ev & EPOLLERR) != 0) {
    // A reset, mostly: hand JS what arrived before it, then fail the dial with the socket's error.
    ssize_t n = recv(d->fd, readAt_, readLen_, MSG_DONTWAIT);
    int rerr = n < 0 ? errno : 0;
    if (n > 0) {
      Emit(id, kData, Napi::Number::New(env_, static_cast<double>(n)));
      if ((d = Find(id)) == nullptr) return;
    }
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(d->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err == 0) err = rerr != 0 && rerr != EAGAIN ? rerr : ECONNRESET;
    return Fail(d, err);
  }
  if ((ev & EPOLLOUT) != 0 && !d->out.empty()) {
    ssize_t n = send(d->fd, d->out.data() + d->outAt, d->out.size() - d->outAt, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno != EAGAIN && errno != EINTR) return Fail(d, errno);
    if (n > 0) d->outAt += static_cast<size_t>(n);
    if (d->outAt == d->out.size()) {
      d->out.clear();
      d->out.shrink_to_fit();
      d->outAt = 0;
    }
  }
  if ((ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) != 0 && !d->paused && !d->ended) {
    ssize_t n = recv(d->fd, readAt_, readLen_, MSG_DONTWAIT);
    if (n < 0 && errno != EAGAIN && errno != EINTR) return Fail(d, errno);
    if (n == 0) {
      d->ended = true;  // the FIN: nothing more to read; JS closes it (or keeps it until the response is out)
      if (!Watch(d, Wanted(d))) return Fail(d, errno);
      Emit(id, kEnd, env_.Undefined());
      return;
    }
    if (n > 0) {
      Emit(id, kData, Napi::Number::New(env_, static_cast<double>(n)));
      if ((d = Find(id)) == nullptr) return;
    }
  }
  if (!Watch(d, Wanted(d))) Fail(d, errno);
}

}  // namespace wsplice
