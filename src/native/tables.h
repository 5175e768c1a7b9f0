// Close reasons and modes: their one definition. The addon exports both tables
// (`reasons`, `modes`), so JS reads the numbers instead of repeating them.
#pragma once

#define WSPLICE_REASONS(X)              \
  X(kClientClosed, "client-closed")     \
  X(kUpstreamClosed, "upstream-closed") \
  X(kClientError, "client-error")       \
  X(kUpstreamError, "upstream-error")   \
  X(kIdleTimeout, "idle-timeout")       \
  X(kShutdown, "shutdown")

#define WSPLICE_MODES(X)   \
  X(kModeSplice, "splice") \
  X(kModeCopy, "copy")     \
  X(kModeAdaptive, "adaptive")

namespace wsplice {

#define WSPLICE_ENUM(id, name) id,
enum Reason : int { WSPLICE_REASONS(WSPLICE_ENUM) kReasonCount };
enum Mode : int { WSPLICE_MODES(WSPLICE_ENUM) kModeCount };
#undef WSPLICE_ENUM

#define WSPLICE_NAME(id, name) name,
inline const char* const kReasonNames[] = {WSPLICE_REASONS(WSPLICE_NAME)};
inline const char* const kModeNames[] = {WSPLICE_MODES(WSPLICE_NAME)};
#undef WSPLICE_NAME

}  // namespace wsplice
