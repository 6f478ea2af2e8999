/*
 * vd_config.c - configuration: flags, then VECDUMP_* environment, then
 * defaults. One table drives parsing, the environment and --help.
 */
#include "vd_worker.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef enum { OPT_STR, OPT_INT, OPT_I64, OPT_BOOL, OPT_SECRET_FILE, OPT_SECRET, OPT_LOG } opt_type;

typedef struct opt {
    const char *name;   /* --name */
    const char *env;    /* VECDUMP_… */
    opt_type type;
    size_t off;
    size_t size;        /* for OPT_STR: buffer size */
    const char *help;
} opt;

#define S(field) offsetof(vd_config, field), sizeof(((vd_config *)0)->field)
#define N(field) offsetof(vd_config, field), 0

static const opt opts[] = {
    {"bootstrap", "VECDUMP_BOOTSTRAP", OPT_STR, S(bootstrap), "Kafka bootstrap servers (host:port,…)"},
    {"group", "VECDUMP_GROUP", OPT_STR, S(group), "consumer group of the workers"},
    {"topic-commands", "VECDUMP_TOPIC_COMMANDS", OPT_STR, S(topic_commands), "commands topic"},
    {"topic-status", "VECDUMP_TOPIC_STATUS", OPT_STR, S(topic_status), "task events topic"},
    {"topic-health", "VECDUMP_TOPIC_HEALTH", OPT_STR, S(topic_health), "health reports topic"},
    {"topic-dlq", "VECDUMP_TOPIC_DLQ", OPT_STR, S(topic_dlq), "dead-letter topic"},
    {"partitions", "VECDUMP_PARTITIONS", OPT_INT, N(partitions), "partitions of topics the worker creates"},
    {"replication", "VECDUMP_REPLICATION", OPT_INT, N(replication), "replication factor of created topics"},
    {"embedded-kafka", "VECDUMP_EMBEDDED_KAFKA", OPT_BOOL, N(embedded_kafka), "start librdkafka's mock cluster in-process"},
    {"redis-host", "VECDUMP_REDIS_HOST", OPT_STR, S(redis_host), "Redis host"},
    {"redis-port", "VECDUMP_REDIS_PORT", OPT_INT, N(redis_port), "Redis port"},
    {"redis-db", "VECDUMP_REDIS_DB", OPT_INT, N(redis_db), "Redis database number"},
    {"redis-user", "VECDUMP_REDIS_USER", OPT_STR, S(redis_user), "Redis ACL user"},
    {"redis-password-file", "VECDUMP_REDIS_PASSWORD_FILE", OPT_SECRET_FILE, N(redis_password), "file holding the Redis password"},
    {"redis-password-env", NULL, OPT_SECRET, N(redis_password), "(env only: VECDUMP_REDIS_PASSWORD)"},
    {"worker-id", "VECDUMP_WORKER_ID", OPT_STR, S(worker_id), "worker id (default host-pid)"},
    {"namespace", "VECDUMP_NAMESPACE", OPT_STR, S(ns), "default namespace"},
    {"backup-dir", "VECDUMP_BACKUP_DIR", OPT_STR, S(backup_dir), "the backup volume"},
    {"jobs", "VECDUMP_JOBS", OPT_INT, N(jobs), "tasks run at once"},
    {"health-interval", "VECDUMP_HEALTH_INTERVAL", OPT_INT, N(health_interval_s), "seconds between health reports"},
    {"lease-ms", "VECDUMP_LEASE_MS", OPT_INT, N(lease_ms), "task lease; a task whose lease expired is taken over"},
    {"shutdown-grace", "VECDUMP_SHUTDOWN_GRACE", OPT_INT, N(shutdown_grace_s), "seconds running tasks get to finish on SIGTERM"},
    {"max-command-bytes", "VECDUMP_MAX_COMMAND_BYTES", OPT_I64, N(max_command_bytes), "largest command accepted"},
    {"max-inline-bytes", "VECDUMP_MAX_INLINE_BYTES", OPT_I64, N(max_inline_bytes), "largest inline import accepted"},
    {"min-free-bytes", "VECDUMP_MIN_FREE_BYTES", OPT_I64, N(min_free_bytes), "backup volume DEGRADED below this"},
    {"max-backup-age", "VECDUMP_MAX_BACKUP_AGE", OPT_I64, N(max_backup_age_s), "DEGRADED when the last backup is older (s)"},
    {"log-level", "VECDUMP_LOG_LEVEL", OPT_LOG, N(log_level), "debug | info | warn | error"},
    {"debug-task-delay-ms", "VECDUMP_DEBUG_TASK_DELAY_MS", OPT_INT, N(debug_task_delay_ms),
     "testing aid: delay (cancellable) before every task"},
};

