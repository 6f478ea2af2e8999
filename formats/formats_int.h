/*
 * formats_int.h - private to formats/: each format implements one writer
 * and one reader vtable; vd_formats.c dispatches to them.
 */
#ifndef VD_FORMATS_INT_H
#define VD_FORMATS_INT_H

#include "vd_formats.h"

typedef struct vd__writer_ops {
    vd_err (*put)(vd_writer *w, const vd_docgroup *g, char *errstr, size_t errstr_size);
    int64_t (*bytes)(const vd_writer *w);
    vd_err (*close)(vd_writer *w, vd_writer_result *res, char *errstr, size_t errstr_size);
    void (*destroy)(vd_writer *w); /* frees impl state; removes the file if not closed */
} vd__writer_ops;

struct vd_writer {
    const vd__writer_ops *ops;
    vd_format fmt;
    void *impl;
};

typedef struct vd__reader_ops {
    vd_err (*next)(vd_reader *r, vd_docgroup *g, bool *done, char *errstr, size_t errstr_size);
    int64_t (*bytes)(const vd_reader *r);
    void (*destroy)(vd_reader *r);
} vd__reader_ops;

struct vd_reader {
    const vd__reader_ops *ops;
    vd_format fmt;
    vd_artifact_info info;   /* strings owned by the reader (freed in destroy) */
    void *impl;
};

/*
 * Ownership contract between vd_formats.c and each format:
 * - Writers: vd_writer_open allocates the zeroed vd_writer and calls the
 *   format's *_writer_open. On success that sets w->ops and w->impl. On
 *   failure it either frees its own state and leaves w->impl NULL, or leaves
 *   w->ops and w->impl set so that vd_formats.c calls ops->destroy (which
 *   must then remove any file it created). vd_writer_destroy calls
 *   ops->destroy (when w->impl is set) and frees the vd_writer itself.
 * - Readers: the same for *_reader_open / r->ops / r->impl. ops->destroy
 *   frees only r->impl; vd_reader_destroy (vd_formats.c) then frees the
 *   strings of r->info (tool_version, task_id, ns, meta.model,
 *   meta.distance, all malloc'd or NULL) and the vd_reader. A format must
 *   therefore never free r->info's strings itself.
 */

/* Each format's constructors (vd_formats.c picks one). */
vd_err vd__jsonl_writer_open(vd_writer *w, const char *path, const vd_artifact_info *info,
                             char *errstr, size_t errstr_size);
vd_err vd__csvzip_writer_open(vd_writer *w, const char *path, const vd_artifact_info *info,
                              char *errstr, size_t errstr_size);
vd_err vd__avro_writer_open(vd_writer *w, const char *path, const vd_artifact_info *info,
                            char *errstr, size_t errstr_size);

/* Readers: path or memory (exactly one of path / data is set). */
vd_err vd__jsonl_reader_open(vd_reader *r, const char *path, const void *data, size_t len,
                             const vd_limits *lim, char *errstr, size_t errstr_size);
vd_err vd__csvzip_reader_open(vd_reader *r, const char *path, const void *data, size_t len,
                              const vd_limits *lim, char *errstr, size_t errstr_size);
vd_err vd__avro_reader_open(vd_reader *r, const char *path, const void *data, size_t len,
                            const vd_limits *lim, char *errstr, size_t errstr_size);

#endif
