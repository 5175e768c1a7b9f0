// Where the WebSocket frame boundaries are in one direction of a tunnel (the native twin of
// src/relay/frames.ts): header bytes are looked at, payloads are skipped by their length. The
// drain's Close 1001 may only be written at a boundary.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace wsplice {

struct Frames {
  enum State : uint8_t { kBoundary, kLen, kExtLen, kMaskKey, kPayload };
  uint8_t state = kBoundary;
  bool masked = false;
  uint8_t left = 0;      // bytes left of the extended length or of the masking key
  uint64_t len = 0;      // payload length being read
  uint64_t payload = 0;  // payload bytes still to pass

  bool atBoundary() const { return state == kBoundary; }
  bool inHeader() const { return state != kBoundary && state != kPayload; }

  // Pass buf[0..n). With `stop`, stop at the first boundary and return its offset; else n.
  size_t Advance(const uint8_t* buf, size_t n, bool stop) {
    size_t i = 0;
    while (i < n) {
      switch (state) {
        case kBoundary:
          if (stop) return i;
          i++;  // FIN, RSV, opcode: nothing the boundary depends on
          state = kLen;
          break;
        case kLen: {
          uint8_t b = buf[i++];
          masked = (b & 0x80) != 0;
          uint8_t len7 = b & 0x7f;
          len = 0;
          if (len7 >= 126) {
            left = len7 == 126 ? 2 : 8;
            state = kExtLen;
          } else {
            len = len7;
            AfterLength();
          }
          break;
        }
        case kExtLen:
          len = (len << 8) | buf[i++];
          if (--left == 0) AfterLength();
          break;
        case kMaskKey: {
          size_t take = left < n - i ? left : n - i;
          i += take;
          left -= static_cast<uint8_t>(take);
          if (left == 0) StartPayload();
          break;
        }
        default: {
          uint64_t take = payload < n - i ? payload : n - i;
          i += take;
          Skip(take);
        }
      }
    }
    return n;
  }

  // `n` payload bytes passed without being looked at.
  void Skip(uint64_t n) {
    payload -= n;
    if (payload == 0) state = kBoundary;
  }

  // How many of the peeked bytes `buf[0..n)` are header, and the bytes to the next boundary
  // (header + payload) as far as the peek tells: what a splice may move without passing it.
  uint64_t ToBoundary(const uint8_t* buf, size_t n) const {
    Frames probe = *this;
    size_t h = 0;
    while (h < n) {
      probe.Advance(buf + h, 1, false);
      h++;
      if (!probe.inHeader()) break;
    }
    return h + (probe.state == kPayload ? probe.payload : 0);
  }

 private:
  void AfterLength() {
    if (masked) {
      left = 4;
      state = kMaskKey;
    } else {
      StartPayload();
    }
  }
  void StartPayload() {
    payload = len;
    state = len == 0 ? kBoundary : kPayload;
  }
};

}  // namespace wsplice
