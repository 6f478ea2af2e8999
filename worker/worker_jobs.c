/*
 * worker_jobs.c - one command on one job thread: decode, claim the task in
 * the registry, publish ACCEPTED / RUNNING / final events, run the task.
 */
#include "worker_jobs.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vd_tasks.h"

void vd__job_init(vd__job *j, const vd_config *conf, rd_kafka_t *producer) {
    memset(j, 0, sizeof *j);
    j->conf = conf;
    j->producer = producer;
    atomic_store(&j->slot_state, VD__SLOT_FREE);
    vd_buf_init(&j->final_event, 0);
}

void vd__job_cancel(vd__job *j) { atomic_store(&j->cancel, true); }

void vd__job_abandon(vd__job *j) {
    atomic_store(&j->abandon, true);
    atomic_store(&j->cancel, true);
}

void vd__job_reset(vd__job *j) {
    free(j->raw);
    free(j->key);
    j->raw = j->key = NULL;
    vd_command_free(&j->cmd);
    vd_buf_reset(&j->final_event);
    atomic_store(&j->slot_state, VD__SLOT_FREE);
}

void vd__job_destroy(vd__job *j) {
    if (atomic_load(&j->slot_state) != VD__SLOT_FREE) {
        vd__job_abandon(j);
        if (j->has_thread)
            pthread_join(j->thread, NULL);
    }
    vd__job_reset(j);
    vd_buf_free(&j->final_event);
}

/* ---- producing ---------------------------------------------------------- */
static void produce(vd__job *j, const char *topic, const void *key, size_t klen, const void *val,
                    size_t vlen, rd_kafka_headers_t *hdrs, void *opaque) {
    for (int tries = 0; tries < 600; tries++) {
        rd_kafka_resp_err_t err;
        if (hdrs)
            err = rd_kafka_producev(j->producer, RD_KAFKA_V_TOPIC(topic),
                                    RD_KAFKA_V_KEY((void *)key, klen),
                                    RD_KAFKA_V_VALUE((void *)val, vlen),
                                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                    RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(opaque),
                                    RD_KAFKA_V_END);
        else
            err = rd_kafka_producev(j->producer, RD_KAFKA_V_TOPIC(topic),
                                    RD_KAFKA_V_KEY((void *)key, klen),
                                    RD_KAFKA_V_VALUE((void *)val, vlen),
                                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                    RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
        if (!err)
            return;
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            vd_log(VD_LOG_ERROR, "produce failed", "topic=%s error=\"%s\"", topic,
                   rd_kafka_err2str(err));
            if (hdrs)
                rd_kafka_headers_destroy(hdrs);
            if (opaque)
                atomic_store(&j->final_failed, true);
            return;
        }
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (opaque)
        atomic_store(&j->final_failed, true);
}

void vd__job_republish_final(vd__job *j) {
    produce(j, j->conf->topic_status, j->task_id, strlen(j->task_id), j->final_event.data,
            j->final_event.len, NULL, j);
}

/* ---- events --------------------------------------------------------------- */
typedef struct job_run {
    vd__job *j;
    vd_store *store;
    int64_t seq;
    int64_t phase_start_ms;
} job_run;

static void free_issue_array(vd_ev_issue *a, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(a[i].code);
        free(a[i].message);
        free(a[i].key);
    }
    free(a);
}

/*
 * Publishes one event of the task. ev carries the state-specific parts
 * (message, progress, issues, result); the common ones are filled here.
 * A final event is also recorded in the registry and its delivery awaited
 * before the command's offset is committed.
 */
