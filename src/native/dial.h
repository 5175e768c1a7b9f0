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

class Dials;

struct Dial {
  uv_poll_t poll;
  Dials* owner = nullptr;
  int fd = -1;
  uint32_t id = 0;
  int err = 0;             // a connect() that failed at once, reported from the loop
  bool connected = false;
  bool gone = false;       // forgotten: the poll is closing, the fd is not ours
  std::vector<uint8_t> out;  // what is still to be written (the head)
  size_t outAt = 0;
};

class Dials {
 public:
  enum Event { kConnected = 1, kData = 2, kEnd = 3, kError = 4 };

  ~Dials();
  void Init(Napi::Env env, Napi::Function onEvent, Napi::Buffer<uint8_t> readBuf);
  bool ready() const { return loop_ != nullptr; }
  int64_t Open(const std::string& ip, int port, const uint8_t* data, size_t len);
  void Close(uint32_t id, bool reset);
  int Release(uint32_t id);
  static long Write(int fd, const uint8_t* data, size_t len);
  void CloseAll();

 private:
  static void OnPoll(uv_poll_t* h, int status, int events);
  Dial* Find(uint32_t id);
  int Forget(Dial* d);
  void Fail(Dial* d, int err);
  void Emit(uint32_t id, int kind, napi_value arg);

  Napi::Env env_ = Napi::Env(nullptr);
  uv_loop_s* loop_ = nullptr;
  Napi::FunctionReference onEvent_;
  Napi::AsyncContext* ctx_ = nullptr;
  std::unordered_map<uint32_t, Dial*> live_;
  uint32_t nextId_ = 0;
  Napi::Reference<Napi::Buffer<uint8_t>> readRef_;
  uint8_t* readAt_ = nullptr;
  size_t readLen_ = 0;
};

}  // namespace wsplice
