#!/usr/bin/env bash
# Starts and stops the real services vecdump's tests and demo run against:
# Debian's redis-server and an Apache Kafka broker (KRaft, single node,
# combined broker+controller) from the jars scripts/kafka/fetch.sh caches.
#
#   scripts/services.sh start [redis|kafka|all]   (default: all)
#   scripts/services.sh stop  [redis|kafka|all]
#   scripts/services.sh env        # prints the exports; eval "$(... env)"
#   scripts/services.sh status
#
# Every service gets free loopback ports and its own temp directory. What
# was started is written to $VD_RUN_DIR/services.env (default
# <repo>/.cache/run), which a caller can `source`:
#   export VECDUMP_TEST_REDIS_PORT=…   export VECDUMP_TEST_KAFKA=127.0.0.1:…
# plus the pids, process groups and directories `stop` uses to end exactly
# what `start` started. `start X` first stops a leftover X of the same
# VD_RUN_DIR. Give parallel users their own VD_RUN_DIR.
#
# Tunables (environment): VD_RUN_DIR, VD_KAFKA_START_TIMEOUT (s, default 60),
# VD_KAFKA_HEAP (default 512m), VD_KEEP_DIRS=1 keeps temp dirs on stop.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
run_dir=$(realpath -m "${VD_RUN_DIR:-$root/.cache/run}")
state="$run_dir/services.env"
kafka_timeout=${VD_KAFKA_START_TIMEOUT:-60}
kafka_heap=${VD_KAFKA_HEAP:-512m}
tmp_base=${TMPDIR:-/tmp}

log() { echo "services: $*" >&2; }
die() { echo "services: error: $*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# Prints N distinct free loopback TCP ports (all held open while choosing,
# so they differ from each other).
free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# Is process group $1 alive with a leader whose command line contains $2?
# (Guards against killing a reused pid.)
group_alive() {
  local pgid=$1 pat=$2
  [ -n "$pgid" ] || return 1
  kill -0 -- "-$pgid" 2>/dev/null || return 1
  if [ -r "/proc/$pgid/cmdline" ]; then
    tr '\0' ' ' <"/proc/$pgid/cmdline" | grep -q -- "$pat"
  else
    # Leader gone but members left: still ours if any member matches.
    pgrep -g "$pgid" -f -- "$pat" >/dev/null 2>&1
  fi
}

# Ends process group $1 (TERM, then KILL after $3 seconds); $2 as above.
kill_group() {
  local pgid=$1 pat=$2 grace=$3 i
  group_alive "$pgid" "$pat" || return 0
  kill -TERM -- "-$pgid" 2>/dev/null || true
  for ((i = 0; i < grace * 10; i++)); do
    kill -0 -- "-$pgid" 2>/dev/null || return 0
    sleep 0.1
  done
  log "process group $pgid ($pat) ignored SIGTERM for ${grace}s: SIGKILL"
  kill -KILL -- "-$pgid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    kill -0 -- "-$pgid" 2>/dev/null || return 0
    sleep 0.1
  done
  die "process group $pgid survived SIGKILL"
}

# Starts "$@" in a new session (its own process group, so stop can end it
# and its children at once, and Ctrl-C at the caller's terminal does not
# reach it). Sets $started_pid. stdin from /dev/null.
spawn() {
  local out=$1; shift
  setsid "$@" </dev/null >"$out" 2>&1 &
  started_pid=$!
  # Not a group leader when spawned from a script, so setsid does not fork
  # and $! is the service itself, leader of its own group.
  sleep 0.05
  local pg
  pg=$(ps -o pgid= -p "$started_pid" 2>/dev/null | tr -d ' ' || true)
  if [ -n "$pg" ] && [ "$pg" != "$started_pid" ]; then
    die "spawned pid $started_pid is in group $pg, not its own"
  fi
}

write_state() {
  mkdir -p "$run_dir"
  if [ ! -f "$run_dir/redis.env" ] && [ ! -f "$run_dir/kafka.env" ]; then
    rm -f "$state"
    return 0
  fi
  {
    echo "# written by scripts/services.sh at $(date -u +%Y-%m-%dT%H:%M:%SZ); source me"
    [ -f "$run_dir/redis.env" ] && cat "$run_dir/redis.env"
    [ -f "$run_dir/kafka.env" ] && cat "$run_dir/kafka.env"
  } >"$state.tmp"
  mv "$state.tmp" "$state"
}

# ---- redis -------------------------------------------------------------

start_redis() {
  stop_redis
  local dir port attempt t0
  dir=$(mktemp -d "$tmp_base/vecdump-redis.XXXXXX")
  t0=$(now)
  for attempt in 1 2 3; do
    port=$(free_ports 1)
    spawn "$dir/stdout.log" redis-server --bind 127.0.0.1 --port "$port" \
      --dir "$dir" --save "" --appendonly no --daemonize no \
      --logfile "$dir/redis.log" --protected-mode yes
    local pid=$started_pid i ok=0
    for ((i = 0; i < 100; i++)); do
      if ! kill -0 "$pid" 2>/dev/null; then break; fi
      if [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ]; then ok=1; break; fi
      sleep 0.1
    done
    if [ $ok = 1 ]; then
      cat >"$run_dir/redis.env" <<EOF
export VECDUMP_TEST_REDIS_PORT=$port
export VD_REDIS_PID=$pid
export VD_REDIS_DIR=$dir
EOF
      write_state
      log "redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/') on 127.0.0.1:$port (pid $pid, dir $dir) ready in $(elapsed "$t0")s"
      return 0
    fi
    kill_group "$pid" redis-server 5
    log "redis-server did not answer PING on port $port (attempt $attempt); log tail:"
    tail -n 20 "$dir/redis.log" "$dir/stdout.log" >&2 2>/dev/null || true
  done
  die "redis-server did not start"
}

stop_redis() {
  [ -f "$run_dir/redis.env" ] || return 0
  local VD_REDIS_PID="" VD_REDIS_DIR=""
  # shellcheck disable=SC1091
  . "$run_dir/redis.env"
  kill_group "$VD_REDIS_PID" redis-server 10
  case "$VD_REDIS_DIR" in
    */vecdump-redis.*) [ "${VD_KEEP_DIRS:-0}" = 1 ] || rm -rf -- "$VD_REDIS_DIR" ;;
  esac
  rm -f "$run_dir/redis.env"
  write_state
  log "redis stopped (pid $VD_REDIS_PID)"
}

