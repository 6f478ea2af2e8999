/*
 * bench_scan.c - the minimal pipelined namespace reader shared by
 * vd-read-floor and vd-resp-gen.
 *
 * One SCAN is always in flight behind the reads of the previous SCAN's keys:
 * the reads of batch k and SCAN k+1 go out in one write, so the connection
 * never waits for a round trip between batches.
 */
#include "bench_scan.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t vdb_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int vdb_parse_long(const char *text, long min, long max, long *out) {
    if (!text || !*text)
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = (long)v;
    return 0;
}

static int has_prefix(const char *s, size_t len, const char *prefix, size_t plen) {
    return len >= plen && memcmp(s, prefix, plen) == 0;
}

static int is_exactly(const char *s, size_t len, const char *lit) {
    size_t l = strlen(lit);
    return len == l && memcmp(s, lit, l) == 0;
}

/* Length of "{ID}" at the start of s (0 when s does not start with one). */
static size_t tag_len(const char *s, size_t len) {
    if (len < 3 || s[0] != '{')
        return 0;
    const char *close = memchr(s + 1, '}', len - 1);
    if (!close || close == s + 1)
        return 0;
    return (size_t)(close - s) + 1;
}

vdb_key_type vdb_key_type_of(const char *ns, size_t ns_len, const char *key, size_t key_len) {
    if (key_len <= ns_len + 1 || memcmp(key, ns, ns_len) != 0 || key[ns_len] != ':')
        return VDB_KEY_OTHER;
    const char *r = key + ns_len + 1;
    size_t n = key_len - ns_len - 1;
    size_t t;
    if (is_exactly(r, n, "meta"))
        return VDB_KEY_HASH;
    if (is_exactly(r, n, "docs"))
        return VDB_KEY_SET;
    if (has_prefix(r, n, "doc:", 4) && (t = tag_len(r + 4, n - 4)) != 0) {
        if (4 + t == n)
            return VDB_KEY_HASH;
        if (is_exactly(r + 4 + t, n - 4 - t, ":chunks"))
            return VDB_KEY_ZSET;
        return VDB_KEY_OTHER;
    }
    if (has_prefix(r, n, "chunk:", 6) && (t = tag_len(r + 6, n - 6)) != 0)
        return (n > 6 + t + 1 && r[6 + t] == ':') ? VDB_KEY_HASH : VDB_KEY_OTHER;
    if (has_prefix(r, n, "file:", 5) && (t = tag_len(r + 5, n - 5)) != 0)
        return 5 + t == n ? VDB_KEY_STRING : VDB_KEY_OTHER;
    return VDB_KEY_OTHER;
}

static int64_t payload_bytes(const redisReply *r) {
    switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
        return (int64_t)r->len;
    case REDIS_REPLY_ARRAY: {
        int64_t sum = 0;
        for (size_t i = 0; i < r->elements; i++)
            sum += payload_bytes(r->element[i]);
        return sum;
    }
    default:
        return 0;
    }
}

static int append_scan(redisContext *c, const char *cursor, size_t cursor_len,
                       const char *match, size_t match_len, const char *count) {
    const char *argv[6] = {"SCAN", cursor, "MATCH", match, "COUNT", count};
    size_t lens[6] = {4, cursor_len, 5, match_len, 5, strlen(count)};
    return redisAppendCommandArgv(c, 6, argv, lens);
}

static int append_read(redisContext *c, vdb_key_type t, const char *key, size_t key_len) {
    switch (t) {
    case VDB_KEY_HASH: {
        const char *argv[2] = {"HGETALL", key};
        size_t lens[2] = {7, key_len};
        return redisAppendCommandArgv(c, 2, argv, lens);
    }
    case VDB_KEY_ZSET: {
        const char *argv[5] = {"ZRANGE", key, "0", "-1", "WITHSCORES"};
        size_t lens[5] = {6, key_len, 1, 2, 10};
        return redisAppendCommandArgv(c, 5, argv, lens);
    }
    case VDB_KEY_SET: {
        const char *argv[2] = {"SMEMBERS", key};
        size_t lens[2] = {8, key_len};
        return redisAppendCommandArgv(c, 2, argv, lens);
    }
    case VDB_KEY_STRING: {
        const char *argv[2] = {"GET", key};
        size_t lens[2] = {3, key_len};
        return redisAppendCommandArgv(c, 2, argv, lens);
    }
    default:
        return REDIS_OK;
    }
}

