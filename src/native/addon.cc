// N-API glue for the relay engine (engine.h): argument checks, the completion
// callback through one threadsafe function, and the exported tables.
// No C++ exceptions (built -fno-exceptions).
#include <napi.h>

#include <string>

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
                             InstanceValue("reasons", Table(env, kReasonNames, kReasonCount), napi_enumerable),
                             InstanceValue("modes", Modes(env), napi_enumerable),
                         });
  }

  ~Addon() { delete glue_; }

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
      return Throw(env, "open(clientFd, upstreamFd, idleMs, mode, counters)", true);
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
                                     info.Length() > 5 && info[5].ToBoolean().Value(), counters, &err);
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

  Glue* glue_ = nullptr;
};

}  // namespace
}  // namespace wsplice

using WspliceRelayAddon = wsplice::Addon;
NODE_API_ADDON(WspliceRelayAddon)
