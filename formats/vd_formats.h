/*
 * vd_formats.h - backup artifact formats (SPEC §5): JSONL (optionally gzip),
 * CSV-in-ZIP and Avro object container files, plus the sidecar manifest and
 * the float32 text codec they share.
 *
 * This part knows neither Kafka nor Redis: writers are fed vd_docgroups and
 * write bytes to the path they are given; readers hand back vd_docgroups and
 * check everything they read against hard limits. Atomic placement (temp
 * name, fsync, rename) is the caller's job.
 */
#ifndef VD_FORMATS_H
#define VD_FORMATS_H

#include "vd_common.h"

typedef enum { VD_FMT_JSONL = 0, VD_FMT_CSV = 1, VD_FMT_AVRO = 2 } vd_format;

const char *vd_format_name(vd_format f);               /* "JSONL" … */
/** File extension for a format: ".jsonl", ".jsonl.gz", ".csv.zip", ".avro". */
const char *vd_format_ext(vd_format f, bool compress);

/* ---- float32 text: shortest decimal that round-trips ------------------ */
#define VD_F32_MAXLEN 24
/**
 * Writes the shortest decimal text that parses back to exactly @p v
 * (NaN -> "NaN", ±Inf -> "Infinity"/"-Infinity"). @returns its length; no NUL.
 */
size_t vd_f32_format(float v, char *out /* >= VD_F32_MAXLEN */);
/**
 * Parses decimal text into the nearest float32 (correctly rounded).
 * @returns number of bytes consumed, 0 when s does not start with a number.
 */
size_t vd_f32_parse(const char *s, size_t n, float *out);

/* ---- what an artifact says about itself ------------------------------- */
typedef struct vd_artifact_info {
    const char *tool_version;
    const char *task_id;
    const char *ns;
    int64_t created_at;      /* ms */
    vd_meta meta;            /* schema_version, dim, model, distance, created_at (borrowed) */
    bool include_files;
    bool compress;
} vd_artifact_info;

typedef struct vd_counts {
    int64_t documents;
    int64_t chunks;
    int64_t files;
} vd_counts;

/* ---- writer ----------------------------------------------------------- */
typedef struct vd_writer vd_writer;

typedef struct vd_member_sum {   /* per-member checksum inside a ZIP */
    char name[160];
    char sha256[65];
    int64_t size;
} vd_member_sum;

typedef struct vd_writer_result {
    int64_t bytes;           /* size of the artifact file */
    char sha256[65];         /* SHA-256 of the artifact file */
    vd_counts counts;
    vd_member_sum *members;  /* CSV only; owned by the writer until destroy */
    size_t nmembers;
} vd_writer_result;

/**
 * @brief Creates @p path (which must not exist) and writes the format's header.
 * @returns VD_ERR_IO / NOSPACE with errstr naming the failed step.
 */
vd_err vd_writer_open(vd_format fmt, const char *path, const vd_artifact_info *info,
                      vd_writer **out, char *errstr, size_t errstr_size);
/** Writes one document with its chunks (and file, when info->include_files). */
vd_err vd_writer_put(vd_writer *w, const vd_docgroup *g, char *errstr, size_t errstr_size);
/** Bytes written so far (compressed size where compressed; an estimate for ZIP). */
int64_t vd_writer_bytes(const vd_writer *w);
/**
 * @brief Writes the trailer, flushes and fsyncs the file, fills *res.
 *        The file stays at its path; the caller renames it into place.
 */
vd_err vd_writer_close(vd_writer *w, vd_writer_result *res, char *errstr, size_t errstr_size);
/** Frees the writer; if it was not closed, its file is removed. NULL-safe. */
void vd_writer_destroy(vd_writer *w);

/* ---- reader ----------------------------------------------------------- */
typedef struct vd_limits {
    int64_t max_artifact_bytes;   /* default 64 GiB */
    int64_t max_record_bytes;     /* one JSON line / CSV row / Avro record; default 256 MiB */
    int64_t max_ratio;            /* decompressed/compressed, default 200 */
    int64_t max_members;          /* ZIP entries, default 1,000,000 */
    int64_t max_chunks_per_doc;   /* default 1,000,000 */
} vd_limits;
void vd_limits_default(vd_limits *l);

typedef struct vd_reader vd_reader;

/**
 * @brief Opens an artifact, recognising the format by content (gzip magic,
 *        ZIP magic, Avro "Obj\x01", else JSONL). Reads and checks the header.
 * @returns VD_ERR_FORMAT, GZIP, ZIP, ZIP_BOMB, AVRO_FILE, TOO_LARGE, … with errstr.
 */
vd_err vd_reader_open(const char *path, const vd_limits *lim, vd_reader **out,
                      char *errstr, size_t errstr_size);
/** Same, over a caller-owned memory buffer that must outlive the reader. */
vd_err vd_reader_open_mem(const void *data, size_t len, const vd_limits *lim,
                          vd_reader **out, char *errstr, size_t errstr_size);
vd_format vd_reader_format(const vd_reader *r);
/** The header's information (valid until destroy). */
const vd_artifact_info *vd_reader_info(const vd_reader *r);
/**
 * @brief Reads the next document with its chunks (in seq order) and file.
 *        Checks ids, embedding dims against the header's dim, NaN/Inf,
 *        chunk -> document references, sizes.
 * @returns VD_ERR_OK with *done=false and *g filled (caller clears), or
 *          VD_ERR_OK with *done=true after the trailer/manifest counts and
 *          checksums were verified, or an error naming the record (the
 *          reader is then unusable).
 */
vd_err vd_reader_next(vd_reader *r, vd_docgroup *g, bool *done, char *errstr,
                      size_t errstr_size);
/** Bytes of the artifact consumed so far (for progress). */
int64_t vd_reader_bytes(const vd_reader *r);
void vd_reader_destroy(vd_reader *r);

/* ---- manifest (sidecar ARTIFACT.manifest.json) ------------------------ */
typedef struct vd_manifest {
    const vd_artifact_info *info;
    vd_format format;
    const char *artifact_name;    /* file name, no directory */
    const vd_writer_result *res;
    const char *source_host;
    int source_port;
    int source_db;
    int64_t duration_ms;
} vd_manifest;
/** Renders the manifest as pretty JSON into *out (never any password). */
vd_err vd_manifest_render(const vd_manifest *m, vd_buf *out);

#endif /* VD_FORMATS_H */
