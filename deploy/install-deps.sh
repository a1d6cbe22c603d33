#!/usr/bin/env bash
# Install what building and testing inferq needs on Debian 12, idempotently.
#
#   deploy/install-deps.sh [--no-python] [--no-kafka]
#
#   1. Debian packages (compilers, C libraries, redis-server, kcat, Java 17 and
#      Maven for Kafka): checked with dpkg-query; `apt-get update` and
#      `apt-get install` run only when something is missing.
#   2. Python packages of tests/requirements.txt (pinned): `pip install` runs
#      only when an installed version differs from its pin. --no-python skips.
#   3. Apache Kafka's jars from Maven Central (deploy/kafka/fetch.sh, skipped
#      when present). --no-kafka skips this and Java/Maven: the embedded Kafka
#      (the default of deploy/local/stack.sh) needs neither.
#
# A second run with everything in place takes about a second.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
with_python=1
with_kafka=1
for a in "$@"; do
  case "$a" in
    --no-python) with_python=0 ;;
    --no-kafka) with_kafka=0 ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install-deps: unknown argument: $a" >&2; exit 2 ;;
  esac
done

start=$SECONDS
log() { printf 'install-deps: %s\n' "$*" >&2; }

SUDO=()
if [[ $EUID -ne 0 ]]; then
  if command -v sudo >/dev/null; then
    SUDO=(sudo)
  else
    log "not root and no sudo: installing packages will fail"
  fi
fi

# ------------------------------------------------------------ Debian packages
pkgs=(build-essential cmake ninja-build pkg-config
      librdkafka-dev libcurl4-openssl-dev libhiredis-dev libavro-dev libpcre2-dev
      libjansson-dev libyaml-dev libmicrohttpd-dev libcmocka-dev libssl-dev libjemalloc-dev
      redis-server kcat clang clang-format curl ca-certificates chromium)

java_major() {
  local v
  v="$(java -version 2>&1 | awk -F'"' '/version/ { print $2; exit }')" || true
  [[ -n "$v" ]] || { echo 0; return; }
  [[ "$v" == 1.* ]] && v="${v#1.}"
  echo "${v%%[.+-]*}"
}

if [[ $with_kafka -eq 1 ]]; then
  if ! command -v java >/dev/null || (( $(java_major) < 17 )); then
    pkgs+=(openjdk-17-jre-headless)
  fi
  command -v mvn >/dev/null || pkgs+=(maven)
fi
if [[ $with_python -eq 1 ]]; then
  python3 -m pip --version >/dev/null 2>&1 || pkgs+=(python3-pip)
  pkgs+=(python3-venv) # tests/run.sh installs the Python client's wheel into a fresh venv
fi

missing=()
if command -v dpkg-query >/dev/null; then
  for p in "${pkgs[@]}"; do
    [[ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)" == installed ]] || missing+=("$p")
  done
else
  log "dpkg-query not found: not a Debian system, skipping system packages (need: ${pkgs[*]})"
fi

if [[ ${#missing[@]} -gt 0 ]]; then
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  log "Debian packages installed ($((SECONDS - start))s)"
else
  log "Debian packages: all ${#pkgs[@]} present"
fi

# ------------------------------------------------------------ Python packages
if [[ $with_python -eq 1 ]]; then
  req="$ROOT/tests/requirements.txt"
  # Exit 0 when every `name==version` pin of the file is installed as pinned.
  if python3 - "$req" <<'EOF'
import re, sys
from importlib.metadata import version, PackageNotFoundError
for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    m = re.fullmatch(r"([A-Za-z0-9_.\-\[\]]+?)(\[[^\]]*\])?==([^\s;]+)", line)
    if not m:
        sys.exit(1)
    try:
        if version(m.group(1)) != m.group(3):
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
EOF
  then
    log "Python packages: requirements satisfied"
  else
    log "installing Python packages from tests/requirements.txt"
    pip_args=(-q --disable-pip-version-check --prefer-binary -r "$req")
    # Debian's system Python refuses pip installs outside a venv (PEP 668).
    if python3 -c 'import os, sys, sysconfig; sys.exit(0 if sys.prefix == sys.base_prefix and os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")) else 1)'; then
      pip_args+=(--break-system-packages)
    fi
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install "${pip_args[@]}"
  fi
fi

# ------------------------------------------------------------- Kafka jars
if [[ $with_kafka -eq 1 ]]; then
  "$ROOT/deploy/kafka/fetch.sh"
  jars=("$ROOT"/deploy/kafka/.cache/lib/kafka_2.13-*.jar)
  log "Kafka jars: ${jars[0]##*/} and its runtime class path in deploy/kafka/.cache/lib"
fi

log "done in $((SECONDS - start))s"
