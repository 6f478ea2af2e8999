/*
 * vd_worker.c - the worker's main loop (SPEC §4).
 *
 * One main thread owns the Kafka consumer: it polls every 200 ms, hands each
 * command to a job thread, pauses the assigned partitions while every job
 * slot is taken (so a task of an hour never trips max.poll.interval.ms),
 * renews the leases of running tasks, serves delivery reports, commits
 * offsets once a task's final event is delivered, and publishes health
 * reports. Job threads run the tasks and publish their events.
 *
 * Offsets: for each partition the committed offset is the lowest offset
 * still in flight there, or one past the highest one handled: a command is
 * never committed before its final event is on the status topic.
 */
#include "worker_int.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vd_schemas.h"
#include "vd_tasks.h"
#include "worker_jobs.h"

#define POLL_MS 200

struct vd_worker {
    vd_config *conf;
    rd_kafka_t *consumer;
    rd_kafka_t *producer;
    rd_kafka_t *mock_owner;            /* --embedded-kafka: owns the mock cluster */
    rd_kafka_mock_cluster_t *mock;
    vd_store *store;                   /* main thread's Redis connection (leases) */
    vd_store_conf sconf;
    volatile sig_atomic_t stop;
    bool paused;
    vd__job *jobs;                     /* conf->jobs slots */
    int njobs;
    /* per-partition bookkeeping for commits */
    struct part {
        char topic[128];
        int32_t partition;
        int64_t max_done;              /* highest offset handled, -1 none */
        int64_t committed;
    } parts[256];
    int nparts;
    int64_t next_health_ms;
    atomic_bool health_now;            /* a HealthCommand asked for a report */
    int64_t next_renew_ms;
    int64_t started_ms;
    pthread_mutex_t lock;              /* guards jobs[] state read by health */
};

/* ---- partitions -------------------------------------------------------- */
static struct part *part_get(vd_worker *w, const char *topic, int32_t partition) {
    for (int i = 0; i < w->nparts; i++)
        if (w->parts[i].partition == partition && !strcmp(w->parts[i].topic, topic))
            return &w->parts[i];
    if (w->nparts == (int)(sizeof w->parts / sizeof w->parts[0]))
        return NULL;
    struct part *p = &w->parts[w->nparts++];
    snprintf(p->topic, sizeof p->topic, "%s", topic);
    p->partition = partition;
    p->max_done = -1;
    p->committed = -1;
    return p;
}

/* Commits what can be committed on (topic, partition) after offset `done`. */
static void commit_after(vd_worker *w, const char *topic, int32_t partition, int64_t done) {
    struct part *p = part_get(w, topic, partition);
    if (!p)
        return;
    if (done > p->max_done)
        p->max_done = done;
    int64_t commit = p->max_done + 1;
    for (int i = 0; i < w->njobs; i++) {
        vd__job *j = &w->jobs[i];
        if (atomic_load(&j->slot_state) != VD__SLOT_FREE && j->partition == partition &&
            !strcmp(j->topic, topic) && j->offset < commit)
            commit = j->offset;
    }
    if (commit <= p->committed)
        return;
    rd_kafka_topic_partition_list_t *tpl = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(tpl, topic, partition)->offset = commit;
    rd_kafka_resp_err_t err = rd_kafka_commit(w->consumer, tpl, 1 /* async */);
    rd_kafka_topic_partition_list_destroy(tpl);
    if (err) {
        vd_log(VD_LOG_WARN, "offset commit failed", "topic=%s partition=%d offset=%lld error=\"%s\"",
               topic, (int)partition, (long long)commit, rd_kafka_err2str(err));
        return;
    }
    p->committed = commit;
    vd_log(VD_LOG_DEBUG, "offset committed", "topic=%s partition=%d offset=%lld", topic,
           (int)partition, (long long)commit);
}

