/*
 * tasks_int.h - private to tasks/: helpers every task shares (progress
 * throttling, cancel checks, durable file placement).
 *
 * Additive: each task file may append its own vd__ helpers below.
 */
#ifndef VD_TASKS_INT_H
#define VD_TASKS_INT_H

#include "vd_tasks.h"

#ifndef VD_VERSION
#define VD_VERSION "0.1.0"
#endif

/* ---- progress: at most one report per interval, plus phase changes ---- */
#define VD__PROGRESS_INTERVAL_MS 1000

typedef struct vd__progress {
    const vd_task_ctx *ctx;
    vd_progress p;           /* what was last set (phase points to a literal) */
    int64_t last_ms;         /* monotonic time of the last report */
} vd__progress;

/** Binds the throttle to a task; reports nothing yet. */
void vd__progress_init(vd__progress *pr, const vd_task_ctx *ctx);
/**
 * Starts a phase (a string literal): resets done/bytes, sets total (-1 when
 * unknown) and reports immediately with phase_changed = true.
 */
void vd__progress_phase(vd__progress *pr, const char *phase, int64_t total);
/** Records done/bytes; reports when the interval has passed since the last report. */
void vd__progress_update(vd__progress *pr, int64_t done, int64_t bytes);
/** Sets a new total for the current phase without reporting. */
void vd__progress_set_total(vd__progress *pr, int64_t total);
/** Reports the current state now (e.g. at the end of a phase). */
void vd__progress_flush(vd__progress *pr);

/* ---- cancel ----------------------------------------------------------- */
/** @returns true when the task's cancel flag is set (false when ctx->cancel is NULL). */
bool vd__cancelled(const vd_task_ctx *ctx);

/* ---- files ------------------------------------------------------------- */
/** Maps an errno from a write-side call to VD_ERR_NOSPACE or VD_ERR_IO. */
vd_err vd__errno_err(int errnum);
/** fsyncs a directory. @returns VD_ERR_IO with errstr naming the step. */
vd_err vd__fsync_dir(const char *dir, char *errstr, size_t errstr_size);
/**
 * Builds "DIR/.BASE.tmp-PID-RAND" for a final path "DIR/BASE" into out.
 * @returns VD_ERR_INVALID_ARG when it does not fit.
 */
vd_err vd__temp_path(const char *final_path, char *out, size_t out_size, char *errstr,
                     size_t errstr_size);
/**
 * Writes data to a hidden temp file next to final_path and fsyncs it
 * (without renaming). On success *tmp_out holds the temp path.
 * On failure nothing is left behind.
 */
vd_err vd__write_temp(const char *final_path, const void *data, size_t len, char *tmp_out,
                      size_t tmp_size, char *errstr, size_t errstr_size);
/** Splits "DIR/BASE": copies DIR into dir (or "." when there is no slash). */
void vd__dirname(const char *path, char *dir, size_t dir_size);

#endif /* VD_TASKS_INT_H */
