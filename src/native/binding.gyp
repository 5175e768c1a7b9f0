# Built by src/native/build.cjs (npm install), never by npm's implicit
# node-gyp step: this file is deliberately not at the package root.
{
  "targets": [
    {
      "target_name": "wsplice_relay",
      "sources": ["addon.cc", "engine.cc", "pump_splice.cc", "pump_copy.cc", "go_away.cc", "handover.cc", "channel.cc", "dial.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fexceptions"],
      "cflags_cc!": ["-fexceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fno-exceptions", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
