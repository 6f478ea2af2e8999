"""Import must show (SPEC §4, §5), end to end through the real worker on a
real Kafka broker and a real Redis:

(a) export then import gives back every key and field byte for byte, in every
    format the export writes;
(b) a corrupt or unsafe artifact ends FAILED with an error code saying what is
    wrong, and Redis is byte-for-byte unchanged (see CORRUPT_CODES);
(c) conflicts: FAIL writes nothing, SKIP keeps existing documents untouched,
    OVERWRITE leaves no stale chunk of the old version, validate_only writes
    nothing and reports the counts;
(d) a worker SIGKILLed in the middle of the write phase: a second worker takes
    the task over when the lease expires, resumes, and the namespace ends
    holding exactly the artifact's content.
"""
import hashlib
import json
import os
import signal
import struct
import subprocess
import time
import zipfile

import pytest

from vdharness import (Redis, Setup, binary, delete_namespace, json_lines, needs_services)

pytestmark = needs_services


@pytest.fixture
def setup(tmp_path):
    s = Setup(tmp_path, **{"lease-ms": 3000})
    yield s
    s.stop()
    for ns in getattr(s, "extra_ns", []):
        delete_namespace(ns)


def other_ns(s, tag):
    ns = "%s%s" % (s.ns, tag)
    s.extra_ns = getattr(s, "extra_ns", []) + [ns]
    return ns


def task(s, kind, *args, ns=None, timeout=300):
    """Runs a command through the worker; returns (rc, final event, all events)."""
    extra = ["--namespace", ns] if ns else []
    r = s.cli(kind, *(list(args) + extra + ["--json"]), timeout=timeout)
    evs = json_lines(r.stdout)
    assert evs, "no events: rc=%s stderr=%s" % (r.returncode, r.stderr.decode())
    return r.returncode, evs[-1], evs


def export(s, *args):
    rc, ev, _ = task(s, "export", *args)
    assert rc == 0 and ev["state"] == "SUCCEEDED", ev
    return ev["result"]["artifact_path"]


def dump(ns):
    r = Redis()
    try:
        return r.dump_namespace(ns)
    finally:
        r.close()


def renamed(d, old, new):
    """A dump with its keys moved from namespace old to namespace new."""
    o, n = old.encode() + b":", new.encode() + b":"
    return {n + k[len(o):]: v for k, v in d.items()}


def seed(s, docs=20, chunks=3, dim=8, ns=None, files=True, timeout=300):
    args = ["seed", "--docs", str(docs), "--chunks", str(chunks), "--dim", str(dim),
            "--text-bytes", "120", "--file-bytes", "200"]
    if files:
        args.append("--files")
    if ns:
        args += ["--namespace", ns]
    s.cli(*args, check=0, timeout=timeout)


# ---- (a) round trip -----------------------------------------------------------
FORMATS = [("JSONL", False), ("JSONL", True), ("CSV", False), ("AVRO", False)]


def test_round_trip_every_format(setup):
    s = setup
    seed(s)
    r = Redis()
    # the hard cases: binary chunk text, a file full of NULs
    r("HSET", "%s:chunk:{doc-000002}:c0001" % s.ns, "text", b"nul\x00and \xff\xfe bytes")
    blob = b"\x00" * 50 + bytes(range(256))
    r("SET", "%s:file:{doc-000003}" % s.ns, blob)
    r("HSET", "%s:doc:{doc-000003}" % s.ns, "size", str(len(blob)),
      "sha256", hashlib.sha256(blob).hexdigest())
    r.close()
    s.start_worker()
    before = dump(s.ns)
    assert len(before) > 20 * 5
    for fmt, gz in FORMATS:
        args = ["--format", fmt, "--include-files"] + (["--compress"] if gz else [])
        path = export(s, *args)
        delete_namespace(s.ns)
        assert dump(s.ns) == {}
        rc, ev, _ = task(s, "import", "--source", path)
        assert rc == 0 and ev["state"] == "SUCCEEDED", ev
        assert ev["result"]["imported"] == 20
        after = dump(s.ns)
        diff = [k for k in set(after) | set(before) if after.get(k) != before.get(k)]
        assert after == before, "%s%s: %d keys differ, e.g. %s" % (
            fmt, "+gz" if gz else "", len(diff), sorted(diff)[:3])
        print("round trip %s%s via %s: %d keys equal byte for byte"
              % (fmt, "+gz" if gz else "", path, len(after)))


