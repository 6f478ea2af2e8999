/*
 * test_kafka_smoke.c - librdkafka (Debian's 2.0.2) against the real test
 * broker (scripts/services.sh): admin CreateTopics, produce with a key and
 * headers, consume in a consumer group, commit, read the committed offset
 * back, resume from it in a second consumer of the same group; and a
 * transaction that produces an event and commits a consumed offset.
 *
 * Needs VECDUMP_TEST_KAFKA; skips without it.
 */
#include "vd_test.h"

#include <librdkafka/rdkafka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SMOKE_TIMEOUT_MS 30000

/* Bytes chosen to catch text-only handling: NUL, high bit, 0xff. */
static const char KEY[] = "task-\x00\x01\xff-key";
static const char VALUE[] = "\xc3\x01 value with \x00 NUL and \x80\xff";
static const char HDR_BIN[] = "\x00\x7f\x80\xff";

typedef struct smoke_ctx {
    char topic[96];
    char group[96];
} smoke_ctx;

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void conf_set(rd_kafka_conf_t *conf, const char *k, const char *v) {
    char errstr[512];
    if (rd_kafka_conf_set(conf, k, v, errstr, sizeof errstr) != RD_KAFKA_CONF_OK)
        fail_msg("conf %s=%s: %s", k, v, errstr);
}

/* A new handle of @p type for the test broker; fails the test on error. */
static rd_kafka_t *new_handle(rd_kafka_type_t type, const char *group) {
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    conf_set(conf, "bootstrap.servers", vd_test_kafka());
    conf_set(conf, "client.id", "vecdump-kafka-smoke");
    if (type == RD_KAFKA_CONSUMER) {
        conf_set(conf, "group.id", group);
        conf_set(conf, "auto.offset.reset", "earliest");
        conf_set(conf, "enable.auto.commit", "false");
        conf_set(conf, "enable.auto.offset.store", "false");
        /* The eager assignor the worker uses (see NOTES.md). */
        conf_set(conf, "partition.assignment.strategy", "range");
    }
    rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof errstr);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        fail_msg("rd_kafka_new: %s", errstr);
    }
    /* conf is owned by rk now. */
    return rk;
}

/* Creates @p topic (1 partition, RF 1) with the admin API. */
static void create_topic(rd_kafka_t *rk, const char *topic) {
    char errstr[512];
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, 1, 1, errstr, sizeof errstr);
    assert_non_null(nt);
    assert_int_equal(rd_kafka_NewTopic_set_config(nt, "cleanup.policy", "compact"),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    assert_int_equal(rd_kafka_AdminOptions_set_operation_timeout(opts, SMOKE_TIMEOUT_MS, errstr,
                                                                 sizeof errstr),
                     RD_KAFKA_RESP_ERR_NO_ERROR);

    rd_kafka_CreateTopics(rk, &nt, 1, opts, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, SMOKE_TIMEOUT_MS + 5000);
    assert_non_null(ev);
    assert_int_equal(rd_kafka_event_type(ev), RD_KAFKA_EVENT_CREATETOPICS_RESULT);
    if (rd_kafka_event_error(ev))
        fail_msg("CreateTopics: %s", rd_kafka_event_error_string(ev));
    const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
    size_t n = 0;
    const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &n);
    assert_int_equal(n, 1);
    assert_string_equal(rd_kafka_topic_result_name(tr[0]), topic);
    if (rd_kafka_topic_result_error(tr[0]))
        fail_msg("CreateTopics %s: %s", topic, rd_kafka_topic_result_error_string(tr[0]));

    rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(opts);
    rd_kafka_NewTopic_destroy(nt);
    rd_kafka_queue_destroy(q);
}

/* Delivery report: stores the message's error and offset in its opaque. */
typedef struct delivery {
    int done;
    rd_kafka_resp_err_t err;
    int64_t offset;
} delivery;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    (void)opaque;
    delivery *d = m->_private;
    d->done = 1;
    d->err = m->err;
    d->offset = m->offset;
}

/* Produces one message (key, value, headers) and waits for its delivery. */
static int64_t produce_one(const char *topic, const char *value, size_t value_len) {
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    conf_set(conf, "bootstrap.servers", vd_test_kafka());
    conf_set(conf, "enable.idempotence", "true");
    conf_set(conf, "linger.ms", "0");
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        fail_msg("rd_kafka_new: %s", errstr);
    }

    delivery d = {0, RD_KAFKA_RESP_ERR_NO_ERROR, -1};
    rd_kafka_resp_err_t err = rd_kafka_producev(
        rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(KEY, sizeof KEY - 1),
        RD_KAFKA_V_VALUE((void *)value, value_len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADER("vd-trace", "abc", 3),
        RD_KAFKA_V_HEADER("vd-bin", HDR_BIN, (ssize_t)(sizeof HDR_BIN - 1)),
        RD_KAFKA_V_HEADER("vd-empty", "", 0), RD_KAFKA_V_HEADER("vd-null", NULL, 0),
        RD_KAFKA_V_OPAQUE(&d), RD_KAFKA_V_END);
    if (err)
        fail_msg("producev: %s", rd_kafka_err2str(err));
    int64_t deadline = now_ms() + SMOKE_TIMEOUT_MS;
    while (!d.done && now_ms() < deadline)
        rd_kafka_poll(rk, 100);
    assert_int_equal(rd_kafka_flush(rk, 5000), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(rk);

    assert_true(d.done);
    if (d.err)
        fail_msg("delivery: %s", rd_kafka_err2str(d.err));
    assert_true(d.offset >= 0);
    return d.offset;
}

/* Polls @p rk until a message (not an event) arrives; fails on timeout. */
static rd_kafka_message_t *consume_one(rd_kafka_t *rk) {
    int64_t deadline = now_ms() + SMOKE_TIMEOUT_MS;
    while (now_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            rd_kafka_message_destroy(m);
            continue;
        }
        if (m->err)
            fail_msg("consume: %s", rd_kafka_message_errstr(m));
        return m;
    }
    fail_msg("no message within %d ms", SMOKE_TIMEOUT_MS);
    return NULL;
}

