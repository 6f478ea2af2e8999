#!/usr/bin/env bash
# THE demo: from a fresh machine, installs what is missing, builds vecdump,
# starts Redis and a Kafka broker, starts a worker, seeds a dataset with a few
# planted defects and then, through Kafka commands:
#   export (with progress) -> validate (shows the defects) -> validate --fix
#   -> import the backup into a second namespace, validate_only then for real
# and prints the results and where the artifacts are. Stops what it started.
#
#   scripts/demo.sh [--embedded-kafka] [--docs N] [--no-deps]
#
# --embedded-kafka uses librdkafka's in-process mock cluster (started by the
# worker) instead of the real Apache Kafka broker.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$root"

embedded=0 deps=1 docs=2000
while [ $# -gt 0 ]; do
  case "$1" in
    --embedded-kafka) embedded=1 ;;
    --no-deps) deps=0 ;;
    --docs) shift; docs=${1:?--docs needs a number} ;;
    -h|--help) sed -n '2,13s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "demo.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

[ $deps = 1 ] && { say "installing dependencies (scripts/install-deps.sh)"; "$here/install-deps.sh"; }
say "building (build/)"
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=ON >/dev/null
cmake --build "$root/build" -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
VD="$root/build/cli/vecdump"
WORKER="$root/build/worker/vecdump-worker"

export VD_RUN_DIR="$root/.cache/run/demo-$$"
work="$root/.cache/demo"
rm -rf "$work"; mkdir -p "$work/backups"
worker_pid=""
cleanup() {
  rc=$?
  trap - EXIT INT TERM
  if [ -n "$worker_pid" ] && kill -0 "$worker_pid" 2>/dev/null; then
    say "stopping the worker (SIGTERM)"
    kill -TERM "$worker_pid"; wait "$worker_pid" || true
  fi
  if [ -d "$VD_RUN_DIR" ]; then
    say "stopping services"
    "$here/services.sh" stop >/dev/null 2>&1 || true
    rm -rf "$VD_RUN_DIR"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ $embedded = 1 ]; then
  say "starting Redis (Kafka: the worker's embedded mock cluster)"
  "$here/services.sh" start redis
else
  say "starting Redis and an Apache Kafka broker (KRaft, from Maven Central jars)"
  "$here/services.sh" start
fi
# shellcheck disable=SC1091
. "$VD_RUN_DIR/services.env"

ns=demo
common=(--redis-port "$VECDUMP_TEST_REDIS_PORT" --backup-dir "$work/backups")

say "seeding namespace '$ns': $docs documents x 4 chunks, dim 384, with original files and planted defects"
"$VD" seed "${common[@]}" --namespace "$ns" --drop --docs "$docs" --chunks 4 --dim 384 --files \
  --file-bytes 2048 --orphans 3 --missing-embeddings 2 --wrong-dims 2 --nans 1 --index-drift 4

say "starting a worker"
wargs=("${common[@]}" --namespace "$ns" --jobs 2 --health-interval 10 --worker-id demo-worker-1)
if [ $embedded = 1 ]; then
  "$WORKER" "${wargs[@]}" --embedded-kafka >"$work/worker.out" 2>"$work/worker.log" &
  worker_pid=$!
  for _ in $(seq 1 100); do grep -q "bootstrap:" "$work/worker.out" 2>/dev/null && break; sleep 0.1; done
  bootstrap=$(sed -n 's/^embedded Kafka bootstrap: //p' "$work/worker.out")
  echo "embedded Kafka at $bootstrap (any Kafka client, e.g. kcat -L -b $bootstrap)"
else
  bootstrap=$VECDUMP_TEST_KAFKA
  "$WORKER" "${wargs[@]}" --bootstrap "$bootstrap" 2>"$work/worker.log" &
  worker_pid=$!
fi
for _ in $(seq 1 300); do grep -q "partitions assigned" "$work/worker.log" 2>/dev/null && break; sleep 0.1; done
grep -q "partitions assigned" "$work/worker.log" || { echo "worker did not join its group:"; tail -20 "$work/worker.log"; exit 1; }
echo "worker log: $work/worker.log"

cli=("$VD" --bootstrap "$bootstrap" "${common[@]}")
run() { local sub=$1; shift; "${cli[0]}" "$sub" "${cli[@]:1}" --human "$@"; }

say "export (AVRO, with files) through Kafka"
run export --namespace "$ns" --format AVRO --include-files --destination demo-backup.avro || true

say "export (JSONL, gzip) through Kafka"
run export --namespace "$ns" --format JSONL --compress --destination demo-backup.jsonl.gz

say "validate: the planted defects"
run validate --namespace "$ns" || true

say "validate --fix: repair what can be repaired, quarantine the rest"
run validate --namespace "$ns" --fix || true

say "validate again: only unfixable issues remain"
run validate --namespace "$ns" || true

say "import the backup into namespace '${ns}_restore': validate_only first"
run import --namespace "${ns}_restore" --source demo-backup.jsonl.gz --validate-only

say "import for real"
run import --namespace "${ns}_restore" --source demo-backup.jsonl.gz

say "import again with on_conflict=FAIL: refused, nothing written"
run import --namespace "${ns}_restore" --source demo-backup.jsonl.gz || echo "(refused as expected)"

say "health"
run health --namespace "$ns" --wait 3 || true

say "artifacts on the backup volume ($work/backups)"
ls -l "$work/backups"
echo
echo "demo finished: artifacts in $work/backups, worker log in $work/worker.log"
