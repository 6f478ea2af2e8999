/*
 * vd_kafka.c - librdkafka configuration and topic creation.
 */
#include "worker_int.h"

#include <stdio.h>
#include <string.h>

rd_kafka_conf_t *vd__kconf(const vd_config *c, char *errstr, size_t errstr_size) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", c->bootstrap, errstr, errstr_size) !=
        RD_KAFKA_CONF_OK)
        goto fail;
    rd_kafka_conf_set(conf, "client.id", "vecdump", NULL, 0);
    for (int i = 0; i < c->nkprops; i++)
        if (rd_kafka_conf_set(conf, c->kprops[i][0], c->kprops[i][1], errstr, errstr_size) !=
            RD_KAFKA_CONF_OK)
            goto fail;
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

vd_err vd__topics_ensure(rd_kafka_t *rk, const vd_config *c, char *errstr, size_t errstr_size) {
    const char *names[4] = {c->topic_commands, c->topic_status, c->topic_health, c->topic_dlq};
    const bool compact[4] = {false, true, true, false};
    rd_kafka_NewTopic_t *nt[4];
    char err[256];
    vd_err rc = VD_ERR_OK;

    for (int i = 0; i < 4; i++) {
        nt[i] = rd_kafka_NewTopic_new(names[i], c->partitions, c->replication, err, sizeof err);
        if (!nt[i]) {
            for (int j = 0; j < i; j++)
                rd_kafka_NewTopic_destroy(nt[j]);
            return vd_seterr(errstr, errstr_size, VD_ERR_KAFKA, "topic %s: %s", names[i], err);
        }
        if (compact[i])
            rd_kafka_NewTopic_set_config(nt[i], "cleanup.policy", "compact");
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *ao = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(ao, 15000, NULL, 0);
    rd_kafka_AdminOptions_set_request_timeout(ao, 20000, NULL, 0);
    rd_kafka_CreateTopics(rk, nt, 4, ao, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    if (!ev) {
        rc = vd_seterr(errstr, errstr_size, VD_ERR_KAFKA, "CreateTopics timed out");
    } else if (rd_kafka_event_error(ev)) {
        rc = vd_seterr(errstr, errstr_size, VD_ERR_KAFKA, "CreateTopics: %s",
                       rd_kafka_event_error_string(ev));
    } else {
        const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
        size_t n = 0;
        const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &n);
        for (size_t i = 0; i < n; i++) {
            rd_kafka_resp_err_t e = rd_kafka_topic_result_error(tr[i]);
            if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
                rc = vd_seterr(errstr, errstr_size, VD_ERR_KAFKA, "create topic %s: %s",
                               rd_kafka_topic_result_name(tr[i]),
                               rd_kafka_topic_result_error_string(tr[i]));
                break;
            }
        }
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_queue_destroy(q);
    for (int i = 0; i < 4; i++)
        rd_kafka_NewTopic_destroy(nt[i]);
    return rc;
}