static vd_err read_secret_file(const char *path, char **out, char *errstr, size_t n) {
    FILE *f = fopen(path, "r");
    if (!f)
        return vd_seterr(errstr, n, VD_ERR_INVALID_ARG, "cannot read password file %s: %s", path,
                         strerror(errno));
    char buf[1024];
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = 0;
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        buf[--len] = 0;
    free(*out);
    *out = vd_strdup(buf);
    return VD_ERR_OK;
}

static vd_err set_opt(vd_config *c, const opt *o, const char *v, char *errstr, size_t n) {
    char *base = (char *)c;
    char *end = NULL;
    switch (o->type) {
    case OPT_STR:
        if (strlen(v) >= o->size)
            return vd_seterr(errstr, n, VD_ERR_INVALID_ARG, "--%s: value too long", o->name);
        snprintf(base + o->off, o->size, "%s", v);
        return VD_ERR_OK;
    case OPT_INT: {
        errno = 0;
        long x = strtol(v, &end, 10);
        if (errno || !*v || *end || x < 0 || x > INT_MAX)
            return vd_seterr(errstr, n, VD_ERR_INVALID_ARG, "--%s: not a number: %s", o->name, v);
        *(int *)(void *)(base + o->off) = (int)x;
        return VD_ERR_OK;
    }
    case OPT_I64: {
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (errno || !*v || *end || x < 0)
            return vd_seterr(errstr, n, VD_ERR_INVALID_ARG, "--%s: not a number: %s", o->name, v);
        *(int64_t *)(void *)(base + o->off) = (int64_t)x;
        return VD_ERR_OK;
    }
    case OPT_BOOL:
        if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes") || !*v)
            *(bool *)(void *)(base + o->off) = true;
        else if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no"))
            *(bool *)(void *)(base + o->off) = false;
        else
            return vd_seterr(errstr, n, VD_ERR_INVALID_ARG, "--%s: not a boolean: %s", o->name, v);
        return VD_ERR_OK;
    case OPT_SECRET_FILE:
        return read_secret_file(v, (char **)(void *)(base + o->off), errstr, n);
    case OPT_SECRET:
        free(*(char **)(void *)(base + o->off));
        *(char **)(void *)(base + o->off) = vd_strdup(v);
        return VD_ERR_OK;
    case OPT_LOG: {
        static const char *lv[] = {"debug", "info", "warn", "error"};
        for (int i = 0; i < 4; i++)
            if (!strcmp(v, lv[i])) {
                c->log_level = (vd_log_level)i;
                return VD_ERR_OK;
            }
        return vd_seterr(errstr, n, VD_ERR_INVALID_ARG, "--log-level: %s", v);
    }
    }
    return VD_ERR_INVALID_ARG;
}

