#!/usr/bin/env bash
# bench/run.sh - the vecdump benchmark (SPEC §8). See bench/README.md.
#
#   bench/run.sh [--sizes 20000,200000] [--big] [--repeat N] [--no-build]
#                [--head | --vecdump PATH]
#
# --head measures the last commit (a `git archive HEAD` copy built in
# .cache/bench-head) instead of the working tree; --vecdump measures a
# vecdump binary built elsewhere. The baseline programs always come from
# this bench/ folder.
#
# Builds vecdump and the baseline programs (Release, build-bench/), starts its
# own redis-server on a free loopback port (or uses $VECDUMP_TEST_REDIS_PORT,
# touching only dbs 8 and 9, which must be empty), installs redis-dump-go
# into .cache/bin if it can, runs bench/bench.py, prints the tables and writes
# bench/results/latest.json. It stops what it started and removes its files.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="$root/build-bench"
sizes=20000,200000
repeat=0
do_build=1
vecdump=""
head=0
while [ $# -gt 0 ]; do
  case "$1" in
    --sizes) sizes=${2:?--sizes needs a value}; shift 2 ;;
    --big) big=1; shift ;;
    --repeat) repeat=${2:?--repeat needs a value}; shift 2 ;;
    --no-build) do_build=0; shift ;;
    --head) head=1; shift ;;
    --vecdump) vecdump=${2:?--vecdump needs a path}; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
if [ "${big:-0}" = 1 ]; then sizes="$sizes,1000000"; fi

log() { echo "bench: $*" >&2; }

# Warnings are errors in the project's own builds (scripts/test.sh); a
# warning elsewhere in the tree must not stop a measurement.
cmake_build() { # SRC BUILD TARGET...
  local src=$1 bld=$2; shift 2
  cmake -S "$src" -B "$bld" -DCMAKE_BUILD_TYPE=Release -DVD_WERROR=OFF >/dev/null &&
    cmake --build "$bld" -j2 --target "$@" >"$bld.log" 2>&1 ||
    { tail -20 "$bld.log" >&2; echo "run.sh: building $* in $bld failed (see $bld.log)" >&2; exit 1; }
}
measured="working tree"
if [ "$head" = 1 ]; then
  snap="$root/.cache/bench-head"
  rev=$(git -C "$root" rev-parse --short HEAD)
  measured="commit $rev"
  if [ "$do_build" = 1 ] || [ ! -x "$snap/build/cli/vecdump" ]; then
    log "building commit $rev (Release) in $snap"
    rm -rf "$snap/src" && mkdir -p "$snap/src"
    git -C "$root" archive HEAD | tar -x -C "$snap/src"
    cmake_build "$snap/src" "$snap/build" vecdump
  fi
  vecdump="$snap/build/cli/vecdump"
elif [ -n "$vecdump" ]; then
  measured="$vecdump"
fi
if [ "$do_build" = 1 ]; then
  log "building (Release) in $build"
  if [ -z "$vecdump" ]; then
    cmake_build "$root" "$build" vecdump vd-read-floor vd-resp-gen
  else
    cmake_build "$root" "$build" vd-read-floor vd-resp-gen
  fi
fi
vecdump=${vecdump:-$build/cli/vecdump}
for b in "$vecdump" "$build/bench/vd-read-floor" "$build/bench/vd-resp-gen"; do
  [ -x "$b" ] || { echo "run.sh: $b missing (build first)" >&2; exit 1; }
done

# redis-dump-go (github.com/yannh/redis-dump-go) into .cache/bin. `go install
# …@latest` needs the proxy's version list; when that is refused, a pinned
# version is downloaded with `go mod download` and built from the module cache.
rdg="$root/.cache/bin/redis-dump-go"
rdg_note=""
rdg_version=v0.8.1
if [ ! -x "$rdg" ] && command -v go >/dev/null; then
  log "installing redis-dump-go"
  mkdir -p "$root/.cache/bin"
  if ! GOBIN="$root/.cache/bin" go install github.com/yannh/redis-dump-go@latest >/dev/null 2>&1; then
    dir=$(go mod download -json "github.com/yannh/redis-dump-go@$rdg_version" 2>/dev/null |
          python3 -c 'import json,sys; print(json.load(sys.stdin).get("Dir",""))' 2>/dev/null || true)
    if [ -n "$dir" ] && [ -d "$dir" ]; then
      (cd "$dir" && GOFLAGS=-mod=mod go build -o "$rdg" .) >/dev/null 2>&1 || true
    fi
  fi
fi
if [ ! -x "$rdg" ]; then
  rdg_note="not installed (go install github.com/yannh/redis-dump-go failed); skipped"
  log "redis-dump-go: $rdg_note"
  rdg=""
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/vecdump-bench.XXXXXX")
redis_pid=""
cleanup() {
  if [ -n "$redis_pid" ]; then
    redis-cli -h 127.0.0.1 -p "$port" FLUSHALL >/dev/null 2>&1 || true
    redis-cli -h 127.0.0.1 -p "$port" SHUTDOWN NOSAVE >/dev/null 2>&1 || true
    for _ in $(seq 50); do kill -0 "$redis_pid" 2>/dev/null || break; sleep 0.1; done
    kill "$redis_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -n "${VECDUMP_TEST_REDIS_PORT:-}" ]; then
  port=$VECDUMP_TEST_REDIS_PORT
  log "using the Redis on port $port (dbs 8 and 9 only)"
else
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
    --dir "$work" --logfile "$work/redis.log" &
  redis_pid=$!
  for _ in $(seq 100); do
    [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ] && break
    sleep 0.1
  done
  [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ] ||
    { echo "run.sh: redis-server did not start" >&2; exit 1; }
  log "redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/') on port $port (pid $redis_pid)"
fi

python3 "$root/bench/bench.py" --port "$port" --sizes "$sizes" --repeat "$repeat" \
  --vecdump "$vecdump" --measured "$measured" --read-floor "$build/bench/vd-read-floor" \
  --resp-gen "$build/bench/vd-resp-gen" --redis-dump-go "$rdg" \
  --redis-dump-go-note "$rdg_note" --work "$work" --root "$root" \
  --out "$root/bench/results/latest.json"