static void emit(job_run *r, vd_task_event *ev, vd_task_state st) {
    vd__job *j = r->j;
    char err[256];
    int64_t seq = r->seq + 1;
    if (r->store && vd__task_next_seq(r->store, j->ns, j->task_id, &seq, err, sizeof err) == 0 &&
        seq <= r->seq)
        seq = r->seq + 1;
    r->seq = seq;
    ev->task_id = j->task_id;
    ev->worker_id = (char *)j->conf->worker_id;
    ev->kind = j->kind;
    ev->state = st;
    ev->seq = seq;
    ev->attempt = j->attempt;
    ev->at = vd_now_ms();
    if (!ev->phase)
        ev->phase = j->phase;
    if (!ev->message)
        ev->message = "";
    atomic_store(&j->state, (int)st);

    vd_buf out;
    vd_buf_init(&out, 0);
    vd_err e = vd_event_encode(ev, &out, err, sizeof err);
    if (e) {
        vd_log(VD_LOG_ERROR, "cannot encode event", "task_id=%s error=\"%s\"", j->task_id, err);
        vd_buf_free(&out);
        return;
    }
    bool final = vd_state_is_final(st);
    if (final) {
        if (r->store &&
            vd__task_record(r->store, j->ns, j->task_id, vd_state_name(st), out.data, out.len,
                            true, err, sizeof err))
            vd_log(VD_LOG_WARN, "cannot record final state", "task_id=%s error=\"%s\"",
                   j->task_id, err);
        vd_buf_reset(&j->final_event);
        vd_buf_append(&j->final_event, out.data, out.len);
    } else if (r->store && (st == VD_STATE_ACCEPTED || ev->phase != j->phase)) {
        vd__task_record(r->store, j->ns, j->task_id, vd_state_name(st), out.data, out.len, false,
                        err, sizeof err);
    }
    produce(j, j->conf->topic_status, j->task_id, strlen(j->task_id), out.data, out.len, NULL,
            final ? j : NULL);
    vd_log(final ? VD_LOG_INFO : VD_LOG_DEBUG, "task event",
           "task_id=%s kind=%s state=%s seq=%lld phase=%s", j->task_id, vd_task_kind_name(j->kind),
           vd_state_name(st), (long long)seq, ev->phase);
    vd_buf_free(&out);
}

static void emit_simple(job_run *r, vd_task_state st, const char *msg) {
    vd_task_event ev;
    memset(&ev, 0, sizeof ev);
    ev.message = (char *)msg;
    emit(r, &ev, st);
}

static void emit_failed(job_run *r, vd_task_state st, vd_err e, const char *msg) {
    vd_task_event ev;
    memset(&ev, 0, sizeof ev);
    ev.message = (char *)msg;
    vd_issue_add(&ev.errors, &ev.nerrors, vd_err_name(e), VD_SEV_ERROR, msg, NULL);
    emit(r, &ev, st);
    free_issue_array(ev.errors, ev.nerrors);
}

static void on_progress(void *opaque, const vd_progress *p, bool phase_changed) {
    job_run *r = opaque;
    vd__job *j = r->j;
    int64_t now = vd_mono_ms();
    if (phase_changed || strcmp(j->phase, p->phase ? p->phase : "")) {
        snprintf(j->phase, sizeof j->phase, "%s", p->phase ? p->phase : "");
        r->phase_start_ms = now;
    }
    vd_task_event ev;
    memset(&ev, 0, sizeof ev);
    ev.phase = j->phase;
    ev.progress.done = p->done;
    ev.progress.total = p->total;
    ev.progress.bytes = p->bytes;
    double secs = (double)(now - r->phase_start_ms) / 1000.0;
    ev.progress.rate_per_s = secs > 0.05 ? (double)p->done / secs : 0.0;
    ev.progress.eta_ms = (p->total >= 0 && ev.progress.rate_per_s > 0)
                             ? (int64_t)((double)(p->total - p->done) / ev.progress.rate_per_s * 1000.0)
                             : -1;
    if (p->total > 0)
        atomic_store(&j->percent, 100.0 * (double)p->done / (double)p->total);
    emit(r, &ev, VD_STATE_RUNNING);
}

static vd_err ckpt_load(void *opaque, int64_t *v) {
    job_run *r = opaque;
    char err[256];
    return r->store ? vd__task_checkpoint_load(r->store, r->j->ns, r->j->task_id, v, err, sizeof err)
                    : VD_ERR_REDIS_CONN;
}

static vd_err ckpt_save(void *opaque, int64_t v) {
    job_run *r = opaque;
    char err[256];
    return r->store ? vd__task_checkpoint_save(r->store, r->j->ns, r->j->task_id, v, err, sizeof err)
                    : VD_ERR_REDIS_CONN;
}