/* ---- pause / resume ------------------------------------------------------ */
static void apply_pause(vd_worker *w, bool pause) {
    rd_kafka_topic_partition_list_t *asg = NULL;
    if (rd_kafka_assignment(w->consumer, &asg) || !asg)
        return;
    if (asg->cnt > 0) {
        if (pause)
            rd_kafka_pause_partitions(w->consumer, asg);
        else
            rd_kafka_resume_partitions(w->consumer, asg);
    }
    rd_kafka_topic_partition_list_destroy(asg);
    w->paused = pause;
    vd_log(VD_LOG_DEBUG, pause ? "partitions paused" : "partitions resumed", NULL);
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
    vd_worker *w = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        rd_kafka_assign(rk, parts);
        vd_log(VD_LOG_INFO, "partitions assigned", "count=%d", parts->cnt);
        /* A partition given back to us stays paused in librdkafka and
         * delivers nothing; re-apply our own pause state explicitly. */
        if (w->paused)
            rd_kafka_pause_partitions(rk, parts);
        else
            rd_kafka_resume_partitions(rk, parts);
        for (int i = 0; i < parts->cnt; i++) {
            struct part *p = part_get(w, parts->elems[i].topic, parts->elems[i].partition);
            if (p) {
                p->max_done = -1;
                p->committed = -1;
            }
        }
    } else {
        bool lost = rd_kafka_assignment_lost(rk);
        vd_log(VD_LOG_INFO, lost ? "partitions lost" : "partitions revoked", "count=%d",
               parts->cnt);
        /* Tasks of revoked partitions stop, checkpoint and release their
         * lease: the partition's new owner takes them over. */
        for (int i = 0; i < parts->cnt; i++)
            for (int k = 0; k < w->njobs; k++) {
                vd__job *j = &w->jobs[k];
                if (atomic_load(&j->slot_state) == VD__SLOT_RUNNING &&
                    j->partition == parts->elems[i].partition &&
                    !strcmp(j->topic, parts->elems[i].topic))
                    vd__job_abandon(j);
            }
        rd_kafka_assign(rk, NULL);
    }
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    (void)opaque;
    vd__job *j = m->_private;
    if (!j)
        return;
    if (m->err) {
        vd_log(VD_LOG_ERROR, "final event not delivered", "task_id=%s error=\"%s\"", j->task_id,
               rd_kafka_err2str(m->err));
        atomic_store(&j->final_failed, true);
    } else {
        atomic_store(&j->final_delivered, true);
    }
}

/* ---- construction ------------------------------------------------------ */
static vd_err start_embedded(vd_worker *w, char *errstr, size_t n) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char err[256];
    w->mock_owner = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!w->mock_owner)
        return vd_seterr(errstr, n, VD_ERR_KAFKA, "embedded kafka: %s", err);
    rd_kafka_mock_cluster_t *mc = w->mock = rd_kafka_mock_cluster_new(w->mock_owner, 1);
    if (!mc)
        return vd_seterr(errstr, n, VD_ERR_KAFKA, "embedded kafka: cannot start mock cluster");
    const char *topics[4] = {w->conf->topic_commands, w->conf->topic_status,
                             w->conf->topic_health, w->conf->topic_dlq};
    for (int i = 0; i < 4; i++)
        rd_kafka_mock_topic_create(mc, topics[i], w->conf->partitions, 1);
    snprintf(w->conf->bootstrap, sizeof w->conf->bootstrap, "%s", rd_kafka_mock_cluster_bootstraps(mc));
    printf("embedded Kafka bootstrap: %s\n", w->conf->bootstrap);
    fflush(stdout);
    vd_log(VD_LOG_INFO, "embedded Kafka (librdkafka mock cluster) started", "bootstrap=%s",
           w->conf->bootstrap);
    return VD_ERR_OK;
}

