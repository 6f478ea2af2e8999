/*
 * vd_schemas_desc.c - the C structs of vd_schemas.h described field by
 * field (Avro name, kind, offsets), so that one walk drives Avro encoding,
 * Avro decoding, JSON and freeing. Also: enum names, base64.
 */
#include "vd_schemas_int.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

_Static_assert(sizeof(vd_cmd_kind) == sizeof(int), "enums are int-sized");
_Static_assert(sizeof(vd_task_state) == sizeof(int), "enums are int-sized");
_Static_assert(sizeof(vd_result_kind) == sizeof(int), "enums are int-sized");

/* ---- symbols -------------------------------------------------------------- */

const char *const vd__sym_format[3] = {"JSONL", "CSV", "AVRO"};
const char *const vd__sym_conflict[3] = {"FAIL", "SKIP", "OVERWRITE"};
const char *const vd__sym_task_kind[6] = {"EXPORT", "IMPORT", "VALIDATE",
                                          "HEALTH", "CANCEL", "UNKNOWN"};
const char *const vd__sym_state[6] = {"ACCEPTED", "RUNNING", "SUCCEEDED",
                                      "FAILED", "CANCELLED", "REJECTED"};
const char *const vd__sym_severity[4] = {"INFO", "WARNING", "ERROR", "CRITICAL"};
const char *const vd__sym_health[3] = {"HEALTHY", "DEGRADED", "UNHEALTHY"};
static const char *const sym_cmd[5] = {"export", "import", "validate", "health",
                                       "cancel"};

#define NSYM(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const char *sym_name(const char *const *tab, int n, int v) {
    return v >= 0 && v < n ? tab[v] : "?";
}

static bool sym_parse(const char *const *tab, int n, const char *s, int *out) {
    if (!s)
        return false;
    for (int i = 0; i < n; i++) {
        if (strcasecmp(s, tab[i]) == 0) {
            *out = i;
            return true;
        }
    }
    return false;
}

#define VD__NAMES(fn, type, tab)                                               \
    const char *fn##_name(type v) { return sym_name(tab, NSYM(tab), (int)v); } \
    bool fn##_parse(const char *s, type *out) {                                \
        int v;                                                                 \
        if (!sym_parse(tab, NSYM(tab), s, &v))                                 \
            return false;                                                      \
        *out = (type)v;                                                        \
        return true;                                                           \
    }

VD__NAMES(vd_cmd_kind, vd_cmd_kind, sym_cmd)
VD__NAMES(vd_cmd_format, int, vd__sym_format)
VD__NAMES(vd_cmd_conflict, int, vd__sym_conflict)
VD__NAMES(vd_task_kind, vd_task_kind, vd__sym_task_kind)
VD__NAMES(vd_state, vd_task_state, vd__sym_state)
VD__NAMES(vd_ev_severity, int, vd__sym_severity)
VD__NAMES(vd_hr_status, int, vd__sym_health)

vd_task_kind vd_task_kind_of(vd_cmd_kind k) {
    switch (k) {
    case VD_CMD_EXPORT: return VD_KIND_EXPORT;
    case VD_CMD_IMPORT: return VD_KIND_IMPORT;
    case VD_CMD_VALIDATE: return VD_KIND_VALIDATE;
    case VD_CMD_HEALTH: return VD_KIND_HEALTH;
    case VD_CMD_CANCEL: return VD_KIND_CANCEL;
    }
    return VD_KIND_UNKNOWN;
}

bool vd_state_is_final(vd_task_state s) {
    return s == VD_STATE_SUCCEEDED || s == VD_STATE_FAILED ||
           s == VD_STATE_CANCELLED || s == VD_STATE_REJECTED;
}

/* ---- descriptors ------------------------------------------------------------ */

#define F(st, nm, ty, mem) {nm, ty, offsetof(st, mem), 0, 0, NULL, 0, NULL, NULL}
#define FE(st, nm, mem, tab) {nm, VD__F_ENUM, offsetof(st, mem), 0, 0, tab, NSYM(tab), NULL, NULL}
#define FN(st, nm, ty, mem, nmem) \
    {nm, ty, offsetof(st, mem), offsetof(st, nmem), 0, NULL, 0, NULL, NULL}
#define FR(st, nm, ty, mem, nmem, hmem, sub) \
    {nm, ty, offsetof(st, mem), nmem, hmem, NULL, 0, sub, NULL}
