"""Independent readers for vecdump's CSV-in-ZIP and Avro artifacts.

vd-formats-tool (formats/vd_formats_tool.c) writes a deterministic dataset
with the C writers and dumps what it wrote to OUTPATH.expected.json. Python's
own zipfile + csv and fastavro then read the artifacts and every field is
compared; embeddings bit for bit (float32 patterns), file bytes exactly,
checksums recomputed with hashlib.
"""
import base64
import csv
import glob
import hashlib
import io
import json
import os
import struct
import subprocess
import zipfile

import fastavro
import pytest

SOURCE = os.environ.get(
    "VECDUMP_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", "..")
)
BUILD = os.environ.get("VECDUMP_BUILD_DIR", os.path.join(SOURCE, "build"))


def find_tool():
    for pattern in ("formats/vd-formats-tool", "vd-formats-tool", "**/vd-formats-tool"):
        hits = glob.glob(os.path.join(BUILD, pattern), recursive=True)
        hits = [h for h in hits if os.access(h, os.X_OK) and os.path.isfile(h)]
        if hits:
            return hits[0]
    return None


TOOL = find_tool()
pytestmark = pytest.mark.skipif(TOOL is None, reason="vd-formats-tool not built")


def write(tmp_path, fmt, files, compress=True):
    out = str(tmp_path / ("artifact." + fmt))
    subprocess.run([TOOL, "write", fmt, "1" if compress else "0", "1" if files else "0", out],
                   check=True, capture_output=True)
    with open(out + ".expected.json", encoding="utf-8") as f:
        recs = [json.loads(line) for line in f]
    info = recs[0]
    assert info["type"] == "info"
    groups = []
    for r in recs[1:]:
        if r["type"] == "document":
            groups.append({"doc": r, "chunks": [], "file": None})
        elif r["type"] == "chunk":
            groups[-1]["chunks"].append(r)
        else:
            groups[-1]["file"] = r
    return out, info, groups


def f32_bits_from_text(text):
    """Parse a decimal as Python float, round to float32, return the bits."""
    return struct.unpack("<I", struct.pack("<f", float(text)))[0]


def f32_bits(value):
    return struct.unpack("<I", struct.pack("<f", value))[0]


def raw_text(chunk):
    return base64.b64decode(chunk["text_b64"])


DOC_FIELDS = ["id", "title", "source", "content_type", "size", "sha256", "created_at",
              "updated_at", "chunk_count", "metadata"]
INT_FIELDS = {"size", "created_at", "updated_at", "chunk_count"}


# ---- CSV in ZIP -------------------------------------------------------------

