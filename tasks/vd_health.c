/*
 * vd_health.c - the health probe behind HealthReport (SPEC §6).
 *
 * Components and their rules:
 *   redis          UNHEALTHY when unreachable (connect timeout <= 1000 ms);
 *                  DEGRADED when the last RDB save or AOF write failed, when
 *                  the server is a replica (writes would fail) or when PING
 *                  takes more than 100 ms. Detail: role, used_memory,
 *                  rdb_last_bgsave_status, aof_enabled.
 *   backup_volume  UNHEALTHY when missing or not writable (a temp file is
 *                  created and removed); DEGRADED when free space is below
 *                  min_free_bytes or below 5 % of the volume.
 *   schema         HEALTHY when NS:meta exists with schema_version 1;
 *                  DEGRADED otherwise (and when Redis cannot be read).
 * Issue codes: REDIS_UNREACHABLE, REDIS_PERSISTENCE, REDIS_REPLICA,
 * REDIS_SLOW, VOLUME_MISSING, VOLUME_NOT_WRITABLE, VOLUME_LOW_SPACE,
 * SCHEMA_META_MISSING, SCHEMA_VERSION, and NAME_STATUS (e.g.
 * KAFKA_UNHEALTHY) for components added with vd_health_probe_add.
 */
#include "vd_tasks.h"

#include <hiredis/hiredis.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define HEALTH_CONNECT_MS 1000
#define HEALTH_SLOW_PING_MS 100.0
#define HEALTH_MIN_FREE_PCT 5.0

const char *vd_health_status_name(vd_health_status s) {
    switch (s) {
    case VD_HEALTH_HEALTHY: return "HEALTHY";
    case VD_HEALTH_DEGRADED: return "DEGRADED";
    case VD_HEALTH_UNHEALTHY: return "UNHEALTHY";
    }
    return "UNHEALTHY";
}

static void recompute_overall(vd_health_probe *p) {
    p->overall = VD_HEALTH_HEALTHY;
    for (size_t i = 0; i < p->ncomps; i++)
        if (p->comps[i].status > p->overall)
            p->overall = p->comps[i].status;
}

static vd_health_component *comp_slot(vd_health_probe *p, const char *name) {
    for (size_t i = 0; i < p->ncomps; i++)
        if (strcmp(p->comps[i].name, name) == 0)
            return &p->comps[i];
    if (p->ncomps >= VD_HEALTH_COMPONENTS_MAX)
        return NULL;
    vd_health_component *c = &p->comps[p->ncomps++];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    return c;
}

static vd_health_component *comp_vset(vd_health_probe *p, const char *name,
                                      vd_health_status st, double latency_ms, const char *fmt,
                                      va_list ap) {
    vd_health_component *c = comp_slot(p, name);
    if (!c)
        return NULL;
    c->status = st;
    c->latency_ms = latency_ms;
    vsnprintf(c->detail, sizeof c->detail, fmt, ap);
    recompute_overall(p);
    return c;
}

static vd_health_component *comp_set(vd_health_probe *p, const char *name,
                                     vd_health_status st, double latency_ms, const char *fmt,
                                     ...) __attribute__((format(printf, 5, 6)));
static vd_health_component *comp_set(vd_health_probe *p, const char *name,
                                     vd_health_status st, double latency_ms, const char *fmt,
                                     ...) {
    va_list ap;
    va_start(ap, fmt);
    vd_health_component *c = comp_vset(p, name, st, latency_ms, fmt, ap);
    va_end(ap);
    return c;
}

static vd_severity sev_of(vd_health_status st) {
    return st == VD_HEALTH_UNHEALTHY ? VD_SEV_ERROR : VD_SEV_WARNING;
}