vd_worker *vd_worker_new(vd_config *conf, char *errstr, size_t errstr_size) {
    vd_worker *w = calloc(1, sizeof *w);
    char err[512];
    if (!w) {
        vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "out of memory");
        return NULL;
    }
    w->conf = conf;
    pthread_mutex_init(&w->lock, NULL);
    vd_config_store_conf(conf, &w->sconf);
    /* The main thread polls Kafka: a Redis that hangs (not refused, just
     * silent) may block it for at most this long per call, not 5 s. */
    w->sconf.timeout_ms = 2000;
    if (vd_schemas_init(errstr, errstr_size))
        goto fail;
    if (conf->embedded_kafka && start_embedded(w, errstr, errstr_size))
        goto fail;

    /* producer: idempotent, so retries never duplicate or reorder events */
    rd_kafka_conf_t *pc = vd__kconf(conf, errstr, errstr_size);
    if (!pc)
        goto fail;
    rd_kafka_conf_set(pc, "enable.idempotence", "true", NULL, 0);
    rd_kafka_conf_set(pc, "linger.ms", "5", NULL, 0);
    rd_kafka_conf_set(pc, "message.max.bytes", "67108864", NULL, 0);
    rd_kafka_conf_set_dr_msg_cb(pc, dr_cb);
    w->producer = rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, sizeof err);
    if (!w->producer) {
        vd_seterr(errstr, errstr_size, VD_ERR_KAFKA, "producer: %s", err);
        goto fail;
    }
    if (!conf->embedded_kafka) {
        vd_err e = vd__topics_ensure(w->producer, conf, err, sizeof err);
        if (e) {
            vd_seterr(errstr, errstr_size, e, "%s", err);
            goto fail;
        }
    }

    rd_kafka_conf_t *cc = vd__kconf(conf, errstr, errstr_size);
    if (!cc)
        goto fail;
    if (rd_kafka_conf_set(cc, "group.id", conf->group, err, sizeof err) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(cc);
        vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG, "%s", err);
        goto fail;
    }
    rd_kafka_conf_set(cc, "enable.auto.commit", "false", NULL, 0);
    rd_kafka_conf_set(cc, "enable.auto.offset.store", "false", NULL, 0);
    rd_kafka_conf_set(cc, "auto.offset.reset", "earliest", NULL, 0);
    rd_kafka_conf_set(cc, "partition.assignment.strategy", "range,roundrobin", NULL, 0);
    rd_kafka_conf_set(cc, "session.timeout.ms", "10000", NULL, 0);
    rd_kafka_conf_set(cc, "heartbeat.interval.ms", "1000", NULL, 0);
    rd_kafka_conf_set(cc, "fetch.message.max.bytes", "67108864", NULL, 0);
    rd_kafka_conf_set(cc, "topic.metadata.refresh.interval.ms", "5000", NULL, 0);
    rd_kafka_conf_set_rebalance_cb(cc, rebalance_cb);
    rd_kafka_conf_set_opaque(cc, w);
    w->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, cc, err, sizeof err);
    if (!w->consumer) {
        vd_seterr(errstr, errstr_size, VD_ERR_KAFKA, "consumer: %s", err);
        goto fail;
    }
    rd_kafka_poll_set_consumer(w->consumer);
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, conf->topic_commands, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t kerr = rd_kafka_subscribe(w->consumer, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (kerr) {
        vd_seterr(errstr, errstr_size, VD_ERR_KAFKA, "subscribe: %s", rd_kafka_err2str(kerr));
        goto fail;
    }

    w->njobs = conf->jobs > 0 ? conf->jobs : 1;
    w->jobs = calloc((size_t)w->njobs, sizeof *w->jobs);
    if (!w->jobs) {
        vd_seterr(errstr, errstr_size, VD_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < w->njobs; i++)
        vd__job_init(&w->jobs[i], conf, w->producer);
    w->started_ms = vd_mono_ms();
    vd_log(VD_LOG_INFO, "worker started",
           "worker_id=%s bootstrap=%s group=%s topic=%s jobs=%d redis=%s:%d backup_dir=%s",
           conf->worker_id, conf->bootstrap, conf->group, conf->topic_commands, w->njobs,
           conf->redis_host, conf->redis_port, conf->backup_dir);
    return w;
fail:
    vd_worker_destroy(w);
    return NULL;
}

void vd_worker_stop(vd_worker *w) { w->stop = 1; }

/* ---- the loop ------------------------------------------------------------ */
static int busy_slots(vd_worker *w) {
    int n = 0;
    for (int i = 0; i < w->njobs; i++)
        if (atomic_load(&w->jobs[i].slot_state) != VD__SLOT_FREE)
            n++;
    return n;
}

static vd__job *free_slot(vd_worker *w) {
    for (int i = 0; i < w->njobs; i++)
        if (atomic_load(&w->jobs[i].slot_state) == VD__SLOT_FREE)
            return &w->jobs[i];
    return NULL;
}

/* Joins finished jobs whose final event is delivered, then commits. */
static void reap(vd_worker *w, bool force) {
    for (int i = 0; i < w->njobs; i++) {
        vd__job *j = &w->jobs[i];
        if (atomic_load(&j->slot_state) != VD__SLOT_DONE)
            continue;
        bool delivered = atomic_load(&j->final_delivered);
        if (!delivered && !j->no_commit && !atomic_load(&j->final_failed) && !force)
            continue;
        if (!delivered && !j->no_commit && atomic_load(&j->final_failed)) {
            /* The final event did not make it: send it again before committing. */
            atomic_store(&j->final_failed, false);
            vd__job_republish_final(j);
            continue;
        }
        if (j->has_thread)
            pthread_join(j->thread, NULL);
        char topic[128];
        snprintf(topic, sizeof topic, "%s", j->topic);
        int32_t partition = j->partition;
        int64_t offset = j->offset;
        bool commit = delivered && !j->no_commit;
        vd__job_reset(j);
        if (commit)
            commit_after(w, topic, partition, offset);
    }
}

static void renew_leases(vd_worker *w) {
    char err[256];
    bool any = false;
    for (int i = 0; i < w->njobs && !any; i++)
        any = atomic_load(&w->jobs[i].slot_state) == VD__SLOT_RUNNING &&
              atomic_load(&w->jobs[i].claimed);
    if (!any)
        return; /* nothing to renew: no connect attempt every second while Redis is down */
    if (!w->store) {
        if (vd_store_connect(&w->sconf, &w->store, err, sizeof err))
            return;
    }
    for (int i = 0; i < w->njobs; i++) {
        vd__job *j = &w->jobs[i];
        if (atomic_load(&j->slot_state) != VD__SLOT_RUNNING || !atomic_load(&j->claimed))
            continue;
        bool cancel = false;
        vd_err e = vd__task_renew(w->store, j->ns, j->task_id, w->conf->worker_id,
                                  w->conf->lease_ms, &cancel, err, sizeof err);
        if (e == VD_ERR_CONFLICT) {
            vd_log(VD_LOG_WARN, "lease lost; stopping task", "task_id=%s", j->task_id);
            vd__job_abandon(j);
        } else if (e) {
            vd_log(VD_LOG_WARN, "lease renewal failed", "task_id=%s error=\"%s\"", j->task_id, err);
            if (e == VD_ERR_REDIS_CONN) {
                vd_store_destroy(w->store);
                w->store = NULL;
            }
        } else if (cancel) {
            vd__job_cancel(j);
        }
    }
}

/* Cancels a task running here (CancelCommand); @returns true when found. */
bool vd__worker_cancel_local(vd_worker *w, const char *task_id);
bool vd__worker_cancel_local(vd_worker *w, const char *task_id) {
    for (int i = 0; i < w->njobs; i++) {
        vd__job *j = &w->jobs[i];
        /* task_id is written by the job's thread before it sets claimed. */
        if (atomic_load(&j->slot_state) == VD__SLOT_RUNNING && atomic_load(&j->claimed) &&
            !strcmp(j->task_id, task_id)) {
            vd__job_cancel(j);
            return true;
        }
    }
    return false;
}

static void handle_message(vd_worker *w, rd_kafka_message_t *m) {
    const char *topic = rd_kafka_topic_name(m->rkt);
    vd__job *j = free_slot(w);
    if (!j) {
        /* Cannot happen while paused; be safe: seek back so it comes again. */
        rd_kafka_topic_partition_list_t *tpl = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(tpl, topic, m->partition)->offset = m->offset;
        rd_kafka_seek_partitions(w->consumer, tpl, 1000);
        rd_kafka_topic_partition_list_destroy(tpl);
        return;
    }
    vd__job_start(j, w, m);
}

/* True when hiredis marked the connection failed: it stays so for good. */
static bool store_dead(vd_store *s) {
    const redisContext *c = vd_store_redis(s);
    return !c || c->err != 0;
}

static void publish_health_now(vd_worker *w, const char *reason) {
    char err[256];
    if (!w->store && vd_store_connect(&w->sconf, &w->store, err, sizeof err))
        w->store = NULL;
    vd__health_publish(w->conf, w->producer, w->consumer, w->jobs, w->njobs, w->store, reason);
    /* A connection the last-backup lookup found dead (Redis gone) is
     * dropped: the next report or lease renewal connects again. */
    if (w->store && store_dead(w->store)) {
        vd_store_destroy(w->store);
        w->store = NULL;
    }
}

void vd__worker_request_health(vd_worker *w);
void vd__worker_request_health(vd_worker *w) { atomic_store(&w->health_now, true); }

int vd_worker_run(vd_worker *w) {
    w->next_health_ms = vd_mono_ms() + 2000; /* first report once the group settled */
    while (!w->stop) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(w->consumer, POLL_MS);
        if (m) {
            if (m->err) {
                if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                    vd_log(VD_LOG_WARN, "consumer error", "error=\"%s\"", rd_kafka_message_errstr(m));
            } else {
                handle_message(w, m);
            }
            rd_kafka_message_destroy(m);
        }
        rd_kafka_poll(w->producer, 0);
        reap(w, false);

        bool full = busy_slots(w) >= w->njobs;
        if (full != w->paused)
            apply_pause(w, full);

        int64_t now = vd_mono_ms();
        if (now >= w->next_renew_ms) {
            renew_leases(w);
            w->next_renew_ms = now + 1000;
        }
        if (atomic_exchange(&w->health_now, false)) {
            publish_health_now(w, "command");
        } else if (now >= w->next_health_ms) {
            publish_health_now(w, "interval");
            w->next_health_ms = now + (int64_t)w->conf->health_interval_s * 1000;
        }
    }

    /* Shutdown: take no more commands, let running tasks finish within the
     * grace period, then stop them (they checkpoint and release their
     * lease), flush events, commit, leave the group. */
    vd_log(VD_LOG_INFO, "shutting down", "running=%d grace_s=%d", busy_slots(w),
           w->conf->shutdown_grace_s);
    apply_pause(w, true);
    int64_t deadline = vd_mono_ms() + (int64_t)w->conf->shutdown_grace_s * 1000;
    bool abandoned = false;
    while (busy_slots(w) > 0) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(w->consumer, 100);
        if (m)
            rd_kafka_message_destroy(m); /* paused: nothing new is taken */
        rd_kafka_poll(w->producer, 0);
        reap(w, false);
        int64_t now = vd_mono_ms();
        if (now >= w->next_renew_ms) {
            renew_leases(w);
            w->next_renew_ms = now + 1000;
        }
        if (!abandoned && now >= deadline) {
            for (int i = 0; i < w->njobs; i++)
                if (atomic_load(&w->jobs[i].slot_state) == VD__SLOT_RUNNING)
                    vd__job_abandon(&w->jobs[i]);
            abandoned = true;
        }
        if (abandoned && now >= deadline + 30000) {
            reap(w, true);
            break;
        }
    }
    rd_kafka_flush(w->producer, 10000);
    reap(w, false);
    rd_kafka_commit(w->consumer, NULL, 0);
    rd_kafka_consumer_close(w->consumer);
    vd_log(VD_LOG_INFO, "worker stopped", NULL);
    return 0;
}

void vd_worker_destroy(vd_worker *w) {
    if (!w)
        return;
    if (w->jobs) {
        for (int i = 0; i < w->njobs; i++)
            vd__job_destroy(&w->jobs[i]);
        free(w->jobs);
    }
    if (w->consumer)
        rd_kafka_destroy(w->consumer);
    if (w->producer) {
        rd_kafka_flush(w->producer, 5000);
        rd_kafka_destroy(w->producer);
    }
    if (w->mock)
        rd_kafka_mock_cluster_destroy(w->mock);
    if (w->mock_owner)
        rd_kafka_destroy(w->mock_owner);
    vd_store_destroy(w->store);
    pthread_mutex_destroy(&w->lock);
    free(w);
}
