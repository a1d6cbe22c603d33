#!/usr/bin/env bash
# inferq local stack: Kafka, Redis, the fake model server, inferq-broker and
# inferq-worker, all on 127.0.0.1, each with a pid file and a log under
# deploy/local/.run/.
#
#   deploy/local/stack.sh up     [--kafka embedded|real] [--config FILE] [--no-programs]
#   deploy/local/stack.sh down
#   deploy/local/stack.sh status
#
#   --kafka embedded  librdkafka's mock cluster (build/bin/inferq-mock-kafka); default
#   --kafka real      Apache Kafka 4.x from deploy/kafka/.cache/lib, single-node KRaft
#   --config FILE     inferq config for broker/worker (default deploy/local/inferq.yaml)
#   --no-programs     infrastructure only: Kafka, Redis and (when built) the fake model
#
# Environment: INFERQ_BUILD_DIR (default build; binaries in $INFERQ_BUILD_DIR/bin),
# INFERQ_STACK_TIMEOUT (seconds to wait for each component, default 90),
# INFERQ_KAFKA_JAVA_OPTS (extra JVM options for the real broker),
# INFERQ_FAKE_API_KEY (key given to the worker for the fake model),
# INFERQ_STACK_PORT_OFFSET (added to every port below, so that two checkouts
# can run stacks side by side; the config is then rewritten into .run/).
#
# Ports: Kafka 19092 (KRaft controller 19093), Redis 16379, fake model 18080,
# broker admin 18081, worker admin 18082 (the admin ports come from the config).
# `up` waits until every component answers (Kafka metadata, redis PING,
# GET /v1/models, GET /readyz) and then writes deploy/local/.run/env
# (KEY=VALUE lines; load with `set -a; . deploy/local/.run/env; set +a`).
# `up` on a running stack only checks it; `down` is safe to repeat. Every
# start of Kafka or Redis begins empty: the stack keeps no data across `down`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUN="$ROOT/deploy/local/.run"
BUILD_DIR="${INFERQ_BUILD_DIR:-build}"
[[ "$BUILD_DIR" == /* ]] || BUILD_DIR="$ROOT/$BUILD_DIR"
BIN="$BUILD_DIR/bin"
KAFKA_LIB="$ROOT/deploy/kafka/.cache/lib"

HOST=127.0.0.1
PORT_OFFSET="${INFERQ_STACK_PORT_OFFSET:-0}"
[[ "$PORT_OFFSET" =~ ^[0-9]+$ ]] || { echo "stack: INFERQ_STACK_PORT_OFFSET must be a number" >&2; exit 2; }
KAFKA_PORT=$((19092 + PORT_OFFSET))
CONTROLLER_PORT=$((19093 + PORT_OFFSET))
REDIS_PORT=$((16379 + PORT_OFFSET))
FAKE_PORT=$((18080 + PORT_OFFSET))
TIMEOUT="${INFERQ_STACK_TIMEOUT:-90}"
FAKE_API_KEY="${INFERQ_FAKE_API_KEY:-sk-inferq-local-fake}"
COMPONENTS=(kafka redis fake-model broker worker)
STARTED_PID=

log() { printf 'stack: %s\n' "$*" >&2; }
die() { printf 'stack: error: %s\n' "$*" >&2; exit 1; }

usage() { sed -n '2,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

# ---------------------------------------------------------------- arguments --
cmd="${1:-}"
[[ -n "$cmd" ]] || { usage >&2; exit 2; }
shift
kafka_mode=""
config="$ROOT/deploy/local/inferq.yaml"
no_programs=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --kafka) kafka_mode="${2:-}"; shift 2 ;;
    --kafka=*) kafka_mode="${1#*=}"; shift ;;
    --config) config="${2:-}"; shift 2 ;;
    --config=*) config="${1#*=}"; shift ;;
    --no-programs) no_programs=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
case "$kafka_mode" in ""|real|embedded) ;; *) die "--kafka must be real or embedded" ;; esac
[[ "$config" == /* ]] || config="$PWD/$config"
# With a port offset, the stack runs on a copy of the config whose loopback
# ports (Kafka, Redis, fake model, admin) are shifted by the same offset.
if [[ "$PORT_OFFSET" -ne 0 && "$cmd" == up && -f "$config" ]]; then
  mkdir -p "$RUN"
  sed -E "s/127\.0\.0\.1:(19092|16379|18080)/127.0.0.1:\1+$PORT_OFFSET/g; s/(admin_port:[[:space:]]*)(1808[12])/\1\2+$PORT_OFFSET/" \
    "$config" | perl -pe 's/(\d+)\+(\d+)/$1+$2/ge' > "$RUN/inferq.offset.yaml"
  config="$RUN/inferq.offset.yaml"
elif [[ "$PORT_OFFSET" -ne 0 && -f "$RUN/inferq.offset.yaml" ]]; then
  config="$RUN/inferq.offset.yaml"
fi

# ------------------------------------------------------------ config (YAML) --
# Minimal readers for the two-level keys the stack needs (section: / key: value).
yaml_scalar() { # SECTION KEY DEFAULT
  local v
  v="$(awk -v s="$1" -v k="$2" -v q="'" '
    /^[^[:space:]#][^:]*:/ { sec = $0; sub(/:.*/, "", sec); next }
    sec == s && $0 ~ ("^  " k ":") {
      v = $0; sub(/^[^:]*:[[:space:]]*/, "", v); sub(/[[:space:]]+#.*$/, "", v)
      gsub("^[\"" q "]|[\"" q "]$", "", v); print v; exit }' "$config" 2>/dev/null)"
  printf '%s' "${v:-$3}"
}
yaml_children() { # SECTION
  awk -v s="$1" '
    /^[^[:space:]#][^:]*:/ { sec = $0; sub(/:.*/, "", sec); next }
    sec == s && /^  [A-Za-z0-9_.-]+:/ { k = $0; sub(/^  /, "", k); sub(/:.*/, "", k); print k }' "$config" 2>/dev/null
}

# --------------------------------------------------------------- processes --
pidfile() { printf '%s/%s.pid' "$RUN" "$1"; }
logfile() { printf '%s/%s.log' "$RUN" "$1"; }
proc_start_time() { awk '{ print $22 }' "/proc/$1/stat" 2>/dev/null; }

# pid of a component if its process is alive (pid and start time match), else empty
pid_of() {
  local f pid st
  f="$(pidfile "$1")"
  [[ -f "$f" ]] || return 0
  read -r pid st < "$f" || true
  [[ -n "${pid:-}" ]] || return 0
  if [[ -d "/proc/$pid" && "$(proc_start_time "$pid")" == "${st:-}" ]] &&
     [[ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" != Z ]]; then
    printf '%s' "$pid"
  fi
}

# start_proc NAME CMD...: start detached in its own session, output to NAME.log
start_proc() {
  local name="$1"; shift
  local lf pid
  lf="$(logfile "$name")"
  [[ -f "$lf" ]] && mv -f "$lf" "$lf.1"
  setsid "$@" </dev/null >"$lf" 2>&1 &
  pid=$!
  STARTED_PID=$pid
  printf '%s %s\n' "$pid" "$(proc_start_time "$pid")" > "$(pidfile "$name")"
}

# stop_proc NAME GRACE_SECONDS: SIGTERM, then SIGKILL after the grace deadline
stop_proc() {
  local name="$1" grace="$2" pid deadline
  pid="$(pid_of "$name")"
  if [[ -z "$pid" ]]; then
    rm -f "$(pidfile "$name")"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + grace))
  while [[ -n "$(pid_of "$name")" ]] && ((SECONDS < deadline)); do sleep 0.2; done
  if [[ -n "$(pid_of "$name")" ]]; then
    log "$name (pid $pid) still running after ${grace}s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 5))
    while [[ -n "$(pid_of "$name")" ]] && ((SECONDS < deadline)); do sleep 0.1; done
  fi
  log "stopped $name (pid $pid)"
  rm -f "$(pidfile "$name")"
}

port_busy() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# Logs to show when a component fails
component_logs() {
  case "$1" in
    kafka) printf '%s\n' "$(logfile kafka)" "$RUN/kafka-format.log" "$RUN/kafka/logs/server.log" ;;
    *) logfile "$1"; printf '\n' ;;
  esac
}

