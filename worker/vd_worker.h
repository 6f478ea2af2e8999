/*
 * vd_worker.h - the vecdump worker (SPEC §3, §4, §7): a Kafka consumer group
 * member that runs export / import / validate / health / cancel commands on
 * job threads and publishes TaskEvents and HealthReports.
 *
 * Also holds the configuration shared by the worker and the CLI (flags, then
 * VECDUMP_* environment variables, then defaults) and the Kafka helpers the
 * CLI uses to publish and follow commands.
 */
#ifndef VD_WORKER_H
#define VD_WORKER_H

#include "vd_common.h"
#include "vd_store.h"

#define VD_MAX_KAFKA_PROPS 64

typedef struct vd_config {
    /* Kafka */
    char bootstrap[512];
    char group[128];
    char topic_commands[128];
    char topic_status[128];
    char topic_health[128];
    char topic_dlq[128];
    int partitions;                 /* when creating topics */
    int replication;
    char *kprops[VD_MAX_KAFKA_PROPS][2]; /* -X key=value passthrough, owned */
    int nkprops;
    bool embedded_kafka;            /* start librdkafka's mock cluster */
    /* Redis */
    char redis_host[256];
    int redis_port;
    int redis_db;
    char redis_user[128];
    char *redis_password;           /* from env or file; never logged, owned */
    /* worker */
    char worker_id[128];
    char ns[128];                   /* default namespace (health, CLI) */
    char backup_dir[1024];
    int jobs;
    int health_interval_s;
    int lease_ms;
    int shutdown_grace_s;
    int64_t max_command_bytes;
    int64_t max_inline_bytes;
    int64_t min_free_bytes;         /* backup volume DEGRADED below this */
    int64_t max_backup_age_s;       /* DEGRADED when the last backup is older */
    vd_log_level log_level;
    int debug_task_delay_ms;        /* testing aid: every task waits this long
                                       (cancellable) before it starts */
} vd_config;

/** Fills defaults, then VECDUMP_* environment variables. */
void vd_config_init(vd_config *c);
/**
 * @brief Applies one option (long name without dashes, e.g. "bootstrap") and
 *        its value. Also takes "X" with "key=value".
 * @returns VD_ERR_OK, or VD_ERR_INVALID_ARG with errstr naming the option.
 */
vd_err vd_config_set(vd_config *c, const char *name, const char *value, char *errstr,
                     size_t errstr_size);
/** Frees what the config owns. */
void vd_config_free(vd_config *c);
/** The config's Redis settings as a store conf (borrowing the strings). */
void vd_config_store_conf(const vd_config *c, vd_store_conf *sc);
/** One line per option, for --help. */
const char *vd_config_usage(void);

typedef struct vd_worker vd_worker;

/**
 * @brief Creates a worker: connects the producer and consumer, creates the
 *        topics if missing. The worker borrows @p conf (it must outlive it).
 * @returns NULL with errstr filled on failure.
 */
vd_worker *vd_worker_new(vd_config *conf, char *errstr, size_t errstr_size);
/** Runs until vd_worker_stop; returns 0 after a clean shutdown. */
int vd_worker_run(vd_worker *w);
/** Asks the worker to stop (async-signal-safe). */
void vd_worker_stop(vd_worker *w);
void vd_worker_destroy(vd_worker *w);

#endif /* VD_WORKER_H */
