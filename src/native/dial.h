// Upstream connections dialled on the main loop (dial.cc): the leg of an
// upgrade before its 101, with no JS socket.
#pragma once

#include <napi.h>
#include <uv.h>

#include <stdint.h>

#include <string>
#include <unordered_map>
#include <vector>

namespace wsplice {

struct Dial {
  int fd = -1;
  uint32_t id = 0;
  uint32_t events = 0;     // what the dial set watches for it now (0: not in the set)
  int err = 0;             // a connect() that failed at once, reported from the loop
  bool connected = false;
  bool paused = false;     // JS is not reading: nothing is read until it resumes (backpressure)
  bool ended = false;      // the backend's FIN came: nothing more to read
  std::vector<uint8_t> out;  // what is still to be written (the head)
  size_t outAt = 0;
};

class Dials {
 public:
  enum Event { kConnected = 1, kData = 2, kEnd = 3, kError = 4 };

  ~Dials();
  // False when the dial set cannot be made: every dial is then made in JS.
  bool Init(Napi::Env env, Napi::Function onEvent, Napi::Buffer<uint8_t> readBuf);
  bool ready() const { return poll_ != nullptr; }
  int64_t Open(const std::string& ip, int port, const uint8_t* data, size_t len);
  void Close(uint32_t id, bool reset);
  int Release(uint32_t id);
  // Stops (or restarts) reading a dial: JS's backpressure. False when it is unknown or the set refused.
  bool Pause(uint32_t id, bool paused);
  static long Write(int fd, const uint8_t* data, size_t len);
  void CloseAll();
  // At the environment's teardown: every dial closed, the set and its poll too.
  void Shutdown();

 private:
  static void OnPoll(uv_poll_t* h, int status, int events);
  void Handle(Dial* d, uint32_t ev);
  bool Watch(Dial* d, uint32_t events);
  // What `d` waits for now: writable while connecting or the head is unsent; readable unless paused or ended.
  static uint32_t Wanted(const Dial* d);
  Dial* Find(uint32_t id);
  int Forget(Dial* d);
  void Fail(Dial* d, int err);
  void Emit(uint32_t id, int kind, napi_value arg);

  Napi::Env env_ = Napi::Env(nullptr);
  // One epoll set for every dial, watched by one poll on the main loop: a dial costs an
  // epoll_ctl to join it, one to change from writing to reading and one to leave, where a
  // uv_poll_t per dial cost nine calls (libuv's probe at init, a stop before each start).
  int ep_ = -1;
  uv_poll_t* poll_ = nullptr;
  Napi::FunctionReference onEvent_;
  Napi::AsyncContext* ctx_ = nullptr;
  std::unordered_map<uint32_t, Dial*> live_;
  uint32_t nextId_ = 0;
  Napi::Reference<Napi::Buffer<uint8_t>> readRef_;
  uint8_t* readAt_ = nullptr;
  size_t readLen_ = 0;
};

}  // namespace wsplice
