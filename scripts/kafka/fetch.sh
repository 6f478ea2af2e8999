#!/usr/bin/env bash
# Fetches the Apache Kafka broker jars from Maven Central into
# .cache/kafka/<version>/libs (git-ignored) and prints nothing on success.
# Idempotent: does nothing when the jars for this exact pom.xml are there
# (a stamp file holds the pom's SHA-256, so editing the pom refetches).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
ver=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")
libs="$root/.cache/kafka/$ver/libs"
stamp="$root/.cache/kafka/$ver/pom.sha256"
want=$(sha256sum "$here/pom.xml" | cut -d' ' -f1)
if [ -f "$libs/kafka_2.13-$ver.jar" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
echo "kafka-fetch: fetching Apache Kafka $ver from Maven Central" >&2
rm -rf "$libs.tmp"
mkdir -p "$libs.tmp"
mvn -q -B -Dstyle.color=never -f "$here/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$libs.tmp" -DincludeScope=runtime >&2
test -f "$libs.tmp/kafka_2.13-$ver.jar"
rm -rf "$libs"
mv "$libs.tmp" "$libs"
echo "$want" >"$stamp"