static void issues_to_event(const vd_issues *l, vd_task_event *ev) {
    for (size_t i = 0; i < l->n; i++) {
        const vd_issue *is = &l->items[i];
        if (is->severity >= VD_SEV_ERROR)
            vd_issue_add(&ev->errors, &ev->nerrors, is->code, is->severity, is->message,
                         is->key[0] ? is->key : NULL);
        else
            vd_issue_add(&ev->warnings, &ev->nwarnings, is->code, is->severity, is->message,
                         is->key[0] ? is->key : NULL);
    }
}

static void record_last_backup(job_run *r, const vd_export_result *res) {
    if (!r->store)
        return;
    redisContext *c = vd_store_redis(r->store);
    char key[300], at[32];
    snprintf(key, sizeof key, "%s:last_backup", r->j->ns);
    snprintf(at, sizeof at, "%lld", (long long)vd_now_ms());
    redisReply *rep = redisCommand(c, "HSET %s task_id %s at %s artifact_path %s", key,
                                   r->j->task_id, at, res->path);
    if (rep)
        freeReplyObject(rep);
}

/* ---- the tasks -------------------------------------------------------------- */
static void ctx_init(job_run *r, vd_task_ctx *ctx, vd_store_conf *sc) {
    vd__job *j = r->j;
    vd_config_store_conf(j->conf, sc);
    memset(ctx, 0, sizeof *ctx);
    ctx->redis = sc;
    ctx->backup_dir = j->conf->backup_dir;
    ctx->task_id = j->task_id;
    ctx->ns = j->ns;
    ctx->cancel = &j->cancel;
    ctx->on_progress = on_progress;
    ctx->opaque = r;
    ctx->checkpoint_load = ckpt_load;
    ctx->checkpoint_save = ckpt_save;
}

/* Emits the final event for a task that returned e (not OK). */
static void finish_error(job_run *r, vd_err e, const char *errstr) {
    if (atomic_load(&r->j->abandon))
        return;
    if (e == VD_ERR_CANCELLED)
        emit_failed(r, VD_STATE_CANCELLED, e, errstr[0] ? errstr : "cancelled");
    else
        emit_failed(r, VD_STATE_FAILED, e, errstr[0] ? errstr : vd_err2str(e));
}

static void run_export(job_run *r) {
    vd__job *j = r->j;
    vd_task_ctx ctx;
    vd_store_conf sc;
    ctx_init(r, &ctx, &sc);
    vd_export_params p;
    memset(&p, 0, sizeof p);
    p.format = (vd_format)j->cmd.export.format;
    p.compress = j->cmd.export.compress;
    p.include_files = j->cmd.export.include_files;
    p.verify_first = j->cmd.export.verify_first;
    p.destination = j->cmd.export.destination;
    vd_export_result res;
    memset(&res, 0, sizeof res);
    char err[512] = "";
    vd_err e = vd_task_export(&ctx, &p, &res, err, sizeof err);
    if (e) {
        finish_error(r, e, err);
    } else {
        vd_task_event ev;
        memset(&ev, 0, sizeof ev);
        char msg[1200];
        int n = snprintf(msg, sizeof msg, "exported %lld documents, %lld chunks to %s",
                         (long long)res.counts.documents, (long long)res.counts.chunks, res.path);
        if ((res.skipped_chunks || res.skipped_files) && n > 0 && (size_t)n < sizeof msg)
            snprintf(msg + n, sizeof msg - (size_t)n,
                     "; skipped %lld chunks and %lld files that cannot be restored (see warnings)",
                     (long long)res.skipped_chunks, (long long)res.skipped_files);
        ev.message = msg;
        ev.phase = "done";
        ev.result_kind = VD_RESULT_EXPORT;
        ev.export_result.artifact_path = res.path;
        ev.export_result.size = res.size;
        ev.export_result.sha256 = res.sha256;
        ev.export_result.documents = res.counts.documents;
        ev.export_result.chunks = res.counts.chunks;
        ev.export_result.files = res.counts.files;
        ev.export_result.duration_ms = res.duration_ms;
        ev.progress.done = ev.progress.total = res.counts.documents;
        ev.progress.bytes = res.size;
        issues_to_event(&res.warnings, &ev);
        record_last_backup(r, &res);
        emit(r, &ev, VD_STATE_SUCCEEDED);
        free_issue_array(ev.errors, ev.nerrors);
        free_issue_array(ev.warnings, ev.nwarnings);
    }
    vd_export_result_free(&res);
}