@pytest.mark.parametrize("files", [False, True])
def test_csv_zip_with_python_zipfile_and_csv(tmp_path, files):
    path, info, groups = write(tmp_path, "csv", files)
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None  # every CRC-32 checks out
        names = z.namelist()
        assert "manifest.json" in names and "documents.csv" in names and "chunks.csv" in names
        for n in names:
            assert not n.startswith("/") and ".." not in n.split("/") and "\\" not in n
        for zi in z.infolist():
            assert zi.compress_type == zipfile.ZIP_DEFLATED
        manifest = json.loads(z.read("manifest.json"))
        assert manifest["format"] == "vecdump-csv"
        assert manifest["format_version"] == 1
        for key in ("task_id", "namespace", "dim", "model", "distance", "tool_version",
                    "created_at", "schema_version", "meta_created_at", "include_files"):
            assert manifest[key] == info[key], key
        nchunks = sum(len(g["chunks"]) for g in groups)
        nfiles = sum(1 for g in groups if g["file"])
        assert manifest["counts"] == {"documents": len(groups), "chunks": nchunks,
                                      "files": nfiles}
        # Every member's checksum and size, recomputed.
        listed = set(manifest["members"])
        assert listed == set(names) - {"manifest.json"}
        for name, m in manifest["members"].items():
            data = z.read(name)
            assert len(data) == m["size"], name
            assert hashlib.sha256(data).hexdigest() == m["sha256"], name

        docs_raw = z.read("documents.csv")
        chunks_raw = z.read("chunks.csv")
        # RFC 4180: records end with CRLF.
        assert docs_raw.endswith(b"\r\n") and chunks_raw.endswith(b"\r\n")
        assert docs_raw.startswith(
            b"id,title,source,content_type,size,sha256,created_at,updated_at,"
            b"chunk_count,metadata\r\n")
        assert chunks_raw.startswith(b"id,doc_id,seq,text,embedding,metadata,text_b64\r\n")

        docs = list(csv.DictReader(io.StringIO(docs_raw.decode("utf-8"), newline="")))
        chunks = list(csv.DictReader(io.StringIO(chunks_raw.decode("utf-8"), newline="")))
        assert len(docs) == len(groups)
        assert len(chunks) == nchunks
        ci = 0
        for g, row in zip(groups, docs):
            for k in DOC_FIELDS:
                want = g["doc"][k]
                assert (int(row[k]) if k in INT_FIELDS else row[k]) == want, (k, row)
            for c in g["chunks"]:
                crow = chunks[ci]
                ci += 1
                assert crow["id"] == c["id"]
                assert crow["doc_id"] == c["doc_id"]
                assert int(crow["seq"]) == c["seq"]
                assert crow["metadata"] == c["metadata"]
                raw = raw_text(c)
                if crow["text_b64"]:
                    assert crow["text"] == ""
                    assert base64.b64decode(crow["text_b64"]) == raw
                    assert b"\0" in raw or not _utf8(raw)
                else:
                    assert crow["text"].encode("utf-8") == raw
                # pgvector text form, bit-exact after float32 rounding.
                emb = crow["embedding"]
                assert emb.startswith("[") and emb.endswith("]") and " " not in emb
                bits = [f32_bits_from_text(t) for t in emb[1:-1].split(",")]
                assert bits == c["embedding_bits"], c["id"]
            if g["file"]:
                assert z.read("files/" + g["doc"]["id"]) == base64.b64decode(
                    g["file"]["data_b64"])
            else:
                assert "files/" + g["doc"]["id"] not in names


def _utf8(b):
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


# ---- Avro -------------------------------------------------------------------

def _schema():
    with open(os.path.join(SOURCE, "formats", "vd_artifact.avsc"), encoding="utf-8") as f:
        return json.load(f)


