#!/usr/bin/env bash
# Installs every package vecdump's build, tests and demo need, from nothing.
# Idempotent: a second run only checks. Needs root (or sudo) for apt-get.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

debs=(build-essential cmake pkg-config
      librdkafka-dev libavro-dev libhiredis-dev zlib1g-dev libssl-dev
      libcmocka-dev libjansson-dev libzip-dev clang libclang-rt-14-dev
      redis-server redis-tools kcat
      default-jdk-headless maven)

missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  echo "install-deps: apt-get install ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python packages used by the interop tests: an Avro implementation and a
# Kafka client nobody here wrote (fastavro, the pure-Python kafka-python),
# and the runner of those tests. Module name = package name, except kafka.
for spec in fastavro:fastavro pytest:pytest kafka:kafka-python; do
  mod=${spec%%:*}; pkg=${spec#*:}
  if ! python3 -c "import $mod" 2>/dev/null; then
    echo "install-deps: pip install $pkg" >&2
    python3 -m pip install -q "$pkg" 2>/dev/null || python3 -m pip install -q --break-system-packages "$pkg"
  fi
done

# The Apache Kafka broker from Maven Central, cached under .cache/kafka.
"$here/kafka/fetch.sh"
