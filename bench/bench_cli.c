/*
 * bench_cli.c - option parsing and connection set-up of the benchmark
 * programs.
 */
#include "bench_cli.h"

#include "bench_scan.h"

#include <stdio.h>
#include <string.h>

int vdb_opts_parse(vdb_opts *o, int argc, char **argv, const char *usage, int with_out) {
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->port = 6379;
    o->ns = "vec";
    o->count = 1000;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = !v;
        if (!bad && strcmp(a, "--host") == 0)
            o->host = v;
        else if (!bad && strcmp(a, "--port") == 0)
            bad = vdb_parse_long(v, 1, 65535, &o->port);
        else if (!bad && strcmp(a, "--db") == 0)
            bad = vdb_parse_long(v, 0, 1 << 20, &o->db);
        else if (!bad && strcmp(a, "--namespace") == 0)
            o->ns = v;
        else if (!bad && strcmp(a, "--count") == 0)
            bad = vdb_parse_long(v, 1, 1 << 20, &o->count);
        else if (!bad && with_out && strcmp(a, "--out") == 0)
            o->out = v;
        else if (!bad && with_out && strcmp(a, "--to") == 0)
            o->to = v;
        else
            bad = 1;
        if (bad) {
            fprintf(stderr, "bad option %s\nusage: %s\n", a, usage);
            return -1;
        }
        i++;
    }
    if (!*o->ns || (with_out && (!o->out || (o->to && !*o->to)))) {
        fprintf(stderr, "usage: %s\n", usage);
        return -1;
    }
    return 0;
}

redisContext *vdb_connect(const vdb_opts *o, const char *prog) {
    redisContext *c = redisConnect(o->host, (int)o->port);
    if (!c || c->err) {
        fprintf(stderr, "%s: connect %s:%ld: %s\n", prog, o->host, o->port,
                c ? c->errstr : "out of memory");
        redisFree(c);
        return NULL;
    }
    if (o->db) {
        redisReply *r = redisCommand(c, "SELECT %ld", o->db);
        int ok = r && r->type == REDIS_REPLY_STATUS;
        if (!ok)
            fprintf(stderr, "%s: SELECT %ld: %s\n", prog, o->db,
                    r && r->type == REDIS_REPLY_ERROR ? r->str : c->errstr);
        freeReplyObject(r);
        if (!ok) {
            redisFree(c);
            return NULL;
        }
    }
    return c;
}