#define NF(a) (sizeof(a) / sizeof((a)[0]))

/* Issue */
static const vd__fdesc f_issue[] = {
    F(vd_ev_issue, "code", VD__F_STR, code),
    FE(vd_ev_issue, "severity", severity, vd__sym_severity),
    F(vd_ev_issue, "message", VD__F_STR, message),
    F(vd_ev_issue, "key", VD__F_OPTSTR, key),
};
static const vd__rdesc d_issue = {"Issue", f_issue, NF(f_issue), sizeof(vd_ev_issue)};

/*
 * The body structs are anonymous, so their fields are addressed from the
 * start of vd_command: each branch's 'off' is 0 and the field offsets are
 * absolute.
 */
#define CO(m) offsetof(vd_command, m)
static const vd__fdesc f_export[] = {
    {"format", VD__F_ENUM, CO(export.format), 0, 0, vd__sym_format, 3, NULL, NULL},
    {"compress", VD__F_BOOL, CO(export.compress), 0, 0, NULL, 0, NULL, NULL},
    {"include_files", VD__F_BOOL, CO(export.include_files), 0, 0, NULL, 0, NULL, NULL},
    {"verify_first", VD__F_BOOL, CO(export.verify_first), 0, 0, NULL, 0, NULL, NULL},
    {"destination", VD__F_OPTSTR, CO(export.destination), 0, 0, NULL, 0, NULL, NULL},
};
static const vd__fdesc f_import[] = {
    {"source_path", VD__F_OPTSTR, CO(import.source_path), 0, 0, NULL, 0, NULL, NULL},
    {"inline_data", VD__F_OPTBYTES, CO(import.inline_data), CO(import.inline_len), CO(import.has_inline), NULL, 0, NULL, NULL},
    {"validate_only", VD__F_BOOL, CO(import.validate_only), 0, 0, NULL, 0, NULL, NULL},
    {"on_conflict", VD__F_ENUM, CO(import.on_conflict), 0, 0, vd__sym_conflict, 3, NULL, NULL},
    {"expected_sha256", VD__F_OPTSTR, CO(import.expected_sha256), 0, 0, NULL, 0, NULL, NULL},
};
static const vd__fdesc f_validate[] = {
    {"fix", VD__F_BOOL, CO(validate.fix), 0, 0, NULL, 0, NULL, NULL},
    {"checks", VD__F_OPTSTRARR, CO(validate.checks), CO(validate.nchecks), CO(validate.has_checks), NULL, 0, NULL, NULL},
};
static const vd__fdesc f_health[] = {
    {"reason", VD__F_OPTSTR, CO(health.reason), 0, 0, NULL, 0, NULL, NULL},
};
static const vd__fdesc f_cancel[] = {
    {"target_task_id", VD__F_STR, CO(cancel.target_task_id), 0, 0, NULL, 0, NULL, NULL},
};
/* size 0: never allocated on its own (embedded in vd_command). */
static const vd__rdesc d_export = {"ExportCommand", f_export, NF(f_export), 0};
static const vd__rdesc d_import = {"ImportCommand", f_import, NF(f_import), 0};
static const vd__rdesc d_validate = {"ValidateCommand", f_validate, NF(f_validate), 0};
static const vd__rdesc d_health = {"HealthCommand", f_health, NF(f_health), 0};
static const vd__rdesc d_cancel = {"CancelCommand", f_cancel, NF(f_cancel), 0};

static const vd__branch br_body[] = {
    {"ExportCommand", VD_CMD_EXPORT, &d_export, 0},
    {"ImportCommand", VD_CMD_IMPORT, &d_import, 0},
    {"ValidateCommand", VD_CMD_VALIDATE, &d_validate, 0},
    {"HealthCommand", VD_CMD_HEALTH, &d_health, 0},
    {"CancelCommand", VD_CMD_CANCEL, &d_cancel, 0},
};
static const vd__udesc u_body = {-1, br_body, NF(br_body), VD_ERR_UNKNOWN_COMMAND};

static const vd__fdesc f_command[] = {
    F(vd_command, "task_id", VD__F_STR, task_id),
    F(vd_command, "issued_at", VD__F_LONG, issued_at),
    F(vd_command, "namespace", VD__F_STR, ns),
    F(vd_command, "requested_by", VD__F_OPTSTR, requested_by),
    {"body", VD__F_UNION, offsetof(vd_command, kind), 0, 0, NULL, 0, NULL, &u_body},
};
const vd__rdesc vd__desc_command = {"Command", f_command, NF(f_command), sizeof(vd_command)};

