/*
 * read_floor.c - vd-read-floor, the benchmark's read floor (SPEC §8): the
 * least a program must do to read a namespace out of Redis. It SCANs
 * NS:* and reads every key with the one command its type calls for,
 * pipelined, and drops the replies (hiredis builds each reply, which is then
 * freed unread). It prints one JSON line: keys, bytes, duration_ms.
 */
#include "bench_cli.h"
#include "bench_scan.h"

#include <inttypes.h>
#include <stdio.h>

static const char usage[] =
    "vd-read-floor [--host H] [--port P] [--db N] [--namespace NS] [--count 1000]";

int main(int argc, char **argv) {
    vdb_opts o;
    if (vdb_opts_parse(&o, argc, argv, usage, 0) != 0)
        return 2;
    int64_t t0 = vdb_now_ns();
    redisContext *c = vdb_connect(&o, "vd-read-floor");
    if (!c)
        return 1;
    vdb_scan_stats st;
    char errstr[512];
    int rc = vdb_scan_read(c, o.ns, o.count, NULL, NULL, &st, errstr, sizeof errstr);
    int64_t t1 = vdb_now_ns();
    redisFree(c);
    if (rc != 0) {
        fprintf(stderr, "vd-read-floor: %s\n", errstr);
        return 1;
    }
    printf("{\"keys\":%" PRId64 ",\"other_keys\":%" PRId64
           ",\"bytes\":%" PRId64 ",\"scan_calls\":%" PRId64 ",\"duration_ms\":%.1f}\n",
           st.keys, st.other_keys, st.bytes, st.scan_calls, (double)(t1 - t0) / 1e6);
    return 0;
}