vd_health_component *vd_health_probe_add(vd_health_probe *p, const char *name,
                                         vd_health_status status, double latency_ms,
                                         const char *fmt, ...) {
    if (!p || !name || !fmt)
        return NULL;
    va_list ap;
    va_start(ap, fmt);
    vd_health_component *c = comp_vset(p, name, status, latency_ms, fmt, ap);
    va_end(ap);
    if (c && status != VD_HEALTH_HEALTHY) {
        char code[48];
        size_t i = 0;
        for (; name[i] && i < 30; i++)
            code[i] = (char)toupper((unsigned char)name[i]);
        snprintf(code + i, sizeof code - i, "_%s", vd_health_status_name(status));
        vd_issues_add(&p->issues, code, sev_of(status), NULL, "%s: %s", name, c->detail);
    }
    return c;
}

void vd_health_probe_free(vd_health_probe *p) {
    if (!p)
        return;
    vd_issues_free(&p->issues);
}

/* Copies the value of "field:" from an INFO reply into out ("" when absent). */
static void info_field(const char *info, const char *field, char *out, size_t n) {
    size_t fl = strlen(field);
    out[0] = '\0';
    for (const char *s = info; s && *s;) {
        if (strncmp(s, field, fl) == 0 && s[fl] == ':') {
            const char *v = s + fl + 1;
            size_t vl = strcspn(v, "\r\n");
            snprintf(out, n, "%.*s", (int)vl, v);
            return;
        }
        s = strchr(s, '\n');
        if (s)
            s++;
    }
}

static double elapsed_ms(int64_t t0_us) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    return (double)(now - t0_us) / 1000.0;
}

