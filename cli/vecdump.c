/*
 * vecdump.c - the command-line client.
 *
 *   vecdump export|import|validate|health|cancel [options]   publish and follow
 *   vecdump watch [--status] [--health]                       tail topics as JSON
 *   vecdump status TASK                                       a task's latest event
 *   vecdump seed [options]                                    synthetic dataset
 *   vecdump run export|import|validate [options]              run locally, no Kafka
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char usage_text[] =
    "usage: vecdump COMMAND [options]\n"
    "\n"
    "Commands published to Kafka and followed until they end:\n"
    "  export   [--format JSONL|CSV|AVRO] [--compress] [--include-files] [--verify-first]\n"
    "           [--destination NAME]\n"
    "  import   (--source PATH | --inline-file FILE | --inline-base64 B64) [--validate-only]\n"
    "           [--on-conflict FAIL|SKIP|OVERWRITE] [--expected-sha256 HEX]\n"
    "  validate [--fix] [--checks a,b,…]\n"
    "  health   [--wait S]            ask every worker for a health report and print them\n"
    "  cancel   TASK_ID\n"
    "  common:  [--task-id ID] [--no-follow] [--timeout S] [--requested-by WHO]\n"
    "           [--json | --human]  (default: progress bar on a TTY, JSON lines otherwise)\n"
    "\n"
    "Other commands:\n"
    "  watch    [--status] [--health] [--task TASK_ID] [--timeout S]\n"
    "  status   TASK_ID\n"
    "  seed     [--docs N] [--chunks N] [--dim N] [--text-bytes N] [--files] [--file-bytes N]\n"
    "           [--seed N] [--orphans N] [--missing-embeddings N] [--wrong-dims N] [--nans N]\n"
    "           [--index-drift N] [--drop]\n"
    "  run      export|import|validate [the options above]   run locally, without Kafka\n"
    "\n"
    "Exit codes: 0 SUCCEEDED, 1 FAILED, 2 usage, 3 REJECTED, 4 CANCELLED, 5 timed out.\n"
    "\n"
    "Connection options (flags override VECDUMP_* environment variables):\n";

static void usage(FILE *f) { fprintf(f, "%s%s", usage_text, vd_config_usage()); }

const char *cli_get(const cli_args *a, const char *name) {
    for (int i = a->n - 1; i >= 0; i--)
        if (!strcmp(a->names[i], name))
            return a->values[i];
    return NULL;
}

bool cli_flag(const cli_args *a, const char *name) {
    for (int i = 0; i < a->n; i++)
        if (!strcmp(a->names[i], name))
            return !a->values[i] || strcmp(a->values[i], "false");
    return false;
}

/* Options that take no value. */
static bool is_bare_flag(const char *name) {
    static const char *flags[] = {"compress",      "include-files", "verify-first", "validate-only",
                                  "fix",           "no-follow",     "json",         "status",
                                  "health",        "files",         "drop",         "embedded-kafka",
                                  "fail-on-verify-errors", "human", NULL};
    for (int i = 0; flags[i]; i++)
        if (!strcmp(flags[i], name))
            return true;
    return false;
}

/* Options of the CLI itself (the rest go to the shared config). */
static bool is_cli_option(const char *name) {
    static const char *opts[] = {
        "format", "compress", "include-files", "verify-first", "destination", "source",
        "inline-file", "inline-base64", "validate-only", "on-conflict", "expected-sha256",
        "fix", "checks", "task-id", "no-follow", "timeout", "json", "requested-by", "wait",
        "status", "health", "task", "docs", "chunks", "dim", "text-bytes", "files",
        "file-bytes", "seed", "orphans", "missing-embeddings", "wrong-dims", "nans",
        "index-drift", "drop", "fail-on-verify-errors", "human", NULL};
    for (int i = 0; opts[i]; i++)
        if (!strcmp(opts[i], name))
            return true;
    return false;
}

static int parse_args(int argc, char **argv, int start, vd_config *conf, cli_args *a) {
    char err[512];
    memset(a, 0, sizeof *a);
    for (int i = start; i < argc; i++) {
        const char *arg = argv[i];
        const char *name, *val = NULL;
        char *namebuf = NULL;
        if (!strcmp(arg, "-X")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "vecdump: -X needs key=value\n");
                return VD_EXIT_USAGE;
            }
            if (vd_config_set(conf, "X", argv[++i], err, sizeof err)) {
                fprintf(stderr, "vecdump: %s\n", err);
                return VD_EXIT_USAGE;
            }
            continue;
        }
        if (strncmp(arg, "--", 2) != 0) {
            if (a->npos < 16)
                a->pos[a->npos++] = arg;
            continue;
        }
        const char *eq = strchr(arg + 2, '=');
        if (eq) {
            namebuf = strndup(arg + 2, (size_t)(eq - arg - 2));
            name = namebuf;
            val = eq + 1;
        } else {
            name = arg + 2;
            if (!is_bare_flag(name)) {
                if (i + 1 >= argc) {
                    fprintf(stderr, "vecdump: --%s needs a value\n", name);
                    return VD_EXIT_USAGE;
                }
                val = argv[++i];
            }
        }
        if (is_cli_option(name)) {
            if (a->n >= 64) {
                free(namebuf);
                return VD_EXIT_USAGE;
            }
            /* keep the name alive: argv or a leaked-on-purpose copy for --x=y */
            a->names[a->n] = namebuf ? namebuf : name;
            a->values[a->n] = val;
            a->n++;
            continue;
        }
        if (vd_config_set(conf, name, val ? val : "true", err, sizeof err)) {
            fprintf(stderr, "vecdump: %s\n", err);
            free(namebuf);
            return VD_EXIT_USAGE;
        }
        free(namebuf);
    }
    return 0;
}