/* TaskEvent */
static const vd__fdesc f_progress[] = {
    F(vd_ev_progress, "done", VD__F_LONG, done),
    F(vd_ev_progress, "total", VD__F_LONG, total),
    F(vd_ev_progress, "bytes", VD__F_LONG, bytes),
    F(vd_ev_progress, "rate_per_s", VD__F_DOUBLE, rate_per_s),
    F(vd_ev_progress, "eta_ms", VD__F_LONG, eta_ms),
};
static const vd__rdesc d_progress = {"Progress", f_progress, NF(f_progress), sizeof(vd_ev_progress)};

static const vd__fdesc f_export_result[] = {
    F(vd_ev_export_result, "artifact_path", VD__F_STR, artifact_path),
    F(vd_ev_export_result, "size", VD__F_LONG, size),
    F(vd_ev_export_result, "sha256", VD__F_STR, sha256),
    F(vd_ev_export_result, "documents", VD__F_LONG, documents),
    F(vd_ev_export_result, "chunks", VD__F_LONG, chunks),
    F(vd_ev_export_result, "files", VD__F_LONG, files),
    F(vd_ev_export_result, "duration_ms", VD__F_LONG, duration_ms),
};
static const vd__rdesc d_export_result = {"ExportResult", f_export_result, NF(f_export_result), sizeof(vd_ev_export_result)};

static const vd__fdesc f_import_result[] = {
    F(vd_ev_import_result, "imported", VD__F_LONG, imported),
    F(vd_ev_import_result, "skipped", VD__F_LONG, skipped),
    F(vd_ev_import_result, "overwritten", VD__F_LONG, overwritten),
    F(vd_ev_import_result, "conflicts", VD__F_LONG, conflicts),
    FN(vd_ev_import_result, "conflict_ids", VD__F_STRARR, conflict_ids, nconflict_ids),
    F(vd_ev_import_result, "documents", VD__F_LONG, documents),
    F(vd_ev_import_result, "chunks", VD__F_LONG, chunks),
    F(vd_ev_import_result, "files", VD__F_LONG, files),
    F(vd_ev_import_result, "duration_ms", VD__F_LONG, duration_ms),
    F(vd_ev_import_result, "validate_only", VD__F_BOOL, validate_only),
};
static const vd__rdesc d_import_result = {"ImportResult", f_import_result, NF(f_import_result), sizeof(vd_ev_import_result)};

static const vd__fdesc f_validate_result[] = {
    FN(vd_ev_validate_result, "issues_by_check", VD__F_COUNTMAP, issues_by_check, nissues_by_check),
    FN(vd_ev_validate_result, "issues_by_severity", VD__F_COUNTMAP, issues_by_severity, nissues_by_severity),
    F(vd_ev_validate_result, "fixed", VD__F_LONG, fixed),
    F(vd_ev_validate_result, "quarantined", VD__F_LONG, quarantined),
    F(vd_ev_validate_result, "unfixable", VD__F_LONG, unfixable),
    F(vd_ev_validate_result, "documents", VD__F_LONG, documents),
    F(vd_ev_validate_result, "chunks", VD__F_LONG, chunks),
    F(vd_ev_validate_result, "files", VD__F_LONG, files),
    F(vd_ev_validate_result, "duration_ms", VD__F_LONG, duration_ms),
};
static const vd__rdesc d_validate_result = {"ValidateResult", f_validate_result, NF(f_validate_result), sizeof(vd_ev_validate_result)};

static const vd__branch br_result[] = {
    {"ExportResult", VD_RESULT_EXPORT, &d_export_result, offsetof(vd_task_event, export_result)},
    {"ImportResult", VD_RESULT_IMPORT, &d_import_result, offsetof(vd_task_event, import_result)},
    {"ValidateResult", VD_RESULT_VALIDATE, &d_validate_result, offsetof(vd_task_event, validate_result)},
};
static const vd__udesc u_result = {VD_RESULT_NONE, br_result, NF(br_result), VD_ERR_AVRO_DECODE};

