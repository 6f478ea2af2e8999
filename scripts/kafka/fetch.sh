#!/usr/bin/env bash
# Fetches the Apache Kafka broker jars from Maven Central into .cache/kafka/libs
# (git-ignored). Idempotent: does nothing when the jars for this version exist.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
ver=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")
libs="$root/.cache/kafka/$ver/libs"
if ls "$libs"/kafka_2.13-"$ver".jar >/dev/null 2>&1; then exit 0; fi
echo "kafka-fetch: fetching Apache Kafka $ver from Maven Central" >&2
mkdir -p "$libs"
mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$libs" -DincludeScope=runtime >&2
ls "$libs"/kafka_2.13-"$ver".jar >/dev/null
