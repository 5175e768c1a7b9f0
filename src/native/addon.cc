// N-API glue for the relay engine (engine.h): argument checks, the completion
// callback through one threadsafe function, and the exported tables.
// No C++ exceptions (built -fno-exceptions).
#include <napi.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "channel.h"
#include "dial.h"
#include "engine.h"

namespace wsplice {
namespace {

class Glue;
void CallJs(Napi::Env env, Napi::Function fn, Glue* glue, Done* done);
using Tsfn = Napi::TypedThreadSafeFunction<Glue, Done, CallJs>;

// Owns the engine and the way back to JS for one Node environment.
class Glue : public Reporter {
 public:
  Glue(Napi::Env env, Napi::Function onDone) : engine(this) {
    tsfn_ = Tsfn::New(env, onDone, "wsplice-relay", 0, 1, this);
    tsfn_.Unref(env);  // only live tunnels keep the process alive
  }

  // Relay thread.
  void Report(Done* done) override {
    if (tsfn_.NonBlockingCall(done) != napi_ok) delete done;
  }

  // JS thread: a tunnel is open until its end is delivered.
  void Opened(Napi::Env env) {
    if (active++ == 0) tsfn_.Ref(env);
  }

  void Delivered(Napi::Env env) {
    if (--active == 0) tsfn_.Unref(env);
  }

  void Stop() {
    engine.Stop();
    if (!released_) {
      released_ = true;
      tsfn_.Release();
    }
  }

  Engine engine;
  int active = 0;  // JS thread only: opened, not yet reported

 private:
  Tsfn tsfn_;
  bool released_ = false;
};

void CallJs(Napi::Env env, Napi::Function fn, Glue* glue, Done* done) {
  if (env != nullptr && fn != nullptr) {
    glue->Delivered(env);
    fn.Call({Napi::Number::New(env, done->id), Napi::Number::New(env, done->up), Napi::Number::New(env, done->down),
             Napi::Number::New(env, done->durMs), Napi::Number::New(env, done->reason)});
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
                             InstanceMethod("goAway", &Addon::GoAway),
                             InstanceMethod("configure", &Addon::Configure),
                             InstanceMethod("stats", &Addon::Stats),
                             InstanceMethod("detach", &Addon::Detach),
                             InstanceMethod("adopt", &Addon::Adopt),
                             InstanceMethod("startAdopted", &Addon::StartAdopted),
                             InstanceMethod("discardAdopted", &Addon::DiscardAdopted),
                             InstanceMethod("channelPair", &Addon::ChannelPair),
                             InstanceMethod("channelListen", &Addon::ChannelListen),
                             InstanceMethod("channelAccept", &Addon::ChannelAccept),
                             InstanceMethod("channelConnect", &Addon::ChannelConnect),
                             InstanceMethod("channelSend", &Addon::ChannelSend),
                             InstanceMethod("channelRecv", &Addon::ChannelRecv),
                             InstanceMethod("channelWait", &Addon::ChannelWait),
                             InstanceMethod("closeFd", &Addon::CloseFd),
                             InstanceMethod("dupFd", &Addon::DupFd),
                             InstanceMethod("dialInit", &Addon::DialInit),
                             InstanceMethod("dial", &Addon::DialOpen),
                             InstanceMethod("dialClose", &Addon::DialClose),
                             InstanceMethod("dialRelease", &Addon::DialRelease),
                             InstanceMethod("dialWrite", &Addon::DialWrite),
                             InstanceMethod("dialPause", &Addon::DialPause),
                             InstanceValue("moved", Moved(env), napi_enumerable),
                             InstanceValue("reasons", Table(env, kReasonNames, kReasonCount), napi_enumerable),
                             InstanceValue("modes", Modes(env), napi_enumerable),
                             // open()'s upstreamOwned: a dial's fd is taken as it is, not dup'd.
                             InstanceValue("takesDialledFd", Napi::Boolean::New(env, true), napi_enumerable),
                         });
  }

  ~Addon() {
    delete dials_;
    delete glue_;
  }

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