static void subscribe(rd_kafka_t *rk, const char *topic) {
    rd_kafka_topic_partition_list_t *tl = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(tl, topic, RD_KAFKA_PARTITION_UA);
    assert_int_equal(rd_kafka_subscribe(rk, tl), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(tl);
}

/* @returns the group's committed offset for partition 0 of @p topic. */
static int64_t committed_offset(rd_kafka_t *rk, const char *topic) {
    rd_kafka_topic_partition_list_t *tl = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(tl, topic, 0);
    assert_int_equal(rd_kafka_committed(rk, tl, SMOKE_TIMEOUT_MS), RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(tl->elems[0].err, RD_KAFKA_RESP_ERR_NO_ERROR);
    int64_t off = tl->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(tl);
    return off;
}

static void assert_header(rd_kafka_headers_t *h, const char *name, const void *want,
                          size_t want_len) {
    const void *v = NULL;
    size_t len = 0;
    assert_int_equal(rd_kafka_header_get_last(h, name, &v, &len), RD_KAFKA_RESP_ERR_NO_ERROR);
    if (!want) {
        assert_null(v);
        return;
    }
    assert_non_null(v);
    assert_int_equal(len, want_len);
    if (want_len)
        assert_memory_equal(v, want, want_len);
}

static int setup(void **state) {
    static int n;
    smoke_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return -1;
    unsigned long stamp = (unsigned long)time(NULL);
    n++;
    snprintf(c->topic, sizeof c->topic, "vd_smoke_%ld_%lu_%d", (long)getpid(), stamp, n);
    snprintf(c->group, sizeof c->group, "vd_smoke_grp_%ld_%lu_%d", (long)getpid(), stamp, n);
    *state = c;
    return 0;
}

static int teardown(void **state) {
    free(*state);
    return 0;
}

static void test_version(void **state) {
    (void)state;
    print_message("librdkafka %s\n", rd_kafka_version_str());
    assert_true(rd_kafka_version() >= 0x020000ff);
}

static void test_roundtrip_group_commit(void **state) {
    VD_NEED_KAFKA();
    smoke_ctx *c = *state;

    rd_kafka_t *admin = new_handle(RD_KAFKA_PRODUCER, NULL);
    create_topic(admin, c->topic);
    rd_kafka_destroy(admin);

    int64_t off1 = produce_one(c->topic, VALUE, sizeof VALUE - 1);

    /* First member of the group: reads the message and commits it. */
    rd_kafka_t *rk = new_handle(RD_KAFKA_CONSUMER, c->group);
    rd_kafka_poll_set_consumer(rk);
    subscribe(rk, c->topic);
    rd_kafka_message_t *m = consume_one(rk);

    assert_string_equal(rd_kafka_topic_name(m->rkt), c->topic);
    assert_int_equal(m->partition, 0);
    assert_int_equal(m->offset, off1);
    assert_int_equal(m->key_len, sizeof KEY - 1);
    assert_memory_equal(m->key, KEY, sizeof KEY - 1);
    assert_int_equal(m->len, sizeof VALUE - 1);
    assert_memory_equal(m->payload, VALUE, sizeof VALUE - 1);

    rd_kafka_headers_t *h = NULL;
    assert_int_equal(rd_kafka_message_headers(m, &h), RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(rd_kafka_header_cnt(h), 4);
    assert_header(h, "vd-trace", "abc", 3);
    assert_header(h, "vd-bin", HDR_BIN, sizeof HDR_BIN - 1);
    assert_header(h, "vd-empty", "", 0);
    assert_header(h, "vd-null", NULL, 0);

    /* Store, then commit synchronously: the committed offset is the next one. */
    rd_kafka_topic_partition_list_t *tl = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(tl, c->topic, 0)->offset = m->offset + 1;
    assert_int_equal(rd_kafka_offsets_store(rk, tl), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(tl);
    rd_kafka_message_destroy(m);
    assert_int_equal(rd_kafka_commit(rk, NULL, 0), RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(committed_offset(rk, c->topic), off1 + 1);

    assert_int_equal(rd_kafka_consumer_close(rk), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(rk);

    /* A new member of the same group resumes after the committed offset. */
    static const char VALUE2[] = "second";
    int64_t off2 = produce_one(c->topic, VALUE2, sizeof VALUE2 - 1);
    assert_int_equal(off2, off1 + 1);

    rk = new_handle(RD_KAFKA_CONSUMER, c->group);
    rd_kafka_poll_set_consumer(rk);
    subscribe(rk, c->topic);
    m = consume_one(rk);
    assert_int_equal(m->offset, off2);
    assert_int_equal(m->len, sizeof VALUE2 - 1);
    assert_memory_equal(m->payload, VALUE2, sizeof VALUE2 - 1);
    assert_int_equal(rd_kafka_commit_message(rk, m, 0), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_message_destroy(m);
    assert_int_equal(committed_offset(rk, c->topic), off2 + 1);
    assert_int_equal(rd_kafka_consumer_close(rk), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(rk);
}

/*
 * The transactional step a worker may use to finish a task: consume a
 * command, then produce its final event and commit the command's offset in
 * one transaction (send_offsets_to_transaction).
 */
static void test_transaction_offsets(void **state) {
    VD_NEED_KAFKA();
    smoke_ctx *c = *state;
    char errstr[512];
    char out_topic[128], out_group[128], txn_id[128];
    snprintf(out_topic, sizeof out_topic, "%s_out", c->topic);
    snprintf(out_group, sizeof out_group, "%s_out", c->group);
    snprintf(txn_id, sizeof txn_id, "%s_txn", c->group);

    rd_kafka_t *admin = new_handle(RD_KAFKA_PRODUCER, NULL);
    create_topic(admin, c->topic);
    create_topic(admin, out_topic);
    rd_kafka_destroy(admin);
    int64_t off = produce_one(c->topic, VALUE, sizeof VALUE - 1);

    rd_kafka_t *cons = new_handle(RD_KAFKA_CONSUMER, c->group);
    rd_kafka_poll_set_consumer(cons);
    subscribe(cons, c->topic);
    rd_kafka_message_t *m = consume_one(cons);
    assert_int_equal(m->offset, off);

    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    conf_set(conf, "bootstrap.servers", vd_test_kafka());
    conf_set(conf, "transactional.id", txn_id);
    rd_kafka_t *prod = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!prod) {
        rd_kafka_conf_destroy(conf);
        fail_msg("rd_kafka_new: %s", errstr);
    }
    rd_kafka_error_t *e = rd_kafka_init_transactions(prod, SMOKE_TIMEOUT_MS);
    if (e)
        fail_msg("init_transactions: %s", rd_kafka_error_string(e));
    e = rd_kafka_begin_transaction(prod);
    if (e)
        fail_msg("begin_transaction: %s", rd_kafka_error_string(e));
    static const char EVENT[] = "final-event";
    assert_int_equal(rd_kafka_producev(prod, RD_KAFKA_V_TOPIC(out_topic),
                                       RD_KAFKA_V_KEY(KEY, sizeof KEY - 1),
                                       RD_KAFKA_V_VALUE((void *)EVENT, sizeof EVENT - 1),
                                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_t *tl = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(tl, c->topic, m->partition)->offset = m->offset + 1;
    rd_kafka_message_destroy(m);
    rd_kafka_consumer_group_metadata_t *cgmd = rd_kafka_consumer_group_metadata(cons);
    e = rd_kafka_send_offsets_to_transaction(prod, tl, cgmd, SMOKE_TIMEOUT_MS);
    if (e)
        fail_msg("send_offsets_to_transaction: %s", rd_kafka_error_string(e));
    rd_kafka_consumer_group_metadata_destroy(cgmd);
    rd_kafka_topic_partition_list_destroy(tl);
    e = rd_kafka_commit_transaction(prod, SMOKE_TIMEOUT_MS);
    if (e)
        fail_msg("commit_transaction: %s", rd_kafka_error_string(e));
    rd_kafka_destroy(prod);

    assert_int_equal(committed_offset(cons, c->topic), off + 1);
    assert_int_equal(rd_kafka_consumer_close(cons), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(cons);

    /* A read_committed consumer sees the committed event. */
    conf = rd_kafka_conf_new();
    conf_set(conf, "bootstrap.servers", vd_test_kafka());
    conf_set(conf, "group.id", out_group);
    conf_set(conf, "auto.offset.reset", "earliest");
    conf_set(conf, "isolation.level", "read_committed");
    cons = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (!cons) {
        rd_kafka_conf_destroy(conf);
        fail_msg("rd_kafka_new: %s", errstr);
    }
    rd_kafka_poll_set_consumer(cons);
    subscribe(cons, out_topic);
    m = consume_one(cons);
    assert_int_equal(m->len, sizeof EVENT - 1);
    assert_memory_equal(m->payload, EVENT, sizeof EVENT - 1);
    rd_kafka_message_destroy(m);
    assert_int_equal(rd_kafka_consumer_close(cons), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(cons);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version),
        cmocka_unit_test_setup_teardown(test_roundtrip_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transaction_offsets, setup, teardown),
    };
    return cmocka_run_group_tests_name("kafka_smoke", tests, NULL, NULL);
}