show_logs() {
  local f
  for f in $(component_logs "$1"); do
    [[ -s "$f" ]] || continue
    printf '%s\n' "----- last 40 lines of ${f#"$ROOT"/} -----" >&2
    tail -n 40 "$f" >&2
  done
}

fail_component() { # NAME MESSAGE
  show_logs "$1"
  stop_proc "$1" 5 >/dev/null 2>&1 || true
  die "$2 (logs: $(component_logs "$1" | sed "s|^$ROOT/||" | tr '\n' ' ')); stop the rest with: deploy/local/stack.sh down"
}

# wait_ready NAME DESCRIPTION CHECK...: poll CHECK until it succeeds or the
# deadline passes; fail at once if the process dies.
wait_ready() {
  local name="$1" what="$2"; shift 2
  local start=$SECONDS deadline=$((SECONDS + TIMEOUT)) delay=0.1
  while :; do
    if "$@" >/dev/null 2>&1; then
      log "$name ready ($what) after $((SECONDS - start))s"
      return 0
    fi
    [[ -n "$(pid_of "$name")" ]] || fail_component "$name" "$name exited before it was ready"
    ((SECONDS < deadline)) || fail_component "$name" "$name not ready ($what) after ${TIMEOUT}s"
    sleep "$delay"
    delay=0.3
  done
}