@pytest.mark.parametrize("files", [False, True])
def test_avro_with_fastavro(tmp_path, files):
    path, info, groups = write(tmp_path, "avro", files)
    parsed = fastavro.parse_schema(_schema())
    with open(path, "rb") as f:
        reader = fastavro.reader(f)
        assert reader.codec == "deflate"
        assert fastavro.parse_schema(reader.writer_schema) == parsed or \
            reader.writer_schema["name"].endswith("ArtifactRecord")
        records = list(reader)

    # The schema in the file is the published .avsc (field by field).
    def strip(s):
        if isinstance(s, dict):
            return {k: strip(v) for k, v in s.items() if k not in ("doc", "default")}
        if isinstance(s, list):
            return [strip(v) for v in s]
        return s
    with open(path, "rb") as f:
        file_schema = fastavro.reader(f).writer_schema
    assert strip(file_schema)["fields"][0]["type"]["symbols"] == \
        ["HEADER", "DOCUMENT", "CHUNK", "FILE", "TRAILER"]
    assert [fl["name"] for fl in file_schema["fields"]] == \
        [fl["name"] for fl in _schema()["fields"]]

    header, trailer = records[0], records[-1]
    assert header["type"] == "HEADER" and trailer["type"] == "TRAILER"
    h = header["header"]
    assert h["format"] == "vecdump-avro" and h["format_version"] == 1
    for key in ("task_id", "namespace", "dim", "model", "distance", "tool_version",
                "created_at", "schema_version", "meta_created_at", "include_files"):
        assert h[key] == info[key], key
    # Exactly the union field named by `type` is set.
    for r in records:
        for fld in ("header", "document", "chunk", "file", "trailer"):
            assert (r[fld] is not None) == (r["type"] == fld.upper())

    i = 1
    for g in groups:
        r = records[i]
        i += 1
        assert r["type"] == "DOCUMENT"
        for k in DOC_FIELDS:
            assert r["document"][k] == g["doc"][k], k
        for c in g["chunks"]:
            r = records[i]["chunk"]
            i += 1
            assert r["id"] == c["id"] and r["doc_id"] == c["doc_id"] and r["seq"] == c["seq"]
            assert r["metadata"] == c["metadata"]
            raw = raw_text(c)
            if r["text_bytes"] is not None:
                assert r["text"] == "" and r["text_bytes"] == raw
            else:
                assert r["text"].encode("utf-8") == raw
            assert [f32_bits(v) for v in r["embedding"]] == c["embedding_bits"], c["id"]
        if g["file"]:
            r = records[i]["file"]
            i += 1
            data = base64.b64decode(g["file"]["data_b64"])
            assert r["doc_id"] == g["doc"]["id"] and r["data"] == data
            assert r["sha256"] == hashlib.sha256(data).hexdigest()
    assert i == len(records) - 1

    # Trailer: counts, and the SHA-256 of every record's binary encoding
    # before it, re-encoded here by fastavro (so ours is canonical Avro).
    t = trailer["trailer"]
    assert t["documents"] == len(groups)
    assert t["chunks"] == sum(len(g["chunks"]) for g in groups)
    assert t["files"] == sum(1 for g in groups if g["file"])
    h = hashlib.sha256()
    for r in records[:-1]:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, parsed, r)
        h.update(buf.getvalue())
    assert h.hexdigest() == t["sha256"]


def test_avro_reencoded_by_fastavro_reads_back(tmp_path):
    """fastavro rewrites our records (its own container, deflate, small
    blocks); the C reader accepts that file too (same schema, other sync)."""
    path, info, groups = write(tmp_path, "avro", True)
    with open(path, "rb") as f:
        reader = fastavro.reader(f)
        schema = reader.writer_schema
        records = list(reader)
    out = str(tmp_path / "rewritten.avro")
    with open(out, "wb") as f:
        fastavro.writer(f, fastavro.parse_schema(schema), records, codec="deflate",
                        sync_interval=2000)
    with open(out, "rb") as f:
        again = list(fastavro.reader(f))
    assert again == records
    res = subprocess.run([TOOL, "read", out], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.split() == ["OK", "documents", str(len(groups)), "chunks",
                                  str(sum(len(g["chunks"]) for g in groups)), "files",
                                  str(sum(1 for g in groups if g["file"]))]


@pytest.mark.parametrize("fmt", ["csv", "avro"])
def test_c_reader_reads_tool_output(tmp_path, fmt):
    path, info, groups = write(tmp_path, fmt, True)
    res = subprocess.run([TOOL, "read", path], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.startswith("OK documents %d " % len(groups))


def test_csv_zip_rewritten_by_python_reads_back(tmp_path):
    """Python's zipfile repacks the members (other order, its own deflate):
    the C reader finds them by name and the manifest still matches."""
    path, info, groups = write(tmp_path, "csv", True)
    out = str(tmp_path / "repacked.csv.zip")
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for name in reversed(zin.namelist()):
            zout.writestr(name, zin.read(name))
    res = subprocess.run([TOOL, "read", out], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    # A member named "../evil" is refused with ZIP.
    with zipfile.ZipFile(out, "a") as z:
        z.writestr("../evil", b"x")
    res = subprocess.run([TOOL, "read", out], capture_output=True, text=True)
    assert res.returncode == 1 and res.stdout.startswith("ZIP ")
