#!/usr/bin/env bash
# inferq quickstart: from a fresh Debian 12 checkout to a batch of requests
# answered through Kafka, in one command.
#
#   deploy/quickstart.sh
#
#   1. deploy/install-deps.sh --no-kafka   (Debian + Python packages; no Java needed)
#   2. cmake -G Ninja -B build && ninja -C build
#   3. deploy/local/stack.sh up             (embedded Kafka, Redis, fake model,
#                                            inferq-broker, inferq-worker on 127.0.0.1)
#   4. inferq batch run schemas/examples/batch.jsonl (12 requests) and print
#      the results from deploy/local/.run/sample-output.jsonl
#
# The stack keeps running afterwards; stop it with: deploy/local/stack.sh down
# INFERQ_BUILD_DIR (default build) chooses the build directory.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BUILD_DIR="${INFERQ_BUILD_DIR:-build}"
export INFERQ_BUILD_DIR="$BUILD_DIR"
CONFIG=deploy/local/inferq.yaml
INPUT=schemas/examples/batch.jsonl
OUTPUT=deploy/local/.run/sample-output.jsonl
start=$SECONDS

if [[ -t 1 ]]; then
  step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
else
  step() { printf '\n==> %s\n' "$*"; }
fi

step "1/4 Installing dependencies (deploy/install-deps.sh --no-kafka)"
deploy/install-deps.sh --no-kafka

step "2/4 Building inferq ($BUILD_DIR/)"
cmake -G Ninja -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C "$BUILD_DIR"

step "3/4 Starting the local stack (deploy/local/stack.sh up)"
deploy/local/stack.sh up --config "$CONFIG"
set -a
# shellcheck disable=SC1091 # written by stack.sh up
. deploy/local/.run/env
set +a

step "4/4 Sending $INPUT through inferq ($(grep -c . "$INPUT") requests)"
rm -f "$OUTPUT"
if ! timeout 300 "$BUILD_DIR/bin/inferq" --config "$CONFIG" batch run "$INPUT" -o "$OUTPUT"; then
  echo >&2
  echo "quickstart: the batch did not complete. Look at:" >&2
  echo "  deploy/local/stack.sh status" >&2
  echo "  tail -n 50 deploy/local/.run/broker.log deploy/local/.run/worker.log" >&2
  exit 1
fi

echo
echo "Results ($OUTPUT):"
cat "$OUTPUT"
echo
total="$(grep -c . "$OUTPUT" || true)"
ok="$(grep -c '"status": *"succeeded"' "$OUTPUT" || true)"
echo "$total results, $ok succeeded ($((SECONDS - start))s in all)."

cat <<EOF

The stack is still running (Kafka: ${INFERQ_KAFKA_MODE:-embedded} on $KAFKA_BOOTSTRAP, Redis on $REDIS_URL).
Where to look next:
  deploy/local/stack.sh status                    what runs, and whether it is ready
  tail -f deploy/local/.run/broker.log            JSON log lines (also worker.log, fake-model.log,
                                                  kafka.log, redis.log)
  kcat -b $KAFKA_BOOTSTRAP -C -t inferq.replies -o beginning -e
                                                  the results as they arrived on the reply topic
  set -a; . deploy/local/.run/env; set +a         the stack's addresses in your shell
  docs/operations.md                              the local stack in detail
Stop everything with:
  deploy/local/stack.sh down
EOF