static void run_import(job_run *r) {
    vd__job *j = r->j;
    vd_task_ctx ctx;
    vd_store_conf sc;
    ctx_init(r, &ctx, &sc);
    vd_import_params p;
    memset(&p, 0, sizeof p);
    p.source_path = j->cmd.import.source_path;
    if (j->cmd.import.has_inline) {
        p.inline_data = j->cmd.import.inline_data;
        p.inline_len = j->cmd.import.inline_len;
    }
    p.validate_only = j->cmd.import.validate_only;
    p.on_conflict = (vd_on_conflict)j->cmd.import.on_conflict;
    p.expected_sha256 = j->cmd.import.expected_sha256;
    vd_limits_default(&p.limits);
    p.max_inline_bytes = j->conf->max_inline_bytes;
    vd_import_result res;
    memset(&res, 0, sizeof res);
    char err[512] = "";
    vd_err e = vd_task_import(&ctx, &p, &res, err, sizeof err);
    vd_task_event ev;
    memset(&ev, 0, sizeof ev);
    ev.result_kind = VD_RESULT_IMPORT;
    ev.import_result.imported = res.imported;
    ev.import_result.skipped = res.skipped;
    ev.import_result.overwritten = res.overwritten;
    ev.import_result.conflicts = res.conflicts;
    ev.import_result.conflict_ids = res.conflict_ids;
    ev.import_result.nconflict_ids = res.nconflict_ids;
    ev.import_result.documents = res.counts.documents;
    ev.import_result.chunks = res.counts.chunks;
    ev.import_result.files = res.counts.files;
    ev.import_result.duration_ms = res.duration_ms;
    ev.import_result.validate_only = p.validate_only;
    char msg[1024];
    if (!e) {
        if (p.validate_only)
            snprintf(msg, sizeof msg,
                     "validate_only: %lld documents, %lld chunks would be imported; %lld conflicts",
                     (long long)res.counts.documents, (long long)res.counts.chunks,
                     (long long)res.conflicts);
        else
            snprintf(msg, sizeof msg, "imported %lld, skipped %lld, overwritten %lld documents",
                     (long long)res.imported, (long long)res.skipped, (long long)res.overwritten);
        ev.message = msg;
        ev.phase = "done";
        emit(r, &ev, VD_STATE_SUCCEEDED);
    } else if (!atomic_load(&j->abandon)) {
        /* A failed or cancelled import still says what it had written. */
        ev.message = err[0] ? err : (char *)vd_err2str(e);
        vd_issue_add(&ev.errors, &ev.nerrors, vd_err_name(e), VD_SEV_ERROR, ev.message, NULL);
        emit(r, &ev, e == VD_ERR_CANCELLED ? VD_STATE_CANCELLED : VD_STATE_FAILED);
        free_issue_array(ev.errors, ev.nerrors);
    }
    vd_import_result_free(&res);
}

static void run_validate(job_run *r) {
    vd__job *j = r->j;
    vd_task_ctx ctx;
    vd_store_conf sc;
    ctx_init(r, &ctx, &sc);
    vd_validate_params p;
    memset(&p, 0, sizeof p);
    p.fix = j->cmd.validate.fix;
    if (j->cmd.validate.has_checks) {
        p.checks = (const char **)j->cmd.validate.checks;
        p.nchecks = j->cmd.validate.nchecks;
    }
    vd_validate_result res;
    memset(&res, 0, sizeof res);
    char err[512] = "";
    vd_err e = vd_task_validate(&ctx, &p, &res, err, sizeof err);
    if (e) {
        finish_error(r, e, err);
        vd_validate_result_free(&res);
        return;
    }
    vd_task_event ev;
    memset(&ev, 0, sizeof ev);
    vd_count bycheck[16], bysev[4];
    size_t nb = res.nchecks < 16 ? res.nchecks : 16;
    for (size_t i = 0; i < nb; i++) {
        bycheck[i].name = res.by_check[i].check;
        bycheck[i].count = res.by_check[i].count;
    }
    for (int s = 0; s < 4; s++) {
        bysev[s].name = (char *)vd_severity_name((vd_severity)s);
        bysev[s].count = res.by_severity[s];
    }
    ev.result_kind = VD_RESULT_VALIDATE;
    ev.validate_result.issues_by_check = bycheck;
    ev.validate_result.nissues_by_check = nb;
    ev.validate_result.issues_by_severity = bysev;
    ev.validate_result.nissues_by_severity = 4;
    ev.validate_result.fixed = res.fixed;
    ev.validate_result.quarantined = res.quarantined;
    ev.validate_result.unfixable = res.unfixable;
    ev.validate_result.documents = res.documents;
    ev.validate_result.chunks = res.chunks;
    ev.validate_result.files = res.files;
    ev.validate_result.duration_ms = res.duration_ms;
    issues_to_event(&res.issues, &ev);
    char msg[512];
    snprintf(msg, sizeof msg, "%lld issues found%s; %lld fixed, %lld quarantined, %lld unfixable",
             (long long)res.issues.total, p.fix ? " (fix)" : "", (long long)res.fixed,
             (long long)res.quarantined, (long long)res.unfixable);
    ev.message = msg;
    ev.phase = "done";
    emit(r, &ev, VD_STATE_SUCCEEDED);
    free_issue_array(ev.errors, ev.nerrors);
    free_issue_array(ev.warnings, ev.nwarnings);
    vd_validate_result_free(&res);
}

