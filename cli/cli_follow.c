/*
 * cli_follow.c - publishing commands and following the status and health
 * topics from the CLI.
 *
 * Following starts at the current end of every partition of the status
 * topic (read before the command is published), so exactly the events of
 * this command's task are seen, whichever partition they land on.
 */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static rd_kafka_conf_t *base_conf(const vd_config *c, char *err, size_t n) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", c->bootstrap, err, n) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set(conf, "client.id", "vecdump-cli", NULL, 0);
    for (int i = 0; i < c->nkprops; i++)
        if (rd_kafka_conf_set(conf, c->kprops[i][0], c->kprops[i][1], err, n) != RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    return conf;
}

/* A consumer without a group, assigned to every partition of each topic at
 * the end (from_end) or the beginning. */
static rd_kafka_t *tail_consumer(const vd_config *c, const char **topics, int ntopics,
                                 bool from_end) {
    char err[512];
    rd_kafka_conf_t *conf = base_conf(c, err, sizeof err);
    if (!conf) {
        fprintf(stderr, "vecdump: %s\n", err);
        return NULL;
    }
    /* A group id is needed for rd_kafka_consumer_poll(); it is never joined
     * (assign, not subscribe) and nothing is committed. */
    char gid[64];
    snprintf(gid, sizeof gid, "vecdump-cli-%ld-%lld", (long)getpid(), (long long)vd_now_ms());
    rd_kafka_conf_set(conf, "group.id", gid, NULL, 0);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", NULL, 0);
    rd_kafka_conf_set(conf, "enable.partition.eof", "false", NULL, 0);
    rd_kafka_conf_set(conf, "fetch.wait.max.ms", "100", NULL, 0);
    rd_kafka_conf_set(conf, "fetch.message.max.bytes", "67108864", NULL, 0);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "vecdump: consumer: %s\n", err);
        return NULL;
    }
    rd_kafka_topic_partition_list_t *tpl = rd_kafka_topic_partition_list_new(8);
    for (int t = 0; t < ntopics; t++) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topics[t], NULL);
        rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
        rd_kafka_topic_destroy(rkt);
        if (e || md->topic_cnt < 1 || md->topics[0].err) {
            fprintf(stderr, "vecdump: cannot read metadata of topic %s from %s: %s\n", topics[t],
                    c->bootstrap,
                    e ? rd_kafka_err2str(e)
                      : (md->topic_cnt ? rd_kafka_err2str(md->topics[0].err) : "no topic"));
            if (md)
                rd_kafka_metadata_destroy(md);
            rd_kafka_topic_partition_list_destroy(tpl);
            rd_kafka_destroy(rk);
            return NULL;
        }
        for (int p = 0; p < md->topics[0].partition_cnt; p++) {
            int32_t id = md->topics[0].partitions[p].id;
            int64_t lo = 0, hi = 0;
            if (from_end) {
                rd_kafka_query_watermark_offsets(rk, topics[t], id, &lo, &hi, 10000);
                rd_kafka_topic_partition_list_add(tpl, topics[t], id)->offset = hi;
            } else {
                rd_kafka_topic_partition_list_add(tpl, topics[t], id)->offset =
                    RD_KAFKA_OFFSET_BEGINNING;
            }
        }
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_assign(rk, tpl);
    rd_kafka_topic_partition_list_destroy(tpl);
    return rk;
}

static bool is_tty(void) { return isatty(STDOUT_FILENO) && !getenv("VECDUMP_NO_TTY"); }

static void print_bar(const vd_task_event *ev, bool tty) {
    const vd_ev_progress *p = &ev->progress;
    double pct = p->total > 0 ? 100.0 * (double)p->done / (double)p->total : 0.0;
    int width = 30, fill = (int)(pct / 100.0 * width);
    char bar[64];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = 0;
    char eta[32] = "--";
    if (p->eta_ms >= 0)
        snprintf(eta, sizeof eta, "%llds", (long long)(p->eta_ms / 1000));
    fprintf(stdout, "%s%-8s %-10s [%s] %5.1f%% %lld/%lld  %.0f/s  ETA %s%s",
            tty ? "\r" : "", vd_state_name(ev->state), ev->phase, bar, pct, (long long)p->done,
            (long long)p->total, p->rate_per_s, eta, tty ? "   " : "\n");
    fflush(stdout);
}