# ---- (b) corrupt artifacts ------------------------------------------------------
def jsonl_lines(path):
    return open(path, "rb").read().split(b"\n")[:-1]


def write_jsonl(path, lines, fix_trailer=True):
    """Writes lines; with fix_trailer the trailer's counts and SHA-256 are
    recomputed so a reader gets past the checksum to the semantic checks."""
    if fix_trailer:
        body = lines[:-1]
        recs = [json.loads(l) for l in body]
        tr = json.loads(lines[-1])
        tr["documents"] = sum(1 for x in recs if x["type"] == "document")
        tr["chunks"] = sum(1 for x in recs if x["type"] == "chunk")
        tr["files"] = sum(1 for x in recs if x["type"] == "file")
        tr["sha256"] = hashlib.sha256(b"".join(l + b"\n" for l in body)).hexdigest()
        lines = body + [json.dumps(tr, separators=(",", ":")).encode()]
    with open(path, "wb") as f:
        f.write(b"".join(l + b"\n" for l in lines))


def edit_first(lines, rtype, fn, nth=0):
    """Applies fn to the nth record of type rtype (as a dict) and re-serialises it."""
    seen = 0
    for i, l in enumerate(lines):
        rec = json.loads(l)
        if rec["type"] == rtype:
            if seen == nth:
                out = fn(rec)
                lines[i] = out if isinstance(out, bytes) else json.dumps(rec, separators=(",", ":"), ensure_ascii=False).encode()
                return lines
            seen += 1
    raise AssertionError("no %s record" % rtype)