static void run_cancel(job_run *r) {
    vd__job *j = r->j;
    const char *target = j->cmd.cancel.target_task_id;
    bool local = vd__worker_cancel_local(j->w, target);
    char state[32] = "", err[256] = "", msg[400];
    vd_err e = r->store ? vd__task_request_cancel(r->store, j->ns, target, state, sizeof state,
                                                  err, sizeof err)
                        : VD_ERR_REDIS_CONN;
    if (e && !local) {
        emit_failed(r, VD_STATE_FAILED, e, err[0] ? err : vd_err2str(e));
        return;
    }
    if (!state[0] && !local) {
        snprintf(msg, sizeof msg, "no task %s in namespace %s", target, j->ns);
        emit_failed(r, VD_STATE_FAILED, VD_ERR_NOT_FOUND, msg);
        return;
    }
    vd_task_state ts;
    if (state[0] && vd_state_parse(state, &ts) && vd_state_is_final(ts))
        snprintf(msg, sizeof msg, "task %s already ended (%s)", target, state);
    else
        snprintf(msg, sizeof msg, "cancel requested for task %s", target);
    emit_simple(r, VD_STATE_SUCCEEDED, msg);
}

static void run_health(job_run *r) {
    emit_simple(r, VD_STATE_SUCCEEDED, "health report requested from this worker");
}

/* The testing aid --debug-task-delay-ms: waits, announcing a "delay" phase.
 * @returns false when cancelled or abandoned meanwhile. */
