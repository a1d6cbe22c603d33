#!/usr/bin/env bash
# cpu_per_req.sh - the fake model's CPU per request under many concurrent
# slow keep-alive requests (the load of tests/bench/bench_worker.py, without
# the gateway): wrk keeps C connections busy with chat completions against
# inferq-fake-model --latency-ms L, and the fake's user+system CPU time
# (/proc/PID/stat) is divided by the requests it counted (/_fake/stats).
#
# usage: tests/fake/cpu_per_req.sh BIN [-c CONNS] [-d SECONDS] [-l LATENCY_MS] [-- FAKE_FLAGS...]
# Needs: wrk, curl, jq. Prints one line: conns, latency, requests, req/s, CPU us/request.
set -eu
BIN=$1; shift
CONNS=2000 DUR=10 LAT=200
while [ $# -gt 0 ]; do
    case $1 in
    -c) CONNS=$2; shift 2 ;;
    -d) DUR=$2; shift 2 ;;
    -l) LAT=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "cpu_per_req.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
for tool in wrk curl jq; do
    command -v "$tool" >/dev/null || { echo "cpu_per_req.sh: $tool is required" >&2; exit 2; }
done
WORK=$(mktemp -d)
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
"$BIN" --port 0 --port-file "$WORK/port" --quiet --latency-ms "$LAT" \
    --max-connections $((CONNS * 2 + 100)) "$@" &
PID=$!
for _ in $(seq 100); do [ -s "$WORK/port" ] && break; sleep 0.05; done
URL=http://127.0.0.1:$(cat "$WORK/port")
HZ=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
reqs() { curl -s "$URL/_fake/stats" | jq .requests; }
R0=$(reqs) T0=$(ticks)
wrk -t1 -c"$CONNS" -d"${DUR}s" --timeout 10s -s "$(dirname "$0")/wrk-chat.lua" "$URL" >"$WORK/wrk.out"
T1=$(ticks) R1=$(reqs)
N=$((R1 - R0))
awk -v c="$CONNS" -v l="$LAT" -v n="$N" -v d="$DUR" -v t=$((T1 - T0)) -v hz="$HZ" 'BEGIN {
    printf "conns %d latency_ms %d requests %d req_per_s %.0f fake_cpu_us_per_req %.1f\n",
        c, l, n, n / d, n ? t * 1e6 / hz / n : 0 }'
grep -q "Non-2xx" "$WORK/wrk.out" && { echo "cpu_per_req.sh: non-2xx answers:" >&2; cat "$WORK/wrk.out" >&2; exit 1; }
exit 0