def rewrite_zip(src, dst, replace=None, extra=()):
    """Copies a ZIP, replacing members (name -> bytes) and fixing the inner
    manifest's SHA-256 and size of each replaced member (so the reader gets
    past the checksums to the content); `extra` members are added as is."""
    replace = replace or {}
    zin = zipfile.ZipFile(src)
    man = json.loads(zin.read("manifest.json"))
    for name, data in replace.items():
        assert name in man["members"], name
        man["members"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            if info.filename != "manifest.json":
                zout.writestr(info.filename, replace.get(info.filename, zin.read(info.filename)))
        for name, data in extra:
            zout.writestr(name, data)
        zout.writestr("manifest.json", json.dumps(man, indent=2))


def zip_bomb(src, dst, member, mib=200):
    """Copies a ZIP and adds `member`: mib MiB of zeros, deflated (~1000:1),
    streamed so the test never holds it in memory."""
    zin = zipfile.ZipFile(src)
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            if info.filename != member:
                zout.writestr(info.filename, zin.read(info.filename))
        zero = b"\x00" * (1 << 20)
        with zout.open(member, "w", force_zip64=True) as f:
            for _ in range(mib):
                f.write(zero)


# What each corruption must be reported as (errors[0].code of the FAILED event).
# Codes shared on purpose: a flipped bit and a wrong expected_sha256 are both
# CHECKSUM (the bytes are not the bytes the checksum promises); a gzip stream
# cut in half and a JSONL without its trailer are both TRUNCATED (the end is
# missing), while a gzip stream with a damaged deflate block is GZIP.
CORRUPT_CODES = {
    "truncated_gzip": "TRUNCATED",
    "corrupt_gzip": "GZIP",
    "flipped_bit": "CHECKSUM",
    "wrong_expected_sha256": "CHECKSUM",
    "missing_trailer": "TRUNCATED",
    "malformed_json": "BAD_JSON",
    "csv_unbalanced_quote": "CSV",
    "missing_document": "REFERENCE",
    "wrong_dimension": "BAD_DIM",
    "nan": "BAD_FLOAT",
    "zip_member_dotdot": "ZIP",
    "zip_bomb": "ZIP_BOMB",
    "path_dotdot": "PATH",
}


def test_corrupt_artifacts_fail_and_write_nothing(setup):
    s = setup
    seed(s)
    s.start_worker()
    jl = export(s, "--format", "JSONL", "--include-files")
    gz = export(s, "--format", "JSONL", "--compress")
    cz = export(s, "--format", "CSV", "--include-files")
    d = s.backup_dir
    P = lambda n: os.path.join(d, n)
    good = jsonl_lines(P(jl))
    cases = {}

    raw = open(P(gz), "rb").read()
    open(P("c-trunc.jsonl.gz"), "wb").write(raw[:len(raw) // 2])
    cases["truncated_gzip"] = ["--source", "c-trunc.jsonl.gz"]
    bad = bytearray(raw)
    for k in range(len(bad) // 3, len(bad) // 3 + 64):  # garbage in the deflate stream
        bad[k] ^= 0xA5
    open(P("c-corrupt.jsonl.gz"), "wb").write(bytes(bad))
    cases["corrupt_gzip"] = ["--source", "c-corrupt.jsonl.gz"]

    body = bytearray(open(P(jl), "rb").read())
    i = body.index(b'"text":"') + 12
    # a lower-case ASCII letter outside any escape sequence (\n, \u00e9) stays
    # valid JSON when one bit flips: only the trailer's checksum can tell
    while not (0x61 <= body[i] <= 0x79 and b"\\" not in body[i - 6:i]):
        i += 1
    body[i] ^= 0x01
    open(P("c-flip.jsonl"), "wb").write(bytes(body))
    cases["flipped_bit"] = ["--source", "c-flip.jsonl"]

    cases["wrong_expected_sha256"] = ["--source", jl, "--expected-sha256", "ab" * 32]

    write_jsonl(P("c-notrailer.jsonl"), good[:-1], fix_trailer=False)
    cases["missing_trailer"] = ["--source", "c-notrailer.jsonl"]

    lines = list(good)
    lines[2] = lines[2][: len(lines[2]) // 2]  # a chunk line cut in the middle
    write_jsonl(P("c-badjson.jsonl"), lines, fix_trailer=False)
    cases["malformed_json"] = ["--source", "c-badjson.jsonl"]

    zc = zipfile.ZipFile(P(cz))
    chunks_csv = zc.read("chunks.csv")
    rows = chunks_csv.split(b"\r\n")
    rows[1] = b'"' + rows[1]  # an opening quote that never closes
    rewrite_zip(P(cz), P("c-quote.csv.zip"), replace={"chunks.csv": b"\r\n".join(rows)})
    cases["csv_unbalanced_quote"] = ["--source", "c-quote.csv.zip"]

    def ghost(rec):
        rec["doc_id"] = "ghost-doc"
    write_jsonl(P("c-ref.jsonl"), edit_first(list(good), "chunk", ghost, nth=4))
    cases["missing_document"] = ["--source", "c-ref.jsonl"]

    def shorter(rec):
        rec["embedding"] = rec["embedding"][:-1]
    write_jsonl(P("c-dim.jsonl"), edit_first(list(good), "chunk", shorter, nth=4))
    cases["wrong_dimension"] = ["--source", "c-dim.jsonl"]

    def nan(rec):
        rec["embedding"][0] = 0.0
        line = json.dumps(rec, separators=(",", ":"), ensure_ascii=False).encode()
        return line.replace(b'"embedding":[0.0,', b'"embedding":[NaN,', 1)
    write_jsonl(P("c-nan.jsonl"), edit_first(list(good), "chunk", nan, nth=4))
    assert b"[NaN," in open(P("c-nan.jsonl"), "rb").read()
    cases["nan"] = ["--source", "c-nan.jsonl"]

    rewrite_zip(P(cz), P("c-dotdot.csv.zip"), extra=[("../x", b"escape")])
    cases["zip_member_dotdot"] = ["--source", "c-dotdot.csv.zip"]

    zip_bomb(P(cz), P("c-bomb.csv.zip"), "files/doc-000001")
    print("zip bomb: %d bytes on disk" % os.path.getsize(P("c-bomb.csv.zip")))
    cases["zip_bomb"] = ["--source", "c-bomb.csv.zip"]

    cases["path_dotdot"] = ["--source", "../" + os.path.basename(d) + "/" + jl]

    assert set(cases) == set(CORRUPT_CODES)
    target = other_ns(s, "b")
    # a populated target (same dim, ids that cannot conflict): corrupt imports
    # must leave every byte of it alone
    r = Redis()
    r("HSET", target + ":meta", "schema_version", "1", "dim", "8", "model", "vecdump-seed",
      "distance", "COSINE", "created_at", "1700000000000")
    r("HSET", target + ":doc:{sentinel}", "id", "sentinel", "title", "keep me", "size", "0",
      "sha256", "", "created_at", "1", "updated_at", "1", "chunk_count", "0", "metadata", "{}")
    r("SADD", target + ":docs", "sentinel")
    r.close()
    before = dump(target)
    got = {}
    for name, args in cases.items():
        rc, ev, _ = task(s, "import", *args, ns=target)
        code = ev["errors"][0]["code"] if ev.get("errors") else None
        got[name] = code
        print("%-22s rc=%d %s %s: %s" % (name, rc, ev["state"], code, ev.get("message", "")[:150]))
        assert rc == 1 and ev["state"] == "FAILED", (name, ev)
        assert dump(target) == before, name
    assert got == CORRUPT_CODES
    # distinct where the causes differ: 11 codes for 13 cases (see CORRUPT_CODES)
    assert len(set(got.values())) == 11


# ---- (c) conflicts and validate_only ------------------------------------------
def test_conflicts_and_validate_only(setup):
    s = setup
    seed(s)
    s.start_worker()
    art = export(s, "--format", "JSONL", "--include-files")
    src = dump(s.ns)
    b = other_ns(s, "c")
    want = renamed(src, s.ns, b)

    # validate_only into an empty namespace: counts, nothing written
    rc, ev, _ = task(s, "import", "--source", art, "--validate-only", ns=b)
    assert rc == 0 and ev["state"] == "SUCCEEDED", ev
    res = ev["result"]
    assert res["validate_only"] is True
    assert (res["documents"], res["chunks"], res["files"]) == (20, 60, 20)
    assert res["imported"] == 20 and res["conflicts"] == 0
    assert dump(b) == {}

    rc, ev, _ = task(s, "import", "--source", art, ns=b)
    assert rc == 0 and ev["result"]["imported"] == 20
    assert dump(b) == want

    # local edits that the conflict modes must respect or undo
    r = Redis()
    r("HSET", "%s:doc:{doc-000001}" % b, "title", "edited locally")
    r("HSET", "%s:chunk:{doc-000001}:cextra" % b, "id", "cextra", "doc_id", "doc-000001",
      "seq", "99", "text", "stale", "embedding", struct.pack("<8f", *([0.5] * 8)), "metadata", "{}")
    r("ZADD", "%s:doc:{doc-000001}:chunks" % b, "99", "cextra")
    r.close()
    edited = dump(b)

    # validate_only with conflicts answers what the import would do, writing
    # nothing: with FAIL it fails with CONFLICT, with SKIP it would skip them all
    rc, ev, _ = task(s, "import", "--source", art, "--validate-only", ns=b)
    assert rc == 1 and ev["state"] == "FAILED" and ev["errors"][0]["code"] == "CONFLICT", ev
    assert ev["result"]["validate_only"] is True and ev["result"]["conflicts"] == 20
    rc, ev, _ = task(s, "import", "--source", art, "--validate-only", "--on-conflict", "SKIP", ns=b)
    assert rc == 0 and ev["state"] == "SUCCEEDED", ev
    res = ev["result"]
    assert (res["conflicts"], res["skipped"], res["imported"]) == (20, 20, 0), res
    assert dump(b) == edited

    # FAIL: nothing written, CONFLICT with the count and the first ids
    rc, ev, _ = task(s, "import", "--source", art, ns=b)
    assert rc == 1 and ev["state"] == "FAILED", ev
    assert ev["errors"][0]["code"] == "CONFLICT"
    res = ev["result"]
    assert res["conflicts"] == 20
    assert res["conflict_ids"] and set(res["conflict_ids"]) <= {"doc-%06d" % i for i in range(1, 21)}
    assert dump(b) == edited

    # SKIP: existing documents untouched, missing ones imported
    r = Redis()
    for k in r.keys("%s:*{doc-000002}*" % b):
        r("DEL", k)
    r("SREM", "%s:docs" % b, "doc-000002")
    r.close()
    rc, ev, _ = task(s, "import", "--source", art, "--on-conflict", "SKIP", ns=b)
    assert rc == 0 and ev["state"] == "SUCCEEDED", ev
    assert (ev["result"]["imported"], ev["result"]["skipped"]) == (1, 19)
    assert dump(b) == edited  # doc-000002 is back exactly, doc-000001 still edited

    # OVERWRITE: the artifact's version, no stale chunk of the old one
    rc, ev, _ = task(s, "import", "--source", art, "--on-conflict", "OVERWRITE", ns=b)
    assert rc == 0 and ev["state"] == "SUCCEEDED", ev
    assert ev["result"]["overwritten"] == 20
    r = Redis()
    assert r("EXISTS", "%s:chunk:{doc-000001}:cextra" % b) == 0
    r.close()
    assert dump(b) == want


# ---- (d) a worker killed in the middle of the write ----------------------------
def test_import_killed_mid_write_is_resumed(setup):
    s = setup
    t0 = time.time()
    seed(s, docs=20000, chunks=4, dim=128, files=False, timeout=600)
    w1 = s.start_worker("w1")
    art = export(s, "--format", "JSONL")
    src = dump(s.ns)
    b = other_ns(s, "d")
    print("seed + export of 20k docs x 4 chunks: %.1fs" % (time.time() - t0))

    cmd = [binary("vecdump"), "import"] + s.common_args() + [
        "--source", art, "--namespace", b, "--json", "--task-id", "resume-" + s.uid]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=dict(os.environ, VECDUMP_NO_TTY="1"))
    events = []
    try:
        while True:
            line = p.stdout.readline()
            assert line, "follower ended early: %s" % p.stderr.read().decode()
            ev = json.loads(line)
            events.append(ev)
            assert ev["state"] not in ("SUCCEEDED", "FAILED"), "the import ended before the kill"
            if ev["state"] == "RUNNING" and ev.get("phase") == "write":
                break
        time.sleep(0.3)  # let it write some documents
        os.killpg(w1.pid, signal.SIGKILL)
        w1.wait()
        r = Redis()
        partial = r("SCARD", b + ":docs")
        r.close()
        print("killed w1 in the write phase with %d of 20000 documents written" % partial)
        assert 0 < partial < 20000
        s.start_worker("w2", wait=False)
        out, err = p.communicate(timeout=300)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    events += json_lines(out)
    final = events[-1]
    assert p.returncode == 0 and final["state"] == "SUCCEEDED", final
    assert final["attempt"] == 2 and final["worker_id"].startswith("w2-"), final
    assert final["result"]["documents"] == 20000
    assert dump(b) == renamed(src, s.ns, b)
    print("resumed by %s: %s" % (final["worker_id"], final.get("message")))


# ---- export of defective data, through the worker -------------------------------
def test_export_of_defective_data_warns_and_imports(setup):
    """Chunks that no valid artifact can hold are skipped, each a WARNING of the
    SUCCEEDED event with its Redis key, and the artifact imports cleanly."""
    s = setup
    s.cli("seed", "--docs", "20", "--chunks", "3", "--dim", "8", "--missing-embeddings", "2",
          "--wrong-dims", "2", "--nans", "1", check=0)
    s.start_worker()
    rc, ev, _ = task(s, "export", "--format", "AVRO")
    assert rc == 0 and ev["state"] == "SUCCEEDED", ev
    warns = ev["warnings"]
    assert [w["code"] for w in warns] == ["EXPORT_SKIPPED_CHUNK"] * 5, warns
    assert all(w["severity"] == "WARNING" and w["key"].startswith(s.ns + ":chunk:{")
               for w in warns), warns
    assert ev["result"]["chunks"] == 60 - 5
    b = other_ns(s, "e")
    rc, ev2, _ = task(s, "import", "--source", ev["result"]["artifact_path"], ns=b)
    assert rc == 0 and ev2["state"] == "SUCCEEDED", ev2
    assert (ev2["result"]["imported"], ev2["result"]["chunks"]) == (20, 55)
    r = Redis()
    for w in warns:  # the skipped chunk is not there, its document counts the rest
        key = w["key"].replace(s.ns + ":", b + ":", 1)
        doc = key[key.index("{") + 1:key.index("}")]
        assert r("EXISTS", key) == 0
        assert r("HGET", "%s:doc:{%s}" % (b, doc), "chunk_count") == b"2"
    r.close()
    print("skipped: %s" % "; ".join("%s %s" % (w["key"], w["message"]) for w in warns))
