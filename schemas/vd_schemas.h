/*
 * vd_schemas.h - the message contract (SPEC §3) and its codec.
 *
 * The .avsc files next to this header (Command, TaskEvent, HealthReport,
 * namespace dev.vecdump.v1) are the public contract. Values on the Kafka
 * topics are Avro binary in single-object encoding:
 *
 *     C3 01 | fingerprint (8 bytes, little-endian) | Avro binary body
 *
 * where the fingerprint is the CRC-64-AVRO (Rabin) fingerprint of the
 * writer schema's Parsing Canonical Form. A message is decoded with the
 * writer's schema, found by fingerprint in a registry that holds the three
 * current schemas and whatever older versions were registered; fields the
 * writer did not have get their default in code.
 *
 * Pure: no I/O. Decoding is hardened against hostile input: before avro-c
 * sees a body, it is walked against the writer schema and every length,
 * union index, enum index, varint, UTF-8 string and element count is
 * checked against the remaining bytes and the limits. Nothing a client
 * sends can make a decoder crash, read out of bounds or allocate more than
 * a small multiple of the message size.
 *
 * Thread safety: every function may be called from any thread. The schema
 * registry is built once (on first use) and is append-only.
 *
 * The plain C structs below own all their strings and arrays (malloc'd);
 * free them with the matching _free, which accepts a zeroed struct and
 * zeroes the struct again. A struct given to a _decode is overwritten
 * (it need not be initialised) and must be freed even when decode fails.
 */
#ifndef VD_SCHEMAS_H
#define VD_SCHEMAS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vd_common.h"

/* ---- enums of the contract (values = Avro symbol indexes) ------------ */

typedef enum vd_cmd_kind {
    VD_CMD_EXPORT,
    VD_CMD_IMPORT,
    VD_CMD_VALIDATE,
    VD_CMD_HEALTH,
    VD_CMD_CANCEL
} vd_cmd_kind;

/*
 * Enum-valued fields that other parts also model (formats/ vd_format,
 * tasks/ vd_on_conflict, vd_severity, vd_health_status) are plain int
 * here, holding the Avro symbol index. The constants below have the same
 * values as those parts' enums, so either can be stored without a cast.
 */
enum { VD_CMD_FMT_JSONL, VD_CMD_FMT_CSV, VD_CMD_FMT_AVRO };           /* ExportFormat */
enum { VD_CMD_CONFLICT_FAIL, VD_CMD_CONFLICT_SKIP, VD_CMD_CONFLICT_OVERWRITE }; /* OnConflict */
enum { VD_EV_SEV_INFO, VD_EV_SEV_WARNING, VD_EV_SEV_ERROR, VD_EV_SEV_CRITICAL }; /* Severity */
enum { VD_HR_HEALTHY, VD_HR_DEGRADED, VD_HR_UNHEALTHY };               /* HealthStatus */

typedef enum vd_task_kind {
    VD_KIND_EXPORT,
    VD_KIND_IMPORT,
    VD_KIND_VALIDATE,
    VD_KIND_HEALTH,
    VD_KIND_CANCEL,
    VD_KIND_UNKNOWN
} vd_task_kind;

typedef enum vd_task_state {
    VD_STATE_ACCEPTED,
    VD_STATE_RUNNING,
    VD_STATE_SUCCEEDED,
    VD_STATE_FAILED,
    VD_STATE_CANCELLED,
    VD_STATE_REJECTED
} vd_task_state;

/*
 * Names <-> values. The _name functions return the Avro symbol (static
 * string), or "?" when out of range. The _parse functions accept the
 * symbol case-insensitively and return false when unknown.
 */
const char *vd_cmd_kind_name(vd_cmd_kind k);      /* "export", "import", ... */
const char *vd_cmd_format_name(int f);            /* "JSONL", "CSV", "AVRO" */
const char *vd_cmd_conflict_name(int c);          /* "FAIL", "SKIP", "OVERWRITE" */
const char *vd_task_kind_name(vd_task_kind k);
const char *vd_state_name(vd_task_state s);
const char *vd_ev_severity_name(int s);           /* "INFO" ... "CRITICAL" */
const char *vd_hr_status_name(int s);             /* "HEALTHY" ... */
bool vd_cmd_kind_parse(const char *s, vd_cmd_kind *out);
bool vd_cmd_format_parse(const char *s, int *out);
bool vd_cmd_conflict_parse(const char *s, int *out);
bool vd_task_kind_parse(const char *s, vd_task_kind *out);
bool vd_state_parse(const char *s, vd_task_state *out);
bool vd_ev_severity_parse(const char *s, int *out);
bool vd_hr_status_parse(const char *s, int *out);
/** @returns the TaskKind of a command kind (VD_CMD_EXPORT -> VD_KIND_EXPORT). */
vd_task_kind vd_task_kind_of(vd_cmd_kind k);
/** @returns true for SUCCEEDED, FAILED, CANCELLED and REJECTED. */
bool vd_state_is_final(vd_task_state s);

