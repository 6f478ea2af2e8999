"""Helpers for the end-to-end tests: where the binaries and services are,
a tiny RESP client for Redis, Kafka through kafka-python (a client nobody
here wrote) and the Avro contract through fastavro.

Every test gets its own topics, consumer group and namespace, so tests never
see each other's messages.
"""
import io
import json
import os
import signal
import socket
import struct
import subprocess
import time
import uuid

import pytest

SRC = os.environ.get("VECDUMP_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("VECDUMP_BUILD_DIR", os.path.join(SRC, "build"))
KAFKA = os.environ.get("VECDUMP_TEST_KAFKA")
REDIS_PORT = int(os.environ.get("VECDUMP_TEST_REDIS_PORT", "0") or 0)

needs_services = pytest.mark.skipif(not KAFKA or not REDIS_PORT,
                                    reason="VECDUMP_TEST_KAFKA / VECDUMP_TEST_REDIS_PORT not set")


def binary(name):
    for sub in ("worker", "cli", ""):
        p = os.path.join(BUILD, sub, name)
        if os.path.exists(p):
            return p
    raise FileNotFoundError(name)


# ---- Redis: a minimal RESP2 client ----------------------------------------
class Redis:
    def __init__(self, port=None, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port or REDIS_PORT), timeout=30)
        self.buf = b""

    def close(self):
        self.sock.close()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("redis closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("redis closed")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RuntimeError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise RuntimeError("bad reply %r" % line)

    def __call__(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if isinstance(a, str):
                a = a.encode()
            elif isinstance(a, int):
                a = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))
        return self._reply()

    def keys(self, pattern):
        cursor, found = b"0", []
        while True:
            cursor, batch = self("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
            found.extend(batch)
            if cursor in (b"0", "0"):
                return sorted(found)

    def dump_namespace(self, ns, exclude=(b":task:", b":last_backup")):
        """Every key of the namespace with its type and exact content."""
        out = {}
        for k in self.keys(ns + ":*"):
            if any(x in k for x in exclude):
                continue
            t = self("TYPE", k)
            if t == "hash":
                flat = self("HGETALL", k)
                out[k] = ("hash", dict(zip(flat[::2], flat[1::2])))
            elif t == "zset":
                out[k] = ("zset", self("ZRANGE", k, 0, -1, "WITHSCORES"))
            elif t == "set":
                out[k] = ("set", sorted(self("SMEMBERS", k)))
            elif t == "string":
                out[k] = ("string", self("GET", k))
            else:
                out[k] = (t, None)
        return out


# ---- Avro contract through fastavro ---------------------------------------
def load_schemas():
    from fastavro.schema import load_schema, fingerprint, to_parsing_canonical_form
    from fastavro import parse_schema
    out = {}
    for name in ("Command", "TaskEvent", "HealthReport"):
        with open(os.path.join(SRC, "schemas", name + ".avsc")) as f:
            raw = json.load(f)
        parsed = parse_schema(raw)
        fp = fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO")
        out[name] = (parsed, bytes.fromhex(fp))  # fastavro gives the header bytes in order
    return out


def so_encode(schemas, name, record):
    import fastavro
    parsed, fp = schemas[name]
    b = io.BytesIO()
    fastavro.schemaless_writer(b, parsed, record)
    return b"\xc3\x01" + fp + b.getvalue()


def so_decode(schemas, data):
    import fastavro
    assert data[:2] == b"\xc3\x01", "not single-object encoding"
    for name, (parsed, fp) in schemas.items():
        if data[2:10] == fp:
            return name, fastavro.schemaless_reader(io.BytesIO(data[10:]), parsed)
    raise ValueError("unknown fingerprint %s" % data[2:10].hex())


# ---- one isolated worker setup ---------------------------------------------
class Setup:
    """Unique topics, group and namespace; workers and CLI runs bound to them."""

    def __init__(self, tmp_path, partitions=1, **worker_opts):
        self.uid = uuid.uuid4().hex[:10]
        self.ns = "t" + self.uid
        self.topics = {k: "vdtest.%s.%s" % (self.uid, k) for k in ("commands", "status", "health", "dlq")}
        self.group = "vdtest-" + self.uid
        self.backup_dir = str(tmp_path / "backups")
        os.makedirs(self.backup_dir, exist_ok=True)
        self.tmp = tmp_path
        self.partitions = partitions
        self.worker_opts = worker_opts
        self.workers = []

    def common_args(self):
        return ["--bootstrap", KAFKA, "--redis-port", str(REDIS_PORT), "--namespace", self.ns,
                "--topic-commands", self.topics["commands"], "--topic-status", self.topics["status"],
                "--topic-health", self.topics["health"], "--topic-dlq", self.topics["dlq"],
                "--backup-dir", self.backup_dir]

    def start_worker(self, name="w1", wait=True, **opts):
        o = {"jobs": 2, "health-interval": 30, "partitions": self.partitions, "lease-ms": 4000,
             "group": self.group, "worker-id": "%s-%s" % (name, self.uid)}
        o.update(self.worker_opts)
        o.update(opts)
        args = [binary("vecdump-worker")] + self.common_args()
        for k, v in o.items():
            args += ["--" + k, str(v)]
        log = open(self.tmp / ("%s.log" % name), "ab")
        p = subprocess.Popen(args, stdout=log, stderr=log, start_new_session=True)
        p.logpath = self.tmp / ("%s.log" % name)
        p.name = name
        self.workers.append(p)
        if wait:
            self.wait_log(p, "partitions assigned", 60)
        return p

    def wait_log(self, p, text, timeout):
        end = time.time() + timeout
        while time.time() < end:
            if text in p.logpath.read_text(errors="replace"):
                return
            if p.poll() is not None:
                raise AssertionError("worker %s exited %s:\n%s" % (p.name, p.returncode, p.logpath.read_text()))
            time.sleep(0.1)
        raise AssertionError("no %r in %s within %ss:\n%s" % (text, p.name, timeout, p.logpath.read_text()[-3000:]))

    def cli(self, *args, timeout=120, check=None):
        env = dict(os.environ, VECDUMP_NO_TTY="1")
        cmd = [binary("vecdump")] + list(args[:1]) + self.common_args() + list(args[1:])
        r = subprocess.run(cmd, capture_output=True, timeout=timeout, env=env)
        if check is not None:
            assert r.returncode == check, "rc=%s\nstdout=%s\nstderr=%s" % (r.returncode, r.stdout.decode(), r.stderr.decode())
        return r

    def stop(self):
        for p in self.workers:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.workers:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        r = Redis()
        for k in r.keys(self.ns + ":*"):
            r("DEL", k)
        r.close()

    # kafka-python access
    def producer(self):
        from kafka import KafkaProducer
        return KafkaProducer(bootstrap_servers=KAFKA)

    def read_topic(self, topic, until, timeout=60):
        """Reads `topic` from the beginning until until(messages) is true."""
        from kafka import KafkaConsumer
        c = KafkaConsumer(self.topics[topic], bootstrap_servers=KAFKA, auto_offset_reset="earliest",
                          enable_auto_commit=False, group_id=None, consumer_timeout_ms=500)
        msgs = []
        end = time.time() + timeout
        try:
            while time.time() < end:
                for m in c:
                    msgs.append(m)
                if until(msgs):
                    return msgs
            return msgs
        finally:
            c.close()


# ---- a throwaway Redis server (tests that kill / restart Redis) -------------
def free_port():
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A private redis-server on its own port, never the shared one: a test
    may kill and restart it. No persistence: a restart comes back empty."""

    def __init__(self, workdir, port=None):
        self.port = port or free_port()
        self.dir = str(workdir)
        os.makedirs(self.dir, exist_ok=True)
        self.proc = None
        self.logpath = os.path.join(self.dir, "redis-%d.log" % self.port)

    def start(self, timeout=10):
        log = open(self.logpath, "ab")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--dir", self.dir],
            stdout=log, stderr=log, start_new_session=True)
        end = time.time() + timeout
        while time.time() < end:
            try:
                r = Redis(self.port)
                try:
                    if r("PING") == "PONG":
                        return self
                finally:
                    r.close()
            except (OSError, ConnectionError, RuntimeError):
                pass
            if self.proc.poll() is not None:
                raise AssertionError("redis-server exited %s" % self.proc.returncode)
            time.sleep(0.05)
        raise AssertionError("redis-server on port %d not ready in %ss" % (self.port, timeout))

    def kill(self, sig=signal.SIGKILL):
        """Stops the server (SIGKILL by default: a crash) and waits for it."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(30)

    def client(self):
        return Redis(self.port)


# ---- additions for the artifact and import end-to-end tests ----------------
def run_local(setup, kind, *args, timeout=300, check=None, env=None):
    """`vecdump run KIND ...` (no Kafka) bound to the setup's Redis, namespace
    and backup volume. Setup.cli puts its options after the first argument,
    which `run` takes as the task kind, hence this helper."""
    e = dict(os.environ, VECDUMP_NO_TTY="1")
    if env:
        e.update(env)
    cmd = [binary("vecdump"), "run", kind] + setup.common_args() + list(args)
    r = subprocess.run(cmd, capture_output=True, timeout=timeout, env=e)
    if check is not None:
        assert r.returncode == check, "rc=%s\nstdout=%s\nstderr=%s" % (
            r.returncode, r.stdout.decode(), r.stderr.decode())
    return r


def json_lines(out):
    """The JSON objects of a --json run's stdout, one a line."""
    if isinstance(out, bytes):
        out = out.decode()
    return [json.loads(l) for l in out.splitlines() if l.strip().startswith("{")]


def delete_namespace(ns, port=None):
    """Deletes every key of the namespace (task records included)."""
    r = Redis(port)
    try:
        for k in r.keys(ns + ":*"):
            r("DEL", k)
    finally:
        r.close()
