#!/usr/bin/env bash
# Installs the benchmark peers (nginx, haproxy, wrk) from Debian's packages when missing.
# Idempotent: does nothing (no apt-get update either) when all three are already on PATH.
set -euo pipefail

missing=()
command -v nginx   >/dev/null 2>&1 || missing+=(nginx)
command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
command -v wrk     >/dev/null 2>&1 || missing+=(wrk)

if [ ${#missing[@]} -eq 0 ]; then
  echo "bench peers: nginx, haproxy and wrk already installed"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "bench peers: need root to apt-get install ${missing[*]}" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# --no-install-recommends keeps it small; policy-rc.d stops Debian from starting the
# system nginx/haproxy services (they would grab port 80 and a config we do not use).
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod +x "$policy"
  created_policy=1
fi
trap 'if [ "$created_policy" = 1 ]; then rm -f "$policy"; fi' EXIT
apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "bench peers: installed ${missing[*]}"