void vd_config_init(vd_config *c) {
    memset(c, 0, sizeof *c);
    snprintf(c->bootstrap, sizeof c->bootstrap, "127.0.0.1:9092");
    snprintf(c->group, sizeof c->group, "vecdump-workers");
    snprintf(c->topic_commands, sizeof c->topic_commands, "vecdump.commands");
    snprintf(c->topic_status, sizeof c->topic_status, "vecdump.status");
    snprintf(c->topic_health, sizeof c->topic_health, "vecdump.health");
    snprintf(c->topic_dlq, sizeof c->topic_dlq, "vecdump.dlq");
    c->partitions = 3;
    c->replication = 1;
    snprintf(c->redis_host, sizeof c->redis_host, "127.0.0.1");
    c->redis_port = 6379;
    char host[64] = "host";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = 0;
    snprintf(c->worker_id, sizeof c->worker_id, "%.64s-%ld", host, (long)getpid());
    snprintf(c->ns, sizeof c->ns, "vec");
    snprintf(c->backup_dir, sizeof c->backup_dir, "./backups");
    c->jobs = 2;
    c->health_interval_s = 30;
    c->lease_ms = 15000;
    c->shutdown_grace_s = 30;
    c->max_command_bytes = 64LL << 20;
    c->max_inline_bytes = 16LL << 20;
    c->min_free_bytes = 1LL << 30;
    c->max_backup_age_s = 7 * 24 * 3600;
    c->log_level = VD_LOG_INFO;

    char err[256];
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        const char *v = opts[i].env ? getenv(opts[i].env) : NULL;
        if (v && set_opt(c, &opts[i], v, err, sizeof err))
            vd_log(VD_LOG_WARN, "ignoring environment variable", "var=%s error=\"%s\"",
                   opts[i].env, err);
    }
    const char *pw = getenv("VECDUMP_REDIS_PASSWORD");
    if (pw && *pw) {
        free(c->redis_password);
        c->redis_password = vd_strdup(pw);
    }
}

vd_err vd_config_set(vd_config *c, const char *name, const char *value, char *errstr,
                     size_t errstr_size) {
    if (!strcmp(name, "X")) {
        const char *eq = value ? strchr(value, '=') : NULL;
        if (!eq || eq == value)
            return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG,
                             "-X takes key=value (a librdkafka property)");
        if (c->nkprops >= VD_MAX_KAFKA_PROPS)
            return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG, "too many -X properties");
        c->kprops[c->nkprops][0] = vd_strndup(value, (size_t)(eq - value));
        c->kprops[c->nkprops][1] = vd_strdup(eq + 1);
        c->nkprops++;
        return VD_ERR_OK;
    }
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        if (!strcmp(opts[i].name, name) && opts[i].type != OPT_SECRET)
            return set_opt(c, &opts[i], value ? value : "", errstr, errstr_size);
    return vd_seterr(errstr, errstr_size, VD_ERR_INVALID_ARG, "unknown option --%s", name);
}

void vd_config_free(vd_config *c) {
    for (int i = 0; i < c->nkprops; i++) {
        free(c->kprops[i][0]);
        free(c->kprops[i][1]);
    }
    c->nkprops = 0;
    free(c->redis_password);
    c->redis_password = NULL;
}

void vd_config_store_conf(const vd_config *c, vd_store_conf *sc) {
    memset(sc, 0, sizeof *sc);
    sc->host = c->redis_host;
    sc->port = c->redis_port;
    sc->db = c->redis_db;
    sc->user = c->redis_user[0] ? c->redis_user : NULL;
    sc->password = c->redis_password;
    sc->timeout_ms = 5000;
}

const char *vd_config_usage(void) {
    static char buf[4096];
    if (buf[0])
        return buf;
    size_t off = 0;
    for (size_t i = 0; i < sizeof opts / sizeof opts[0] && off < sizeof buf; i++) {
        if (opts[i].type == OPT_SECRET)
            continue;
        int w = snprintf(buf + off, sizeof buf - off, "  --%-22s %s%s%s%s\n", opts[i].name,
                         opts[i].help, opts[i].env ? " [" : "", opts[i].env ? opts[i].env : "",
                         opts[i].env ? "]" : "");
        if (w < 0)
            break;
        off += (size_t)w;
    }
    if (off < sizeof buf)
        snprintf(buf + off, sizeof buf - off,
                 "  -X key=value               librdkafka property (repeatable)\n"
                 "  Redis password: VECDUMP_REDIS_PASSWORD or --redis-password-file\n");
    return buf;
}
