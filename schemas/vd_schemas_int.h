/*
 * vd_schemas_int.h - internals of the schemas part shared by its .c files:
 * the embedded .avsc texts, the registry, the body pre-validator and the
 * field descriptors that drive the Avro, JSON and free code.
 */
#ifndef VD_SCHEMAS_INT_H
#define VD_SCHEMAS_INT_H

#include <avro.h>
#include <jansson.h>

#include "vd_schemas.h"

/* The .avsc files, embedded at build time (generated vd_schemas_avsc.c). */
extern const char vd__avsc_Command[];
extern const char vd__avsc_TaskEvent[];
extern const char vd__avsc_HealthReport[];

/* ---- registry ---------------------------------------------------------- */

typedef struct vd__schema_entry {
    uint64_t fp;
    vd_msg_type type;
    char *fullname;              /* top-level record fullname */
    avro_schema_t schema;
    avro_value_iface_t *iface;   /* generic class, shared by all threads */
} vd__schema_entry;

#define VD__REGISTRY_MAX 64

/** @returns the entry of @p fp or NULL. Entries live until exit. */
const vd__schema_entry *vd__schema_lookup(uint64_t fp);
/** @returns the entry of the current schema of @p t (after init). */
const vd__schema_entry *vd__schema_current(vd_msg_type t);

/** Canonical form of a parsed JSON schema, appended to @p out. */
vd_err vd__canonical_json(json_t *schema, vd_buf *out, char *errstr,
                          size_t errstr_size);
/** Fullname of the top-level named type of @p schema (malloc'd) or NULL. */
char *vd__schema_fullname(json_t *schema);

/* ---- body pre-validation ------------------------------------------------ */

typedef struct vd__walk {
    const unsigned char *p;
    size_t len;
    size_t pos;
    const vd_codec_limits *lim;
    size_t items;
    /* task_id capture: first top-level string field named "task_id". */
    bool have_task_id;
    size_t task_id_off;
    size_t task_id_len;
} vd__walk;

/**
 * Walks a whole body against @p schema without allocating. @returns
 * VD_ERR_OK or AVRO_TRUNCATED / AVRO_BRANCH / AVRO_DECODE / TOO_LARGE.
 */
vd_err vd__walk_body(vd__walk *w, avro_schema_t schema, char *errstr,
                     size_t errstr_size);

/* ---- field descriptors ---------------------------------------------------- */

typedef enum vd__ftype {
    VD__F_STR,        /* char *, Avro string (NULL encodes as "") */
    VD__F_OPTSTR,     /* char * or NULL, ["null","string"] */
    VD__F_OPTBYTES,   /* unsigned char * at off, size_t len at off2, bool has at off3 */
    VD__F_LONG,       /* int64_t */
    VD__F_INT,        /* int32_t */
    VD__F_DOUBLE,     /* double */
    VD__F_BOOL,       /* bool */
    VD__F_ENUM,       /* C enum (int-sized), symbols sym[nsym] */
    VD__F_STRARR,     /* char ** at off, size_t n at off2: array<string> */
    VD__F_OPTSTRARR,  /* as STRARR plus bool has at off3: ["null", array<string>] */
    VD__F_COUNTMAP,   /* vd_count * at off, size_t n at off2: map<long> */
    VD__F_REC,        /* embedded struct at off, described by sub */
    VD__F_RECARR,     /* array of sub->size structs at off, size_t n at off2 */
    VD__F_OPTREC,     /* embedded struct at off, bool has at off3: ["null", record] */
    VD__F_UNION       /* union of records: int tag at off, branches in u */
} vd__ftype;

struct vd__rdesc;

typedef struct vd__branch {
    const char *name;                 /* record short name */
    int tag;                          /* value stored at the union's off */
    const struct vd__rdesc *rec;
    size_t off;                       /* where the branch's struct lives */
} vd__branch;

typedef struct vd__udesc {
    int null_tag;                     /* tag of the null branch, -1: none */
    const vd__branch *br;
    size_t nbr;
    vd_err unknown_err;               /* error for a branch not in br */
} vd__udesc;

typedef struct vd__fdesc {
    const char *name;
    vd__ftype t;
    size_t off, off2, off3;
    const char *const *sym;
    int nsym;
    const struct vd__rdesc *sub;
    const vd__udesc *u;
} vd__fdesc;

typedef struct vd__rdesc {
    const char *name;                 /* record short name */
    const vd__fdesc *f;
    size_t nf;
    size_t size;                      /* sizeof the C struct */
} vd__rdesc;

extern const vd__rdesc vd__desc_command;
extern const vd__rdesc vd__desc_task_event;
extern const vd__rdesc vd__desc_health_report;

/* Symbol tables (index = C enum value). */
extern const char *const vd__sym_format[3];
extern const char *const vd__sym_conflict[3];
extern const char *const vd__sym_task_kind[6];
extern const char *const vd__sym_state[6];
extern const char *const vd__sym_severity[4];
extern const char *const vd__sym_health[3];

/** Frees what a described struct owns (not the struct) and zeroes it. */
void vd__desc_free(const vd__rdesc *d, void *base);

/* Base64 (RFC 4648, with padding). */
char *vd__b64_encode(const unsigned char *p, size_t n);
/** @returns malloc'd bytes (NUL-terminated, *n without it) or NULL if invalid. */
unsigned char *vd__b64_decode(const char *s, size_t slen, size_t *n);

/** Checks @p s (n bytes) is UTF-8 without NUL bytes. */
bool vd__utf8_valid(const unsigned char *s, size_t n);

#endif /* VD_SCHEMAS_INT_H */