static void print_final_human(const vd_task_event *ev) {
    printf("\n%s: %s\n", vd_state_name(ev->state), ev->message);
    for (size_t i = 0; i < ev->nerrors; i++)
        printf("  error   %-22s %s%s%s\n", ev->errors[i].code, ev->errors[i].message,
               ev->errors[i].key ? "  key=" : "", ev->errors[i].key ? ev->errors[i].key : "");
    for (size_t i = 0; i < ev->nwarnings; i++)
        printf("  warning %-22s %s%s%s\n", ev->warnings[i].code, ev->warnings[i].message,
               ev->warnings[i].key ? "  key=" : "", ev->warnings[i].key ? ev->warnings[i].key : "");
    if (ev->result_kind == VD_RESULT_EXPORT)
        printf("  artifact %s (%lld bytes, sha256 %s)\n", ev->export_result.artifact_path,
               (long long)ev->export_result.size, ev->export_result.sha256);
    if (ev->result_kind == VD_RESULT_IMPORT) {
        const vd_ev_import_result *r = &ev->import_result;
        printf("  artifact: %lld documents, %lld chunks, %lld files; %s %lld, skipped %lld, "
               "overwritten %lld, conflicts %lld in %lld ms\n",
               (long long)r->documents, (long long)r->chunks, (long long)r->files,
               r->validate_only ? "would import" : "imported",
               (long long)r->imported, (long long)r->skipped, (long long)r->overwritten,
               (long long)r->conflicts, (long long)r->duration_ms);
    }
    if (ev->result_kind == VD_RESULT_VALIDATE) {
        const vd_ev_validate_result *r = &ev->validate_result;
        printf("  checked %lld documents, %lld chunks, %lld files in %lld ms; by check:",
               (long long)r->documents, (long long)r->chunks, (long long)r->files,
               (long long)r->duration_ms);
        for (size_t i = 0; i < r->nissues_by_check; i++)
            if (r->issues_by_check[i].count)
                printf(" %s=%lld", r->issues_by_check[i].name,
                       (long long)r->issues_by_check[i].count);
        printf("\n  fixed %lld, quarantined %lld, unfixable %lld\n", (long long)r->fixed,
               (long long)r->quarantined, (long long)r->unfixable);
    }
}

static int exit_code_of(vd_task_state s) {
    switch (s) {
    case VD_STATE_SUCCEEDED: return VD_EXIT_OK;
    case VD_STATE_REJECTED: return VD_EXIT_REJECTED;
    case VD_STATE_CANCELLED: return VD_EXIT_CANCELLED;
    default: return VD_EXIT_FAILED;
    }
}

/* Reads events of task_id until a final one or the deadline. */
static int follow(rd_kafka_t *rk, const char *task_id, int timeout_s, bool json, bool human) {
    int64_t deadline = vd_mono_ms() + (int64_t)timeout_s * 1000;
    bool tty = !json && is_tty();
    human = !json && (human || tty);
    while (vd_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m)
            continue;
        if (m->err || m->key_len != strlen(task_id) || memcmp(m->key, task_id, m->key_len)) {
            rd_kafka_message_destroy(m);
            continue;
        }
        vd_task_event ev;
        char err[256];
        if (vd_event_decode(m->payload, m->len, &ev, err, sizeof err)) {
            fprintf(stderr, "vecdump: undecodable event: %s\n", err);
            vd_event_free(&ev);
            rd_kafka_message_destroy(m);
            continue;
        }
        rd_kafka_message_destroy(m);
        if (human) {
            if (vd_state_is_final(ev.state))
                print_final_human(&ev);
            else
                print_bar(&ev, tty);
        } else {
            char *j = vd_event_to_json(&ev);
            if (j) {
                puts(j);
                fflush(stdout);
                free(j);
            }
        }
        if (vd_state_is_final(ev.state)) {
            int rc = exit_code_of(ev.state);
            vd_event_free(&ev);
            return rc;
        }
        vd_event_free(&ev);
    }
    fprintf(stderr, "vecdump: no final event for task %s within %d s\n", task_id, timeout_s);
    return VD_EXIT_TIMEOUT;
}

