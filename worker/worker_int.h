/*
 * worker_int.h - private to worker/: Kafka plumbing and the task registry.
 */
#ifndef VD_WORKER_INT_H
#define VD_WORKER_INT_H

#include <librdkafka/rdkafka.h>

#include "vd_worker.h"

/* ---- Kafka ------------------------------------------------------------ */
/** A librdkafka conf with bootstrap and every -X property applied. */
rd_kafka_conf_t *vd__kconf(const vd_config *c, char *errstr, size_t errstr_size);
/** Creates the four topics when missing (status and health compacted). */
vd_err vd__topics_ensure(rd_kafka_t *rk, const vd_config *c, char *errstr, size_t errstr_size);

/* ---- the task registry: NS:task:ID in Redis --------------------------- */
typedef enum {
    VD_CLAIM_OK = 0,      /* ours now; *attempt set */
    VD_CLAIM_ENDED,       /* the task already ended; *last_event holds its final event */
    VD_CLAIM_BUSY,        /* another worker holds a live lease */
} vd_claim;

/**
 * Claims a task for this worker (Lua, atomic): creates the entry, or takes
 * over one whose lease expired, bumping attempt.
 */
vd_err vd__task_claim(vd_store *s, const char *ns, const char *task_id, const char *kind,
                      const char *worker_id, int lease_ms, vd_claim *claim, int *attempt,
                      vd_buf *last_event, int64_t *lease_left_ms, char *errstr,
                      size_t errstr_size);
/** Renews our lease; sets *cancel when a cancel was requested. VD_ERR_CONFLICT if lost. */
vd_err vd__task_renew(vd_store *s, const char *ns, const char *task_id, const char *worker_id,
                      int lease_ms, bool *cancel, char *errstr, size_t errstr_size);
/** Next seq for an event of the task (HINCRBY). */
vd_err vd__task_next_seq(vd_store *s, const char *ns, const char *task_id, int64_t *seq,
                         char *errstr, size_t errstr_size);
/** Records the state (and the encoded event) of the task; final states end it. */
vd_err vd__task_record(vd_store *s, const char *ns, const char *task_id, const char *state,
                       const void *event, size_t event_len, bool final, char *errstr,
                       size_t errstr_size);
/** Releases the lease (shutdown): the task can be taken over at once. */
vd_err vd__task_release(vd_store *s, const char *ns, const char *task_id, const char *worker_id,
                        char *errstr, size_t errstr_size);
vd_err vd__task_checkpoint_save(vd_store *s, const char *ns, const char *task_id, int64_t v,
                                char *errstr, size_t errstr_size);
vd_err vd__task_checkpoint_load(vd_store *s, const char *ns, const char *task_id, int64_t *v,
                                char *errstr, size_t errstr_size);
/** Asks a running task to cancel. *state gets its state ("" when unknown). */
vd_err vd__task_request_cancel(vd_store *s, const char *ns, const char *task_id, char *state,
                               size_t state_size, char *errstr, size_t errstr_size);
/** Reads a task's state and last event. */
vd_err vd__task_get(vd_store *s, const char *ns, const char *task_id, char *state,
                    size_t state_size, vd_buf *last_event, char *errstr, size_t errstr_size);

#endif
