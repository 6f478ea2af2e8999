"""Export must show (SPEC §5): every artifact `vecdump run export` writes is
read back by an INDEPENDENT reader (Python json + gzip for JSONL, zipfile +
csv for CSV-in-ZIP, fastavro for Avro) and every document, chunk and file
must equal what Redis holds, field for field and byte for byte (embeddings
bit-exact); the sidecar manifest's SHA-256 is the artifact's and it carries
no password. An export killed by SIGKILL leaves no artifact, no manifest and
no visible file, and the next export removes the stale hidden temp file.
"""
import base64
import csv
import gzip
import hashlib
import io
import json
import os
import signal
import struct
import subprocess
import time
import zipfile

import pytest

from vdharness import REDIS_PORT, Redis, Setup, binary, json_lines, needs_services, run_local

pytestmark = needs_services

DOC_FIELDS = ["id", "title", "source", "content_type", "size", "sha256", "created_at",
              "updated_at", "chunk_count", "metadata"]
DIM = 16


# ---- what Redis holds -------------------------------------------------------
def redis_model(ns):
    """{doc_id: {"doc": {field: bytes}, "chunks": [{field: bytes}] in zset order,
    "file": bytes or None}} read straight from Redis."""
    r = Redis()
    try:
        out = {}
        for did in r("SMEMBERS", ns + ":docs"):
            d = did.decode()
            flat = r("HGETALL", "%s:doc:{%s}" % (ns, d))
            doc = dict(zip(flat[::2], flat[1::2]))
            members = r("ZRANGE", "%s:doc:{%s}:chunks" % (ns, d), 0, -1)
            chunks = []
            for m in members:
                cf = r("HGETALL", "%s:chunk:{%s}:%s" % (ns, d, m.decode()))
                chunks.append(dict(zip(cf[::2], cf[1::2])))
            out[d] = {"doc": doc, "chunks": chunks, "file": r("GET", "%s:file:{%s}" % (ns, d))}
        return out
    finally:
        r.close()


def f32_bytes(floats):
    """Floats parsed from decimal text (Python doubles) as float32 LE bytes."""
    return struct.pack("<%df" % len(floats), *[float(x) for x in floats])


def as_bytes(v):
    if isinstance(v, bytes):
        return v
    if isinstance(v, bool):
        raise AssertionError("unexpected bool %r" % v)
    if isinstance(v, int):
        return str(v).encode()
    return v.encode("utf-8")


# ---- independent readers: each returns the same shape as redis_model ------
def read_jsonl(path):
    raw = open(path, "rb").read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    lines = raw.split(b"\n")
    assert lines[-1] == b"", "the last line ends with a newline"
    lines = lines[:-1]
    recs = [json.loads(l) for l in lines]
    assert recs[0]["type"] == "header" and recs[-1]["type"] == "trailer"
    trailer = recs[-1]
    # the trailer's SHA-256 covers every line before it, newlines included
    h = hashlib.sha256()
    for l in lines[:-1]:
        h.update(l + b"\n")
    assert trailer["sha256"] == h.hexdigest()
    out, cur = {}, None

    def fields(rec, skip):
        f = {}
        for k, v in rec.items():
            if k in skip:
                continue
            if k.endswith("_b64"):
                f[k[:-4].encode()] = base64.b64decode(v)
            elif v is not None:
                f[k.encode()] = as_bytes(v)
        return f

    for rec in recs[1:-1]:
        t = rec["type"]
        if t == "document":
            cur = {"doc": fields(rec, {"type"}), "chunks": [], "file": None}
            out[rec["id"]] = cur
        elif t == "chunk":
            assert rec["doc_id"] == cur["doc"][b"id"].decode(), "chunks follow their document"
            c = fields(rec, {"type", "embedding"})
            c[b"embedding"] = f32_bytes(rec["embedding"])
            cur["chunks"].append(c)
        elif t == "file":
            data = base64.b64decode(rec["data"])
            assert rec["doc_id"] == cur["doc"][b"id"].decode()
            assert rec["sha256"] == hashlib.sha256(data).hexdigest()
            assert rec["size"] == len(data)
            cur["file"] = data
        else:
            raise AssertionError("unexpected record type %r" % t)
    assert trailer["documents"] == len(out)
    assert trailer["chunks"] == sum(len(d["chunks"]) for d in out.values())
    assert trailer["files"] == sum(d["file"] is not None for d in out.values())
    return out, recs[0]