/* ---- Command ---------------------------------------------------------- */

typedef struct vd_command {
    char *task_id;
    int64_t issued_at;            /* ms since the epoch */
    char *ns;                     /* Avro field "namespace" */
    char *requested_by;           /* NULL = null */
    vd_cmd_kind kind;             /* which of the bodies below is meaningful */
    struct {
        int format;               /* VD_CMD_FMT_* (= vd_format) */
        bool compress;
        bool include_files;
        bool verify_first;
        char *destination;        /* NULL = null */
    } export;
    struct {
        char *source_path;        /* NULL = null */
        bool has_inline;          /* inline_data is not null */
        unsigned char *inline_data; /* inline_len bytes (NUL-terminated too) */
        size_t inline_len;
        bool validate_only;
        int on_conflict;          /* VD_CMD_CONFLICT_* (= vd_on_conflict) */
        char *expected_sha256;    /* NULL = null */
    } import;
    struct {
        bool fix;
        bool has_checks;          /* false = null (all checks) */
        char **checks;            /* nchecks strings */
        size_t nchecks;
    } validate;
    struct {
        char *reason;             /* NULL = null */
    } health;
    struct {
        char *target_task_id;
    } cancel;
} vd_command;

/* Limits applied while decoding (hostile input). */
typedef struct vd_codec_limits {
    size_t max_string;   /* bytes of one string (default 1 MiB) */
    size_t max_bytes;    /* bytes of one bytes value, e.g. inline_data (64 MiB) */
    size_t max_items;    /* array + map elements in one message (100000) */
    size_t max_depth;    /* nesting depth of the schema walk (64) */
} vd_codec_limits;

/** @returns the default limits (see vd_codec_limits). */
vd_codec_limits vd_codec_limits_default(void);

/**
 * @brief Decodes a single-object-encoded Command with the default limits.
 *
 * Checks, in order: magic (VD_ERR_AVRO_MAGIC), fingerprint known and a
 * Command schema (VD_ERR_AVRO_FINGERPRINT), the body against the writer
 * schema (VD_ERR_AVRO_TRUNCATED when it ends early, VD_ERR_AVRO_BRANCH for a
 * union index out of range, VD_ERR_TOO_LARGE for a string, bytes value or
 * element count over a limit, VD_ERR_AVRO_DECODE for an enum index out of
 * range, a malformed varint, a non-boolean byte, invalid UTF-8 or a NUL in
 * a string, trailing bytes after the body), a body record this code does
 * not know (VD_ERR_UNKNOWN_COMMAND), a writer type that does not fit
 * (VD_ERR_BAD_FIELD), then the content: task_id, namespace and a cancel's
 * target_task_id valid ids (VD_ERR_BAD_ID); an import with exactly one of
 * source_path / inline_data, expected_sha256 64 hex digits, no empty
 * source_path or destination (VD_ERR_BAD_FIELD).
 *
 * @remark On VD_ERR_BAD_ID and VD_ERR_BAD_FIELD from the content checks
 * the whole struct is filled (the worker can report the kind). On every
 * other failure only out->task_id is kept, and only when the task_id field
 * could be read as a UTF-8 string (it is a top-level field of every Command
 * version, read before the body), so the worker can publish a REJECTED
 * event for it; otherwise it is NULL. It is the raw text: check
 * vd_id_valid() before using it as a key or a path. Always vd_command_free.
 *
 * @returns VD_ERR_OK, or the error above with errstr filled.
 */
vd_err vd_command_decode(const void *buf, size_t len, vd_command *out,
                         char *errstr, size_t errstr_size);
/** Same as vd_command_decode with explicit limits (NULL or 0 fields = defaults). */
vd_err vd_command_decode_lim(const void *buf, size_t len,
                             const vd_codec_limits *lim, vd_command *out,
                             char *errstr, size_t errstr_size);

/**
 * @brief Encodes @p c with the current Command schema and appends the
 * single-object bytes to @p out (an initialised vd_buf; its cap applies).
 *
 * NULL optional strings encode as null; NULL required strings as "".
 * @returns VD_ERR_OK; VD_ERR_BAD_ID when task_id or ns (or a cancel's
 * target) is not a valid id; VD_ERR_BAD_FIELD for an enum out of range;
 * VD_ERR_TOO_LARGE / VD_ERR_NOMEM from the buffer; VD_ERR_AVRO_ENCODE.
 * On failure out->len is unchanged.
 */