# ---- kafka -------------------------------------------------------------

kafka_version() {
  sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/kafka/pom.xml"
}

start_kafka() {
  stop_kafka
  command -v java >/dev/null || die "java not found (scripts/install-deps.sh)"
  command -v kcat >/dev/null || die "kcat not found (scripts/install-deps.sh)"
  "$here/kafka/fetch.sh"
  local ver libs dir attempt t0
  ver=$(kafka_version)
  libs="$root/.cache/kafka/$ver/libs"
  [ -f "$libs/kafka_2.13-$ver.jar" ] || die "no Kafka $ver jars in $libs"
  dir=$(mktemp -d "$tmp_base/vecdump-kafka.XXXXXX")

  cat >"$dir/log4j2.properties" <<EOF
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = $dir/broker.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = INFO
EOF
  # For a 3.9.x fallback (reload4j): -Dlog4j.configuration=file:$dir/log4j.properties
  cat >"$dir/log4j.properties" <<EOF
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=$dir/broker.log
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF

  local java_opts=(-Xmx"$kafka_heap" -Xms64m -XX:+UseSerialGC
                   -XX:TieredStopAtLevel=1
                   -Djava.awt.headless=true
                   -Dlog4j2.configurationFile="file:$dir/log4j2.properties"
                   -Dlog4j.configuration="file:$dir/log4j.properties"
                   -Dkafka.logs.dir="$dir")
  t0=$(now)
  for attempt in 1 2 3; do
    local ports port cport cluster_id
    read -r port cport <<<"$(free_ports 2)"
    rm -rf "$dir/data"
    cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
default.replication.factor=1
auto.create.topics.enable=true
delete.topic.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.cleaner.threads=1
log.cleaner.backoff.ms=1000
EOF
    cluster_id=$(python3 -c 'import uuid, base64
while True:
    s = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not s.startswith("-"):
        print(s); break')
    # 4.x: --standalone makes this node the one voter of a dynamic quorum
    # (KIP-853); it goes with controller.quorum.bootstrap.servers.
    if ! java "${java_opts[@]}" -cp "$libs/*" kafka.tools.StorageTool format \
           --standalone -t "$cluster_id" -c "$dir/server.properties" \
           >"$dir/format.log" 2>&1; then
      cat "$dir/format.log" >&2
      die "kafka StorageTool format failed"
    fi
    spawn "$dir/stdout.log" java "${java_opts[@]}" -cp "$libs/*" kafka.Kafka "$dir/server.properties"
    local pid=$started_pid ok=0 deadline
    deadline=$(( $(date +%s) + kafka_timeout ))
    while [ "$(date +%s)" -lt "$deadline" ]; do
      if ! kill -0 "$pid" 2>/dev/null; then break; fi
      if kcat -L -b "127.0.0.1:$port" -m 2 -X topic.metadata.refresh.interval.ms=-1 \
           >/dev/null 2>&1; then ok=1; break; fi
      sleep 0.25
    done
    if [ $ok = 1 ]; then
      cat >"$run_dir/kafka.env" <<EOF
export VECDUMP_TEST_KAFKA=127.0.0.1:$port
export VD_KAFKA_PID=$pid
export VD_KAFKA_DIR=$dir
export VD_KAFKA_CONTROLLER_PORT=$cport
export VD_KAFKA_VERSION=$ver
EOF
      write_state
      log "kafka $ver (KRaft) on 127.0.0.1:$port, controller :$cport (pid $pid, dir $dir) ready in $(elapsed "$t0")s"
      return 0
    fi
    local reason="did not answer metadata requests within ${kafka_timeout}s"
    kill -0 "$pid" 2>/dev/null || reason="exited"
    kill_group "$pid" java 20
    log "kafka broker $reason (attempt $attempt); broker log tail:"
    tail -n 40 "$dir/broker.log" >&2 2>/dev/null || true
    tail -n 20 "$dir/stdout.log" >&2 2>/dev/null || true
    # Only a port lost to a race is worth another attempt.
    if ! grep -q -i "address already in use" "$dir/broker.log" "$dir/stdout.log" 2>/dev/null; then
      break
    fi
  done
  log "kafka files kept in $dir"
  die "kafka broker did not start"
}

stop_kafka() {
  [ -f "$run_dir/kafka.env" ] || return 0
  local VD_KAFKA_PID="" VD_KAFKA_DIR=""
  # shellcheck disable=SC1091
  . "$run_dir/kafka.env"
  # A clean shutdown of a one-node KRaft broker takes a few seconds.
  kill_group "$VD_KAFKA_PID" java 20
  case "$VD_KAFKA_DIR" in
    */vecdump-kafka.*) [ "${VD_KEEP_DIRS:-0}" = 1 ] || rm -rf -- "$VD_KAFKA_DIR" ;;
  esac
  rm -f "$run_dir/kafka.env"
  write_state
  log "kafka stopped (pid $VD_KAFKA_PID)"
}

