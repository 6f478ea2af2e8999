/*
 * worker_jobs.h - private to worker/: a job slot runs one command on its own
 * thread and publishes that task's events.
 */
#ifndef VD_WORKER_JOBS_H
#define VD_WORKER_JOBS_H

#include <pthread.h>
#include <stdatomic.h>

#include "worker_int.h"
#include "vd_schemas.h"

enum { VD__SLOT_FREE = 0, VD__SLOT_RUNNING = 1, VD__SLOT_DONE = 2 };

typedef struct vd__job {
    const vd_config *conf;
    rd_kafka_t *producer;
    struct vd_worker *w;
    pthread_t thread;
    bool has_thread;           /* thread was started (and must be joined) */
    atomic_int slot_state;
    /* where the command came from */
    char topic[128];
    int32_t partition;
    int64_t offset;
    /* the command (raw bytes are kept for the DLQ) */
    void *raw;
    size_t raw_len;
    void *key;
    size_t key_len;
    vd_command cmd;
    char task_id[VD_ID_MAX + 1];
    char ns[VD_ID_MAX + 1];
    vd_task_kind kind;
    int attempt;
    atomic_bool claimed;       /* the registry says this worker owns the task */
    atomic_bool cancel;        /* the task's cancel flag (user cancel or abandon) */
    atomic_bool abandon;       /* stop without a final event: shutdown / revoke */
    atomic_bool final_delivered;
    atomic_bool final_failed;
    bool no_commit;            /* abandoned: leave the offset uncommitted */
    vd_buf final_event;        /* encoded final event, for re-sending */
    /* for health reports */
    _Atomic double percent;
    atomic_int state;          /* vd_task_state */
    int64_t last_progress_ms;
    char phase[32];
} vd__job;

void vd__job_init(vd__job *j, const vd_config *conf, rd_kafka_t *producer);
/** Copies the message and starts the job's thread. */
void vd__job_start(vd__job *j, struct vd_worker *w, const rd_kafka_message_t *m);
/** Sets the user-cancel flag. */
void vd__job_cancel(vd__job *j);
/** Stops the task without a final event (it checkpoints and releases its lease). */
void vd__job_abandon(vd__job *j);
/** Produces the final event again (after a failed delivery). */
void vd__job_republish_final(vd__job *j);
/** Frees the slot's command and marks it FREE (the thread is joined). */
void vd__job_reset(vd__job *j);
void vd__job_destroy(vd__job *j);

/* Health reports (vd_health.c in worker/). */
/*
 * Builds a HealthReport (the tasks' probe plus kafka, active operations and
 * the last backup) and publishes it keyed by worker id. Main thread only.
 * @p store may be NULL (then the last backup is not reported).
 */
void vd__health_publish(const vd_config *conf, rd_kafka_t *producer, rd_kafka_t *consumer,
                        vd__job *jobs, int njobs, vd_store *store, const char *reason);

/* From vd_worker.c. */
bool vd__worker_cancel_local(struct vd_worker *w, const char *task_id);
void vd__worker_request_health(struct vd_worker *w);

#endif