static void new_task_id(char *out, size_t n) {
    unsigned char r[16];
    FILE *f = fopen("/dev/urandom", "rb");
    if (!f || fread(r, 1, sizeof r, f) != sizeof r) {
        for (size_t i = 0; i < sizeof r; i++)
            r[i] = (unsigned char)(rand() ^ (int)vd_now_ms());
    }
    if (f)
        fclose(f);
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
    snprintf(out, n,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0], r[1],
             r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14],
             r[15]);
}

/* Reads a whole local file (the --inline-file of an import), capped. */
static unsigned char *read_file_capped(const char *path, size_t cap, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    vd_buf b;
    vd_buf_init(&b, cap);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (vd_buf_append(&b, chunk, n)) {
            fclose(f);
            vd_buf_free(&b);
            *len = (size_t)-1;
            return NULL;
        }
    fclose(f);
    *len = b.len;
    if (!b.data)
        return (unsigned char *)calloc(1, 1);
    return (unsigned char *)b.data;
}

static int b64val(int c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

static unsigned char *b64_decode(const char *s, size_t *len) {
    size_t n = strlen(s);
    unsigned char *out = malloc(n / 4 * 3 + 4);
    if (!out)
        return NULL;
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '=' || s[i] == '\n' || s[i] == '\r')
            continue;
        int v = b64val((unsigned char)s[i]);
        if (v < 0) {
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    *len = o;
    return out;
}

/* Builds a command of `kind` from the options. @returns 0 or an exit code. */
static int build_command(vd_config *conf, const char *kind, const cli_args *a, vd_command *c,
                         char *tid, size_t tidn) {
    memset(c, 0, sizeof *c);
    const char *t = cli_get(a, "task-id");
    if (t)
        snprintf(tid, tidn, "%s", t);
    else
        new_task_id(tid, tidn);
    c->task_id = strdup(tid);
    c->ns = strdup(conf->ns);
    c->issued_at = vd_now_ms();
    const char *rb = cli_get(a, "requested-by");
    const char *user = getenv("USER");
    c->requested_by = rb ? strdup(rb) : user ? strdup(user) : NULL;
    if (!strcmp(kind, "export")) {
        c->kind = VD_CMD_EXPORT;
        const char *f = cli_get(a, "format");
        int fmt = VD_CMD_FMT_JSONL;
        if (f && !vd_cmd_format_parse(f, &fmt)) {
            fprintf(stderr, "vecdump: --format must be JSONL, CSV or AVRO\n");
            return VD_EXIT_USAGE;
        }
        c->export.format = fmt;
        c->export.compress = cli_flag(a, "compress");
        c->export.include_files = cli_flag(a, "include-files");
        c->export.verify_first = cli_flag(a, "verify-first");
        const char *d = cli_get(a, "destination");
        c->export.destination = d ? strdup(d) : NULL;
    } else if (!strcmp(kind, "import")) {
        c->kind = VD_CMD_IMPORT;
        const char *src = cli_get(a, "source"), *file = cli_get(a, "inline-file"),
                   *b64 = cli_get(a, "inline-base64");
        if ((src != NULL) + (file != NULL) + (b64 != NULL) != 1) {
            fprintf(stderr, "vecdump: import takes exactly one of --source, --inline-file, "
                            "--inline-base64\n");
            return VD_EXIT_USAGE;
        }
        if (src)
            c->import.source_path = strdup(src);
        size_t cap = (size_t)conf->max_inline_bytes;
        if (file) {
            size_t len = 0;
            c->import.inline_data = read_file_capped(file, cap, &len);
            if (!c->import.inline_data) {
                fprintf(stderr, "vecdump: --inline-file %s: %s\n", file,
                        len == (size_t)-1 ? "larger than --max-inline-bytes" : "cannot read");
                return VD_EXIT_USAGE;
            }
            c->import.inline_len = len;
            c->import.has_inline = true;
        }
        if (b64) {
            size_t len = 0;
            c->import.inline_data = b64_decode(b64, &len);
            if (!c->import.inline_data || len > cap) {
                fprintf(stderr, "vecdump: --inline-base64: %s\n",
                        c->import.inline_data ? "larger than --max-inline-bytes" : "not base64");
                return VD_EXIT_USAGE;
            }
            c->import.inline_len = len;
            c->import.has_inline = true;
        }
        c->import.validate_only = cli_flag(a, "validate-only");
        const char *oc = cli_get(a, "on-conflict");
        int conf_mode = VD_CMD_CONFLICT_FAIL;
        if (oc && !vd_cmd_conflict_parse(oc, &conf_mode)) {
            fprintf(stderr, "vecdump: --on-conflict must be FAIL, SKIP or OVERWRITE\n");
            return VD_EXIT_USAGE;
        }
        c->import.on_conflict = conf_mode;
        const char *sha = cli_get(a, "expected-sha256");
        c->import.expected_sha256 = sha ? strdup(sha) : NULL;
    } else if (!strcmp(kind, "validate")) {
        c->kind = VD_CMD_VALIDATE;
        c->validate.fix = cli_flag(a, "fix");
        const char *checks = cli_get(a, "checks");
        if (checks) {
            c->validate.has_checks = true;
            c->validate.checks = calloc(32, sizeof(char *));
            const char *p = checks;
            while (*p && c->validate.nchecks < 32) {
                const char *comma = strchr(p, ',');
                size_t l = comma ? (size_t)(comma - p) : strlen(p);
                if (l)
                    c->validate.checks[c->validate.nchecks++] = strndup(p, l);
                p += l + (comma ? 1 : 0);
            }
        }
    } else if (!strcmp(kind, "health")) {
        c->kind = VD_CMD_HEALTH;
    } else if (!strcmp(kind, "cancel")) {
        c->kind = VD_CMD_CANCEL;
        if (a->npos < 1) {
            fprintf(stderr, "vecdump: cancel TASK_ID\n");
            return VD_EXIT_USAGE;
        }
        c->cancel.target_task_id = strdup(a->pos[0]);
    } else {
        fprintf(stderr, "vecdump: unknown command %s\n", kind);
        return VD_EXIT_USAGE;
    }
    return 0;
}

static int int_opt(const cli_args *a, const char *name, int def) {
    const char *v = cli_get(a, name);
    if (!v)
        return def;
    char *end;
    long x = strtol(v, &end, 10);
    return (*end || x < 0 || x > 1000000000) ? def : (int)x;
}

int main(int argc, char **argv) {
    vd_config conf;
    cli_args a;
    vd_log_set_component("cli");
    vd_log_set_level(VD_LOG_WARN);
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
        !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? VD_EXIT_USAGE : 0;
    }
    vd_config_init(&conf);
    const char *cmd = argv[1];
    bool local = !strcmp(cmd, "run");
    const char *kind = cmd;
    int start = 2;
    if (local) {
        if (argc < 3) {
            usage(stderr);
            vd_config_free(&conf);
            return VD_EXIT_USAGE;
        }
        kind = argv[2];
        start = 3;
    }
    int rc = parse_args(argc, argv, start, &conf, &a);
    if (rc) {
        vd_config_free(&conf);
        return rc;
    }
    vd_log_set_level(conf.log_level > VD_LOG_WARN ? conf.log_level : VD_LOG_WARN);
    char err[256];
    if (vd_schemas_init(err, sizeof err)) {
        fprintf(stderr, "vecdump: %s\n", err);
        vd_config_free(&conf);
        return VD_EXIT_FAILED;
    }
    int timeout = int_opt(&a, "timeout", 3600);
    bool json = cli_flag(&a, "json");

    if (local) {
        rc = cli_run_local(&conf, kind, &a);
    } else if (!strcmp(cmd, "seed")) {
        rc = cli_seed(&conf, &a);
    } else if (!strcmp(cmd, "watch")) {
        bool st = cli_flag(&a, "status"), he = cli_flag(&a, "health");
        if (!st && !he)
            st = he = true;
        rc = cli_watch(&conf, st, he, int_opt(&a, "timeout", 0), cli_get(&a, "task"));
    } else if (!strcmp(cmd, "status")) {
        if (a.npos < 1) {
            fprintf(stderr, "vecdump: status TASK_ID\n");
            rc = VD_EXIT_USAGE;
        } else {
            rc = cli_status(&conf, a.pos[0], int_opt(&a, "timeout", 30));
        }
    } else if (!strcmp(cmd, "health")) {
        rc = cli_health(&conf, int_opt(&a, "wait", 5), json);
    } else {
        vd_command c;
        char tid[VD_ID_MAX + 1];
        rc = build_command(&conf, kind, &a, &c, tid, sizeof tid);
        if (!rc)
            rc = cli_publish_and_follow(&conf, &c, cli_flag(&a, "no-follow"), timeout, json,
                                        cli_flag(&a, "human"));
        vd_command_free(&c);
    }
    vd_config_free(&conf);
    return rc;
}