static const vd__fdesc f_event[] = {
    F(vd_task_event, "task_id", VD__F_STR, task_id),
    F(vd_task_event, "worker_id", VD__F_STR, worker_id),
    FE(vd_task_event, "kind", kind, vd__sym_task_kind),
    FE(vd_task_event, "state", state, vd__sym_state),
    F(vd_task_event, "seq", VD__F_LONG, seq),
    F(vd_task_event, "attempt", VD__F_INT, attempt),
    F(vd_task_event, "at", VD__F_LONG, at),
    F(vd_task_event, "phase", VD__F_STR, phase),
    FR(vd_task_event, "progress", VD__F_REC, progress, 0, 0, &d_progress),
    F(vd_task_event, "message", VD__F_STR, message),
    FR(vd_task_event, "errors", VD__F_RECARR, errors, offsetof(vd_task_event, nerrors), 0, &d_issue),
    FR(vd_task_event, "warnings", VD__F_RECARR, warnings, offsetof(vd_task_event, nwarnings), 0, &d_issue),
    {"result", VD__F_UNION, offsetof(vd_task_event, result_kind), 0, 0, NULL, 0, NULL, &u_result},
};
const vd__rdesc vd__desc_task_event = {"TaskEvent", f_event, NF(f_event), sizeof(vd_task_event)};

/* HealthReport */
static const vd__fdesc f_component[] = {
    F(vd_component, "name", VD__F_STR, name),
    FE(vd_component, "status", status, vd__sym_health),
    F(vd_component, "latency_ms", VD__F_DOUBLE, latency_ms),
    F(vd_component, "detail", VD__F_STR, detail),
};
static const vd__rdesc d_component = {"Component", f_component, NF(f_component), sizeof(vd_component)};

static const vd__fdesc f_metrics[] = {
    F(vd_metrics, "documents", VD__F_LONG, documents),
    F(vd_metrics, "chunks", VD__F_LONG, chunks),
    F(vd_metrics, "files", VD__F_LONG, files),
    F(vd_metrics, "used_memory", VD__F_LONG, used_memory),
    F(vd_metrics, "documents_per_mb", VD__F_DOUBLE, documents_per_mb),
    F(vd_metrics, "chunks_per_document", VD__F_DOUBLE, chunks_per_document),
    F(vd_metrics, "dim", VD__F_INT, dim),
};
static const vd__rdesc d_metrics = {"Metrics", f_metrics, NF(f_metrics), sizeof(vd_metrics)};

static const vd__fdesc f_active[] = {
    F(vd_active_op, "task_id", VD__F_STR, task_id),
    F(vd_active_op, "kind", VD__F_STR, kind),
    F(vd_active_op, "state", VD__F_STR, state),
    F(vd_active_op, "percent", VD__F_DOUBLE, percent),
};
static const vd__rdesc d_active = {"ActiveOp", f_active, NF(f_active), sizeof(vd_active_op)};

static const vd__fdesc f_last_backup[] = {
    F(vd_last_backup, "task_id", VD__F_STR, task_id),
    F(vd_last_backup, "at", VD__F_LONG, at),
    F(vd_last_backup, "age_s", VD__F_LONG, age_s),
    F(vd_last_backup, "artifact_path", VD__F_STR, artifact_path),
};
static const vd__rdesc d_last_backup = {"LastBackup", f_last_backup, NF(f_last_backup), sizeof(vd_last_backup)};

static const vd__fdesc f_health_report[] = {
    F(vd_health_report, "worker_id", VD__F_STR, worker_id),
    F(vd_health_report, "at", VD__F_LONG, at),
    FE(vd_health_report, "status", status, vd__sym_health),
    FR(vd_health_report, "components", VD__F_RECARR, components, offsetof(vd_health_report, ncomponents), 0, &d_component),
    FR(vd_health_report, "metrics", VD__F_REC, metrics, 0, 0, &d_metrics),
    FR(vd_health_report, "active", VD__F_RECARR, active, offsetof(vd_health_report, nactive), 0, &d_active),
    FR(vd_health_report, "last_backup", VD__F_OPTREC, last_backup, 0, offsetof(vd_health_report, has_last_backup), &d_last_backup),
    FR(vd_health_report, "issues", VD__F_RECARR, issues, offsetof(vd_health_report, nissues), 0, &d_issue),
};
const vd__rdesc vd__desc_health_report = {"HealthReport", f_health_report, NF(f_health_report), sizeof(vd_health_report)};

