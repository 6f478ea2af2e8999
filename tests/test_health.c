/* test_health.c - the health probe: live Redis, the backup volume, the
 * schema of a namespace, and a Redis that is not there. */
#include "vd_test.h"
#include "vd_tasks.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static vd_store_conf redis_conf(void) {
    vd_store_conf c = {.host = "127.0.0.1", .port = vd_test_redis_port(), .timeout_ms = 5000};
    return c;
}

static const vd_health_component *comp(const vd_health_probe *p, const char *name) {
    for (size_t i = 0; i < p->ncomps; i++)
        if (strcmp(p->comps[i].name, name) == 0)
            return &p->comps[i];
    return NULL;
}

static bool has_issue(const vd_health_probe *p, const char *code) {
    for (size_t i = 0; i < p->issues.n; i++)
        if (strcmp(p->issues.items[i].code, code) == 0)
            return true;
    return false;
}

static void dump(const vd_health_probe *p) {
    print_message("overall=%s docs=%lld chunks=%lld files=%lld used_memory=%lld "
                  "docs_per_mb=%.1f chunks_per_doc=%.2f dim=%d free=%lld\n",
                  vd_health_status_name(p->overall), (long long)p->documents,
                  (long long)p->chunks, (long long)p->files, (long long)p->used_memory,
                  p->documents_per_mb, p->chunks_per_document, p->dim,
                  (long long)p->volume_free_bytes);
    for (size_t i = 0; i < p->ncomps; i++)
        print_message("  %-14s %-9s %8.3f ms  %s\n", p->comps[i].name,
                      vd_health_status_name(p->comps[i].status), p->comps[i].latency_ms,
                      p->comps[i].detail);
    for (size_t i = 0; i < p->issues.n; i++)
        print_message("  issue %s: %s\n", p->issues.items[i].code, p->issues.items[i].message);
}

/* A loopback port where nothing listens (bound then closed). */
static int dead_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void test_live(void **state) {
    (void)state;
    VD_NEED_REDIS();
    vd_store_conf c = redis_conf();
    vd_store *s = NULL;
    char err[256];
    assert_int_equal(vd_store_connect(&c, &s, err, sizeof err), VD_ERR_OK);
    const char *ns = vd_test_ns("health");
    const char *bare = vd_test_ns("nometa");
    vd_seed_conf sc = {.documents = 40, .chunks_per_doc = 3, .dim = 24, .text_bytes = 32,
                       .with_files = true, .file_bytes = 64, .seed = 5};
    assert_int_equal(vd_store_seed(s, ns, &sc, NULL, err, sizeof err), VD_ERR_OK);
    char *dir = vd_test_tmpdir();
    assert_non_null(dir);

    vd_health_probe p;
    assert_int_equal(vd_health_probe_run(&c, ns, dir, 0, &p, err, sizeof err), VD_ERR_OK);
    dump(&p);
    const vd_health_component *r = comp(&p, "redis");
    assert_non_null(r);
    assert_int_equal(r->status, VD_HEALTH_HEALTHY);
    assert_true(r->latency_ms > 0.0);
    assert_non_null(strstr(r->detail, "role=master"));
    assert_non_null(strstr(r->detail, "rdb_last_bgsave_status="));
    assert_non_null(strstr(r->detail, "aof_enabled="));
    assert_true(p.used_memory > 0);
    const vd_health_component *v = comp(&p, "backup_volume");
    assert_non_null(v);
    assert_true(p.volume_free_bytes > 0);
    assert_true(v->status != VD_HEALTH_UNHEALTHY);
    const vd_health_component *sch = comp(&p, "schema");
    assert_non_null(sch);
    assert_int_equal(sch->status, VD_HEALTH_HEALTHY);
    assert_int_equal(p.documents, 40);
    assert_int_equal(p.chunks, 120);
    assert_int_equal(p.files, 40);
    assert_int_equal(p.dim, 24);
    assert_true(p.chunks_per_document > 2.99 && p.chunks_per_document < 3.01);
    assert_true(p.documents_per_mb > 0.0);
    /* the volume check leaves nothing behind */
    assert_int_equal(rmdir(dir), 0);
    assert_int_equal(mkdir(dir, 0700), 0);
    vd_health_probe_free(&p);

    /* a namespace without meta: schema DEGRADED */
    assert_int_equal(vd_health_probe_run(&c, bare, dir, 0, &p, err, sizeof err), VD_ERR_OK);
    dump(&p);
    assert_int_equal(comp(&p, "schema")->status, VD_HEALTH_DEGRADED);
    assert_true(has_issue(&p, "SCHEMA_META_MISSING"));
    assert_true(p.overall >= VD_HEALTH_DEGRADED);
    assert_int_equal(p.documents, 0);
    vd_health_probe_free(&p);

    /* low space: a minimum larger than any disk */
    assert_int_equal(vd_health_probe_run(&c, ns, dir, INT64_MAX, &p, err, sizeof err), VD_ERR_OK);
    assert_int_equal(comp(&p, "backup_volume")->status, VD_HEALTH_DEGRADED);
    assert_true(has_issue(&p, "VOLUME_LOW_SPACE"));
    vd_health_probe_free(&p);

    /* a missing backup volume: UNHEALTHY */
    assert_int_equal(rmdir(dir), 0);
    assert_int_equal(vd_health_probe_run(&c, ns, dir, 0, &p, err, sizeof err), VD_ERR_OK);
    assert_int_equal(comp(&p, "backup_volume")->status, VD_HEALTH_UNHEALTHY);
    assert_int_equal(p.overall, VD_HEALTH_UNHEALTHY);
    assert_true(has_issue(&p, "VOLUME_MISSING"));

    /* the worker's own component */
    assert_non_null(vd_health_probe_add(&p, "kafka", VD_HEALTH_HEALTHY, 1.5, "brokers=%d", 1));
    assert_int_equal(p.ncomps, 4);
    assert_null(vd_health_probe_add(&p, "extra", VD_HEALTH_HEALTHY, 0, "x"));
    vd_health_probe_free(&p);
    free(dir);

    int64_t n;
    assert_int_equal(vd_store_drop_namespace(s, ns, &n, err, sizeof err), VD_ERR_OK);
    vd_store_destroy(s);
}

