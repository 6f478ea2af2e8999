/*
 * vd_tasks.h - the work behind each command (SPEC §4-§6): export, import,
 * validate and the health probe. Tasks know Redis (store/) and artifacts
 * (formats/) but not Kafka: the worker and `vecdump run` both call them.
 *
 * Each task runs on the calling thread, reports progress through a callback
 * and polls a cancel flag between batches.
 */
#ifndef VD_TASKS_H
#define VD_TASKS_H

#include <stdatomic.h>

#include "vd_common.h"
#include "vd_store.h"
#include "vd_formats.h"

/* ---- shared by every task --------------------------------------------- */
typedef enum { VD_SEV_INFO = 0, VD_SEV_WARNING, VD_SEV_ERROR, VD_SEV_CRITICAL } vd_severity;
const char *vd_severity_name(vd_severity s);

typedef struct vd_issue {
    char code[48];           /* stable code, e.g. "ORPHAN_CHUNK" */
    vd_severity severity;
    char message[256];
    char key[300];           /* the Redis key or record concerned, "" if none */
} vd_issue;

/* A capped list of issues: counts everything, keeps the first `max`. */
typedef struct vd_issues {
    vd_issue *items;
    size_t n, cap, max;      /* max kept (default 100) */
    int64_t total;           /* all issues seen, kept or not */
} vd_issues;
void vd_issues_init(vd_issues *l, size_t max);
void vd_issues_add(vd_issues *l, const char *code, vd_severity sev, const char *key,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void vd_issues_free(vd_issues *l);

typedef struct vd_progress {
    const char *phase;       /* "count", "export", "verify", "write", "scan", "fix", … */
    int64_t done;
    int64_t total;           /* -1 when unknown */
    int64_t bytes;
} vd_progress;

typedef struct vd_task_ctx {
    const vd_store_conf *redis;     /* tasks open their own connection(s) */
    const char *backup_dir;         /* the backup volume */
    const char *task_id;
    const char *ns;
    atomic_bool *cancel;            /* set by cancel / shutdown; may be NULL */
    /* Called at most ~1/s by the task and at every phase change (phase_changed). */
    void (*on_progress)(void *opaque, const vd_progress *p, bool phase_changed);
    void *opaque;
    /* Import resume: checkpoint read/write (count of documents done). May be NULL. */
    vd_err (*checkpoint_load)(void *opaque, int64_t *docs_done);
    vd_err (*checkpoint_save)(void *opaque, int64_t docs_done);
} vd_task_ctx;

/* ---- export ----------------------------------------------------------- */
typedef struct vd_export_params {
    vd_format format;
    bool compress;
    bool include_files;
    bool verify_first;
    bool fail_on_verify_errors;   /* verify_first errors fail the export */
    const char *destination;      /* relative name or NULL for the default */
} vd_export_params;

typedef struct vd_export_result {
    char path[1024];              /* relative to the backup volume */
    int64_t size;
    char sha256[65];
    vd_counts counts;
    int64_t duration_ms;
    vd_issues warnings;           /* verify_first findings, then one WARNING per
                                     skipped record (EXPORT_SKIPPED_CHUNK /
                                     EXPORT_SKIPPED_FILE, key = the Redis key) */
    int64_t skipped_chunks;       /* chunks left out: no embedding, wrong dim,
                                     NaN/Inf, invalid id, doc_id or seq order */
    int64_t skipped_files;        /* files left out: size or SHA-256 differs from
                                     the document's (the document is exported) */
} vd_export_result;

/*
 * Exports what can be represented validly and says what it left out: a chunk
 * without an embedding, with a dimension other than NS:meta's, with NaN/Inf,
 * with an invalid id, a doc_id other than its document's or a seq out of
 * order is skipped (its document's chunk_count is then the number exported);
 * a file whose size or SHA-256 differs from its document's is skipped (the
 * document is exported without it). Each skip is a WARNING in res->warnings
 * and is counted in skipped_chunks / skipped_files. Before writing, stale
 * temp files of an earlier export killed in the destination directory
 * (".NAME.tmp-PID-RAND" whose PID no longer exists) are removed.
 * @returns VD_ERR_OK, or the error with errstr; no artifact is left on error.
 */
vd_err vd_task_export(const vd_task_ctx *ctx, const vd_export_params *p,
                      vd_export_result *res, char *errstr, size_t errstr_size);
void vd_export_result_free(vd_export_result *r);

/* ---- import ----------------------------------------------------------- */
typedef enum { VD_CONFLICT_FAIL = 0, VD_CONFLICT_SKIP, VD_CONFLICT_OVERWRITE } vd_on_conflict;

typedef struct vd_import_params {
    const char *source_path;      /* relative to backup_dir, or NULL */
    const void *inline_data;      /* or inline bytes */
    size_t inline_len;
    bool validate_only;
    vd_on_conflict on_conflict;
    const char *expected_sha256;  /* hex or NULL */
    vd_limits limits;
    int64_t max_inline_bytes;     /* default 16 MiB */
} vd_import_params;

#define VD_CONFLICT_IDS_MAX 20
typedef struct vd_import_result {
    int64_t imported, skipped, overwritten;
    int64_t conflicts;
    char *conflict_ids[VD_CONFLICT_IDS_MAX];   /* first N, owned */
    size_t nconflict_ids;
    vd_counts counts;             /* what the artifact holds */
    int64_t duration_ms;
    bool validate_only;
} vd_import_result;

vd_err vd_task_import(const vd_task_ctx *ctx, const vd_import_params *p,
                      vd_import_result *res, char *errstr, size_t errstr_size);
void vd_import_result_free(vd_import_result *r);

/* ---- validate --------------------------------------------------------- */
typedef struct vd_validate_params {
    bool fix;
    const char **checks;          /* subset of check names, NULL = all */
    size_t nchecks;
} vd_validate_params;

typedef struct vd_check_count {   /* issues found per check */
    char check[32];
    int64_t count;
} vd_check_count;

typedef struct vd_validate_result {
    vd_issues issues;
    vd_check_count by_check[16];
    size_t nchecks;
    int64_t by_severity[4];
    int64_t fixed;                /* total repairs made */
    int64_t quarantined;          /* records moved to NS:quarantine:… */
    int64_t unfixable;
    int64_t documents, chunks, files;
    int64_t duration_ms;
} vd_validate_result;

vd_err vd_task_validate(const vd_task_ctx *ctx, const vd_validate_params *p,
                        vd_validate_result *res, char *errstr, size_t errstr_size);
void vd_validate_result_free(vd_validate_result *r);

/* ---- artifact paths ---------------------------------------------------- */
/**
 * Resolves a client-given relative path inside backup_dir. Refuses absolute
 * paths, "..", empty components and symlinks that escape. @returns VD_ERR_PATH.
 */
vd_err vd_path_resolve(const char *backup_dir, const char *rel, char *out, size_t out_size,
                       char *errstr, size_t errstr_size);

/* ---- health probe (SPEC §6) ------------------------------------------- */
/*
 * What one worker can see by itself: Redis (PING latency, memory,
 * persistence, replication role), the backup volume (free space, writable)
 * and the namespace's schema, with the data metrics of HealthReport.
 * The worker adds the "kafka" component (vd_health_probe_add), the active
 * operations and the last successful backup, which only it knows.
 */
typedef enum {
    VD_HEALTH_HEALTHY = 0,
    VD_HEALTH_DEGRADED = 1,
    VD_HEALTH_UNHEALTHY = 2
} vd_health_status;
/** @returns "HEALTHY", "DEGRADED" or "UNHEALTHY". */
const char *vd_health_status_name(vd_health_status s);

typedef struct vd_health_component {
    char name[16];           /* "redis", "backup_volume", "schema", "kafka" */
    vd_health_status status;
    double latency_ms;       /* time of the probe itself; -1 when not measured */
    char detail[256];        /* e.g. "role=master used_memory=1234 ..." */
} vd_health_component;

#define VD_HEALTH_COMPONENTS_MAX 4
typedef struct vd_health_probe {
    vd_health_component comps[VD_HEALTH_COMPONENTS_MAX];
    size_t ncomps;
    /* metrics; -1 when Redis could not be read */
    int64_t documents, chunks, files;
    int64_t used_memory;          /* bytes (INFO memory) */
    double documents_per_mb;      /* documents / (used_memory / 1 MiB) */
    double chunks_per_document;
    int dim;                      /* from NS:meta, 0 when unknown */
    int64_t volume_free_bytes;    /* -1 when unknown */
    int64_t volume_total_bytes;
    vd_health_status overall;     /* worst component */
    vd_issues issues;             /* one per component that is not HEALTHY */
} vd_health_probe;

/**
 * @brief Probes Redis (connect timeout capped at 1000 ms so a dead server
 *        answers quickly), the backup volume (skipped when backup_dir is
 *        NULL) and NS:meta, and fills *out (which the caller frees with
 *        vd_health_probe_free, whatever the return).
 * @param min_free_bytes DEGRADED below this many free bytes (0: only the
 *        5 % rule applies).
 * @returns VD_ERR_OK whenever a report was produced, however unhealthy;
 *          VD_ERR_INVALID_ARG for missing arguments.
 */
vd_err vd_health_probe_run(const vd_store_conf *redis, const char *ns, const char *backup_dir,
                           int64_t min_free_bytes, vd_health_probe *out, char *errstr,
                           size_t errstr_size);
/**
 * @brief Adds (or replaces, by name) a component, e.g. the worker's
 *        "kafka", updates overall and adds an issue when not HEALTHY.
 * @returns the component, or NULL when the table is full.
 */
vd_health_component *vd_health_probe_add(vd_health_probe *p, const char *name,
                                         vd_health_status status, double latency_ms,
                                         const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void vd_health_probe_free(vd_health_probe *p);

#endif /* VD_TASKS_H */
