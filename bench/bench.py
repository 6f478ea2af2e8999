#!/usr/bin/env python3
"""vecdump benchmark driver (SPEC §8), started by bench/run.sh.

Every figure is measured in this run, on the same data, against the same
Redis, and the goals are reported as ratios against baselines measured
alongside: nothing here ever fails on a wall-clock time. For each size:

  seed NS in the source db, then
  read floor      vd-read-floor (pipelined SCAN + HGETALL/ZRANGE/SMEMBERS/GET)
  exports         vecdump run export: AVRO, JSONL, CSV, JSONL --compress
  gzip -1         gzip -1 -c on the uncompressed JSONL artifact's bytes
  write floor     redis-cli --pipe of a RESP file of the same keys (vd-resp-gen,
                  generation not timed) into the empty target db
  imports         vecdump run import of each artifact into the empty target db
  redis-dump-go   dump of NS:* to RESP + redis-cli --pipe restore into the
                  empty target db (the dump's SELECT is pointed at the target
                  db in place, untimed)

Times are wall-clock from process start to exit (the best of --repeat runs);
peak RSS is GNU time's %M (maximum resident set size). Only the source and target dbs
are touched; they must be empty at the start and are flushed at the end.
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

FORMATS = [  # (label, --format, --compress, artifact name)
    ("AVRO", "AVRO", False, "bench.avro"),
    ("JSONL", "JSONL", False, "bench.jsonl"),
    ("CSV", "CSV", False, "bench.csv.zip"),
    ("JSONL+gzip", "JSONL", True, "bench.jsonl.gz"),
]
RSS_LIMIT_MIB = 64.0
HAVE_TIME = os.access("/usr/bin/time", os.X_OK)


def vm_hwm_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Runner:
    def __init__(self, a):
        self.a = a
        self.port = str(a.port)

    def run(self, argv, stdin_path=None, stdout_path=None, check=True):
        """Runs argv; returns (seconds, peak RSS KiB, stdout text).

        Peak RSS comes from GNU time's %M (wait4's ru_maxrss of a child that
        time forked: a fork of this Python process would carry the parent's
        RSS into ru_maxrss across exec). Without /usr/bin/time, VmHWM is
        polled from /proc/PID/status every 5 ms.
        """
        stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
        out = open(stdout_path, "wb") if stdout_path else tempfile.TemporaryFile()
        err = tempfile.TemporaryFile()
        rss_file = None
        if HAVE_TIME:
            fd, rss_file = tempfile.mkstemp(prefix="rss.", dir=self.a.work)
            os.close(fd)
            argv = ["/usr/bin/time", "-q", "-f", "%M", "-o", rss_file] + argv
        try:
            t0 = time.perf_counter()
            p = subprocess.Popen(argv, stdin=stdin, stdout=out, stderr=err)
            hwm = 0
            if rss_file:
                p.wait()
            else:
                while p.poll() is None:
                    hwm = max(hwm, vm_hwm_kib(p.pid))
                    time.sleep(0.005)
            secs = time.perf_counter() - t0
            if rss_file:
                with open(rss_file) as f:
                    lines = [l for l in f.read().split() if l.isdigit()]
                hwm = int(lines[-1]) if lines else 0
            text = ""
            if not stdout_path:
                out.seek(0)
                text = out.read().decode("utf-8", "replace")
            if check and p.returncode != 0:
                err.seek(0)
                raise RuntimeError("%s exited %d: %s %s" % (
                    " ".join(argv), p.returncode, text[-500:],
                    err.read().decode("utf-8", "replace")[-1500:]))
            return secs, hwm, text
        finally:
            if stdin_path:
                stdin.close()
            out.close()
            err.close()
            if rss_file:
                os.unlink(rss_file)

    def cli(self, db, *args):
        r = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", self.port, "-n", str(db)]
                           + list(args), capture_output=True, check=True, text=True)
        return r.stdout.strip()

    def dbsize(self, db):
        return int(self.cli(db, "DBSIZE"))

    def flushdb(self, db):
        self.cli(db, "FLUSHDB", "SYNC")


def best(runner, n, fn):
    """Runs fn() n times; returns the sample with the lowest time and all times."""
    samples = [fn() for _ in range(n)]
    return min(samples, key=lambda s: s["s"]), [round(s["s"], 4) for s in samples]


def last_json(text):
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    return {}


def parse_resp_select(path):
    """Offset of the db digit in a leading 'SELECT n' of a RESP file, or None."""
    with open(path, "rb") as f:
        head = f.read(64)
    prefix = b"*2\r\n$6\r\nSELECT\r\n$1\r\n"
    if head.startswith(prefix) and head[len(prefix) + 1:len(prefix) + 3] == b"\r\n":
        return len(prefix)
    return None


def bench_size(R, a, chunks, repeat, work):
    docs = max(1, chunks // a.chunks_per_doc)
    ns, src, dst = a.namespace, a.src_db, a.dst_db
    vd = a.vecdump
    conn = ["--redis-host", "127.0.0.1", "--redis-port", R.port]
    res = {"chunks": docs * a.chunks_per_doc, "documents": docs, "dim": a.dim,
           "text_bytes": a.text_bytes, "repeat": repeat, "runs": {}}
    runs = res["runs"]
    bk = os.path.join(work, "backups")
    os.makedirs(bk, exist_ok=True)

    res["loadavg_start"] = [round(x, 2) for x in os.getloadavg()]
    log("== %d chunks (%d documents x %d, dim %d, text %d B), best of %d ==" % (
        res["chunks"], docs, a.chunks_per_doc, a.dim, a.text_bytes, repeat))
    R.flushdb(src)
    R.flushdb(dst)
    s, _, out = R.run([vd, "seed"] + conn + ["--redis-db", str(src), "--namespace", ns,
                                             "--docs", str(docs), "--chunks", str(a.chunks_per_doc),
                                             "--dim", str(a.dim), "--text-bytes", str(a.text_bytes)])
    res["seed_s"] = round(s, 3)
    keys = R.dbsize(src)
    res["keys"] = keys
    res["redis_used_memory"] = next(
        (int(l.split(":")[1]) for l in R.cli(src, "INFO", "memory").splitlines()
         if l.startswith("used_memory:")), None)
    log("seeded %d keys in %.1f s" % (keys, s))

    # Read floor (one untimed warm-up run first).
    rf = [a.read_floor, "--port", R.port, "--db", str(src), "--namespace", ns]
    R.run(rf)

    def read_floor():
        s, rss, out = R.run(rf)
        j = last_json(out)
        if j.get("keys") != keys:
            raise RuntimeError("read floor read %s keys, expected %d" % (j.get("keys"), keys))
        return {"s": s, "rss_kib": rss, "self_ms": j.get("duration_ms"), "bytes": j.get("bytes")}
    runs["read_floor"], runs["read_floor"]["all_s"] = best(R, repeat, read_floor)
    log("read floor %.3f s" % runs["read_floor"]["s"])

    # Exports.
    for label, fmt, gz, name in FORMATS:
        path = os.path.join(bk, name)

        def export():
            for p in (path, path + ".manifest.json"):
                if os.path.exists(p):
                    os.unlink(p)
            argv = [vd, "run", "export", "--json"] + conn + [
                "--redis-db", str(src), "--namespace", ns, "--backup-dir", bk,
                "--format", fmt, "--destination", name]
            if gz:
                argv.append("--compress")
            s, rss, out = R.run(argv)
            j = last_json(out)
            if j.get("state") != "SUCCEEDED":
                raise RuntimeError("export %s: %s" % (label, out[-500:]))
            return {"s": s, "rss_kib": rss, "self_ms": j.get("duration_ms"),
                    "artifact_bytes": os.path.getsize(path)}
        k = "export_" + label
        runs[k], runs[k]["all_s"] = best(R, repeat, export)
        log("export %-10s %.3f s  rss %.1f MiB  %.1f MiB" % (
            label, runs[k]["s"], runs[k]["rss_kib"] / 1024, runs[k]["artifact_bytes"] / 2**20))

    # gzip -1 on the uncompressed JSONL artifact's bytes (read once untimed so
    # that it comes from the page cache, as the exporter's bytes come from memory).
    jsonl = os.path.join(bk, "bench.jsonl")
    R.run(["cat", jsonl], stdout_path=os.devnull)

    def gzip1():
        s, rss, _ = R.run(["gzip", "-1", "-c", jsonl], stdout_path=os.devnull)
        return {"s": s, "rss_kib": rss, "input_bytes": os.path.getsize(jsonl)}
    runs["gzip1"], runs["gzip1"]["all_s"] = best(R, repeat, gzip1)
    log("gzip -1 %.3f s" % runs["gzip1"]["s"])

    # Write floor: the same keys as a RESP stream, redis-cli --pipe into the
    # empty target db.
    resp = os.path.join(work, "floor.resp")
    s, _, out = R.run([a.resp_gen, "--port", R.port, "--db", str(src), "--namespace", ns,
                       "--out", resp])
    gen = last_json(out)
    res["resp_gen"] = {"s": round(s, 3), "commands": gen.get("commands"), "bytes": gen.get("bytes")}

    def write_floor():
        R.flushdb(dst)
        s, rss, out = R.run(["redis-cli", "-h", "127.0.0.1", "-p", R.port, "-n", str(dst),
                             "--pipe"], stdin_path=resp)
        if "errors: 0," not in out or R.dbsize(dst) != keys:
            raise RuntimeError("write floor: %s (dbsize %d)" % (out[-300:], R.dbsize(dst)))
        return {"s": s, "rss_kib": rss, "resp_bytes": gen.get("bytes")}
    runs["write_floor"], runs["write_floor"]["all_s"] = best(R, repeat, write_floor)
    log("write floor %.3f s" % runs["write_floor"]["s"])
    os.unlink(resp)

    # Imports of each artifact into the empty target db.
    for label, _, _, name in FORMATS:
        def imp():
            R.flushdb(dst)
            s, rss, out = R.run([vd, "run", "import", "--json"] + conn + [
                "--redis-db", str(dst), "--namespace", ns, "--backup-dir", bk, "--source", name])
            j = last_json(out)
            if j.get("state") != "SUCCEEDED":
                raise RuntimeError("import %s: %s" % (label, out[-500:]))
            got = R.dbsize(dst)
            return {"s": s, "rss_kib": rss, "self_ms": j.get("duration_ms"), "dbsize": got,
                    "keys_match": got == keys}
        k = "import_" + label
        runs[k], runs[k]["all_s"] = best(R, repeat, imp)
        log("import %-10s %.3f s  rss %.1f MiB%s" % (
            label, runs[k]["s"], runs[k]["rss_kib"] / 1024,
            "" if runs[k]["keys_match"] else "  (dbsize %d != %d)" % (runs[k]["dbsize"], keys)))

    # redis-dump-go: dump + restore through redis-cli --pipe.
    if a.redis_dump_go:
        dump = os.path.join(work, "rdg.resp")

        def rdg():
            s1, rss, _ = R.run([a.redis_dump_go, "-host", "127.0.0.1", "-port", R.port,
                                "-db", str(src), "-filter", ns + ":*", "-s", "-output", "resp"],
                               stdout_path=dump)
            at = parse_resp_select(dump)
            if at is None or src > 9 or dst > 9:
                raise RuntimeError("redis-dump-go output does not start with SELECT %d" % src)
            with open(dump, "r+b") as f:  # SELECT src -> SELECT dst, same length, untimed
                f.seek(at)
                f.write(str(dst).encode())
            R.flushdb(dst)
            s2, _, out = R.run(["redis-cli", "-h", "127.0.0.1", "-p", R.port, "--pipe"],
                               stdin_path=dump)
            if "errors: 0," not in out or R.dbsize(dst) != keys:
                raise RuntimeError("redis-dump-go restore: %s (dbsize %d)" % (
                    out[-300:], R.dbsize(dst)))
            return {"s": s1 + s2, "dump_s": s1, "restore_s": s2, "rss_kib": rss,
                    "dump_bytes": os.path.getsize(dump)}
        runs["redis_dump_go"], runs["redis_dump_go"]["all_s"] = best(R, repeat, rdg)
        os.unlink(dump)
        log("redis-dump-go %.3f s (dump %.3f + restore %.3f)" % (
            runs["redis_dump_go"]["s"], runs["redis_dump_go"]["dump_s"],
            runs["redis_dump_go"]["restore_s"]))

    for _, _, _, name in FORMATS:
        for p in (name, name + ".manifest.json"):
            if os.path.exists(os.path.join(bk, p)):
                os.unlink(os.path.join(bk, p))
    R.flushdb(dst)
    R.flushdb(src)
    res["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    res["targets"] = targets(res)
    return res


def targets(res):
    r = res["runs"]
    t = []

    def ratio(name, num, den, limit, note):
        v = num / den
        t.append({"target": name, "value": round(v, 3), "limit": limit,
                  "op": "<=", "met": v <= limit, "note": note})
    rd, wr, gz = r["read_floor"]["s"], r["write_floor"]["s"], r["gzip1"]["s"]
    ratio("export AVRO / read floor", r["export_AVRO"]["s"], rd, 1.3, "")
    ratio("export JSONL / read floor", r["export_JSONL"]["s"], rd, 2.0, "")
    ratio("export CSV / read floor", r["export_CSV"]["s"], rd, 2.0, "")
    ratio("export JSONL+gzip / gzip -1", r["export_JSONL+gzip"]["s"], gz, 1.2,
          "gzip -1 on the uncompressed JSONL artifact")
    for label, _, _, _ in FORMATS:
        ratio("import %s / write floor" % label, r["import_" + label]["s"], wr, 1.3, "")
    for kind in ("export", "import"):
        for label, _, _, _ in FORMATS:
            mib = r["%s_%s" % (kind, label)]["rss_kib"] / 1024
            t.append({"target": "peak RSS %s %s (MiB)" % (kind, label), "value": round(mib, 1),
                      "limit": RSS_LIMIT_MIB, "op": "<", "met": mib < RSS_LIMIT_MIB, "note": ""})
    if "redis_dump_go" in r:
        g = r["redis_dump_go"]["s"]
        for label, _, _, _ in FORMATS:
            e2e = r["export_" + label]["s"] + r["import_" + label]["s"]
            t.append({"target": "export+import %s / redis-dump-go" % label,
                      "value": round(e2e / g, 3), "limit": 1.0, "op": "<", "met": e2e < g,
                      "note": "%.3f s vs %.3f s" % (e2e, g)})
    return t


def print_tables(doc):
    out = []
    w = out.append
    w("vecdump benchmark  %s  vecdump: %s (HEAD %s)" % (
        doc["date"], doc["vecdump_measured"], doc["vecdump_commit"]))
    w("%s, %d CPUs, redis %s%s" % (
        doc["machine"]["cpu"], doc["machine"]["cpus"], doc["redis_version"],
        "" if doc["redis_dump_go"] else "  (redis-dump-go: %s)" % doc["redis_dump_go_note"]))
    for res in doc["sizes"]:
        r = res["runs"]
        w("")
        w("%d chunks: %d documents x %d, dim %d, text %d B; %d keys; best of %d; "
          "load average %.2f at start, %.2f at end" % (
              res["chunks"], res["documents"], res["chunks"] // res["documents"], res["dim"],
              res["text_bytes"], res["keys"], res["repeat"], res["loadavg_start"][0],
              res["loadavg_end"][0]))
        w("  %-32s %10s %12s %10s %12s" % ("measurement", "time s", "own ms", "RSS MiB", "size MiB"))
        rows = [("read floor", "read_floor", "bytes")]
        rows += [("export " + l, "export_" + l, "artifact_bytes") for l, _, _, _ in FORMATS]
        rows += [("gzip -1 (JSONL bytes)", "gzip1", "input_bytes"),
                 ("write floor (redis-cli --pipe)", "write_floor", "resp_bytes")]
        rows += [("import " + l, "import_" + l, None) for l, _, _, _ in FORMATS]
        rows += [("redis-dump-go dump+restore", "redis_dump_go", "dump_bytes")]
        for title, k, sz in rows:
            if k not in r:
                continue
            x = r[k]
            w("  %-32s %10.3f %12s %10.1f %12s" % (
                title, x["s"], "%.0f" % x["self_ms"] if x.get("self_ms") is not None else "-",
                x["rss_kib"] / 1024, "%.1f" % (x[sz] / 2**20) if sz and x.get(sz) else "-"))
        if "redis_dump_go" in r:
            w("  (redis-dump-go: dump %.3f s + restore %.3f s)" % (
                r["redis_dump_go"]["dump_s"], r["redis_dump_go"]["restore_s"]))
        w("  %-42s %8s %8s  %s" % ("target", "value", "limit", "verdict"))
        for t in res["targets"]:
            w("  %-42s %8s %2s%6s  %s%s" % (
                t["target"], t["value"], t["op"], t["limit"], "MET" if t["met"] else "NOT MET",
                "  (%s)" % t["note"] if t["note"] else ""))
    print("\n".join(out), flush=True)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_head(root):
    try:
        h = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                           capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return h + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--sizes", default="20000,200000", help="chunk counts, comma separated")
    p.add_argument("--repeat", type=int, default=0,
                   help="runs per measurement, best kept (default 3 up to 50k chunks, else 1)")
    p.add_argument("--src-db", type=int, default=8)
    p.add_argument("--dst-db", type=int, default=9)
    p.add_argument("--namespace", default="benchns")
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--chunks-per-doc", type=int, default=4)
    p.add_argument("--text-bytes", type=int, default=400)
    p.add_argument("--vecdump", required=True)
    p.add_argument("--measured", default="working tree", help="what vecdump binary this is")
    p.add_argument("--read-floor", required=True)
    p.add_argument("--resp-gen", required=True)
    p.add_argument("--redis-dump-go", default="")
    p.add_argument("--redis-dump-go-note", default="")
    p.add_argument("--work", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--root", default=".")
    a = p.parse_args()
    if not (0 <= a.src_db <= 9 and 0 <= a.dst_db <= 9 and a.src_db != a.dst_db):
        p.error("--src-db and --dst-db must be distinct single-digit dbs")
    R = Runner(a)
    for db in (a.src_db, a.dst_db):
        if R.dbsize(db):
            sys.exit("bench: db %d of port %d is not empty; refusing to touch it" % (db, a.port))
    sizes = [int(x) for x in a.sizes.split(",") if x.strip()]
    doc = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"cpu": cpu_model(), "cpus": os.cpu_count(), "kernel": platform.release()},
        "redis_version": R.cli(0, "INFO", "server").split("redis_version:")[1].split()[0],
        "vecdump_commit": git_head(a.root),
        "vecdump_measured": a.measured,
        "redis_dump_go": bool(a.redis_dump_go),
        "redis_dump_go_note": a.redis_dump_go_note,
        "method": "wall-clock seconds from process start to exit, best of `repeat` runs; "
                  "peak RSS = /usr/bin/time %M (or polled VmHWM); ratios = vecdump time / baseline time",
        "sizes": [],
    }
    try:
        for n in sizes:
            repeat = a.repeat or (3 if n <= 50000 else 1)
            doc["sizes"].append(bench_size(R, a, n, repeat, a.work))
    finally:
        try:
            R.flushdb(a.dst_db)
            R.flushdb(a.src_db)
        except (OSError, subprocess.CalledProcessError):
            pass
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    print_tables(doc)
    log("results written to %s" % a.out)


if __name__ == "__main__":
    main()