static int conn_err(redisContext *c, const char *step, char *errstr, size_t errstr_size) {
    snprintf(errstr, errstr_size, "%s: %s", step, c->errstr[0] ? c->errstr : "connection error");
    return -1;
}

int vdb_scan_read(redisContext *c, const char *ns, long count, vdb_reply_fn fn, void *opaque,
                  vdb_scan_stats *stats, char *errstr, size_t errstr_size) {
    size_t ns_len = strlen(ns);
    char match[512], count_s[24];
    int ml = snprintf(match, sizeof match, "%s:*", ns);
    if (ml < 0 || (size_t)ml >= sizeof match) {
        snprintf(errstr, errstr_size, "namespace too long");
        return -1;
    }
    snprintf(count_s, sizeof count_s, "%ld", count);
    memset(stats, 0, sizeof *stats);

    if (append_scan(c, "0", 1, match, (size_t)ml, count_s) != REDIS_OK)
        return conn_err(c, "SCAN", errstr, errstr_size);
    int rc = 0;
    for (;;) {
        void *vp = NULL;
        if (redisGetReply(c, &vp) != REDIS_OK)
            return conn_err(c, "SCAN", errstr, errstr_size);
        redisReply *scan = vp;
        stats->scan_calls++;
        if (scan->type != REDIS_REPLY_ARRAY || scan->elements != 2 ||
            scan->element[0]->type != REDIS_REPLY_STRING ||
            scan->element[1]->type != REDIS_REPLY_ARRAY) {
            snprintf(errstr, errstr_size, "SCAN: unexpected reply%s%s",
                     scan->type == REDIS_REPLY_ERROR ? ": " : "",
                     scan->type == REDIS_REPLY_ERROR ? scan->str : "");
            freeReplyObject(scan);
            return -1;
        }
        const redisReply *cur = scan->element[0];
        const redisReply *keys = scan->element[1];
        int last = cur->len == 1 && cur->str[0] == '0';

        /* The reads of this batch, then the next SCAN, in one pipeline. */
        size_t n = keys->elements;
        for (size_t i = 0; i < n; i++) {
            const redisReply *k = keys->element[i];
            vdb_key_type t = vdb_key_type_of(ns, ns_len, k->str, k->len);
            if (append_read(c, t, k->str, k->len) != REDIS_OK) {
                freeReplyObject(scan);
                return conn_err(c, "append", errstr, errstr_size);
            }
        }
        if (!last && append_scan(c, cur->str, cur->len, match, (size_t)ml, count_s) != REDIS_OK) {
            freeReplyObject(scan);
            return conn_err(c, "SCAN", errstr, errstr_size);
        }
        for (size_t i = 0; i < n; i++) {
            const redisReply *k = keys->element[i];
            vdb_key_type t = vdb_key_type_of(ns, ns_len, k->str, k->len);
            if (t == VDB_KEY_OTHER) {
                stats->other_keys++;
                continue;
            }
            if (redisGetReply(c, &vp) != REDIS_OK) {
                freeReplyObject(scan);
                return conn_err(c, "read", errstr, errstr_size);
            }
            redisReply *r = vp;
            if (r->type == REDIS_REPLY_ERROR && !rc) {
                snprintf(errstr, errstr_size, "%.*s: %s", (int)k->len, k->str, r->str);
                rc = -1;
            }
            stats->keys++;
            stats->bytes += payload_bytes(r);
            if (fn && !rc && fn(opaque, k->str, k->len, t, r) != 0) {
                snprintf(errstr, errstr_size, "stopped at %.*s", (int)k->len, k->str);
                rc = -1;
            }
            freeReplyObject(r);
        }
        freeReplyObject(scan);
        /* On an error the replies still in flight are read before returning,
           so the connection stays usable; the SCAN reply is the last one. */
        if (last)
            return rc;
        if (rc) {
            if (redisGetReply(c, &vp) == REDIS_OK)
                freeReplyObject(vp);
            return rc;
        }
    }
}
