/*
 * bench_scan.h - the benchmark's minimal pipelined reader of one namespace
 * (SPEC §8, "the read floor"): SCAN MATCH NS:* and, for every key, the one
 * read command its name shape calls for (HGETALL, ZRANGE … WITHSCORES,
 * SMEMBERS, GET), pipelined behind the next SCAN. It uses only hiredis so
 * that it is the floor the product is measured against, not a copy of it.
 */
#ifndef VD_BENCH_SCAN_H
#define VD_BENCH_SCAN_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

/* The key types of SPEC §2, told apart by the key's name alone. */
typedef enum vdb_key_type {
    VDB_KEY_HASH,   /* NS:meta, NS:doc:{D}, NS:chunk:{D}:C */
    VDB_KEY_ZSET,   /* NS:doc:{D}:chunks */
    VDB_KEY_SET,    /* NS:docs */
    VDB_KEY_STRING, /* NS:file:{D} */
    VDB_KEY_OTHER   /* anything else under NS: (task state, quarantine): not read */
} vdb_key_type;

/* What one pass read. */
typedef struct vdb_scan_stats {
    int64_t keys;        /* keys read (of the five data-model shapes) */
    int64_t other_keys;  /* keys under NS: of no data-model shape, skipped */
    int64_t bytes;       /* payload bytes of every string in the replies */
    int64_t scan_calls;  /* SCAN round trips */
} vdb_scan_stats;

/*
 * @brief Called with each key's reply. The reply is freed after the call
 *        returns; the callback must not keep it.
 * @returns 0 to go on, non-zero to stop the scan (vdb_scan_read then fails).
 */
typedef int (*vdb_reply_fn)(void *opaque, const char *key, size_t key_len, vdb_key_type type,
                            const redisReply *reply);

/* @returns the type a key of namespace ns has by its name. */
vdb_key_type vdb_key_type_of(const char *ns, size_t ns_len, const char *key, size_t key_len);

/*
 * @brief Reads every data-model key of namespace ns over c (SCAN with
 *        COUNT count), passing each reply to fn (NULL: replies are dropped).
 * @returns 0, or -1 with a message in errstr on a connection, protocol or
 *          Redis error, or when fn asked to stop.
 */
int vdb_scan_read(redisContext *c, const char *ns, long count, vdb_reply_fn fn, void *opaque,
                  vdb_scan_stats *stats, char *errstr, size_t errstr_size);

/* Monotonic clock in nanoseconds. */
int64_t vdb_now_ns(void);

/*
 * @brief Parses a decimal integer in [min, max] (strtoll, whole string).
 * @returns 0, or -1 when text is not such a number.
 */
int vdb_parse_long(const char *text, long min, long max, long *out);

#endif
