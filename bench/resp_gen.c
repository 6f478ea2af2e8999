/*
 * resp_gen.c - vd-resp-gen, the input of the benchmark's write floor
 * (SPEC §8): reads a namespace the way vd-read-floor does and writes every
 * key as one RESP command (HSET, ZADD, SADD, SET) to a file, for
 * `redis-cli --pipe` to load into an empty database. --to renames the keys
 * into another namespace (the hash tags stay). It prints one JSON line:
 * keys, commands, bytes written, duration_ms (connection, reads and writes).
 */
#include "bench_cli.h"
#include "bench_scan.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] = "vd-resp-gen [--host H] [--port P] [--db N] [--namespace NS] "
                            "[--count 1000] [--to NS2] --out FILE";

typedef struct gen {
    FILE *f;
    const char *ns;
    size_t ns_len;
    const char *to;
    size_t to_len;
    int64_t commands;
    int failed;
} gen;

static void put_bulk(gen *g, const char *s, size_t len) {
    if (fprintf(g->f, "$%zu\r\n", len) < 0 || (len && fwrite(s, 1, len, g->f) != len) ||
        fwrite("\r\n", 1, 2, g->f) != 2)
        g->failed = 1;
}

static void put_key(gen *g, const char *key, size_t key_len) {
    if (!g->to) {
        put_bulk(g, key, key_len);
        return;
    }
    /* The new namespace, then everything from the ':' after the old one. */
    size_t rest = key_len - g->ns_len;
    if (fprintf(g->f, "$%zu\r\n", g->to_len + rest) < 0 ||
        fwrite(g->to, 1, g->to_len, g->f) != g->to_len ||
        fwrite(key + g->ns_len, 1, rest, g->f) != rest || fwrite("\r\n", 1, 2, g->f) != 2)
        g->failed = 1;
}

static int all_strings(const redisReply *r) {
    for (size_t i = 0; i < r->elements; i++)
        if (r->element[i]->type != REDIS_REPLY_STRING)
            return 0;
    return 1;
}

static int on_reply(void *opaque, const char *key, size_t key_len, vdb_key_type type,
                    const redisReply *r) {
    gen *g = opaque;
    if (type == VDB_KEY_STRING) {
        if (r->type == REDIS_REPLY_NIL)
            return 0; /* gone since the SCAN */
        if (r->type != REDIS_REPLY_STRING)
            return -1;
        if (fputs("*3\r\n$3\r\nSET\r\n", g->f) < 0)
            g->failed = 1;
        put_key(g, key, key_len);
        put_bulk(g, r->str, r->len);
        g->commands++;
        return g->failed;
    }
    if (r->type != REDIS_REPLY_ARRAY || !all_strings(r))
        return -1;
    if (r->elements == 0)
        return 0; /* an empty aggregate is no key at all */
    if (type != VDB_KEY_SET && r->elements % 2)
        return -1;
    const char *cmd = type == VDB_KEY_HASH ? "HSET" : type == VDB_KEY_ZSET ? "ZADD" : "SADD";
    if (fprintf(g->f, "*%zu\r\n", r->elements + 2) < 0)
        g->failed = 1;
    put_bulk(g, cmd, 4);
    put_key(g, key, key_len);
    if (type == VDB_KEY_ZSET) {
        /* ZRANGE … WITHSCORES gives member, score; ZADD takes score, member. */
        for (size_t i = 0; i < r->elements; i += 2) {
            put_bulk(g, r->element[i + 1]->str, r->element[i + 1]->len);
            put_bulk(g, r->element[i]->str, r->element[i]->len);
        }
    } else {
        for (size_t i = 0; i < r->elements; i++)
            put_bulk(g, r->element[i]->str, r->element[i]->len);
    }
    g->commands++;
    return g->failed;
}

int main(int argc, char **argv) {
    vdb_opts o;
    if (vdb_opts_parse(&o, argc, argv, usage, 1) != 0)
        return 2;
    int64_t t0 = vdb_now_ns();
    FILE *f = fopen(o.out, "wb");
    if (!f) {
        perror(o.out);
        return 1;
    }
    static char obuf[1 << 20];
    setvbuf(f, obuf, _IOFBF, sizeof obuf);
    redisContext *c = vdb_connect(&o, "vd-resp-gen");
    if (!c) {
        fclose(f);
        return 1;
    }
    gen g = {f, o.ns, strlen(o.ns), o.to, o.to ? strlen(o.to) : 0, 0, 0};
    vdb_scan_stats st;
    char errstr[512];
    int rc = vdb_scan_read(c, o.ns, o.count, on_reply, &g, &st, errstr, sizeof errstr);
    redisFree(c);
    long long written = ftello(f);
    if (fclose(f) != 0 && !rc) {
        snprintf(errstr, sizeof errstr, "%s: write failed", o.out);
        rc = -1;
    }
    if (rc != 0) {
        fprintf(stderr, "vd-resp-gen: %s%s\n", errstr, g.failed ? " (write failed)" : "");
        return 1;
    }
    int64_t t1 = vdb_now_ns();
    printf("{\"keys\":%" PRId64 ",\"other_keys\":%" PRId64 ",\"commands\":%" PRId64
           ",\"bytes\":%lld,\"duration_ms\":%.1f}\n",
           st.keys, st.other_keys, g.commands, written, (double)(t1 - t0) / 1e6);
    return 0;
}
