// Upstream connections dialled without a JS socket: a non-blocking connect,
// the request head written, the response bytes read back to JS, all from a
// uv_poll_t on the main loop (no thread hop: the events are the main thread's
// anyway, and a poll costs a fraction of a net.Socket). JS parses the response;
// on a valid 101 it takes the fd for the engine, otherwise it wraps the fd in
// a net.Socket and goes on as with any upstream socket.
#include "dial.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <new>

namespace wsplice {

namespace {

void FreeDial(uv_handle_t* h) { delete static_cast<Dial*>(h->data); }

}  // namespace

Dials::~Dials() { CloseAll(); }

void Dials::Init(Napi::Env env, Napi::Function onEvent, Napi::Buffer<uint8_t> readBuf) {
  onEvent_ = Napi::Persistent(onEvent);
  // Response bytes land in JS's own buffer (its memory never moves while referenced): JS copies
  // them out into an ordinary Buffer, so no Buffer is made here per read.
  readRef_ = Napi::Persistent(readBuf);
  readAt_ = readBuf.Data();
  readLen_ = readBuf.Length();
  ctx_ = new Napi::AsyncContext(env, "wsplice-dial");
  env_ = env;
  uv_loop_s* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  loop_ = loop;
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
  if (loop_ == nullptr) return 0;
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  Dial* d = new (std::nothrow) Dial();
  if (d == nullptr || uv_poll_init(loop_, &d->poll, fd) != 0) {
    delete d;
    close(fd);
    return -ENOMEM;
  }
  d->poll.data = d;
  d->owner = this;
  d->fd = fd;
  d->id = ++nextId_;
  d->out.assign(data, data + len);
  // A refusal on loopback may come at once; it is reported from the loop, as a socket's would be.
  if (connect(fd, reinterpret_cast<sockaddr*>(&ss), slen) != 0 && errno != EINPROGRESS) d->err = errno;
  live_[d->id] = d;
  uv_poll_start(&d->poll, UV_WRITABLE, &Dials::OnPoll);
  return static_cast<int64_t>(d->id);
}

Dial* Dials::Find(uint32_t id) {
  auto it = live_.find(id);
  return it == live_.end() ? nullptr : it->second;
}

// Stops watching and forgets `d`; its fd is the caller's to close or keep.
int Dials::Forget(Dial* d) {
  live_.erase(d->id);
  d->gone = true;
  int fd = d->fd;
  d->fd = -1;
  uv_poll_stop(&d->poll);
  uv_close(reinterpret_cast<uv_handle_t*>(&d->poll), FreeDial);
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
  Napi::HandleScope scope(env);
  uint32_t id = d->id;
  int fd = Forget(d);
  close(fd);
  Emit(id, kError, Napi::String::New(env, uv_err_name(-err)));
}

// Connect done (or failed), then the head out, then the response in: one poll per dial.
void Dials::OnPoll(uv_poll_t* h, int status, int events) {
  Dial* d = static_cast<Dial*>(h->data);
  Dials* self = d->owner;
  if (d->gone) return;
  if (!d->connected) {
    int err = d->err;
    socklen_t len = sizeof err;
    if (err == 0 && getsockopt(d->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err == 0 && status < 0) err = -status;
    if (err != 0) return self->Fail(d, err);
    d->connected = true;
    {
      Napi::HandleScope scope(self->env_);
      self->Emit(d->id, kConnected, self->env_.Undefined());
    }
    if (d->gone) return;  // JS closed it on the spot
  }
  if (status < 0) {
    // libuv reports POLLERR (a reset, mostly) as an error status with no events, and stops the
    // handle: hand JS what arrived before it, then fail the dial with the socket's own error.
    ssize_t n = recv(d->fd, self->readAt_, self->readLen_, MSG_DONTWAIT);
    int rerr = n < 0 ? errno : 0;
    if (n > 0) {
      Napi::HandleScope scope(self->env_);
      self->Emit(d->id, kData, Napi::Number::New(self->env_, static_cast<double>(n)));
      if (d->gone) return;
    }
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(d->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err == 0) err = rerr != 0 && rerr != EAGAIN ? rerr : ECONNRESET;
    return self->Fail(d, err);
  }
  if ((events & UV_WRITABLE) != 0 && !d->out.empty()) {
    ssize_t n = send(d->fd, d->out.data() + d->outAt, d->out.size() - d->outAt, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno != EAGAIN && errno != EINTR) return self->Fail(d, errno);
    if (n > 0) d->outAt += static_cast<size_t>(n);
    if (d->outAt == d->out.size()) {
      d->out.clear();
      d->out.shrink_to_fit();
      d->outAt = 0;
    }
  }
  if ((events & UV_READABLE) != 0) {
    ssize_t n = recv(d->fd, self->readAt_, self->readLen_, MSG_DONTWAIT);
    if (n < 0 && errno != EAGAIN && errno != EINTR) return self->Fail(d, errno);
    Napi::HandleScope scope(self->env_);
    if (n == 0) {
      uv_poll_stop(&d->poll);  // the FIN: nothing more to read; JS closes it
      self->Emit(d->id, kEnd, self->env_.Undefined());
      return;
    }
    if (n > 0) self->Emit(d->id, kData, Napi::Number::New(self->env_, static_cast<double>(n)));
    if (d->gone) return;
  }
  uv_poll_start(&d->poll, d->out.empty() ? UV_READABLE : UV_READABLE | UV_WRITABLE, &Dials::OnPoll);
}

}  // namespace wsplice