int cli_publish_and_follow(vd_config *conf, vd_command *cmd, bool no_follow, int timeout_s,
                           bool json, bool human) {
    char err[512];
    vd_buf val;
    vd_buf_init(&val, 0);
    vd_err e = vd_command_encode(cmd, &val, err, sizeof err);
    if (e) {
        fprintf(stderr, "vecdump: invalid command: %s\n", err);
        vd_buf_free(&val);
        return VD_EXIT_USAGE;
    }
    rd_kafka_t *cons = NULL;
    if (!no_follow) {
        const char *topics[1] = {conf->topic_status};
        cons = tail_consumer(conf, topics, 1, true);
        if (!cons) {
            vd_buf_free(&val);
            return VD_EXIT_FAILED;
        }
    }
    rd_kafka_conf_t *pc = base_conf(conf, err, sizeof err);
    rd_kafka_t *prod = pc ? rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, sizeof err) : NULL;
    if (!prod) {
        fprintf(stderr, "vecdump: producer: %s\n", err);
        vd_buf_free(&val);
        if (cons)
            rd_kafka_destroy(cons);
        return VD_EXIT_FAILED;
    }
    rd_kafka_resp_err_t kerr = rd_kafka_producev(
        prod, RD_KAFKA_V_TOPIC(conf->topic_commands),
        RD_KAFKA_V_KEY(cmd->task_id, strlen(cmd->task_id)), RD_KAFKA_V_VALUE(val.data, val.len),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (!kerr)
        kerr = rd_kafka_flush(prod, 15000);
    rd_kafka_destroy(prod);
    vd_buf_free(&val);
    if (kerr) {
        fprintf(stderr, "vecdump: cannot publish the command to %s: %s\n", conf->topic_commands,
                rd_kafka_err2str(kerr));
        if (cons)
            rd_kafka_destroy(cons);
        return VD_EXIT_FAILED;
    }
    fprintf(stderr, "vecdump: published %s task %s to %s\n", vd_cmd_kind_name(cmd->kind),
            cmd->task_id, conf->topic_commands);
    if (no_follow) {
        printf("%s\n", cmd->task_id);
        return VD_EXIT_OK;
    }
    int rc = follow(cons, cmd->task_id, timeout_s, json, human);
    rd_kafka_consumer_close(cons);
    rd_kafka_destroy(cons);
    return rc;
}

int cli_watch(vd_config *conf, bool status, bool health, int timeout_s, const char *task_filter) {
    const char *topics[2];
    int n = 0;
    if (status)
        topics[n++] = conf->topic_status;
    if (health)
        topics[n++] = conf->topic_health;
    rd_kafka_t *rk = tail_consumer(conf, topics, n, true);
    if (!rk)
        return VD_EXIT_FAILED;
    int64_t deadline = timeout_s > 0 ? vd_mono_ms() + (int64_t)timeout_s * 1000 : INT64_MAX;
    while (vd_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m)
            continue;
        if (m->err) {
            rd_kafka_message_destroy(m);
            continue;
        }
        char err[256];
        char *j = NULL;
        const char *topic = rd_kafka_topic_name(m->rkt);
        if (!strcmp(topic, conf->topic_health)) {
            vd_health_report h;
            if (!vd_health_decode(m->payload, m->len, &h, err, sizeof err))
                j = vd_health_to_json(&h);
            vd_health_free(&h);
        } else if (!task_filter || (m->key_len == strlen(task_filter) &&
                                    !memcmp(m->key, task_filter, m->key_len))) {
            vd_task_event ev;
            if (!vd_event_decode(m->payload, m->len, &ev, err, sizeof err))
                j = vd_event_to_json(&ev);
            vd_event_free(&ev);
        }
        if (j) {
            printf("{\"topic\":\"%s\",\"value\":%s}\n", topic, j);
            fflush(stdout);
            free(j);
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_destroy(rk);
    return VD_EXIT_OK;
}

int cli_status(vd_config *conf, const char *task_id, int timeout_s) {
    const char *topics[1] = {conf->topic_status};
    rd_kafka_t *rk = tail_consumer(conf, topics, 1, false);
    if (!rk)
        return VD_EXIT_FAILED;
    /* Read up to the high watermarks as they were at start. */
    rd_kafka_topic_partition_list_t *asg = NULL;
    rd_kafka_assignment(rk, &asg);
    int64_t *hi = calloc((size_t)(asg ? asg->cnt : 0) + 1, sizeof *hi);
    for (int i = 0; asg && i < asg->cnt; i++) {
        int64_t lo = 0;
        rd_kafka_query_watermark_offsets(rk, asg->elems[i].topic, asg->elems[i].partition, &lo,
                                         &hi[i], 10000);
    }
    vd_buf last;
    vd_buf_init(&last, 0);
    int64_t deadline = vd_mono_ms() + (int64_t)timeout_s * 1000;
    while (vd_mono_ms() < deadline) {
        bool all = true;
        for (int i = 0; asg && i < asg->cnt; i++) {
            rd_kafka_topic_partition_list_t *pos = rd_kafka_topic_partition_list_new(1);
            rd_kafka_topic_partition_list_add(pos, asg->elems[i].topic, asg->elems[i].partition);
            rd_kafka_position(rk, pos);
            int64_t o = pos->elems[0].offset;
            rd_kafka_topic_partition_list_destroy(pos);
            if (hi[i] > 0 && (o < 0 || o < hi[i]))
                all = false;
        }
        if (all)
            break;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m)
            continue;
        if (!m->err && m->key_len == strlen(task_id) && !memcmp(m->key, task_id, m->key_len)) {
            vd_buf_reset(&last);
            vd_buf_append(&last, m->payload, m->len);
        }
        rd_kafka_message_destroy(m);
    }
    if (asg)
        rd_kafka_topic_partition_list_destroy(asg);
    free(hi);
    rd_kafka_destroy(rk);
    if (!last.len) {
        fprintf(stderr, "vecdump: no events for task %s on %s\n", task_id, conf->topic_status);
        vd_buf_free(&last);
        return VD_EXIT_FAILED;
    }
    vd_task_event ev;
    char err[256];
    int rc = VD_EXIT_FAILED;
    if (!vd_event_decode(last.data, last.len, &ev, err, sizeof err)) {
        char *j = vd_event_to_json(&ev);
        if (j)
            puts(j);
        free(j);
        rc = vd_state_is_final(ev.state) ? exit_code_of(ev.state) : VD_EXIT_OK;
    }
    vd_event_free(&ev);
    vd_buf_free(&last);
    return rc;
}

