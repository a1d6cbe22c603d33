#!/usr/bin/env bash
# Fetch the Apache Kafka broker (kafka_2.13, version from pom.xml) and its
# runtime class path from Maven Central into deploy/kafka/.cache/lib.
#
#   deploy/kafka/fetch.sh [--force]
#
# Idempotent: a stamp file (.cache/lib/.stamp) records the pom's checksum; when
# it matches and the jars are present nothing is downloaded. The local Maven
# repository lives in deploy/kafka/.cache/m2 (gitignored), never in ~/.m2.
# Run the broker with: java -cp 'deploy/kafka/.cache/lib/*' kafka.Kafka FILE
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="$here/.cache"
lib="$cache/lib"
stamp="$lib/.stamp"
force=0
for a in "$@"; do
  case "$a" in
    --force) force=1 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "fetch.sh: unknown argument: $a" >&2; exit 2 ;;
  esac
done

kafka_version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")"
want="kafka=$kafka_version pom=$(sha256sum "$here/pom.xml" | cut -c1-16)"

if [[ $force -eq 0 && -f "$stamp" && "$(cat "$stamp")" == "$want" ]] &&
   compgen -G "$lib/kafka_2.13-$kafka_version.jar" >/dev/null; then
  exit 0
fi

command -v mvn >/dev/null || { echo "fetch.sh: mvn not found (run deploy/install-deps.sh)" >&2; exit 1; }

echo "fetch.sh: fetching Apache Kafka $kafka_version from Maven Central into $lib" >&2
start=$SECONDS
tmp="$cache/lib.tmp.$$"
rm -rf "$tmp"
mkdir -p "$cache"
trap 'rm -rf "$tmp"' EXIT
if ! mvn -q -B -Dstyle.color=never -f "$here/pom.xml" \
     -Dmaven.repo.local="$cache/m2" \
     dependency:copy-dependencies \
     -DoutputDirectory="$tmp" \
     -DincludeScope=runtime >"$cache/mvn.log" 2>&1; then
  sed 's/\x1b\[[0-9;]*m//g' "$cache/mvn.log" >&2
  echo "fetch.sh: mvn dependency:copy-dependencies failed (log: $cache/mvn.log)" >&2
  exit 1
fi
[[ -f "$tmp/kafka_2.13-$kafka_version.jar" ]] || {
  echo "fetch.sh: kafka_2.13-$kafka_version.jar missing after mvn" >&2; exit 1; }
echo "$want" > "$tmp/.stamp"
rm -rf "$lib"
mv "$tmp" "$lib"
trap - EXIT
jars=("$lib"/*.jar)
echo "fetch.sh: ${#jars[@]} jars in $lib ($((SECONDS - start))s)" >&2