vd_err vd_command_encode(const vd_command *c, vd_buf *out, char *errstr,
                         size_t errstr_size);
/** Frees everything @p c owns and zeroes it. NULL is a no-op. */
void vd_command_free(vd_command *c);

/* ---- TaskEvent ---------------------------------------------------------- */

typedef struct vd_ev_issue {
    char *code;
    int severity;                 /* VD_EV_SEV_* (= vd_severity) */
    char *message;
    char *key;                    /* NULL = null */
} vd_ev_issue;

typedef struct vd_ev_progress {
    int64_t done;
    int64_t total;
    int64_t bytes;
    double rate_per_s;
    int64_t eta_ms;
} vd_ev_progress;

typedef struct vd_ev_export_result {
    char *artifact_path;
    int64_t size;
    char *sha256;
    int64_t documents, chunks, files, duration_ms;
} vd_ev_export_result;

typedef struct vd_ev_import_result {
    int64_t imported, skipped, overwritten, conflicts;
    char **conflict_ids;
    size_t nconflict_ids;
    int64_t documents, chunks, files, duration_ms;
    bool validate_only;
} vd_ev_import_result;

/* One entry of an Avro map<long>. */
typedef struct vd_count {
    char *name;
    int64_t count;
} vd_count;

typedef struct vd_ev_validate_result {
    vd_count *issues_by_check;
    size_t nissues_by_check;
    vd_count *issues_by_severity;
    size_t nissues_by_severity;
    int64_t fixed, quarantined, unfixable;
    int64_t documents, chunks, files, duration_ms;
} vd_ev_validate_result;

typedef enum vd_result_kind {
    VD_RESULT_NONE,               /* null */
    VD_RESULT_EXPORT,
    VD_RESULT_IMPORT,
    VD_RESULT_VALIDATE
} vd_result_kind;

typedef struct vd_task_event {
    char *task_id;
    char *worker_id;
    vd_task_kind kind;
    vd_task_state state;
    int64_t seq;
    int32_t attempt;
    int64_t at;
    char *phase;
    vd_ev_progress progress;
    char *message;
    vd_ev_issue *errors;
    size_t nerrors;
    vd_ev_issue *warnings;
    size_t nwarnings;
    vd_result_kind result_kind;   /* which result below is meaningful */
    vd_ev_export_result export_result;
    vd_ev_import_result import_result;
    vd_ev_validate_result validate_result;
} vd_task_event;

/**
 * Decodes a TaskEvent. Errors as vd_command_decode (without the id checks;
 * an unknown result record is VD_ERR_AVRO_DECODE).
 */
vd_err vd_event_decode(const void *buf, size_t len, vd_task_event *out,
                       char *errstr, size_t errstr_size);
/** Encodes and appends to @p out; errors as vd_command_encode (no id checks). */
vd_err vd_event_encode(const vd_task_event *e, vd_buf *out, char *errstr,
                       size_t errstr_size);
void vd_event_free(vd_task_event *e);
/**
 * Appends a copy of an issue to a growable array (*arr, *n).
 * @returns VD_ERR_OK or VD_ERR_NOMEM.
 */
vd_err vd_issue_add(vd_ev_issue **arr, size_t *n, const char *code,
                    int severity, const char *message, const char *key);

/* ---- HealthReport ------------------------------------------------------- */

typedef struct vd_component {
    char *name;
    int status;                   /* VD_HR_* (= vd_health_status) */
    double latency_ms;
    char *detail;
} vd_component;

typedef struct vd_metrics {
    int64_t documents, chunks, files, used_memory;
    double documents_per_mb;
    double chunks_per_document;
    int32_t dim;
} vd_metrics;

typedef struct vd_active_op {
    char *task_id;
    char *kind;
    char *state;
    double percent;
} vd_active_op;

typedef struct vd_last_backup {
    char *task_id;
    int64_t at;
    int64_t age_s;
    char *artifact_path;
} vd_last_backup;

typedef struct vd_health_report {
    char *worker_id;
    int64_t at;
    int status;                   /* VD_HR_* (= vd_health_status) */
    vd_component *components;
    size_t ncomponents;
    vd_metrics metrics;
    vd_active_op *active;
    size_t nactive;
    bool has_last_backup;         /* false = null */
    vd_last_backup last_backup;
    vd_ev_issue *issues;
    size_t nissues;
} vd_health_report;

/** Decodes a HealthReport; errors as vd_event_decode. */
vd_err vd_health_decode(const void *buf, size_t len, vd_health_report *out,
                        char *errstr, size_t errstr_size);
