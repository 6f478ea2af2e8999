/*
 * cli.h - private to cli/: the parts of the vecdump command.
 */
#ifndef VD_CLI_H
#define VD_CLI_H

#include "vd_schemas.h"
#include "vd_worker.h"

/* Exit codes of the CLI (also in the README). */
enum {
    VD_EXIT_OK = 0,          /* SUCCEEDED */
    VD_EXIT_FAILED = 1,      /* FAILED, or an error before publishing */
    VD_EXIT_USAGE = 2,
    VD_EXIT_REJECTED = 3,
    VD_EXIT_CANCELLED = 4,
    VD_EXIT_TIMEOUT = 5,
};

/** A parsed option list: --name value / --flag, positional args kept apart. */
typedef struct cli_args {
    const char *names[64];
    const char *values[64];  /* NULL for a bare flag */
    int n;
    const char *pos[16];
    int npos;
} cli_args;
const char *cli_get(const cli_args *a, const char *name);
bool cli_flag(const cli_args *a, const char *name);

/**
 * Publishes @p cmd and, unless no_follow, prints its events until a final
 * one: a progress bar on a TTY (or progress lines with human), JSON lines
 * otherwise or with json. @returns an exit code.
 */
int cli_publish_and_follow(vd_config *conf, vd_command *cmd, bool no_follow, int timeout_s,
                           bool json, bool human);
/** `vecdump watch`: tails status and/or health as JSON lines. */
int cli_watch(vd_config *conf, bool status, bool health, int timeout_s, const char *task_filter);
/** `vecdump status TASK`: the task's latest event from the status topic. */
int cli_status(vd_config *conf, const char *task_id, int timeout_s);
/** `vecdump health`: asks for reports and prints those that arrive. */
int cli_health(vd_config *conf, int wait_s, bool json);

/** `vecdump run KIND …`: runs a task locally (no Kafka). */
int cli_run_local(vd_config *conf, const char *kind, const cli_args *a);
/** `vecdump seed …`. */
int cli_seed(vd_config *conf, const cli_args *a);

#endif