# ----------------------------------------------------------------- checks ---
kafka_bootstrap() { printf '%s:%s' "$HOST" "$KAFKA_PORT"; }
check_kafka() { port_busy "$KAFKA_PORT" && kcat -L -b "$(kafka_bootstrap)" -m 2 2>/dev/null | grep -q '^  broker [0-9]* at '; }
check_redis() { [[ "$(redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]; }
check_http() { curl -fsS -m 2 -o /dev/null -H "Authorization: Bearer $FAKE_API_KEY" "$1"; }
check_fake() { check_http "http://$HOST:$FAKE_PORT/v1/models"; }
broker_port() { yaml_scalar broker admin_port 18081; }
worker_port() { yaml_scalar worker admin_port 18082; }
check_broker() { check_http "http://$HOST:$(broker_port)/readyz"; }
check_worker() { check_http "http://$HOST:$(worker_port)/readyz"; }

# ------------------------------------------------------------------ kafka ---
kafka_write_config() {
  local dir="$RUN/kafka"
  rm -rf "$dir"
  mkdir -p "$dir/data" "$dir/logs"
  cat > "$dir/server.properties" <<EOF
# Written by deploy/local/stack.sh: single-node KRaft (combined broker+controller).
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$HOST:$CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.partitions=4
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=24
log.segment.bytes=67108864
EOF
  cat > "$dir/log4j2.xml" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by deploy/local/stack.sh: INFO to logs/server.log, WARN and up also to stdout (kafka.log). -->
<Configuration status="WARN" name="inferq-local-kafka">
  <Appenders>
    <Console name="stdout" target="SYSTEM_OUT">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </Console>
    <RollingFile name="server" fileName="${sys:kafka.logs.dir}/server.log"
                 filePattern="${sys:kafka.logs.dir}/server.log.%i">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <Policies><SizeBasedTriggeringPolicy size="50 MB"/></Policies>
      <DefaultRolloverStrategy max="2"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Root level="INFO">
      <AppenderRef ref="server"/>
      <AppenderRef ref="stdout" level="WARN"/>
    </Root>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="state.change.logger" level="WARN"/>
    <Logger name="org.apache.kafka.clients" level="WARN"/>
  </Loggers>
</Configuration>
EOF
}

java_bin() { if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then printf '%s' "$JAVA_HOME/bin/java"; else command -v java || true; fi; }

start_kafka_real() {
  local java cid
  java="$(java_bin)"
  [[ -n "$java" ]] || die "java not found (run deploy/install-deps.sh)"
  if ! compgen -G "$KAFKA_LIB/kafka_2.13-*.jar" >/dev/null; then
    log "Kafka jars missing: running deploy/kafka/fetch.sh"
    "$ROOT/deploy/kafka/fetch.sh" || die "deploy/kafka/fetch.sh failed"
  fi
  kafka_write_config
  # A KRaft cluster id is 16 random bytes, base64url without padding.
  cid="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
  echo "$cid" > "$RUN/kafka/cluster.id"
  local jvm=(-Djava.awt.headless=true -Dlog4j2.configurationFile="$RUN/kafka/log4j2.xml"
             -Dkafka.logs.dir="$RUN/kafka/logs" -cp "$KAFKA_LIB/*")
  if ! "$java" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 "${jvm[@]}" \
       kafka.tools.StorageTool format -t "$cid" -c "$RUN/kafka/server.properties" --standalone \
       >"$RUN/kafka-format.log" 2>&1; then
    show_logs kafka
    die "formatting the Kafka storage failed (deploy/local/.run/kafka-format.log)"
  fi
  # shellcheck disable=SC2086 # INFERQ_KAFKA_JAVA_OPTS is a list of options
  start_proc kafka "$java" -Xms256m -Xmx1g -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
    ${INFERQ_KAFKA_JAVA_OPTS:-} "${jvm[@]}" kafka.Kafka "$RUN/kafka/server.properties"
}

start_kafka_embedded() {
  local mock="$BIN/inferq-mock-kafka" prefix partitions d
  [[ -x "$mock" ]] || die "$mock not found: build it first (cmake -G Ninja -B build && ninja -C build inferq-mock-kafka) or use --kafka real"
  prefix="$(yaml_scalar kafka topic_prefix inferq)"
  partitions="$(yaml_scalar kafka partitions 4)"
  local args=(--port "$KAFKA_PORT" --bootstrap-file "$RUN/kafka.bootstrap" --partitions "$partitions")
  for t in requests replies traces logs guardrails dlq deferred; do args+=(--topic "$prefix.$t"); done
  while read -r d; do
    [[ -n "$d" ]] || continue
    # one topic per priority lane (see ifq_lane_topic)
    args+=(--topic "$prefix.model.$d" --topic "$prefix.model-high.$d" --topic "$prefix.model-low.$d")
  done < <(yaml_children deployments)
  rm -f "$RUN/kafka.bootstrap"
  start_proc kafka "$mock" "${args[@]}"
}

up_kafka() {
  local running_mode=""
  [[ -f "$RUN/kafka.mode" ]] && running_mode="$(cat "$RUN/kafka.mode")"
  if [[ -n "$(pid_of kafka)" ]]; then
    if [[ -n "$kafka_mode" && "$kafka_mode" != "$running_mode" ]]; then
      die "Kafka is already running in ${running_mode:-unknown} mode; run 'deploy/local/stack.sh down' first to switch to $kafka_mode"
    fi
    kafka_mode="${running_mode:-embedded}"
    log "kafka already running ($kafka_mode, pid $(pid_of kafka))"
  else
    kafka_mode="${kafka_mode:-embedded}"
    port_busy "$KAFKA_PORT" && die "port $KAFKA_PORT is in use by a process this stack did not start (ss -ltnp 'sport = :$KAFKA_PORT')"
    if [[ "$kafka_mode" == real ]]; then
      port_busy "$CONTROLLER_PORT" && die "port $CONTROLLER_PORT is in use by a process this stack did not start"
      start_kafka_real
    else
      start_kafka_embedded
    fi
    echo "$kafka_mode" > "$RUN/kafka.mode"
    log "started kafka ($kafka_mode, pid $STARTED_PID)"
  fi
  wait_ready kafka "metadata from $(kafka_bootstrap)" check_kafka
}

# ------------------------------------------------------------------ redis ---
up_redis() {
  if [[ -n "$(pid_of redis)" ]]; then
    log "redis already running (pid $(pid_of redis))"
  else
    command -v redis-server >/dev/null || die "redis-server not found (run deploy/install-deps.sh)"
    port_busy "$REDIS_PORT" && die "port $REDIS_PORT is in use by a process this stack did not start"
    mkdir -p "$RUN/redis"
    start_proc redis redis-server --bind "$HOST" --port "$REDIS_PORT" --save '' --appendonly no \
      --dir "$RUN/redis" --daemonize no --loglevel notice
    log "started redis (pid $STARTED_PID)"
  fi
  wait_ready redis "PING on $HOST:$REDIS_PORT" check_redis
}

# ------------------------------------------------------------- fake model ---
up_fake_model() {
  local fake="$BIN/inferq-fake-model"
  if [[ -n "$(pid_of fake-model)" ]]; then
    log "fake-model already running (pid $(pid_of fake-model))"
  elif [[ ! -x "$fake" ]]; then
    [[ $no_programs -eq 1 ]] || die "$fake not found: build first (ninja -C ${BUILD_DIR#"$ROOT"/})"
    log "fake-model not built ($fake): skipped"
    return 0
  else
    port_busy "$FAKE_PORT" && die "port $FAKE_PORT is in use by a process this stack did not start"
    rm -f "$RUN/fake-model.port"
    start_proc fake-model "$fake" --host "$HOST" --port "$FAKE_PORT" --port-file "$RUN/fake-model.port" --quiet
    log "started fake-model (pid $STARTED_PID)"
  fi
  wait_ready fake-model "GET http://$HOST:$FAKE_PORT/v1/models" check_fake
}

# ------------------------------------------------------- broker and worker ---
up_program() { # NAME BINARY PORT CHECK
  local name="$1" exe="$BIN/$2" port="$3" check="$4"
  if [[ -n "$(pid_of "$name")" ]]; then
    log "$name already running (pid $(pid_of "$name"))"
  else
    [[ -x "$exe" ]] || die "$exe not found: build first (ninja -C ${BUILD_DIR#"$ROOT"/}) or pass --no-programs"
    port_busy "$port" && die "port $port ($name admin) is in use by a process this stack did not start"
    INFERQ_KAFKA_BOOTSTRAP="$(kafka_bootstrap)" INFERQ_REDIS_URL="$(redis_url)" \
      INFERQ_FAKE_API_KEY="$FAKE_API_KEY" INFERQ_CONFIG="$config" \
      start_proc "$name" "$exe" --config "$config"
    log "started $name (pid $STARTED_PID)"
  fi
  wait_ready "$name" "GET http://$HOST:$port/readyz" "$check"
}

redis_url() { printf 'redis://%s:%s/0' "$HOST" "$REDIS_PORT"; }

write_env() {
  local tmp="$RUN/env.tmp"
  {
    echo "# Written by deploy/local/stack.sh up on $(date -u +%Y-%m-%dT%H:%M:%SZ)."
    echo "# KEY=VALUE lines; in a shell: set -a; . deploy/local/.run/env; set +a"
    echo "KAFKA_BOOTSTRAP=$(kafka_bootstrap)"
    echo "REDIS_URL=$(redis_url)"
    echo "INFERQ_KAFKA_BOOTSTRAP=$(kafka_bootstrap)"
    echo "INFERQ_REDIS_URL=$(redis_url)"
    echo "INFERQ_CONFIG=$config"
    echo "INFERQ_KAFKA_MODE=$kafka_mode"
    echo "INFERQ_FAKE_MODEL_URL=http://$HOST:$FAKE_PORT/v1"
    echo "INFERQ_FAKE_API_KEY=$FAKE_API_KEY"
    echo "INFERQ_BROKER_ADMIN_URL=http://$HOST:$(broker_port)"
    echo "INFERQ_WORKER_ADMIN_URL=http://$HOST:$(worker_port)"
    echo "INFERQ_BUILD_DIR=$BUILD_DIR"
    echo "INFERQ_PROGRAMS=$([[ $no_programs -eq 1 ]] && echo 0 || echo 1)"
  } > "$tmp"
  mv -f "$tmp" "$RUN/env"
}

cmd_up() {
  [[ -f "$config" ]] || die "config not found: $config"
  for tool in kcat curl redis-cli setsid; do
    command -v "$tool" >/dev/null || die "$tool not found (run deploy/install-deps.sh)"
  done
  mkdir -p "$RUN"
  local start=$SECONDS
  up_kafka
  up_redis
  up_fake_model
  if [[ $no_programs -eq 0 ]]; then
    up_program broker inferq-broker "$(broker_port)" check_broker
    up_program worker inferq-worker "$(worker_port)" check_worker
  else
    for p in broker worker; do
      [[ -n "$(pid_of "$p")" ]] && log "$p is running (left as is; --no-programs)"
    done
  fi
  write_env
  log "stack up in $((SECONDS - start))s (kafka: $kafka_mode); env: deploy/local/.run/env"
}

cmd_down() {
  local any=0 c
  for c in worker broker fake-model redis kafka; do
    [[ -f "$(pidfile "$c")" ]] && any=1
    case "$c" in kafka) stop_proc "$c" 30 ;; *) stop_proc "$c" 15 ;; esac
  done
  rm -f "$RUN/env" "$RUN/kafka.mode" "$RUN/kafka.bootstrap" "$RUN/fake-model.port"
  [[ $any -eq 1 ]] || log "nothing was running"
  return 0
}

cmd_status() {
  local c pid addr check state ready rc=0 running=0
  local mode="-"
  [[ -f "$RUN/kafka.mode" ]] && mode="$(cat "$RUN/kafka.mode")"
  printf '%-11s %-8s %-8s %-32s %s\n' COMPONENT STATE PID ADDRESS READY
  for c in "${COMPONENTS[@]}"; do
    case "$c" in
      kafka) addr="$(kafka_bootstrap) ($mode)"; check=check_kafka ;;
      redis) addr="$(redis_url)"; check=check_redis ;;
      fake-model) addr="http://$HOST:$FAKE_PORT/v1"; check=check_fake ;;
      broker) addr="http://$HOST:$(broker_port)/readyz"; check=check_broker ;;
      worker) addr="http://$HOST:$(worker_port)/readyz"; check=check_worker ;;
    esac
    pid="$(pid_of "$c")"
    if [[ -n "$pid" ]]; then
      running=1
      state=running
      if "$check" >/dev/null 2>&1; then ready=yes; else ready=no; rc=1; fi
    elif [[ -f "$(pidfile "$c")" ]]; then
      state=dead; pid="-"; ready=no; rc=1
    else
      state=stopped; pid="-"; ready="-"
    fi
    printf '%-11s %-8s %-8s %-32s %s\n' "$c" "$state" "$pid" "$addr" "$ready"
  done
  echo "logs: ${RUN#"$ROOT"/}/<component>.log$([[ $mode == real ]] && echo "  (Kafka broker log: ${RUN#"$ROOT"/}/kafka/logs/server.log)")"
  [[ -f "$RUN/env" ]] && echo "env:  ${RUN#"$ROOT"/}/env"
  [[ $running -eq 1 ]] || return 3
  return $rc
}

case "$cmd" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  -h|--help|help) usage ;;
  *) usage >&2; die "unknown command: $cmd" ;;
esac