# ---- main --------------------------------------------------------------

cmd=${1:-}
what=${2:-all}
case "$what" in redis|kafka|all) ;; *) die "unknown service '$what' (redis|kafka|all)";; esac
mkdir -p "$run_dir"

case "$cmd" in
  start)
    # On failure part-way, leave nothing running.
    trap 'rc=$?; if [ $rc -ne 0 ]; then [ "$what" = redis ] || stop_kafka; [ "$what" = kafka ] || stop_redis; fi' EXIT
    [ "$what" = kafka ] || start_redis
    [ "$what" = redis ] || start_kafka
    trap - EXIT
    log "state in $state (source it, or eval \"\$($0 env)\")"
    ;;
  stop)
    [ "$what" = redis ] || stop_kafka
    [ "$what" = kafka ] || stop_redis
    ;;
  env)
    [ -f "$state" ] && grep '^export ' "$state" || true
    ;;
  status)
    rc=0
    if [ -f "$run_dir/redis.env" ]; then
      (. "$run_dir/redis.env"
       if group_alive "$VD_REDIS_PID" redis-server; then
         echo "redis: running on 127.0.0.1:$VECDUMP_TEST_REDIS_PORT (pid $VD_REDIS_PID)"
       else echo "redis: DEAD (pid $VD_REDIS_PID)"; exit 1; fi) || rc=1
    else echo "redis: not started"; fi
    if [ -f "$run_dir/kafka.env" ]; then
      (. "$run_dir/kafka.env"
       if group_alive "$VD_KAFKA_PID" java; then
         echo "kafka: $VD_KAFKA_VERSION running on $VECDUMP_TEST_KAFKA (pid $VD_KAFKA_PID)"
       else echo "kafka: DEAD (pid $VD_KAFKA_PID)"; exit 1; fi) || rc=1
    else echo "kafka: not started"; fi
    exit $rc
    ;;
  *)
    echo "usage: $0 start|stop [redis|kafka|all] | env | status" >&2
    exit 2
    ;;
esac