static int64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The redis and schema components and the data metrics. */
static void probe_redis(vd_health_probe *p, const vd_store_conf *conf, const char *ns) {
    vd_store_conf c = *conf;
    vd_store *st = NULL;
    char err[256];
    int64_t t0 = now_us();
    if (c.timeout_ms <= 0 || c.timeout_ms > HEALTH_CONNECT_MS)
        c.timeout_ms = HEALTH_CONNECT_MS;
    vd_err e = vd_store_connect(&c, &st, err, sizeof err);
    int64_t usec = 0;
    if (!e)
        e = vd_store_ping(st, &usec, err, sizeof err);
    if (e) {
        comp_set(p, "redis", VD_HEALTH_UNHEALTHY, elapsed_ms(t0), "unreachable: %s", err);
        vd_issues_add(&p->issues, "REDIS_UNREACHABLE", VD_SEV_CRITICAL, NULL, "%s", err);
        if (ns && *ns)
            comp_set(p, "schema", VD_HEALTH_DEGRADED, -1, "unknown: Redis unreachable");
        vd_store_destroy(st);
        return;
    }

    /* INFO memory / persistence / replication, pipelined (one section each,
     * so that Redis 6 answers too). */
    redisContext *rc = vd_store_redis(st);
    char role[32] = "", used[32] = "", bgsave[16] = "", aof[8] = "", aofw[16] = "",
         link[16] = "";
    static const char *const sections[3] = {"memory", "persistence", "replication"};
    int appended = 0;
    for (int i = 0; i < 3; i++)
        if (redisAppendCommand(rc, "INFO %s", sections[i]) == REDIS_OK)
            appended++;
    for (int i = 0; i < appended; i++) {
        void *rv = NULL;
        if (redisGetReply(rc, &rv) != REDIS_OK || !rv)
            break;
        redisReply *r = rv;
        if (r->type == REDIS_REPLY_STRING) {
            if (i == 0)
                info_field(r->str, "used_memory", used, sizeof used);
            else if (i == 1) {
                info_field(r->str, "rdb_last_bgsave_status", bgsave, sizeof bgsave);
                info_field(r->str, "aof_enabled", aof, sizeof aof);
                info_field(r->str, "aof_last_write_status", aofw, sizeof aofw);
            } else {
                info_field(r->str, "role", role, sizeof role);
                info_field(r->str, "master_link_status", link, sizeof link);
            }
        }
        freeReplyObject(r);
    }
    p->used_memory = used[0] ? strtoll(used, NULL, 10) : -1;

    vd_health_status rs = VD_HEALTH_HEALTHY;
    double ping_ms = (double)usec / 1000.0;
    if (bgsave[0] && strcmp(bgsave, "ok") != 0) {
        rs = VD_HEALTH_DEGRADED;
        vd_issues_add(&p->issues, "REDIS_PERSISTENCE", VD_SEV_WARNING, NULL,
                      "last RDB save failed (rdb_last_bgsave_status=%s)", bgsave);
    }
    if (strcmp(aof, "1") == 0 && aofw[0] && strcmp(aofw, "ok") != 0) {
        rs = VD_HEALTH_DEGRADED;
        vd_issues_add(&p->issues, "REDIS_PERSISTENCE", VD_SEV_WARNING, NULL,
                      "last AOF write failed (aof_last_write_status=%s)", aofw);
    }
    if (strcmp(role, "slave") == 0) {
        rs = VD_HEALTH_DEGRADED;
        vd_issues_add(&p->issues, "REDIS_REPLICA", VD_SEV_WARNING, NULL,
                      "Redis is a read-only replica (master_link_status=%s)",
                      link[0] ? link : "unknown");
    }
    if (ping_ms > HEALTH_SLOW_PING_MS) {
        rs = VD_HEALTH_DEGRADED;
        vd_issues_add(&p->issues, "REDIS_SLOW", VD_SEV_WARNING, NULL, "PING took %.1f ms",
                      ping_ms);
    }
    comp_set(p, "redis", rs, ping_ms,
             "role=%s used_memory=%s rdb_last_bgsave_status=%s aof_enabled=%s%s%s",
             role[0] ? role : "unknown", used[0] ? used : "unknown",
             bgsave[0] ? bgsave : "unknown", aof[0] ? aof : "unknown",
             link[0] ? " master_link_status=" : "", link);

    /* schema */
    if (ns && *ns) {
        vd_meta m;
        memset(&m, 0, sizeof m);
        t0 = now_us();
        e = vd_store_meta_get(st, ns, &m, err, sizeof err);
        double ms = elapsed_ms(t0);
        if (e == VD_ERR_NOT_FOUND) {
            comp_set(p, "schema", VD_HEALTH_DEGRADED, ms, "%s:meta missing", ns);
            vd_issues_add(&p->issues, "SCHEMA_META_MISSING", VD_SEV_WARNING, NULL,
                          "namespace %s has no %s:meta", ns, ns);
        } else if (e) {
            comp_set(p, "schema", VD_HEALTH_DEGRADED, ms, "unreadable: %s", err);
            vd_issues_add(&p->issues, "SCHEMA_VERSION", VD_SEV_WARNING, NULL,
                          "%s:meta unreadable: %s", ns, err);
        } else if (m.schema_version != 1) {
            comp_set(p, "schema", VD_HEALTH_DEGRADED, ms,
                     "schema_version=%d (this worker reads 1)", m.schema_version);
            vd_issues_add(&p->issues, "SCHEMA_VERSION", VD_SEV_WARNING, NULL,
                          "%s:meta schema_version=%d, expected 1", ns, m.schema_version);
        } else {
            p->dim = m.dim;
            comp_set(p, "schema", VD_HEALTH_HEALTHY, ms,
                     "namespace=%s schema_version=1 dim=%d model=%s", ns, m.dim,
                     m.model ? m.model : "");
        }
        vd_meta_clear(&m);

        vd_store_counts cnt;
        memset(&cnt, 0, sizeof cnt);
        if (vd_store_count(st, ns, &cnt, err, sizeof err) == VD_ERR_OK) {
            p->documents = cnt.documents;
            p->chunks = cnt.chunks;
            p->files = cnt.files;
            if (p->used_memory > 0)
                p->documents_per_mb =
                    (double)cnt.documents / ((double)p->used_memory / (1024.0 * 1024.0));
            if (cnt.documents > 0)
                p->chunks_per_document = (double)cnt.chunks / (double)cnt.documents;
        }
    }
    vd_store_destroy(st);
}