  static Napi::Value Throw(Napi::Env env, const std::string& msg, bool type = false) {
    if (type) Napi::TypeError::New(env, msg).ThrowAsJavaScriptException();
    else Napi::Error::New(env, msg).ThrowAsJavaScriptException();
    return env.Undefined();
  }

  // init(onDone): once per environment.
  Napi::Value Setup(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (glue_ != nullptr) return env.Undefined();
    if (info.Length() < 1 || !info[0].IsFunction()) return Throw(env, "init(onDone: Function)", true);
    glue_ = new Glue(env, info[0].As<Napi::Function>());
    // Registered after the TSFN's own hook, so it runs first (LIFO): join the
    // thread and release the TSFN while both still exist.
    env.AddCleanupHook([](Glue* g) { g->Stop(); }, glue_);
    return env.Undefined();
  }

  // open(clientFd, upstreamFd, idleMs, mode, counters: Float64Array(2), websocket?) -> id
  Napi::Value Open(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (glue_ == nullptr) return Throw(env, "init() first");
    if (info.Length() < 5 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsNumber() ||
        !info[3].IsNumber() || !info[4].IsTypedArray()) {
      return Throw(env, "open(clientFd, upstreamFd, idleMs, mode, counters, websocket?, upstreamOwned?)", true);
    }
    Napi::TypedArray ta = info[4].As<Napi::TypedArray>();
    if (ta.TypedArrayType() != napi_float64_array || ta.ElementLength() < 2) {
      return Throw(env, "counters must be a Float64Array(2)", true);
    }
    int mode = info[3].As<Napi::Number>().Int32Value();
    if (mode < 0 || mode >= kModeCount) {
      Napi::RangeError::New(env, "bad mode").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    double idle = info[2].As<Napi::Number>().DoubleValue();
    double* counters = reinterpret_cast<double*>(static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset());
    std::string err;
    uint64_t id = glue_->engine.Open(info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Number>().Int32Value(),
                                     idle > 0 ? static_cast<int64_t>(idle) : 0, mode,
                                     info.Length() > 5 && info[5].ToBoolean().Value(),
                                     info.Length() > 6 && info[6].ToBoolean().Value(), counters, &err);
    if (id == 0) return Throw(env, err);
    glue_->Opened(env);
    return Napi::Number::New(env, static_cast<double>(id));
  }

  // close(id, reason): ends a native tunnel; onDone follows with that reason.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (glue_ == nullptr || !glue_->engine.running() || info.Length() < 2) return env.Undefined();
    double id = info[0].As<Napi::Number>().DoubleValue();
    int reason = info[1].As<Napi::Number>().Int32Value();
    if (reason < 0 || reason >= kReasonCount) reason = kShutdown;
    glue_->engine.Close(static_cast<uint64_t>(id), reason);
    return env.Undefined();
  }

  // goAway(id): a WebSocket tunnel ends with Close 1001 both ways at frame boundaries; onDone follows.
  Napi::Value GoAway(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (glue_ == nullptr || !glue_->engine.running() || info.Length() < 1 || !info[0].IsNumber()) return env.Undefined();
    glue_->engine.GoAway(static_cast<uint64_t>(info[0].As<Napi::Number>().DoubleValue()));
    return env.Undefined();
  }

  // configure(pipeSizeBytes)
  Napi::Value Configure(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (glue_ != nullptr && info.Length() >= 1 && info[0].IsNumber()) {
      int v = info[0].As<Napi::Number>().Int32Value();
      if (v > 0) glue_->engine.pipeSize = v < kMinPipe ? kMinPipe : v;
    }
    return env.Undefined();
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("active", glue_ ? glue_->active : 0);
    o.Set("pipeFds", glue_ ? glue_->engine.pipes.load() : 0);
    o.Set("closeErrors", glue_ ? static_cast<double>(glue_->engine.closeErrors.load()) : 0.0);
    o.Set("threadRunning", glue_ ? glue_->engine.running() : false);
    return o;
  }