int cli_health(vd_config *conf, int wait_s, bool json) {
    const char *topics[1] = {conf->topic_health};
    rd_kafka_t *rk = tail_consumer(conf, topics, 1, true);
    if (!rk)
        return VD_EXIT_FAILED;
    vd_command cmd;
    memset(&cmd, 0, sizeof cmd);
    char tid[64];
    snprintf(tid, sizeof tid, "health-%lld-%ld", (long long)vd_now_ms(), (long)getpid());
    cmd.task_id = tid;
    cmd.issued_at = vd_now_ms();
    cmd.ns = conf->ns;
    cmd.kind = VD_CMD_HEALTH;
    int rc = cli_publish_and_follow(conf, &cmd, true, 0, true, false);
    if (rc) {
        rd_kafka_destroy(rk);
        return rc;
    }
    int64_t deadline = vd_mono_ms() + (int64_t)wait_s * 1000;
    int seen = 0, worst = 0;
    while (vd_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m)
            continue;
        vd_health_report h;
        char err[256];
        memset(&h, 0, sizeof h);
        if (!m->err && !vd_health_decode(m->payload, m->len, &h, err, sizeof err)) {
            seen++;
            if ((int)h.status > worst)
                worst = (int)h.status;
            if (json) {
                char *j = vd_health_to_json(&h);
                if (j)
                    puts(j);
                free(j);
            } else {
                printf("worker %s: %s\n", h.worker_id, vd_hr_status_name(h.status));
                for (size_t i = 0; i < h.ncomponents; i++)
                    printf("  %-14s %-9s %7.2f ms  %s\n", h.components[i].name,
                           vd_hr_status_name(h.components[i].status), h.components[i].latency_ms,
                           h.components[i].detail);
                printf("  documents=%lld chunks=%lld files=%lld dim=%d used_memory=%lld\n",
                       (long long)h.metrics.documents, (long long)h.metrics.chunks,
                       (long long)h.metrics.files, (int)h.metrics.dim,
                       (long long)h.metrics.used_memory);
                for (size_t i = 0; i < h.nactive; i++)
                    printf("  active %s %s %s %.1f%%\n", h.active[i].task_id, h.active[i].kind,
                           h.active[i].state, h.active[i].percent);
                if (h.has_last_backup)
                    printf("  last backup %s (%lld s ago) %s\n", h.last_backup.task_id,
                           (long long)h.last_backup.age_s, h.last_backup.artifact_path);
            }
            fflush(stdout);
        }
        vd_health_free(&h);
        rd_kafka_message_destroy(m);
    }
    rd_kafka_destroy(rk);
    if (!seen) {
        fprintf(stderr, "vecdump: no health report within %d s\n", wait_s);
        return VD_EXIT_TIMEOUT;
    }
    return worst == VD_HR_UNHEALTHY ? VD_EXIT_FAILED : VD_EXIT_OK;
}
