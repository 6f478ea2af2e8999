"""End-to-end tests of the worker on a real Kafka broker and a real Redis:
command lifecycle, interop through fastavro + kafka-python, bad commands,
redelivery, takeover after SIGKILL, two workers, SIGTERM, cancel."""
import json
import os
import signal
import time
import uuid

import pytest

from vdharness import Redis, Setup, load_schemas, needs_services, so_decode, so_encode

pytestmark = needs_services


@pytest.fixture
def setup(tmp_path):
    s = Setup(tmp_path)
    yield s
    s.stop()


def events_of(schemas, msgs, task_id):
    out = []
    for m in msgs:
        if m.key == task_id.encode():
            name, ev = so_decode(schemas, m.value)
            assert name == "TaskEvent"
            out.append(ev)
    return out


def final_states(evs):
    return [e["state"] for e in evs if e["state"] in ("SUCCEEDED", "FAILED", "CANCELLED", "REJECTED")]


def seed(setup, docs=20, **kw):
    args = ["seed", "--docs", str(docs), "--chunks", "2", "--dim", "8"]
    for k, v in kw.items():
        args += ["--" + k.replace("_", "-"), str(v)]
    setup.cli(*args, check=0)


def command(task_id, ns, body):
    return {"task_id": task_id, "issued_at": int(time.time() * 1000), "namespace": ns,
            "requested_by": "pytest", "body": body}


def validate_body(fix=False):
    return ("dev.vecdump.v1.ValidateCommand", {"fix": fix, "checks": None})


def test_cli_validate_lifecycle(setup):
    seed(setup)
    setup.start_worker()
    r = setup.cli("validate", "--json", "--task-id", "life-1", check=0)
    lines = [json.loads(l) for l in r.stdout.decode().splitlines() if l.strip()]
    states = [l["state"] for l in lines]
    assert states[0] == "ACCEPTED", states
    assert "RUNNING" in states
    assert states[-1] == "SUCCEEDED"
    seqs = [l["seq"] for l in lines]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs
    assert lines[-1]["result"]["documents"] == 20
    print("lifecycle:", states, "seq", seqs)


def test_fastavro_kafka_python_interop(setup):
    """A client nobody here wrote: fastavro encodes from the .avsc files alone,
    kafka-python publishes and reads the events back."""
    seed(setup)
    setup.start_worker()
    schemas = load_schemas()
    tid = "interop-" + uuid.uuid4().hex[:8]
    p = setup.producer()
    p.send(setup.topics["commands"], key=tid.encode(),
           value=so_encode(schemas, "Command", command(tid, setup.ns, validate_body())))
    p.flush()
    p.close()
    msgs = setup.read_topic("status", lambda ms: "SUCCEEDED" in final_states(events_of(schemas, ms, tid)))
    evs = events_of(schemas, msgs, tid)
    assert [e["state"] for e in evs][0] == "ACCEPTED"
    assert evs[-1]["state"] == "SUCCEEDED"
    assert evs[-1]["kind"] == "VALIDATE"
    assert evs[-1]["result"]["documents"] == 20
    assert all(a["seq"] < b["seq"] for a, b in zip(evs, evs[1:]))


def test_bad_commands_rejected_and_dlqd(setup):
    setup.start_worker()
    schemas = load_schemas()
    p = setup.producer()
    good_fp = schemas["Command"][1]
    # 1. garbage
    p.send(setup.topics["commands"], key=b"garbage", value=b"\x00\x01hello world")
    # 2. a well-formed header with an unknown fingerprint
    body = so_encode(schemas, "Command", command("unk-fp", setup.ns, validate_body()))
    p.send(setup.topics["commands"], key=b"unk-fp", value=b"\xc3\x01" + b"\x11" * 8 + body[10:])
    # 3. an invalid field: a namespace that is not a valid id
    p.send(setup.topics["commands"], key=b"bad-ns",
           value=so_encode(schemas, "Command", command("bad-ns", "no:colons{here}", validate_body())))
    # 4. then a valid command
    p.send(setup.topics["commands"], key=b"good-1",
           value=so_encode(schemas, "Command", command("good-1", setup.ns, validate_body())))
    p.flush()
    p.close()
    assert good_fp != b"\x11" * 8
    msgs = setup.read_topic("status", lambda ms: "SUCCEEDED" in final_states(events_of(schemas, ms, "good-1")))
    assert final_states(events_of(schemas, msgs, "good-1")) == ["SUCCEEDED"]
    rej = events_of(schemas, msgs, "bad-ns")
    assert [e["state"] for e in rej] == ["REJECTED"]
    assert rej[0]["errors"][0]["code"] == "BAD_ID"
    dlq = setup.read_topic("dlq", lambda ms: len(ms) >= 3)
    assert len(dlq) == 3
    by_key = {m.key: m for m in dlq}
    codes = {k: dict(m.headers)["vecdump.error.code"].decode() for k, m in by_key.items()}
    assert codes[b"garbage"] == "AVRO_MAGIC"
    assert codes[b"unk-fp"] == "AVRO_FINGERPRINT"
    assert codes[b"bad-ns"] == "BAD_ID"
    assert by_key[b"garbage"].value == b"\x00\x01hello world"
    assert dict(by_key[b"garbage"].headers)["vecdump.source.topic"].decode() == setup.topics["commands"]
    # the worker is still alive
    assert setup.workers[0].poll() is None