static void probe_volume(vd_health_probe *p, const char *dir, int64_t min_free) {
    int64_t t0 = now_us();
    struct stat sb;
    struct statvfs vf;
    int st = stat(dir, &sb);
    if (st != 0 || !S_ISDIR(sb.st_mode)) {
        comp_set(p, "backup_volume", VD_HEALTH_UNHEALTHY, elapsed_ms(t0), "%s: %s", dir,
                 st != 0 ? strerror(errno) : "not a directory");
        vd_issues_add(&p->issues, "VOLUME_MISSING", VD_SEV_CRITICAL, NULL,
                      "backup volume %s is missing", dir);
        return;
    }
    if (statvfs(dir, &vf) == 0) {
        p->volume_free_bytes = (int64_t)vf.f_bavail * (int64_t)vf.f_frsize;
        p->volume_total_bytes = (int64_t)vf.f_blocks * (int64_t)vf.f_frsize;
    }

    /* Writable: create, write, fsync and remove a temp file. */
    char tmp[4096];
    int n = snprintf(tmp, sizeof tmp, "%s/.vecdump-health.XXXXXX", dir);
    bool writable = false;
    char why[160] = "";
    if (n > 0 && (size_t)n < sizeof tmp) {
        int fd = mkstemp(tmp);
        if (fd >= 0) {
            writable = write(fd, "ok\n", 3) == 3 && fsync(fd) == 0;
            if (!writable)
                snprintf(why, sizeof why, "write: %s", strerror(errno));
            close(fd);
            unlink(tmp);
        } else {
            snprintf(why, sizeof why, "create: %s", strerror(errno));
        }
    } else {
        snprintf(why, sizeof why, "path too long");
    }
    double ms = elapsed_ms(t0);
    double pct = p->volume_total_bytes > 0
                     ? 100.0 * (double)p->volume_free_bytes / (double)p->volume_total_bytes
                     : 0.0;
    if (!writable) {
        comp_set(p, "backup_volume", VD_HEALTH_UNHEALTHY, ms, "%s not writable (%s)", dir, why);
        vd_issues_add(&p->issues, "VOLUME_NOT_WRITABLE", VD_SEV_CRITICAL, NULL,
                      "backup volume %s is not writable: %s", dir, why);
        return;
    }
    bool low = p->volume_free_bytes >= 0 &&
               ((min_free > 0 && p->volume_free_bytes < min_free) ||
                (p->volume_total_bytes > 0 && pct < HEALTH_MIN_FREE_PCT));
    comp_set(p, "backup_volume", low ? VD_HEALTH_DEGRADED : VD_HEALTH_HEALTHY, ms,
             "path=%s free_bytes=%lld total_bytes=%lld free_pct=%.1f writable=1", dir,
             (long long)p->volume_free_bytes, (long long)p->volume_total_bytes, pct);
    if (low)
        vd_issues_add(&p->issues, "VOLUME_LOW_SPACE", VD_SEV_WARNING, NULL,
                      "backup volume %s has %lld bytes free (%.1f%%), minimum %lld bytes or "
                      "%.0f%%",
                      dir, (long long)p->volume_free_bytes, pct, (long long)min_free,
                      HEALTH_MIN_FREE_PCT);
}

vd_err vd_health_probe_run(const vd_store_conf *redis, const char *ns, const char *backup_dir,
                           int64_t min_free_bytes, vd_health_probe *out, char *errstr,
                           size_t errstr_size) {
    if (!out)
        return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG, "no probe to fill");
    memset(out, 0, sizeof *out);
    vd_issues_init(&out->issues, 32);
    out->documents = out->chunks = out->files = -1;
    out->used_memory = -1;
    out->volume_free_bytes = out->volume_total_bytes = -1;
    if (!redis)
        return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG, "no Redis configuration");
    probe_redis(out, redis, ns);
    if (backup_dir)
        probe_volume(out, backup_dir, min_free_bytes);
    recompute_overall(out);
    return VD_ERR_OK;
}
