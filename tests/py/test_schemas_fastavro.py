"""Interop of the message codec with an Avro implementation nobody here wrote.

fastavro, given only the .avsc files in schemas/, must agree with vecdump's C
codec (driven through build/schemas/vd-schemas-tool) on the parsing canonical
form, the CRC-64-AVRO fingerprints and the single-object bytes, both ways:
fastavro-encoded Commands decode in C, C-encoded TaskEvents and HealthReports
decode in fastavro. Also: a Command written with an older schema version
decodes with defaults, and bad input is rejected with the right code.
"""
import copy
import io
import json
import os
import subprocess

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form

SRC = os.environ.get("VECDUMP_SOURCE_DIR",
                     os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("VECDUMP_BUILD_DIR", os.path.join(SRC, "build"))
TOOL = os.path.join(BUILD, "schemas", "vd-schemas-tool")
NAMES = ["Command", "TaskEvent", "HealthReport"]
NS = "dev.vecdump.v1."

# The 64-bit fingerprints (the header holds them little-endian), pinned in
# tests/test_schemas.c too: a change to an .avsc changes them.
CONTRACT = {
    "Command": "fec77755c42328e3",
    "TaskEvent": "900d340c6dcf1df6",
    "HealthReport": "b3f720c69853b016",
}


def avsc_path(name):
    return os.path.join(SRC, "schemas", name + ".avsc")


def load(name):
    with open(avsc_path(name), encoding="utf-8") as f:
        return json.load(f)


def parsed(name):
    return parse_schema(load(name))


def fp_bytes(schema_json):
    """The 8 fingerprint bytes of the single-object header, from fastavro."""
    canon = to_parsing_canonical_form(parse_schema(schema_json))
    return bytes.fromhex(fingerprint(canon, "CRC-64-AVRO"))


def single_object(schema_json, record):
    buf = io.BytesIO()
    schemaless_writer(buf, parse_schema(schema_json), record)
    return b"\xc3\x01" + fp_bytes(schema_json) + buf.getvalue()


def read_single_object(schema_json, data, **kw):
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == fp_bytes(schema_json)
    bio = io.BytesIO(data[10:])
    rec = schemaless_reader(bio, parse_schema(schema_json), None, **kw)
    assert bio.read() == b"", "trailing bytes after the body"
    return rec


def tool(*args, data=None, register=()):
    if not os.access(TOOL, os.X_OK):
        pytest.skip(f"{TOOL} not built")
    cmd = [TOOL]
    for r in register:
        cmd += ["--register", r]
    cmd += list(args)
    return subprocess.run(cmd, input=data, capture_output=True, timeout=60)


def tool_decode(data, tmp_path, register=()):
    p = tmp_path / "msg.bin"
    p.write_bytes(data)
    r = tool("decode", str(p), register=register)
    out = json.loads(r.stdout)
    return r.returncode, out


# ---- canonical form and fingerprints -----------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_canonical_form_and_fingerprint_match_fastavro(name):
    r = tool("canonical", avsc_path(name))
    assert r.returncode == 0, r.stderr
    canon, fp_hex = r.stdout.decode().splitlines()
    assert canon == to_parsing_canonical_form(parsed(name))
    # The tool prints the 64-bit value; the header carries it little-endian.
    le = int(fp_hex, 16).to_bytes(8, "little")
    assert le == fp_bytes(load(name))
    assert fp_hex == CONTRACT[name]


def test_every_field_has_doc_and_files_are_self_contained():
    def walk(s, where):
        if isinstance(s, list):
            for b in s:
                walk(b, where)
        elif isinstance(s, dict):
            if s.get("type") in ("record", "enum"):
                assert s.get("doc"), f"{where}: {s.get('name')} has no doc"
            for f in s.get("fields", []):
                assert f.get("doc"), f"{where}: field {f['name']} has no doc"
                walk(f["type"], where)
            for k in ("items", "values"):
                if k in s:
                    walk(s[k], where)
    for name in NAMES:
        s = load(name)
        assert s["namespace"] == "dev.vecdump.v1"
        walk(s, name)
        parse_schema(s)  # each file alone


TRICKY = [
    {"type": "record", "name": "R", "namespace": "a.b", "fields": [
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["X"]}},
        {"name": "o", "type": {"type": "record", "name": "O", "namespace": "c",
                               "fields": [{"name": "i", "type": {"type": "fixed", "name": "F", "size": 2}}]}},
        {"name": "r", "type": ["null", "E", "c.F", "R"], "default": None},
        {"name": "m", "type": {"type": "map", "values": {"type": "array", "items": "E"}}},
        {"name": "d", "type": "string", "doc": "x", "order": "ignore", "aliases": ["dd"]}]},
    {"type": "record", "name": "x.y.Top", "fields": [
        {"name": "k", "type": {"type": "record", "name": "Kid", "fields": []}},
        {"name": "k2", "type": "Kid"}]},
]