  static Napi::Object Moved(Napi::Env env) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("version", static_cast<double>(kMovedVersion));
    o.Set("recordSize", static_cast<double>(sizeof(MovedTunnel)));
    o.Set("fds", static_cast<double>(kMovedFds));
    return o;
  }

  // detach(ids: number[]) -> { ids, records: Buffer, fds: Int32Array }: the tunnels that were
  // still relayed, paused and taken out; their ends are never reported.
  Napi::Value Detach(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsArray()) return Throw(env, "detach(ids: number[])", true);
    Napi::Array a = info[0].As<Napi::Array>();
    DetachJob job;
    for (uint32_t i = 0; i < a.Length(); i++) job.ids.push_back(static_cast<uint64_t>(a.Get(i).ToNumber().DoubleValue()));
    if (glue_ != nullptr) glue_->engine.Detach(&job);
    Napi::Array ids = Napi::Array::New(env, job.movedIds.size());
    for (size_t i = 0; i < job.movedIds.size(); i++) {
      ids.Set(static_cast<uint32_t>(i), static_cast<double>(job.movedIds[i]));
      glue_->Delivered(env);
    }
    Napi::Buffer<uint8_t> recs = Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<const uint8_t*>(job.out.data()),
                                                            job.out.size() * sizeof(MovedTunnel));
    Napi::Int32Array fds = Napi::Int32Array::New(env, job.fds.size());
    for (size_t i = 0; i < job.fds.size(); i++) fds[i] = job.fds[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("ids", ids);
    o.Set("records", recs);
    o.Set("fds", fds);
    return o;
  }

  // adopt(records: Buffer, index, fds: Int32Array(6), counters: Float64Array(2), websocket) -> id
  // (staged: startAdopted(id) lets it run). The fds are the engine's once this returns.
  Napi::Value Adopt(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (glue_ == nullptr) return Throw(env, "init() first");
    if (info.Length() < 4 || !info[0].IsBuffer() || !info[1].IsNumber() || !info[2].IsTypedArray() || !info[3].IsTypedArray()) {
      return Throw(env, "adopt(records, index, fds, counters)", true);
    }
    Napi::Buffer<uint8_t> b = info[0].As<Napi::Buffer<uint8_t>>();
    uint32_t i = info[1].As<Napi::Number>().Uint32Value();
    Napi::TypedArray fa = info[2].As<Napi::TypedArray>();
    Napi::TypedArray ca = info[3].As<Napi::TypedArray>();
    if ((static_cast<size_t>(i) + 1) * sizeof(MovedTunnel) > b.Length()) return Throw(env, "adopt: no such record");
    if (fa.TypedArrayType() != napi_int32_array || fa.ElementLength() < kMovedFds) return Throw(env, "fds must be an Int32Array(6)", true);
    if (ca.TypedArrayType() != napi_float64_array || ca.ElementLength() < 2) return Throw(env, "counters must be a Float64Array(2)", true);
    MovedTunnel m;
    memcpy(&m, b.Data() + static_cast<size_t>(i) * sizeof(MovedTunnel), sizeof m);
    const int* fds = reinterpret_cast<const int*>(static_cast<uint8_t*>(fa.ArrayBuffer().Data()) + fa.ByteOffset());
    double* counters = reinterpret_cast<double*>(static_cast<uint8_t*>(ca.ArrayBuffer().Data()) + ca.ByteOffset());
    std::string err;
    uint64_t id = glue_->engine.Adopt(m, fds, counters, &err);
    if (id == 0) return Throw(env, err);
    return Napi::Number::New(env, static_cast<double>(id));
  }

  Napi::Value StartAdopted(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (glue_ == nullptr || info.Length() < 1 || !info[0].IsNumber()) return Napi::Boolean::New(env, false);
    bool ok = glue_->engine.StartAdopted(static_cast<uint64_t>(info[0].As<Napi::Number>().DoubleValue()));
    if (ok) glue_->Opened(env);
    return Napi::Boolean::New(env, ok);
  }

  Napi::Value DiscardAdopted(const Napi::CallbackInfo& info) {
    if (glue_ != nullptr && info.Length() >= 1 && info[0].IsNumber()) {
      glue_->engine.DiscardAdopted(static_cast<uint64_t>(info[0].As<Napi::Number>().DoubleValue()));
    }
    return info.Env().Undefined();
  }

  static int FdArg(const Napi::CallbackInfo& info, size_t i) {
    return info.Length() > i && info[i].IsNumber() ? info[i].As<Napi::Number>().Int32Value() : -1;
  }

  Napi::Value ChannelPair(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fds[2];
    std::string err;
    if (!channel::Pair(fds, &err)) return Throw(env, err);
    Napi::Array a = Napi::Array::New(env, 2);
    a.Set(0u, fds[0]);
    a.Set(1u, fds[1]);
    return a;
  }

  Napi::Value ChannelListen(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) return Throw(env, "channelListen(path)", true);
    std::string err;
    int fd = channel::Listen(info[0].As<Napi::String>().Utf8Value(), &err);
    return fd < 0 ? Throw(env, err) : Napi::Number::New(env, fd);
  }

  Napi::Value ChannelAccept(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string err;
    int fd = channel::Accept(FdArg(info, 0), &err);
    if (fd < 0 && !err.empty()) return Throw(env, err);
    return Napi::Number::New(env, fd);
  }

  Napi::Value ChannelConnect(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) return Throw(env, "channelConnect(path)", true);
    std::string err;
    int fd = channel::Connect(info[0].As<Napi::String>().Utf8Value(), &err);
    return fd < 0 ? Throw(env, err) : Napi::Number::New(env, fd);
  }

  // channelSend(fd, data: Buffer, fds: number[]) -> true sent, false would block.
  Napi::Value ChannelSend(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[1].IsBuffer() || !info[2].IsArray()) return Throw(env, "channelSend(fd, data, fds)", true);
    Napi::Buffer<uint8_t> b = info[1].As<Napi::Buffer<uint8_t>>();
    Napi::Array a = info[2].As<Napi::Array>();
    std::vector<int> fds;
    for (uint32_t i = 0; i < a.Length(); i++) fds.push_back(a.Get(i).ToNumber().Int32Value());
    std::string err;
    int r = channel::Send(FdArg(info, 0), b.Data(), b.Length(), fds.data(), static_cast<int>(fds.size()), &err);
    if (r < 0) return Throw(env, err);
    return Napi::Boolean::New(env, r == 1);
  }

  // channelRecv(fd) -> null (nothing yet) | { data: Buffer (empty: the peer closed), fds: number[] }
  Napi::Value ChannelRecv(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (recvBuf_.empty()) recvBuf_.resize(channel::kMaxMessage);
    std::vector<int> fds;
    std::string err;
    long n = channel::Recv(FdArg(info, 0), recvBuf_.data(), recvBuf_.size(), &fds, &err);
    if (n == -2) return env.Null();
    if (n < 0) return Throw(env, err);
    Napi::Object o = Napi::Object::New(env);
    o.Set("data", Napi::Buffer<uint8_t>::Copy(env, recvBuf_.data(), static_cast<size_t>(n)));
    Napi::Array a = Napi::Array::New(env, fds.size());
    for (size_t i = 0; i < fds.size(); i++) a.Set(static_cast<uint32_t>(i), fds[i]);
    o.Set("fds", a);
    return o;
  }

  // channelWait(fd, write: boolean, ms) -> ready
  Napi::Value ChannelWait(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    bool write = info.Length() > 1 && info[1].ToBoolean().Value();
    int ms = info.Length() > 2 && info[2].IsNumber() ? info[2].As<Napi::Number>().Int32Value() : 0;
    return Napi::Boolean::New(env, channel::Wait(FdArg(info, 0), write, ms < 0 ? 0 : ms));
  }

  Napi::Value CloseFd(const Napi::CallbackInfo& info) {
    int fd = FdArg(info, 0);
    return Napi::Boolean::New(info.Env(), fd >= 0 && close(fd) == 0);
  }

  Napi::Value DupFd(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = fcntl(FdArg(info, 0), F_DUPFD_CLOEXEC, 3);
    return fd < 0 ? Throw(env, std::string("dup: ") + strerror(errno)) : Napi::Number::New(env, fd);
  }

  // dialInit(onEvent(id, kind, arg), readBuf: Buffer): once per environment; the dials close with it.
  // A read's bytes are in readBuf[0, arg) when onEvent runs.
  Napi::Value DialInit(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (dials_ != nullptr) return env.Undefined();
    if (info.Length() < 2 || !info[0].IsFunction() || !info[1].IsBuffer() || info[1].As<Napi::Buffer<uint8_t>>().Length() == 0) {
      return Throw(env, "dialInit(onEvent: Function, readBuf: Buffer)", true);
    }
    dials_ = new Dials();
    // When the dial set cannot be made, ready() is false and every upstream is dialled in JS.
    dials_->Init(env, info[0].As<Napi::Function>(), info[1].As<Napi::Buffer<uint8_t>>());
    env.AddCleanupHook([](Dials* d) { d->Shutdown(); }, dials_);
    return env.Undefined();
  }

  // dial(ip, port, head: Buffer) -> id (> 0), 0 (not a numeric address: dial in JS), or -errno.
  Napi::Value DialOpen(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (dials_ == nullptr || !dials_->ready()) return Napi::Number::New(env, 0);
    if (info.Length() < 3 || !info[0].IsString() || !info[1].IsNumber() || !info[2].IsBuffer()) {
      return Throw(env, "dial(ip, port, head)", true);
    }
    Napi::Buffer<uint8_t> b = info[2].As<Napi::Buffer<uint8_t>>();
    int64_t r = dials_->Open(info[0].As<Napi::String>().Utf8Value(), info[1].As<Napi::Number>().Int32Value(), b.Data(), b.Length());
    return Napi::Number::New(env, static_cast<double>(r));
  }

  // dialClose(id, reset): closes it (with an RST when `reset`); no event follows.
  Napi::Value DialClose(const Napi::CallbackInfo& info) {
    if (dials_ != nullptr && info.Length() >= 1 && info[0].IsNumber()) {
      dials_->Close(info[0].As<Napi::Number>().Uint32Value(), info.Length() > 1 && info[1].ToBoolean().Value());
    }
    return info.Env().Undefined();
  }

  // dialRelease(id) -> fd: no longer watched; the fd is the caller's (-1: not connected, or unknown).
  Napi::Value DialRelease(const Napi::CallbackInfo& info) {
    int fd = dials_ != nullptr && info.Length() >= 1 && info[0].IsNumber() ? dials_->Release(info[0].As<Napi::Number>().Uint32Value()) : -1;
    return Napi::Number::New(info.Env(), fd);
  }

  // dialPause(id, paused) -> false when it is unknown: reading stops (or goes on); no event from inside the call.
  Napi::Value DialPause(const Napi::CallbackInfo& info) {
    bool ok = dials_ != nullptr && info.Length() >= 2 && info[0].IsNumber() &&
              dials_->Pause(info[0].As<Napi::Number>().Uint32Value(), info[1].ToBoolean().Value());
    return Napi::Boolean::New(info.Env(), ok);
  }

  // dialWrite(fd, data) -> bytes written now (non-blocking), or -errno: a released dial's first bytes.
  Napi::Value DialWrite(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[1].IsBuffer()) return Napi::Number::New(env, -EBADF);
    Napi::Buffer<uint8_t> b = info[1].As<Napi::Buffer<uint8_t>>();
    return Napi::Number::New(env, static_cast<double>(Dials::Write(FdArg(info, 0), b.Data(), b.Length())));
  }

  Glue* glue_ = nullptr;
  Dials* dials_ = nullptr;
  std::vector<uint8_t> recvBuf_;
};

}  // namespace
}  // namespace wsplice

using WspliceRelayAddon = wsplice::Addon;
NODE_API_ADDON(WspliceRelayAddon)