def read_csvzip(path):
    z = zipfile.ZipFile(path)
    names = z.namelist()
    for n in names:
        assert not n.startswith("/") and ".." not in n.split("/"), n
    man = json.loads(z.read("manifest.json"))
    # per-member SHA-256 in the inner manifest
    members = man.get("members")
    assert members, man
    if isinstance(members, dict):
        members = [dict(v, name=k) for k, v in members.items()]
    for m in members:
        data = z.read(m["name"])
        assert hashlib.sha256(data).hexdigest() == m["sha256"], m["name"]
        assert len(data) == m["size"], m["name"]
    assert {m["name"] for m in members} | {"manifest.json"} == set(names)

    def rows(name):
        text = io.TextIOWrapper(io.BytesIO(z.read(name)), encoding="utf-8", newline="")
        return list(csv.DictReader(text))

    out = {}
    for row in rows("documents.csv"):
        assert list(row.keys()) == DOC_FIELDS
        out[row["id"]] = {"doc": {k.encode(): v.encode("utf-8") for k, v in row.items()},
                          "chunks": [], "file": None}
    for row in rows("chunks.csv"):
        c = {}
        for k in ("id", "doc_id", "seq", "metadata"):
            c[k.encode()] = row[k].encode("utf-8")
        c[b"text"] = base64.b64decode(row["text_b64"]) if row["text_b64"] else row["text"].encode("utf-8")
        emb = row["embedding"]
        assert emb.startswith("[") and emb.endswith("]"), emb[:40]
        c[b"embedding"] = f32_bytes(emb[1:-1].split(","))
        out[row["doc_id"]]["chunks"].append(c)
    for n in names:
        if n.startswith("files/"):
            out[n[len("files/"):]]["file"] = z.read(n)
    return out, man


def read_avro(path):
    import fastavro
    with open(path, "rb") as f:
        rd = fastavro.reader(f)
        assert rd.codec == "deflate"
        recs = list(rd)
    assert recs[0]["type"] == "HEADER" and recs[-1]["type"] == "TRAILER"
    out, cur = {}, None
    for rec in recs[1:-1]:
        t = rec["type"]
        if t == "DOCUMENT":
            d = rec["document"]
            cur = {"doc": {k.encode(): as_bytes(v) for k, v in d.items()}, "chunks": [], "file": None}
            out[d["id"]] = cur
        elif t == "CHUNK":
            c = rec["chunk"]
            ch = {k.encode(): as_bytes(c[k]) for k in ("id", "doc_id", "seq", "metadata")}
            ch[b"text"] = c["text_bytes"] if c["text_bytes"] is not None else c["text"].encode("utf-8")
            # Avro floats are float32 already: packing them again is exact
            ch[b"embedding"] = struct.pack("<%df" % len(c["embedding"]), *c["embedding"])
            cur["chunks"].append(ch)
        elif t == "FILE":
            f = rec["file"]
            assert f["sha256"] == hashlib.sha256(f["data"]).hexdigest()
            cur["file"] = f["data"]
        else:
            raise AssertionError(t)
    tr = recs[-1]["trailer"]
    assert tr["documents"] == len(out)
    assert tr["chunks"] == sum(len(d["chunks"]) for d in out.values())
    return out, recs[0]["header"]


READERS = {"JSONL": read_jsonl, "CSV": read_csvzip, "AVRO": read_avro}