def test_same_command_twice_runs_once(setup):
    seed(setup)
    setup.start_worker()
    schemas = load_schemas()
    tid = "dup-" + uuid.uuid4().hex[:8]
    value = so_encode(schemas, "Command", command(tid, setup.ns, validate_body()))
    p = setup.producer()
    p.send(setup.topics["commands"], key=tid.encode(), value=value)
    p.flush()
    setup.read_topic("status", lambda ms: final_states(events_of(schemas, ms, tid)))
    p.send(setup.topics["commands"], key=tid.encode(), value=value)
    p.flush()
    p.close()
    msgs = setup.read_topic("status", lambda ms: len(final_states(events_of(schemas, ms, tid))) >= 2)
    evs = events_of(schemas, msgs, tid)
    states = [e["state"] for e in evs]
    assert states.count("ACCEPTED") == 1, states
    assert final_states(evs) == ["SUCCEEDED", "SUCCEEDED"], states
    # the second final event is the first one re-published, byte for byte
    finals = [m.value for m in msgs if m.key == tid.encode() and so_decode(schemas, m.value)[1]["state"] == "SUCCEEDED"]
    assert finals[0] == finals[1]
    r = Redis()
    assert r("HGET", "%s:task:%s" % (setup.ns, tid), "attempt") == b"1"
    r.close()


def test_sigkill_mid_task_is_taken_over(setup):
    seed(setup)
    w1 = setup.start_worker("w1", **{"debug-task-delay-ms": 4000})
    schemas = load_schemas()
    tid = "kill-" + uuid.uuid4().hex[:8]
    p = setup.producer()
    p.send(setup.topics["commands"], key=tid.encode(),
           value=so_encode(schemas, "Command", command(tid, setup.ns, validate_body())))
    p.flush()
    p.close()
    setup.read_topic("status", lambda ms: "ACCEPTED" in [e["state"] for e in events_of(schemas, ms, tid)])
    os.killpg(w1.pid, signal.SIGKILL)
    w1.wait()
    setup.start_worker("w2", wait=False)
    msgs = setup.read_topic("status", lambda ms: final_states(events_of(schemas, ms, tid)), timeout=90)
    evs = events_of(schemas, msgs, tid)
    assert final_states(evs) == ["SUCCEEDED"], [e["state"] for e in evs]
    assert evs[-1]["attempt"] == 2
    assert evs[-1]["worker_id"].startswith("w2-")
    assert all(a["seq"] < b["seq"] for a, b in zip(evs, evs[1:]))


def test_two_workers_share_the_group(tmp_path):
    s = Setup(tmp_path, partitions=4)
    try:
        seed(s, docs=5)
        s.start_worker("w1", jobs=1, **{"debug-task-delay-ms": 1500})
        s.start_worker("w2", jobs=1, **{"debug-task-delay-ms": 1500})
        time.sleep(3)  # let the group settle with both members
        schemas = load_schemas()
        p = s.producer()
        tids = ["share-%d-%s" % (i, s.uid) for i in range(16)]
        for tid in tids:
            p.send(s.topics["commands"], key=tid.encode(),
                   value=so_encode(schemas, "Command", command(tid, s.ns, validate_body())))
        p.flush()
        p.close()

        def done(ms):
            return all(final_states(events_of(schemas, ms, t)) for t in tids)
        msgs = s.read_topic("status", done, timeout=120)
        workers = set()
        for t in tids:
            evs = events_of(schemas, msgs, t)
            assert final_states(evs) == ["SUCCEEDED"]
            workers.add(evs[-1]["worker_id"].split("-")[0])
        assert workers == {"w1", "w2"}, workers
    finally:
        s.stop()