static bool delay_task(job_run *r) {
    vd__job *j = r->j;
    vd_progress p = {.phase = "delay", .done = 0, .total = j->conf->debug_task_delay_ms, .bytes = 0};
    on_progress(r, &p, true);
    int64_t end = vd_mono_ms() + j->conf->debug_task_delay_ms;
    while (vd_mono_ms() < end) {
        if (atomic_load(&j->cancel))
            return false;
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return true;
}

/* ---- rejection: REJECTED event + DLQ -------------------------------------- */
static void reject(vd__job *j, vd_err e, const char *why) {
    vd_log(VD_LOG_WARN, "command rejected", "topic=%s partition=%d offset=%lld code=%s error=\"%s\"",
           j->topic, (int)j->partition, (long long)j->offset, vd_err_name(e), why);
    const char *tid = j->cmd.task_id;
    if (tid && vd_id_valid(tid, strlen(tid))) {
        snprintf(j->task_id, sizeof j->task_id, "%s", tid);
        job_run r = {.j = j};
        const char *ns = j->cmd.ns;
        if (ns && vd_id_valid(ns, strlen(ns))) {
            snprintf(j->ns, sizeof j->ns, "%s", ns);
            char err[256];
            vd_store_conf sc;
            vd_config_store_conf(j->conf, &sc);
            sc.timeout_ms = 2000;
            if (vd_store_connect(&sc, &r.store, err, sizeof err))
                r.store = NULL;
        }
        j->kind = VD_KIND_UNKNOWN;
        if (j->cmd.task_id && e != VD_ERR_UNKNOWN_COMMAND && e != VD_ERR_AVRO_BRANCH)
            j->kind = vd_task_kind_of(j->cmd.kind);
        snprintf(j->phase, sizeof j->phase, "decode");
        /* REJECTED is final for the task, but the commit waits for the DLQ copy. */
        vd_task_event ev;
        memset(&ev, 0, sizeof ev);
        ev.message = (char *)why;
        vd_issue_add(&ev.errors, &ev.nerrors, vd_err_name(e), VD_SEV_ERROR, why, NULL);
        vd_buf out;
        vd_buf_init(&out, 0);
        int64_t seq = 1;
        char err[256];
        if (r.store)
            vd__task_next_seq(r.store, j->ns, j->task_id, &seq, err, sizeof err);
        ev.task_id = j->task_id;
        ev.worker_id = (char *)j->conf->worker_id;
        ev.kind = j->kind;
        ev.state = VD_STATE_REJECTED;
        ev.seq = seq;
        ev.at = vd_now_ms();
        ev.phase = j->phase;
        if (!vd_event_encode(&ev, &out, err, sizeof err)) {
            if (r.store)
                vd__task_record(r.store, j->ns, j->task_id, "REJECTED", out.data, out.len, true,
                                err, sizeof err);
            produce(j, j->conf->topic_status, j->task_id, strlen(j->task_id), out.data, out.len,
                    NULL, NULL);
        }
        vd_buf_free(&out);
        free_issue_array(ev.errors, ev.nerrors);
        vd_store_destroy(r.store);
    }
    rd_kafka_headers_t *h = rd_kafka_headers_new(6);
    char part[16], off[32];
    snprintf(part, sizeof part, "%d", (int)j->partition);
    snprintf(off, sizeof off, "%lld", (long long)j->offset);
    rd_kafka_header_add(h, "vecdump.error.code", -1, vd_err_name(e), -1);
    rd_kafka_header_add(h, "vecdump.error.message", -1, why, -1);
    rd_kafka_header_add(h, "vecdump.source.topic", -1, j->topic, -1);
    rd_kafka_header_add(h, "vecdump.source.partition", -1, part, -1);
    rd_kafka_header_add(h, "vecdump.source.offset", -1, off, -1);
    rd_kafka_header_add(h, "vecdump.worker", -1, j->conf->worker_id, -1);
    produce(j, j->conf->topic_dlq, j->key, j->key_len, j->raw, j->raw_len, h, j);
}

/* ---- the thread --------------------------------------------------------------- */
static void *job_main(void *arg) {
    vd__job *j = arg;
    char err[512] = "";
    vd_err e;
    if ((int64_t)j->raw_len > j->conf->max_command_bytes) {
        memset(&j->cmd, 0, sizeof j->cmd);
        snprintf(err, sizeof err, "command of %zu bytes exceeds the limit of %lld", j->raw_len,
                 (long long)j->conf->max_command_bytes);
        reject(j, VD_ERR_TOO_LARGE, err);
        goto done;
    }
    e = vd_command_decode(j->raw, j->raw_len, &j->cmd, err, sizeof err);
    if (e) {
        reject(j, e, err);
        goto done;
    }
    snprintf(j->task_id, sizeof j->task_id, "%s", j->cmd.task_id);
    snprintf(j->ns, sizeof j->ns, "%s", j->cmd.ns);
    j->kind = vd_task_kind_of(j->cmd.kind);
    snprintf(j->phase, sizeof j->phase, "accepted");

    /* A HealthCommand asks for a report even when Redis (and so the task
     * registry) is down: that is when a report matters most. */
    if (j->cmd.kind == VD_CMD_HEALTH)
        vd__worker_request_health(j->w);

    job_run r = {.j = j};
    vd_store_conf sc;
    vd_config_store_conf(j->conf, &sc);
    e = vd_store_connect(&sc, &r.store, err, sizeof err);
    if (e) {
        r.store = NULL;
        emit_failed(&r, VD_STATE_FAILED, e, err);
        goto done;
    }

    /* Claim the task: a redelivered command whose task ended re-publishes
     * the final event; a live lease elsewhere is waited out. */
    vd_buf last;
    vd_buf_init(&last, 0);
    for (;;) {
        vd_claim claim;
        int64_t left = 0;
        e = vd__task_claim(r.store, j->ns, j->task_id, vd_task_kind_name(j->kind),
                           j->conf->worker_id, j->conf->lease_ms, &claim, &j->attempt, &last,
                           &left, err, sizeof err);
        if (e) {
            emit_failed(&r, VD_STATE_FAILED, e, err);
            break;
        }
        if (claim == VD_CLAIM_ENDED) {
            vd_log(VD_LOG_INFO, "task already ended; re-publishing its final event",
                   "task_id=%s", j->task_id);
            vd_buf_reset(&j->final_event);
            vd_buf_append(&j->final_event, last.data, last.len);
            vd__job_republish_final(j);
            break;
        }
        if (claim == VD_CLAIM_BUSY) {
            if (atomic_load(&j->abandon)) {
                j->no_commit = true;
                break;
            }
            struct timespec ts = {0, 500 * 1000000L};
            nanosleep(&ts, NULL);
            continue;
        }
        atomic_store(&j->claimed, true);
        if (j->attempt > 1)
            vd_log(VD_LOG_INFO, "taking over task", "task_id=%s attempt=%d", j->task_id, j->attempt);
        emit_simple(&r, VD_STATE_ACCEPTED, j->attempt > 1 ? "taken over" : "accepted");
        snprintf(j->phase, sizeof j->phase, "running");
        if (j->conf->debug_task_delay_ms > 0 && j->cmd.kind != VD_CMD_CANCEL &&
            !delay_task(&r)) {
            if (!atomic_load(&j->abandon))
                emit_failed(&r, VD_STATE_CANCELLED, VD_ERR_CANCELLED, "cancelled before it started");
        } else switch (j->cmd.kind) {
        case VD_CMD_EXPORT: run_export(&r); break;
        case VD_CMD_IMPORT: run_import(&r); break;
        case VD_CMD_VALIDATE: run_validate(&r); break;
        case VD_CMD_HEALTH: run_health(&r); break;
        case VD_CMD_CANCEL: run_cancel(&r); break;
        }
        if (atomic_load(&j->abandon)) {
            /* Shutdown or revoke: leave the task to be taken over. */
            vd__task_release(r.store, j->ns, j->task_id, j->conf->worker_id, err, sizeof err);
            j->no_commit = true;
            vd_log(VD_LOG_INFO, "task left for takeover", "task_id=%s", j->task_id);
        }
        break;
    }
    vd_buf_free(&last);
    vd_store_destroy(r.store);
done:
    atomic_store(&j->slot_state, VD__SLOT_DONE);
    return NULL;
}

void vd__job_start(vd__job *j, struct vd_worker *w, const rd_kafka_message_t *m) {
    j->w = w;
    snprintf(j->topic, sizeof j->topic, "%s", rd_kafka_topic_name(m->rkt));
    j->partition = m->partition;
    j->offset = m->offset;
    j->raw_len = m->len;
    j->raw = malloc(m->len ? m->len : 1);
    if (m->len)
        memcpy(j->raw, m->payload, m->len);
    j->key_len = m->key_len;
    j->key = malloc(m->key_len ? m->key_len : 1);
    if (m->key_len)
        memcpy(j->key, m->key, m->key_len);
    memset(&j->cmd, 0, sizeof j->cmd);
    j->task_id[0] = j->ns[0] = 0;
    j->kind = VD_KIND_UNKNOWN;
    j->attempt = 0;
    j->no_commit = false;
    j->phase[0] = 0;
    atomic_store(&j->claimed, false);
    atomic_store(&j->cancel, false);
    atomic_store(&j->abandon, false);
    atomic_store(&j->final_delivered, false);
    atomic_store(&j->final_failed, false);
    atomic_store(&j->percent, 0.0);
    atomic_store(&j->state, (int)VD_STATE_ACCEPTED);
    atomic_store(&j->slot_state, VD__SLOT_RUNNING);
    j->has_thread = pthread_create(&j->thread, NULL, job_main, j) == 0;
    if (!j->has_thread) {
        vd_log(VD_LOG_ERROR, "cannot start a job thread", NULL);
        j->no_commit = true;
        atomic_store(&j->slot_state, VD__SLOT_DONE);
    }
}