# ---- the dataset ------------------------------------------------------------
BIN_TEXT = b"bin\x00ary \xff\xfe not utf-8 \x00\x01, \"quoted\"\r\n"
BIN_FILE = b"\x00" * 17 + bytes(range(256)) + b"\x00PK\x03\x04\x1f\x8b"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    s = Setup(tmp_path_factory.mktemp("artifacts"))
    s.cli("seed", "--docs", "30", "--chunks", "3", "--dim", str(DIM), "--files",
          "--file-bytes", "300", "--text-bytes", "200", check=0)
    r = Redis()
    ns = s.ns
    # a chunk text with NUL bytes and invalid UTF-8, planted directly
    r("HSET", "%s:chunk:{doc-000003}:c0001" % ns, "text", BIN_TEXT)
    # a binary file full of NULs, its document updated to match
    r("SET", "%s:file:{doc-000004}" % ns, BIN_FILE)
    r("HSET", "%s:doc:{doc-000004}" % ns, "size", str(len(BIN_FILE)),
      "sha256", hashlib.sha256(BIN_FILE).hexdigest())
    r.close()
    model = redis_model(ns)
    # the seed's text really is the hard kind: unicode, commas, quotes, newlines
    texts = b"".join(c[b"text"] for d in model.values() for c in d["chunks"])
    metas = b"".join(d["doc"][b"metadata"] + d["doc"][b"title"] for d in model.values())
    for needle in (b",", b"\n", b"'", "東京".encode(), "é".encode(), b"\\", b"\t"):
        assert needle in texts, needle
    assert b'"' in metas and b"," in metas
    assert any(b"\x00" in (d["file"] or b"") for d in model.values())
    yield s, model
    s.stop()


CASES = [("JSONL", False, False), ("JSONL", False, True), ("JSONL", True, False),
         ("JSONL", True, True), ("CSV", False, False), ("CSV", False, True),
         ("AVRO", False, False), ("AVRO", False, True)]


@pytest.mark.parametrize("fmt,compress,files", CASES,
                         ids=["%s%s%s" % (f, "-gz" if c else "", "-files" if i else "") for f, c, i in CASES])
def test_export_reads_back_exactly(seeded, fmt, compress, files):
    s, model = seeded
    dest = "art-%s%s%s" % (fmt.lower(), "-gz" if compress else "", "-files" if files else "")
    ext = {"JSONL": ".jsonl.gz" if compress else ".jsonl", "CSV": ".csv.zip", "AVRO": ".avro"}[fmt]
    dest += ext
    args = ["--format", fmt, "--destination", dest, "--json"]
    if compress:
        args.append("--compress")
    if files:
        args.append("--include-files")
    r = run_local(s, "export", *args, check=0)
    res = json_lines(r.stdout)[-1]
    assert res["state"] == "SUCCEEDED" and res["warnings"] == []
    path = os.path.join(s.backup_dir, dest)
    raw = open(path, "rb").read()
    if compress:
        assert raw[:2] == b"\x1f\x8b"

    got, header = READERS[fmt](path)

    # every document, chunk and file, every field, byte for byte
    assert set(got) == set(model)
    nchunks = nfiles = 0
    for did, want in model.items():
        g = got[did]
        assert g["doc"] == want["doc"], did
        assert len(g["chunks"]) == len(want["chunks"]), did
        for gc, wc in zip(g["chunks"], want["chunks"]):
            assert gc == wc, (did, wc[b"id"])
            assert len(gc[b"embedding"]) == 4 * DIM
        nchunks += len(want["chunks"])
        if files:
            assert g["file"] == want["file"], did
            nfiles += 1
        else:
            assert g["file"] is None
    bin_chunk = got["doc-000003"]["chunks"][1]
    assert bin_chunk[b"text"] == BIN_TEXT
    if files:
        assert got["doc-000004"]["file"] == BIN_FILE

    # the sidecar manifest: the artifact's SHA-256 and size, counts, no password
    man_text = open(path + ".manifest.json", encoding="utf-8").read()
    man = json.loads(man_text)
    assert man["sha256"] == hashlib.sha256(raw).hexdigest() == res["sha256"]
    assert man["size"] == len(raw) == res["size"]
    assert man["artifact"] == dest
    assert man["counts"] == {"documents": len(model), "chunks": nchunks, "files": nfiles}
    assert man["format"] == fmt
    src = man["source"]
    assert src["host"] and src["port"] == REDIS_PORT and src["db"] == 0 and src["namespace"] == s.ns

    def keys(o):
        if isinstance(o, dict):
            for k, v in o.items():
                yield k
                yield from keys(v)
        elif isinstance(o, list):
            for v in o:
                yield from keys(v)
    assert not [k for k in keys(man) if "password" in k.lower()]
    assert "password" not in man_text.lower()
    print("%s%s files=%s: %d bytes, %d docs, %d chunks, %d files: all equal to Redis"
          % (fmt, "+gz" if compress else "", files, len(raw), len(model), nchunks, nfiles))


