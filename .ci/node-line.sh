#!/usr/bin/env bash
# Prints the bin directory of a Node.js of the given major line (22, 24, ...): the node on PATH when
# it is of that line, else one taken from the npm registry's Node binary package (node-linux-<arch>,
# the package the `node` package installs from), unpacked once into a cache and reused.
#   .ci/node-line.sh 22   ->   /root/.cache/wsplice/node/v22.x.y/bin
set -euo pipefail
major="${1:?usage: node-line.sh MAJOR}"
if command -v node >/dev/null && [ "$(node -p 'process.versions.node.split(".")[0]')" = "$major" ]; then
  dirname "$(command -v node)"
  exit 0
fi
case "$(uname -m)" in
  x86_64) arch=x64 ;;
  aarch64) arch=arm64 ;;
  *) echo "node-line.sh: no Node binary package for $(uname -m)" >&2; exit 1 ;;
esac
cache="${WSPLICE_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wsplice/node}"
for have in "$cache"/v"$major".*/bin/node; do
  if [ -x "$have" ] && "$have" --version >/dev/null 2>&1; then
    dirname "$have"
    exit 0
  fi
done
# The newest release of the line (npm lists matching versions oldest first).
version="$(npm view "node-linux-$arch@$major" version --json | node -e 'const v = JSON.parse(require("fs").readFileSync(0, "utf8")); console.log([].concat(v).pop())')"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# npm checks the tarball against the registry's integrity hash.
npm pack "node-linux-$arch@$version" --pack-destination "$tmp" --silent >/dev/null
mkdir -p "$cache/v$version"
tar -xzf "$tmp/node-linux-$arch-$version.tgz" -C "$cache/v$version" --strip-components=1
"$cache/v$version/bin/node" --version >/dev/null
echo "$cache/v$version/bin"