static void test_dead_redis(void **state) {
    (void)state;
    vd_store_conf c = {.host = "127.0.0.1", .port = dead_port(), .timeout_ms = 30000};
    char *dir = vd_test_tmpdir();
    vd_health_probe p;
    char err[256];
    int64_t t0 = vd_mono_ms();
    assert_int_equal(vd_health_probe_run(&c, "vec", dir, 0, &p, err, sizeof err), VD_ERR_OK);
    int64_t ms = vd_mono_ms() - t0;
    dump(&p);
    print_message("dead redis answered in %lld ms\n", (long long)ms);
    assert_int_equal(comp(&p, "redis")->status, VD_HEALTH_UNHEALTHY);
    assert_int_equal(p.overall, VD_HEALTH_UNHEALTHY);
    assert_true(has_issue(&p, "REDIS_UNREACHABLE"));
    assert_int_equal(comp(&p, "backup_volume")->status, VD_HEALTH_HEALTHY);
    assert_int_equal(p.documents, -1);
    vd_health_probe_free(&p);

    /* no namespace, no volume: only the redis component */
    assert_int_equal(vd_health_probe_run(&c, NULL, NULL, 0, &p, err, sizeof err), VD_ERR_OK);
    assert_int_equal(p.ncomps, 1);
    vd_health_probe_free(&p);

    /* a server that accepts connections but never answers: the probe's
     * 1000 ms timeout cap answers, whatever the configured timeout */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(lfd, 8), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &al), 0);
    vd_store_conf hung = {.host = "127.0.0.1", .port = ntohs(a.sin_port), .timeout_ms = 30000};
    t0 = vd_mono_ms();
    assert_int_equal(vd_health_probe_run(&hung, "vec", NULL, 0, &p, err, sizeof err), VD_ERR_OK);
    ms = vd_mono_ms() - t0;
    print_message("hung redis answered in %lld ms: %s\n", (long long)ms,
                  comp(&p, "redis")->detail);
    assert_int_equal(comp(&p, "redis")->status, VD_HEALTH_UNHEALTHY);
    assert_int_equal(p.overall, VD_HEALTH_UNHEALTHY);
    vd_health_probe_free(&p);
    close(lfd);
    rmdir(dir);
    free(dir);
}

static void test_add_component(void **state) {
    (void)state;
    vd_health_probe p;
    memset(&p, 0, sizeof p);
    vd_issues_init(&p.issues, 8);
    vd_health_probe_add(&p, "kafka", VD_HEALTH_HEALTHY, 2.0, "ok");
    assert_int_equal(p.overall, VD_HEALTH_HEALTHY);
    vd_health_probe_add(&p, "kafka", VD_HEALTH_DEGRADED, 2.0, "broker %d down", 2);
    assert_int_equal(p.ncomps, 1);
    assert_int_equal(p.overall, VD_HEALTH_DEGRADED);
    assert_true(has_issue(&p, "KAFKA_DEGRADED"));
    assert_string_equal(vd_health_status_name(VD_HEALTH_UNHEALTHY), "UNHEALTHY");
    vd_health_probe_free(&p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_live),
        cmocka_unit_test(test_dead_redis),
        cmocka_unit_test(test_add_component),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
