/*
 * vd_health.c - the worker's HealthReport (SPEC §6): the tasks' probe of
 * Redis, the backup volume and the schema, plus what only the worker knows:
 * Kafka (broker reachable, lag of the group on the commands topic), the
 * active operations and the last successful backup.
 */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vd_tasks.h"
#include "worker_jobs.h"

/* Lag of our group on the commands topic: high watermark - committed. */
static int64_t group_lag(const vd_config *conf, rd_kafka_t *consumer, rd_kafka_t *rk,
                         int32_t nparts) {
    if (!consumer || nparts <= 0)
        return -1;
    rd_kafka_topic_partition_list_t *tpl = rd_kafka_topic_partition_list_new(nparts);
    for (int32_t p = 0; p < nparts; p++)
        rd_kafka_topic_partition_list_add(tpl, conf->topic_commands, p);
    int64_t lag = -1;
    if (!rd_kafka_committed(consumer, tpl, 2000)) {
        lag = 0;
        for (int i = 0; i < tpl->cnt; i++) {
            int64_t lo = 0, hi = 0;
            if (rd_kafka_query_watermark_offsets(rk, conf->topic_commands, tpl->elems[i].partition,
                                                 &lo, &hi, 2000))
                continue;
            int64_t c = tpl->elems[i].offset >= 0 ? tpl->elems[i].offset : lo;
            if (hi > c)
                lag += hi - c;
        }
    }
    rd_kafka_topic_partition_list_destroy(tpl);
    return lag;
}

static void kafka_component(const vd_config *conf, rd_kafka_t *producer, rd_kafka_t *consumer,
                            vd_health_probe *hp) {
    const struct rd_kafka_metadata *md = NULL;
    int64_t t0 = vd_mono_ms();
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(producer, conf->topic_commands, NULL);
    rd_kafka_resp_err_t e = rd_kafka_metadata(producer, 0, rkt, &md, 2000);
    rd_kafka_topic_destroy(rkt);
    double ms = (double)(vd_mono_ms() - t0);
    if (e) {
        vd_health_probe_add(hp, "kafka", VD_HEALTH_UNHEALTHY, ms, "broker unreachable at %s: %s",
                            conf->bootstrap, rd_kafka_err2str(e));
        return;
    }
    int32_t nparts = md->topic_cnt ? md->topics[0].partition_cnt : 0;
    int brokers = md->broker_cnt;
    rd_kafka_metadata_destroy(md);
    int64_t lag = group_lag(conf, consumer, producer, nparts);
    vd_health_probe_add(hp, "kafka", VD_HEALTH_HEALTHY, ms,
                        "brokers=%d topic=%s partitions=%d group=%s lag=%lld", brokers,
                        conf->topic_commands, (int)nparts, conf->group, (long long)lag);
}