def test_sigterm_mid_task_exits_zero(setup):
    seed(setup)
    w = setup.start_worker("w1", **{"debug-task-delay-ms": 2000})
    schemas = load_schemas()
    tid = "term-" + uuid.uuid4().hex[:8]
    p = setup.producer()
    p.send(setup.topics["commands"], key=tid.encode(),
           value=so_encode(schemas, "Command", command(tid, setup.ns, validate_body())))
    p.flush()
    p.close()
    setup.read_topic("status", lambda ms: "ACCEPTED" in [e["state"] for e in events_of(schemas, ms, tid)])
    os.killpg(w.pid, signal.SIGTERM)
    assert w.wait(60) == 0
    msgs = setup.read_topic("status", lambda ms: final_states(events_of(schemas, ms, tid)), timeout=10)
    assert final_states(events_of(schemas, msgs, tid)) == ["SUCCEEDED"]
    assert "worker stopped" in w.logpath.read_text()


def test_cancel_running_task(setup):
    seed(setup)
    setup.start_worker("w1", **{"debug-task-delay-ms": 30000})
    schemas = load_schemas()
    tid = "cancel-" + uuid.uuid4().hex[:8]
    r = setup.cli("validate", "--task-id", tid, "--no-follow", check=0)
    setup.read_topic("status", lambda ms: "RUNNING" in [e["state"] for e in events_of(schemas, ms, tid)])
    t0 = time.time()
    setup.cli("cancel", tid, "--json", check=0)
    msgs = setup.read_topic("status", lambda ms: final_states(events_of(schemas, ms, tid)), timeout=20)
    assert final_states(events_of(schemas, msgs, tid)) == ["CANCELLED"]
    assert time.time() - t0 < 15
    st = setup.cli("status", tid)
    assert st.returncode == 4, st.stderr
    assert json.loads(st.stdout)["state"] == "CANCELLED"


def test_embedded_kafka_serves_other_processes(tmp_path):
    """--embedded-kafka: librdkafka's mock cluster in the worker, usable by the
    CLI and by another process (kcat)."""
    import subprocess
    from vdharness import REDIS_PORT, binary
    ns = "emb" + uuid.uuid4().hex[:8]
    out = open(tmp_path / "out", "wb")
    log = open(tmp_path / "log", "wb")
    w = subprocess.Popen([binary("vecdump-worker"), "--embedded-kafka", "--redis-port", str(REDIS_PORT),
                          "--namespace", ns, "--backup-dir", str(tmp_path), "--worker-id", "emb-1"],
                         stdout=out, stderr=log, start_new_session=True)
    try:
        bootstrap = None
        for _ in range(100):
            text = (tmp_path / "out").read_text()
            if "bootstrap:" in text:
                bootstrap = text.split("bootstrap:")[1].split()[0]
                break
            time.sleep(0.1)
        assert bootstrap, (tmp_path / "log").read_text()
        env = dict(os.environ, VECDUMP_NO_TTY="1")
        common = ["--bootstrap", bootstrap, "--redis-port", str(REDIS_PORT), "--namespace", ns]
        subprocess.run([binary("vecdump"), "seed"] + common + ["--docs", "5", "--chunks", "2", "--dim", "4"],
                       check=True, capture_output=True)
        r = subprocess.run([binary("vecdump"), "validate"] + common + ["--timeout", "60"],
                           capture_output=True, env=env, timeout=90)
        assert r.returncode == 0, r.stderr.decode() + (tmp_path / "log").read_text()
        last = json.loads(r.stdout.decode().splitlines()[-1])
        assert last["state"] == "SUCCEEDED" and last["result"]["documents"] == 5
        # kcat (a separate program) sees the topics; kafka-python 3.x cannot
        # bootstrap from librdkafka's mock cluster (its ApiVersions are too old).
        md = subprocess.run(["kcat", "-L", "-b", bootstrap], capture_output=True, timeout=30)
        assert b'topic "vecdump.status"' in md.stdout, md.stderr
    finally:
        os.killpg(w.pid, signal.SIGTERM)
        assert w.wait(60) == 0, (tmp_path / "log").read_text()
        r = Redis()
        for k in r.keys(ns + ":*"):
            r("DEL", k)
        r.close()
