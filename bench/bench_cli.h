/*
 * bench_cli.h - the option parsing and connection set-up vd-read-floor and
 * vd-resp-gen share.
 */
#ifndef VD_BENCH_CLI_H
#define VD_BENCH_CLI_H

#include <hiredis/hiredis.h>

/* Options common to the benchmark programs; out is vd-resp-gen's only. */
typedef struct vdb_opts {
    const char *host;
    long port;
    long db;
    const char *ns;
    long count;      /* SCAN COUNT */
    const char *out; /* vd-resp-gen: the RESP file */
    const char *to;  /* vd-resp-gen: namespace the keys are renamed to */
} vdb_opts;

/*
 * @brief Parses argv into o (defaults first). Prints the usage line to
 *        stderr on a bad option.
 * @returns 0, or -1 on a bad option.
 */
int vdb_opts_parse(vdb_opts *o, int argc, char **argv, const char *usage, int with_out);

/*
 * @brief Connects to o->host:o->port and selects o->db.
 * @returns the connection (the caller frees it with redisFree), or NULL
 *          after printing why to stderr.
 */
redisContext *vdb_connect(const vdb_opts *o, const char *prog);

#endif