/** Encodes and appends to @p out; errors as vd_event_encode. */
vd_err vd_health_encode(const vd_health_report *h, vd_buf *out, char *errstr,
                        size_t errstr_size);
void vd_health_free(vd_health_report *h);

/* ---- JSON views (for the CLI, logs and the interop tool) ---------------- */
/*
 * JSON objects with the Avro field names. Optional fields are null or the
 * value; bytes (inline_data) are base64 text; the body / result unions are
 * {"type": "ExportCommand", ...fields} objects (null for no result).
 * The _to_json functions return malloc'd compact JSON text, NULL on out of
 * memory. The _from_json functions fill a zeroed-or-garbage struct (free it
 * even on failure) and return VD_ERR_BAD_JSON or VD_ERR_BAD_FIELD.
 * Missing fields get the schema's defaults (null, false, 0, first symbol).
 */
char *vd_command_to_json(const vd_command *c);
char *vd_event_to_json(const vd_task_event *e);
char *vd_health_to_json(const vd_health_report *h);
vd_err vd_command_from_json(const char *json, vd_command *out, char *errstr,
                            size_t errstr_size);
vd_err vd_event_from_json(const char *json, vd_task_event *out, char *errstr,
                          size_t errstr_size);
vd_err vd_health_from_json(const char *json, vd_health_report *out,
                           char *errstr, size_t errstr_size);

/* ---- schemas, canonical form, fingerprints, registry -------------------- */

typedef enum vd_msg_type {
    VD_MSG_COMMAND,
    VD_MSG_TASK_EVENT,
    VD_MSG_HEALTH_REPORT,
    VD_MSG_OTHER                  /* a registered schema of another record */
} vd_msg_type;

#define VD_SO_MAGIC0 0xC3
#define VD_SO_MAGIC1 0x01
#define VD_SO_HEADER_LEN 10       /* magic + fingerprint */
#define VD_CRC64_AVRO_EMPTY 0xc15d213aa4d7a795ULL

/** @returns the CRC-64-AVRO (Rabin) fingerprint of n bytes. */
uint64_t vd_crc64_avro(const void *p, size_t n);

/**
 * @brief Appends the Parsing Canonical Form of a JSON schema to @p out
 * (Avro specification, "Parsing Canonical Form for Schemas": primitives as
 * names, fullnames, only name/type/fields/symbols/items/values/size in that
 * order, strings unescaped, integers normalised, no whitespace).
 * @returns VD_ERR_OK, VD_ERR_BAD_JSON (not JSON) or VD_ERR_BAD_FIELD (not a
 * schema), VD_ERR_NOMEM / VD_ERR_TOO_LARGE from the buffer.
 */
vd_err vd_schema_canonical(const char *json, size_t len, vd_buf *out,
                           char *errstr, size_t errstr_size);
/** Fingerprint of the canonical form of a JSON schema; errors as above. */
vd_err vd_schema_fingerprint(const char *json, size_t len, uint64_t *fp,
                             char *errstr, size_t errstr_size);

/**
 * Builds the registry with the three current schemas. Called by every
 * codec function; call it at start-up to fail early.
 * @returns VD_ERR_OK or VD_ERR_INTERNAL (an .avsc avro-c cannot parse).
 */
vd_err vd_schemas_init(char *errstr, size_t errstr_size);
/** @returns the text of the current .avsc of @p t (NULL for OTHER). */
const char *vd_schema_json(vd_msg_type t);
/** @returns the fingerprint of the current schema of @p t (0 for OTHER). */
uint64_t vd_schema_current_fingerprint(vd_msg_type t);
/**
 * @brief Registers another writer schema (e.g. an older Command version),
 * so messages written with it decode. Registering a known schema again is
 * a no-op. Its top-level record name decides which decoder accepts it.
 * @returns VD_ERR_OK (with *fp set when fp is not NULL), VD_ERR_BAD_JSON,
 * VD_ERR_BAD_FIELD (avro-c rejects it), VD_ERR_TOO_LARGE (registry full).
 */
vd_err vd_schema_register(const char *json, size_t len, uint64_t *fp,
                          char *errstr, size_t errstr_size);
/**
 * @brief Reads the single-object header: which message this is.
 * @returns VD_ERR_OK, VD_ERR_AVRO_MAGIC, VD_ERR_AVRO_FINGERPRINT (unknown;
 * *fp is still set when the header was complete).
 */
vd_err vd_message_peek(const void *buf, size_t len, vd_msg_type *type,
                       uint64_t *fp, char *errstr, size_t errstr_size);

#endif /* VD_SCHEMAS_H */