def test_password_is_never_printed_nor_written(seeded):
    """With VECDUMP_REDIS_PASSWORD set against the test Redis (which has no
    password, so AUTH fails): the secret appears in no output, and the failed
    export leaves neither an artifact nor a manifest."""
    s, _ = seeded
    secret = "s3cr3t-pw-%d" % os.getpid()
    r = run_local(s, "export", "--destination", "pw.jsonl", "--json",
                  env={"VECDUMP_REDIS_PASSWORD": secret})
    out = (r.stdout + r.stderr).decode()
    assert secret not in out
    names = os.listdir(s.backup_dir)
    if r.returncode == 0:
        text = open(os.path.join(s.backup_dir, "pw.jsonl.manifest.json")).read()
        assert secret not in text and "password" not in text.lower()
    else:
        assert "pw.jsonl" not in names and "pw.jsonl.manifest.json" not in names
    print("export with a password set: rc=%d; %s" % (r.returncode, out.strip()[-200:]))


# ---- an export killed mid-way ----------------------------------------------
@pytest.fixture(scope="module")
def big(tmp_path_factory):
    s = Setup(tmp_path_factory.mktemp("bigexport"))
    t0 = time.time()
    s.cli("seed", "--docs", "20000", "--chunks", "4", "--dim", "384", "--text-bytes", "200",
          check=0, timeout=600)
    print("seeded 20k docs x 4 chunks, dim 384 in %.1fs" % (time.time() - t0))
    yield s
    s.stop()


@pytest.mark.parametrize("fmt", ["JSONL", "CSV"])
def test_killed_export_leaves_nothing_visible(big, fmt):
    s = big
    dest = "big-%s%s" % (fmt.lower(), ".jsonl" if fmt == "JSONL" else ".csv.zip")
    cmd = [binary("vecdump"), "run", "export"] + s.common_args() + ["--format", fmt,
                                                                    "--destination", dest]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=dict(os.environ, VECDUMP_NO_TTY="1"))
    seen = []
    try:
        # the first progress line of the export phase that has done something
        while True:
            line = p.stderr.readline().decode()
            assert line, "export ended before any progress: %s" % "".join(seen)
            seen.append(line)
            if "phase=export" in line and "done=0 " not in line:
                break
        os.kill(p.pid, signal.SIGKILL)
    finally:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
        p.wait()
    assert p.returncode == -signal.SIGKILL, "the export finished before the kill"
    names = os.listdir(s.backup_dir)
    assert dest not in names and dest + ".manifest.json" not in names
    assert [n for n in names if not n.startswith(".")] == [], names
    litter = [n for n in names if str(p.pid) in n]
    assert litter, "the killed export left no temp file, so the test proves nothing: %s" % names
    print("killed %s export (pid %d) after %r; left %s" % (fmt, p.pid, seen[-1].strip(), litter))

    r = run_local(s, "export", "--format", fmt, "--destination", dest, "--json", check=0,
                  timeout=600)
    res = json_lines(r.stdout)[-1]
    assert res["documents"] == 20000 and res["chunks"] == 80000
    names = sorted(os.listdir(s.backup_dir))
    assert not [n for n in names if str(p.pid) in n], names
    assert dest in names and dest + ".manifest.json" in names
    assert [n for n in names if n.startswith(".")] == [], names
    for n in names:  # leave the directory clean for the other format
        os.unlink(os.path.join(s.backup_dir, n))