@pytest.mark.parametrize("schema", TRICKY)
def test_canonical_form_of_tricky_schemas(schema, tmp_path):
    p = tmp_path / "s.avsc"
    p.write_text(json.dumps(schema, indent=2))
    r = tool("canonical", str(p))
    assert r.returncode == 0, r.stderr
    canon, fp_hex = r.stdout.decode().splitlines()
    assert canon == to_parsing_canonical_form(parse_schema(schema))
    assert int(fp_hex, 16).to_bytes(8, "little") == fp_bytes(schema)


# ---- fastavro -> C ------------------------------------------------------------

BASE = {"task_id": "2f1c6b0e-1d7a-4c1e-9f0b-6a1e2c3d4e5f", "issued_at": 1733312345678,
        "namespace": "vec", "requested_by": None}

BODIES = [
    (NS + "ExportCommand", {"format": "AVRO", "compress": True, "include_files": True,
                            "verify_first": False, "destination": "nightly/vec.avro"}),
    (NS + "ExportCommand", {"format": "CSV", "compress": False, "include_files": False,
                            "verify_first": True, "destination": None}),
    (NS + "ImportCommand", {"source_path": None, "inline_data": b"a\x00b\x00\xff\n",
                            "validate_only": True, "on_conflict": "OVERWRITE",
                            "expected_sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}),
    (NS + "ImportCommand", {"source_path": "vec-x.jsonl.gz", "inline_data": None,
                            "validate_only": False, "on_conflict": "SKIP", "expected_sha256": None}),
    (NS + "ValidateCommand", {"fix": True, "checks": ["orphans", "dims", "\u00e9t\u00e9"]}),
    (NS + "ValidateCommand", {"fix": False, "checks": None}),
    (NS + "ValidateCommand", {"fix": False, "checks": []}),
    (NS + "HealthCommand", {"reason": "Zo\u00eb \u65e5\u672c \U0001f680"}),
    (NS + "CancelCommand", {"target_task_id": "other.task_1"}),
]


def b64(b):
    import base64
    return base64.b64encode(b).decode()


@pytest.mark.parametrize("branch,body", BODIES)
def test_fastavro_command_decodes_in_c(branch, body, tmp_path):
    rec = dict(BASE, requested_by="ops \u2713", body=(branch, body))
    data = single_object(load("Command"), rec)
    rc, out = tool_decode(data, tmp_path)
    assert rc == 0, out
    assert out["schema"] == "Command"
    assert out["fingerprint"] == int.from_bytes(data[2:10], "little").to_bytes(8, "big").hex()
    m = out["message"]
    assert m["task_id"] == BASE["task_id"]
    assert m["issued_at"] == BASE["issued_at"]
    assert m["namespace"] == "vec"
    assert m["requested_by"] == "ops \u2713"
    got = dict(m["body"])
    assert got.pop("type") == branch.split(".")[-1]
    want = {k: (b64(v) if isinstance(v, bytes) else v) for k, v in body.items()}
    assert got == want


def test_c_command_decodes_in_fastavro():
    desc = {"task_id": "t-1", "issued_at": 5, "namespace": "vec", "requested_by": None,
            "body": {"type": "ImportCommand", "inline_data": b64(b"\x00\x01\x02"),
                     "on_conflict": "FAIL", "validate_only": False}}
    r = tool("encode-command-json", data=json.dumps(desc).encode())
    assert r.returncode == 0, r.stderr
    rec = read_single_object(load("Command"), r.stdout, return_record_name=True)
    assert rec["task_id"] == "t-1"
    name, body = rec["body"]
    assert name == NS + "ImportCommand"
    assert body["inline_data"] == b"\x00\x01\x02"
    assert body["source_path"] is None and body["on_conflict"] == "FAIL"


# ---- C -> fastavro --------------------------------------------------------------

ISSUE = {"code": "ORPHAN_CHUNK", "severity": "ERROR", "message": "chunk without document",
         "key": "vec:chunk:{d1}:c1"}
EVENT = {"task_id": "t-42", "worker_id": "worker-\u03b1", "kind": "VALIDATE", "state": "SUCCEEDED",
         "seq": 7, "attempt": 2, "at": 1733312345678, "phase": "verify",
         "progress": {"done": 10, "total": 20, "bytes": 1 << 40, "rate_per_s": 123.456, "eta_ms": -1},
         "message": "done \u2713", "errors": [ISSUE], "warnings": []}
RESULTS = [
    None,
    ("ExportResult", {"artifact_path": "vec-20240101T000000Z-abcdefgh.avro", "size": 1234,
                      "sha256": "ab" * 32, "documents": 1, "chunks": 2, "files": 3, "duration_ms": 4}),
    ("ImportResult", {"imported": 5, "skipped": 0, "overwritten": 1, "conflicts": 2,
                      "conflict_ids": ["d1", "d2"], "documents": 6, "chunks": 60, "files": 0,
                      "duration_ms": 9, "validate_only": True}),
    ("ValidateResult", {"issues_by_check": {"ORPHAN_CHUNK": 1, "BAD_DIM": 3},
                        "issues_by_severity": {"ERROR": 4}, "fixed": 1, "quarantined": 1,
                        "unfixable": 0, "documents": 10, "chunks": 99, "files": 2,
                        "duration_ms": 12}),
]


@pytest.mark.parametrize("result", RESULTS)
def test_c_event_decodes_in_fastavro(result, tmp_path):
    ev = copy.deepcopy(EVENT)
    ev["result"] = None if result is None else dict(result[1], type=result[0])
    r = tool("encode-event-json", data=json.dumps(ev).encode())
    assert r.returncode == 0, r.stderr
    rec = read_single_object(load("TaskEvent"), r.stdout, return_record_name=True)
    for k in ("task_id", "worker_id", "kind", "state", "seq", "attempt", "at", "phase",
              "message", "warnings", "progress"):
        assert rec[k] == EVENT[k], k
    assert rec["errors"] == [ISSUE]
    if result is None:
        assert rec["result"] is None
    else:
        name, body = rec["result"]
        assert name == NS + result[0]
        assert body == result[1]
    # And back: the same bytes through fastavro decode in C to the same JSON.
    rec2 = read_single_object(load("TaskEvent"), r.stdout)
    again = single_object(load("TaskEvent"), rec2 if result is None else
                          dict(rec2, result=(NS + result[0], rec2["result"])))
    assert again == r.stdout
    rc, out = tool_decode(again, tmp_path)
    assert rc == 0 and out["schema"] == "TaskEvent"
    assert out["message"]["errors"] == [ISSUE]


@pytest.mark.parametrize("with_backup", [False, True])
def test_c_health_decodes_in_fastavro(with_backup):
    h = {"worker_id": "w1", "at": 1, "status": "DEGRADED",
         "components": [{"name": "redis", "status": "HEALTHY", "latency_ms": 0.25, "detail": "7.0.15"},
                        {"name": "kafka", "status": "UNHEALTHY", "latency_ms": -1.0, "detail": "down"}],
         "metrics": {"documents": 10, "chunks": 100, "files": 0, "used_memory": 1 << 20,
                     "documents_per_mb": 10.0, "chunks_per_document": 10.0, "dim": 384},
         "active": [{"task_id": "t1", "kind": "EXPORT", "state": "RUNNING", "percent": 42.5}],
         "last_backup": ({"task_id": "t0", "at": 5, "age_s": 60, "artifact_path": "a.avro"}
                         if with_backup else None),
         "issues": [{"code": "BACKUP_STALE", "severity": "WARNING", "message": "old", "key": None}]}
    r = tool("encode-health-json", data=json.dumps(h).encode())
    assert r.returncode == 0, r.stderr
    rec = read_single_object(load("HealthReport"), r.stdout)
    assert rec == h


# ---- evolution and rejection ------------------------------------------------------

def older_command():
    """Command as it might have been: no requested_by, no verify_first, no
    CancelCommand, issued_at an int, ExportFormat without AVRO."""
    return {"type": "record", "name": "Command", "namespace": "dev.vecdump.v1", "fields": [
        {"name": "task_id", "type": "string"},
        {"name": "issued_at", "type": "int"},
        {"name": "namespace", "type": "string"},
        {"name": "body", "type": [
            {"type": "record", "name": "ValidateCommand", "fields": [{"name": "fix", "type": "boolean"}]},
            {"type": "record", "name": "ExportCommand", "fields": [
                {"name": "format", "type": {"type": "enum", "name": "ExportFormat", "symbols": ["CSV", "JSONL"]}},
                {"name": "compress", "type": "boolean"},
                {"name": "include_files", "type": "boolean"},
                {"name": "destination", "type": ["null", "string"]}]}]}]}


def test_older_writer_schema_decodes_with_defaults(tmp_path):
    old = older_command()
    p = tmp_path / "Command-v0.avsc"
    p.write_text(json.dumps(old))
    rec = {"task_id": "old-1", "issued_at": 12345, "namespace": "vec",
           "body": (NS + "ExportCommand", {"format": "JSONL", "compress": True,
                                           "include_files": False, "destination": None})}
    data = single_object(old, rec)
    rc, out = tool_decode(data, tmp_path)
    assert rc == 2 and out["error"] == "AVRO_FINGERPRINT"
    rc, out = tool_decode(data, tmp_path, register=[str(p)])
    assert rc == 0, out
    m = out["message"]
    assert m["requested_by"] is None
    assert m["body"] == {"type": "ExportCommand", "format": "JSONL", "compress": True,
                         "include_files": False, "verify_first": False, "destination": None}


def test_rejections_carry_code_and_task_id(tmp_path):
    cmd = load("Command")
    bad_id = dict(BASE, task_id="no spaces allowed", body=(NS + "HealthCommand", {"reason": None}))
    rc, out = tool_decode(single_object(cmd, bad_id), tmp_path)
    assert rc == 2 and out["error"] == "BAD_ID" and out["task_id"] == "no spaces allowed"

    good = single_object(cmd, dict(BASE, body=(NS + "CancelCommand", {"target_task_id": "x"})))
    rc, out = tool_decode(good[:-1], tmp_path)
    assert rc == 2 and out["error"] == "AVRO_TRUNCATED" and out["task_id"] == BASE["task_id"]
    rc, out = tool_decode(good + b"\x00", tmp_path)
    assert rc == 2 and out["error"] == "AVRO_DECODE"
    rc, out = tool_decode(b"\x00\x01" + good[2:], tmp_path)
    assert rc == 2 and out["error"] == "AVRO_MAGIC" and out["task_id"] is None
    # A fastavro body under a header whose fingerprint no one registered.
    rc, out = tool_decode(good[:2] + b"\x01" * 8 + good[10:], tmp_path)
    assert rc == 2 and out["error"] == "AVRO_FINGERPRINT"
    # Both sources of an import.
    both = dict(BASE, body=(NS + "ImportCommand", {"source_path": "a", "inline_data": b"x",
                                                   "validate_only": False, "on_conflict": "FAIL",
                                                   "expected_sha256": None}))
    rc, out = tool_decode(single_object(cmd, both), tmp_path)
    assert rc == 2 and out["error"] == "BAD_FIELD"