void vd__health_publish(const vd_config *conf, rd_kafka_t *producer, rd_kafka_t *consumer,
                        vd__job *jobs, int njobs, vd_store *store, const char *reason) {
    vd_health_probe hp;
    memset(&hp, 0, sizeof hp);
    vd_store_conf sc;
    vd_config_store_conf(conf, &sc);
    char err[256];
    vd_health_probe_run(&sc, conf->ns, conf->backup_dir, conf->min_free_bytes, &hp, err, sizeof err);
    kafka_component(conf, producer, consumer, &hp);

    vd_health_report h;
    memset(&h, 0, sizeof h);
    h.worker_id = (char *)conf->worker_id;
    h.at = vd_now_ms();
    vd_component comps[VD_HEALTH_COMPONENTS_MAX];
    for (size_t i = 0; i < hp.ncomps; i++) {
        comps[i].name = hp.comps[i].name;
        comps[i].status = hp.comps[i].status;
        comps[i].latency_ms = hp.comps[i].latency_ms;
        comps[i].detail = hp.comps[i].detail;
    }
    h.components = comps;
    h.ncomponents = hp.ncomps;
    h.metrics.documents = hp.documents;
    h.metrics.chunks = hp.chunks;
    h.metrics.files = hp.files;
    h.metrics.used_memory = hp.used_memory;
    h.metrics.documents_per_mb = hp.documents_per_mb;
    h.metrics.chunks_per_document = hp.chunks_per_document;
    h.metrics.dim = hp.dim;
    vd_health_status overall = hp.overall;

    /* Active operations. */
    vd_active_op ops[64];
    char kinds[64][16], states[64][16];
    size_t nops = 0;
    for (int i = 0; i < njobs && nops < 64; i++) {
        vd__job *j = &jobs[i];
        if (atomic_load(&j->slot_state) != VD__SLOT_RUNNING || !atomic_load(&j->claimed))
            continue;
        snprintf(kinds[nops], sizeof kinds[0], "%s", vd_task_kind_name(j->kind));
        snprintf(states[nops], sizeof states[0], "%s",
                 vd_state_name((vd_task_state)atomic_load(&j->state)));
        ops[nops].task_id = j->task_id;
        ops[nops].kind = kinds[nops];
        ops[nops].state = states[nops];
        ops[nops].percent = atomic_load(&j->percent);
        nops++;
    }
    h.active = ops;
    h.nactive = nops;

    /* The last successful backup of the namespace. */
    char lb_task[160] = "", lb_path[1024] = "";
    bool redis_up = false;
    for (size_t i = 0; i < hp.ncomps; i++)
        if (!strcmp(hp.comps[i].name, "redis"))
            redis_up = hp.comps[i].status != VD_HEALTH_UNHEALTHY;
    /* Not when the probe just found Redis unreachable: a hung server would
     * block the main loop for the connection's timeout, for nothing. */
    if (store && redis_up) {
        redisContext *c = vd_store_redis(store);
        redisReply *r = redisCommand(c, "HMGET %s:last_backup task_id at artifact_path", conf->ns);
        if (!r && c->err && !vd_store_ping(store, NULL, err, sizeof err)) {
            /* The connection died with an earlier Redis (restarted since):
             * the PING opened a new one; ask again once. */
            c = vd_store_redis(store);
            r = redisCommand(c, "HMGET %s:last_backup task_id at artifact_path", conf->ns);
        }
        if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
            r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_STRING) {
            snprintf(lb_task, sizeof lb_task, "%.*s", (int)r->element[0]->len, r->element[0]->str);
            if (r->element[2]->type == REDIS_REPLY_STRING)
                snprintf(lb_path, sizeof lb_path, "%.*s", (int)r->element[2]->len,
                         r->element[2]->str);
            h.has_last_backup = true;
            h.last_backup.task_id = lb_task;
            h.last_backup.artifact_path = lb_path;
            h.last_backup.at = strtoll(r->element[1]->str, NULL, 10);
            h.last_backup.age_s = (vd_now_ms() - h.last_backup.at) / 1000;
        }
        if (r)
            freeReplyObject(r);
    }

    /* Issues: one per unhealthy component, plus an old backup. */
    for (size_t i = 0; i < hp.issues.n; i++) {
        const vd_issue *is = &hp.issues.items[i];
        vd_issue_add(&h.issues, &h.nissues, is->code, is->severity, is->message,
                     is->key[0] ? is->key : NULL);
    }
    if (h.has_last_backup && h.last_backup.age_s > conf->max_backup_age_s) {
        char msg[160];
        snprintf(msg, sizeof msg, "last successful backup is %lld s old (limit %lld s)",
                 (long long)h.last_backup.age_s, (long long)conf->max_backup_age_s);
        vd_issue_add(&h.issues, &h.nissues, "BACKUP_STALE", VD_SEV_WARNING, msg, NULL);
        if (overall < VD_HEALTH_DEGRADED)
            overall = VD_HEALTH_DEGRADED;
    }
    h.status = overall;

    vd_buf out;
    vd_buf_init(&out, 0);
    if (vd_health_encode(&h, &out, err, sizeof err)) {
        vd_log(VD_LOG_ERROR, "cannot encode health report", "error=\"%s\"", err);
    } else {
        rd_kafka_resp_err_t ke = rd_kafka_producev(
            producer, RD_KAFKA_V_TOPIC(conf->topic_health),
            RD_KAFKA_V_KEY((void *)conf->worker_id, strlen(conf->worker_id)),
            RD_KAFKA_V_VALUE(out.data, out.len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_END);
        if (ke)
            vd_log(VD_LOG_WARN, "cannot publish health report", "error=\"%s\"", rd_kafka_err2str(ke));
        vd_log(overall == VD_HEALTH_HEALTHY ? VD_LOG_DEBUG : VD_LOG_WARN, "health report",
               "status=%s reason=%s", vd_health_status_name(overall), reason);
    }
    vd_buf_free(&out);
    for (size_t i = 0; i < h.nissues; i++) {
        free(h.issues[i].code);
        free(h.issues[i].message);
        free(h.issues[i].key);
    }
    free(h.issues);
    vd_health_probe_free(&hp);
}
