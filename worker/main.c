/*
 * main.c - vecdump-worker: the daemon.
 *
 *   vecdump-worker [--bootstrap HOST:PORT | --embedded-kafka] [--redis-host H]
 *                  [--redis-port P] [--backup-dir DIR] [--jobs N] [-X k=v] …
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "vd_worker.h"

static vd_worker *the_worker;

static void on_signal(int sig) {
    (void)sig;
    if (the_worker)
        vd_worker_stop(the_worker);
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: vecdump-worker [options]\n"
            "Consumes vecdump commands from Kafka and runs them against Redis.\n\n"
            "options (flags override VECDUMP_* environment variables):\n%s",
            vd_config_usage());
}

int main(int argc, char **argv) {
    vd_config conf;
    char err[512];
    vd_log_set_component("worker");
    vd_config_init(&conf);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            vd_config_free(&conf);
            return 0;
        }
        const char *name, *val = NULL;
        char namebuf[64];
        if (!strcmp(a, "-X")) {
            name = "X";
        } else if (!strncmp(a, "--", 2)) {
            const char *eq = strchr(a + 2, '=');
            if (eq) {
                snprintf(namebuf, sizeof namebuf, "%.*s", (int)(eq - a - 2), a + 2);
                name = namebuf;
                val = eq + 1;
            } else {
                name = a + 2;
            }
        } else {
            fprintf(stderr, "vecdump-worker: unexpected argument %s\n", a);
            usage(stderr);
            vd_config_free(&conf);
            return 2;
        }
        if (!val) {
            if (!strcmp(name, "embedded-kafka")) {
                val = "true";
            } else if (i + 1 < argc) {
                val = argv[++i];
            } else {
                fprintf(stderr, "vecdump-worker: %s needs a value\n", a);
                vd_config_free(&conf);
                return 2;
            }
        }
        if (vd_config_set(&conf, name, val, err, sizeof err)) {
            fprintf(stderr, "vecdump-worker: %s\n", err);
            vd_config_free(&conf);
            return 2;
        }
    }
    vd_log_set_level(conf.log_level);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    the_worker = vd_worker_new(&conf, err, sizeof err);
    if (!the_worker) {
        vd_log(VD_LOG_ERROR, "cannot start worker", "error=\"%s\"", err);
        vd_config_free(&conf);
        return 1;
    }
    int rc = vd_worker_run(the_worker);
    vd_worker_destroy(the_worker);
    the_worker = NULL;
    vd_config_free(&conf);
    return rc;
}
