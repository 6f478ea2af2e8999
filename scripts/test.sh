#!/usr/bin/env bash
# THE test command: installs what is missing, builds vecdump twice (build/
# plain, build-asan/ with AddressSanitizer + UBSan), starts a real Redis and a
# real Kafka broker (scripts/services.sh), runs every CTest test in both
# builds against them, and always stops the services again.
#
#   scripts/test.sh [--no-asan | --asan-only] [--no-deps] [--no-services]
#                   [-j N] [-- extra ctest arguments, e.g. -R kafka]
#
# Exits non-zero when any step or any test fails. Works from any directory.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$root"

plain=1 asan=1 deps=1 services=1
jobs=$(nproc 2>/dev/null || echo 2)
ctest_extra=()
usage() { sed -n '2,11s/^# \{0,1\}//p' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --no-asan) asan=0 ;;
    --asan-only) plain=0 ;;
    --no-deps) deps=0 ;;
    --no-services) services=0 ;;
    -j) shift; jobs=${1:?-j needs a number} ;;
    -j*) jobs=${1#-j} ;;
    -h|--help) usage ;;
    --) shift; ctest_extra=("$@"); break ;;
    *) echo "test.sh: unknown option $1" >&2; usage ;;
  esac
  shift
done

step() { echo "==> $*" >&2; }
t_start=$(date +%s)

if [ $deps = 1 ]; then
  step "dependencies (scripts/install-deps.sh)"
  "$here/install-deps.sh"
fi

builds=()
[ $plain = 1 ] && builds+=(build)
[ $asan = 1 ] && builds+=(build-asan)
[ ${#builds[@]} -gt 0 ] || { echo "test.sh: nothing to build" >&2; exit 2; }

for b in "${builds[@]}"; do
  if [ "$b" = build-asan ]; then
    flags=(-DCMAKE_BUILD_TYPE=Debug -DVD_SANITIZE=ON)
  else
    flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DVD_SANITIZE=OFF)
  fi
  step "configure + build $b/ (${flags[*]})"
  cmake -S "$root" -B "$root/$b" "${flags[@]}" -DBUILD_TESTING=ON >/dev/null
  cmake --build "$root/$b" -j "$jobs"
done

# Services live in a run dir of this invocation, so two test runs (or a
# demo) never stop each other's services.
export VD_RUN_DIR="$root/.cache/run/test-$$"
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ $services = 1 ] && [ -d "$VD_RUN_DIR" ]; then
    step "stopping services"
    "$here/services.sh" stop || rc=1
    rm -rf "$VD_RUN_DIR"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'echo "test.sh: interrupted" >&2; exit 130' INT TERM

if [ $services = 1 ]; then
  step "starting Redis and Kafka (scripts/services.sh start)"
  "$here/services.sh" start
  # shellcheck disable=SC1091
  . "$VD_RUN_DIR/services.env"
else
  step "no services: tests that need Redis or Kafka will skip"
fi

ulimit -c 0 2>/dev/null || true
failed=()
for b in "${builds[@]}"; do
  step "ctest in $b/"
  if [ "$b" = build-asan ]; then
    env ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        LSAN_OPTIONS="suppressions=$here/lsan.supp:print_suppressions=0" \
        ctest --test-dir "$root/$b" --output-on-failure "${ctest_extra[@]}" || failed+=("$b")
  else
    ctest --test-dir "$root/$b" --output-on-failure "${ctest_extra[@]}" || failed+=("$b")
  fi
done

elapsed=$(( $(date +%s) - t_start ))
if [ ${#failed[@]} -gt 0 ]; then
  echo "test.sh: FAILED in: ${failed[*]} (${elapsed}s)" >&2
  exit 1
fi
echo "test.sh: all tests passed in: ${builds[*]} (${elapsed}s)" >&2
