/*
 * vd_schemas_tool.c - vd-schemas-tool: the message codec from the shell.
 *
 *   vd-schemas-tool [--register OLD.avsc]... COMMAND
 *     encode-command-json   JSON Command on stdin -> single-object bytes on stdout
 *     encode-event-json     same for a TaskEvent
 *     encode-health-json    same for a HealthReport
 *     decode FILE|-         single-object bytes -> {"schema","fingerprint","message"}
 *                           (on failure {"error","message","task_id"}, exit 2)
 *     canonical FILE.avsc   prints the parsing canonical form and fingerprint
 *
 * JSON shapes are those of vd_command_to_json and friends (vd_schemas.h).
 * Exit status: 0 ok, 1 usage or I/O error, 2 codec error.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "vd_schemas.h"

#define MAX_INPUT (256u << 20)

static int read_all(FILE *f, vd_buf *b) {
    char tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        if (vd_buf_append(b, tmp, n))
            return -1;
    return ferror(f) ? -1 : 0;
}

static int read_path(const char *path, vd_buf *b) {
    if (strcmp(path, "-") == 0)
        return read_all(stdin, b);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "vd-schemas-tool: %s: %s\n", path, strerror(errno));
        return -1;
    }
    int rc = read_all(f, b);
    fclose(f);
    return rc;
}

static int usage(void) {
    fputs("usage: vd-schemas-tool [--register SCHEMA.avsc]... "
          "encode-command-json | encode-event-json | encode-health-json | "
          "decode FILE | canonical FILE.avsc\n",
          stderr);
    return 1;
}

static int encode(const char *what, vd_buf *in) {
    char err[512] = "";
    vd_buf out;
    vd_err e;
    vd_buf_init(&out, 0);
    if (vd_buf_putc(in, 0))
        return 1;
    if (strcmp(what, "encode-command-json") == 0) {
        vd_command c;
        e = vd_command_from_json(in->data, &c, err, sizeof err);
        if (!e)
            e = vd_command_encode(&c, &out, err, sizeof err);
        vd_command_free(&c);
    } else if (strcmp(what, "encode-event-json") == 0) {
        vd_task_event ev;
        e = vd_event_from_json(in->data, &ev, err, sizeof err);
        if (!e)
            e = vd_event_encode(&ev, &out, err, sizeof err);
        vd_event_free(&ev);
    } else if (strcmp(what, "encode-health-json") == 0) {
        vd_health_report h;
        e = vd_health_from_json(in->data, &h, err, sizeof err);
        if (!e)
            e = vd_health_encode(&h, &out, err, sizeof err);
        vd_health_free(&h);
    } else {
        vd_buf_free(&out);
        return usage();
    }
    if (e) {
        fprintf(stderr, "vd-schemas-tool: %s: %s\n", vd_err_name(e), err);
        vd_buf_free(&out);
        return 2;
    }
    int rc = fwrite(out.data, 1, out.len, stdout) == out.len ? 0 : 1;
    vd_buf_free(&out);
    return rc;
}

static int decode(vd_buf *in) {
    char err[512] = "";
    char *msg = NULL, *tid = NULL;
    const char *schema = NULL;
    vd_msg_type t = VD_MSG_OTHER;
    uint64_t fp = 0;
    vd_err e = vd_message_peek(in->data, in->len, &t, &fp, err, sizeof err);
    if (!e) {
        switch (t) {
        case VD_MSG_COMMAND: {
            vd_command c;
            schema = "Command";
            e = vd_command_decode(in->data, in->len, &c, err, sizeof err);
            if (!e)
                msg = vd_command_to_json(&c);
            else if (c.task_id)
                tid = vd_strdup(c.task_id);
            vd_command_free(&c);
            break;
        }
        case VD_MSG_TASK_EVENT: {
            vd_task_event ev;
            schema = "TaskEvent";
            e = vd_event_decode(in->data, in->len, &ev, err, sizeof err);
            if (!e)
                msg = vd_event_to_json(&ev);
            vd_event_free(&ev);
            break;
        }
        case VD_MSG_HEALTH_REPORT: {
            vd_health_report h;
            schema = "HealthReport";
            e = vd_health_decode(in->data, in->len, &h, err, sizeof err);
            if (!e)
                msg = vd_health_to_json(&h);
            vd_health_free(&h);
            break;
        }
        default:
            e = vd_seterr(err, sizeof err, VD_ERR_AVRO_FINGERPRINT,
                          "schema %016" PRIx64 " is not a vecdump message", fp);
        }
    }
    json_t *o;
    int rc = 0;
    if (!e && msg) {
        json_error_t jerr;
        char hex[17];
        snprintf(hex, sizeof hex, "%016" PRIx64, fp);
        o = json_object();
        json_object_set_new(o, "schema", json_string(schema));
        json_object_set_new(o, "fingerprint", json_string(hex));
        json_object_set_new(o, "message", json_loads(msg, 0, &jerr));
    } else {
        if (!e)
            e = VD_ERR_NOMEM;
        o = json_pack("{s:s,s:s}", "error", vd_err_name(e), "message", err);
        json_t *jt = tid ? json_string(tid) : NULL;
        json_object_set_new(o, "task_id", jt ? jt : json_null());
        rc = 2;
    }
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (s)
        printf("%s\n", s);
    else
        rc = 1;
    free(s);
    json_decref(o);
    free(msg);
    free(tid);
    return rc;
}

int main(int argc, char **argv) {
    char err[512] = "";
    int i = 1;
    vd_err e = vd_schemas_init(err, sizeof err);
    if (e) {
        fprintf(stderr, "vd-schemas-tool: %s\n", err);
        return 1;
    }
    for (; i + 1 < argc && strcmp(argv[i], "--register") == 0; i += 2) {
        vd_buf s;
        uint64_t fp;
        vd_buf_init(&s, MAX_INPUT);
        if (read_path(argv[i + 1], &s)) {
            vd_buf_free(&s);
            return 1;
        }
        e = vd_schema_register(s.data, s.len, &fp, err, sizeof err);
        vd_buf_free(&s);
        if (e) {
            fprintf(stderr, "vd-schemas-tool: %s: %s\n", argv[i + 1], err);
            return 1;
        }
    }
    if (i >= argc)
        return usage();
    const char *cmd = argv[i];
    vd_buf in;
    vd_buf_init(&in, MAX_INPUT);
    int rc;
    if (strcmp(cmd, "decode") == 0 || strcmp(cmd, "canonical") == 0) {
        if (i + 1 >= argc || read_path(argv[i + 1], &in)) {
            vd_buf_free(&in);
            return i + 1 >= argc ? usage() : 1;
        }
        if (cmd[0] == 'd') {
            rc = decode(&in);
        } else {
            vd_buf c;
            uint64_t fp;
            vd_buf_init(&c, 0);
            e = vd_schema_canonical(in.data, in.len, &c, err, sizeof err);
            if (!e)
                e = vd_schema_fingerprint(in.data, in.len, &fp, err, sizeof err);
            if (e) {
                fprintf(stderr, "vd-schemas-tool: %s: %s\n", vd_err_name(e), err);
                rc = 2;
            } else {
                printf("%.*s\n%016" PRIx64 "\n", (int)c.len, c.data, fp);
                rc = 0;
            }
            vd_buf_free(&c);
        }
    } else {
        rc = read_all(stdin, &in) ? 1 : encode(cmd, &in);
    }
    vd_buf_free(&in);
    return rc;
}
