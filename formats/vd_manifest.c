/*
 * vd_manifest.c - the sidecar ARTIFACT.manifest.json (SPEC §5), rendered
 * with jansson: it is small and written once per artifact.
 */
#include "vd_formats.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ISO-8601 UTC with milliseconds: 2024-05-01T12:34:56.789Z */
static void iso8601_ms(int64_t ms, char out[32]) {
    time_t sec = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    int milli = (int)(ms - (int64_t)sec * 1000);
    struct tm tm;
    if (!gmtime_r(&sec, &tm)) {
        snprintf(out, 32, "1970-01-01T00:00:00.000Z");
        return;
    }
    char base[24];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 32, "%s.%03dZ", base, milli);
}

/* json_string that never fails on NULL (null) or invalid UTF-8 (null). */
static json_t *str_or_null(const char *s) {
    json_t *j = s ? json_string(s) : NULL;
    return j ? j : json_null();
}

vd_err vd_manifest_render(const vd_manifest *m, vd_buf *out) {
    if (!m || !m->info || !out)
        return VD_ERR_INVALID_ARG;
    const vd_artifact_info *info = m->info;
    const vd_writer_result *res = m->res;
    char created[32];
    iso8601_ms(info->created_at, created);

    json_t *root = json_object();
    json_t *source = json_object();
    json_t *counts = json_object();
    if (!root || !source || !counts) {
        json_decref(root);
        json_decref(source);
        json_decref(counts);
        return VD_ERR_NOMEM;
    }
    int rc = 0;
    rc |= json_object_set_new(root, "manifest_version", json_integer(1));
    rc |= json_object_set_new(root, "tool", json_string("vecdump"));
    rc |= json_object_set_new(root, "tool_version", str_or_null(info->tool_version));
    rc |= json_object_set_new(root, "format", json_string(vd_format_name(m->format)));
    rc |= json_object_set_new(root, "format_version", json_integer(1));
    rc |= json_object_set_new(root, "artifact", str_or_null(m->artifact_name));
    rc |= json_object_set_new(root, "size", json_integer(res ? res->bytes : 0));
    rc |= json_object_set_new(root, "sha256", str_or_null(res ? res->sha256 : NULL));
    if (res && res->nmembers) {
        json_t *members = json_array();
        if (!members) {
            rc = -1;
        } else {
            for (size_t i = 0; i < res->nmembers; i++) {
                json_t *mem = json_object();
                if (!mem) {
                    rc = -1;
                    break;
                }
                rc |= json_object_set_new(mem, "name", str_or_null(res->members[i].name));
                rc |= json_object_set_new(mem, "sha256", str_or_null(res->members[i].sha256));
                rc |= json_object_set_new(mem, "size", json_integer(res->members[i].size));
                rc |= json_array_append_new(members, mem);
            }
            rc |= json_object_set_new(root, "members", members);
        }
    }
    rc |= json_object_set_new(root, "task_id", str_or_null(info->task_id));
    rc |= json_object_set_new(root, "created_at", json_string(created));
    rc |= json_object_set_new(root, "created_at_ms", json_integer(info->created_at));
    rc |= json_object_set_new(source, "host", str_or_null(m->source_host));
    rc |= json_object_set_new(source, "port", json_integer(m->source_port));
    rc |= json_object_set_new(source, "db", json_integer(m->source_db));
    rc |= json_object_set_new(source, "namespace", str_or_null(info->ns));
    rc |= json_object_set_new(root, "source", source);
    rc |= json_object_set_new(root, "schema_version", json_integer(info->meta.schema_version));
    rc |= json_object_set_new(root, "dim", json_integer(info->meta.dim));
    rc |= json_object_set_new(root, "model", str_or_null(info->meta.model));
    rc |= json_object_set_new(root, "distance", str_or_null(info->meta.distance));
    rc |= json_object_set_new(counts, "documents", json_integer(res ? res->counts.documents : 0));
    rc |= json_object_set_new(counts, "chunks", json_integer(res ? res->counts.chunks : 0));
    rc |= json_object_set_new(counts, "files", json_integer(res ? res->counts.files : 0));
    rc |= json_object_set_new(root, "counts", counts);
    rc |= json_object_set_new(root, "compressed", json_boolean(info->compress));
    rc |= json_object_set_new(root, "include_files", json_boolean(info->include_files));
    rc |= json_object_set_new(root, "duration_ms", json_integer(m->duration_ms));
    if (rc) {
        json_decref(root);
        return VD_ERR_NOMEM;
    }
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!text)
        return VD_ERR_NOMEM;
    vd_err e = vd_buf_append(out, text, strlen(text));
    if (!e)
        e = vd_buf_putc(out, '\n');
    free(text);
    return e;
}