/* ---- free -------------------------------------------------------------------- */

#define AT(base, off, type) ((type *)(void *)((char *)(base) + (off)))

static void free_fields(const vd__rdesc *d, void *base);

static void free_field(const vd__fdesc *f, void *base) {
    switch (f->t) {
    case VD__F_STR:
    case VD__F_OPTSTR:
        free(*AT(base, f->off, char *));
        break;
    case VD__F_OPTBYTES:
        free(*AT(base, f->off, unsigned char *));
        break;
    case VD__F_STRARR:
    case VD__F_OPTSTRARR: {
        char **a = *AT(base, f->off, char **);
        size_t n = *AT(base, f->off2, size_t);
        for (size_t i = 0; a && i < n; i++)
            free(a[i]);
        free(a);
        break;
    }
    case VD__F_COUNTMAP: {
        vd_count *a = *AT(base, f->off, vd_count *);
        size_t n = *AT(base, f->off2, size_t);
        for (size_t i = 0; a && i < n; i++)
            free(a[i].name);
        free(a);
        break;
    }
    case VD__F_REC:
    case VD__F_OPTREC:
        free_fields(f->sub, AT(base, f->off, char));
        break;
    case VD__F_RECARR: {
        char *a = *AT(base, f->off, char *);
        size_t n = *AT(base, f->off2, size_t);
        for (size_t i = 0; a && i < n; i++)
            free_fields(f->sub, a + i * f->sub->size);
        free(a);
        break;
    }
    case VD__F_UNION:
        /* Free every branch: the ones not selected are zeroed (or hold
         * what a caller left there, which is theirs to free too). */
        for (size_t i = 0; i < f->u->nbr; i++)
            free_fields(f->u->br[i].rec, AT(base, f->u->br[i].off, char));
        break;
    default:
        break;
    }
}

static void free_fields(const vd__rdesc *d, void *base) {
    for (size_t i = 0; i < d->nf; i++)
        free_field(&d->f[i], base);
}

void vd__desc_free(const vd__rdesc *d, void *base) {
    if (!base)
        return;
    free_fields(d, base);
    memset(base, 0, d->size);
}

void vd_command_free(vd_command *c) { vd__desc_free(&vd__desc_command, c); }
void vd_event_free(vd_task_event *e) { vd__desc_free(&vd__desc_task_event, e); }
void vd_health_free(vd_health_report *h) { vd__desc_free(&vd__desc_health_report, h); }

vd_err vd_issue_add(vd_ev_issue **arr, size_t *n, const char *code,
                    int severity, const char *message, const char *key) {
    vd_ev_issue *a = realloc(*arr, (*n + 1) * sizeof *a);
    if (!a)
        return VD_ERR_NOMEM;
    *arr = a;
    vd_ev_issue *it = &a[*n];
    memset(it, 0, sizeof *it);
    it->code = vd_strdup(code ? code : "");
    it->severity = severity;
    it->message = vd_strdup(message ? message : "");
    it->key = key ? vd_strdup(key) : NULL;
    if (!it->code || !it->message || (key && !it->key)) {
        free(it->code);
        free(it->message);
        free(it->key);
        return VD_ERR_NOMEM;
    }
    (*n)++;
    return VD_ERR_OK;
}

/* ---- base64 -------------------------------------------------------------------- */

char *vd__b64_encode(const unsigned char *p, size_t n) {
    char *o = malloc(VD_BASE64_LEN(n) + 1);
    if (!o)
        return NULL;
    *vd_base64_encode(o, p, n) = 0;
    return o;
}

/* Lenient on input (JSON written by people): URL-safe alphabet, newlines and
 * missing padding are accepted. */
static int b64_val(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

unsigned char *vd__b64_decode(const char *s, size_t slen, size_t *n) {
    unsigned char *o = malloc(slen / 4 * 3 + 4);
    size_t k = 0;
    uint32_t acc = 0;
    int bits = 0;
    bool pad = false;
    if (!o)
        return NULL;
    for (size_t i = 0; i < slen; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '=') {
            pad = true;
            continue;
        }
        if (c == '\n' || c == '\r')
            continue;
        int v = b64_val(c);
        if (v < 0 || pad) {
            free(o);
            return NULL;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[k++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (bits >= 6) { /* a lone sixth of a byte */
        free(o);
        return NULL;
    }
    o[k] = 0;
    *n = k;
    return o;
}
