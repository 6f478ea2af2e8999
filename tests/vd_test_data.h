/*
 * vd_test_data.h - a deterministic dataset of vd_docgroups for the format
 * tests (awkward text, special floats, binary files) and its comparison.
 */
#ifndef VD_TEST_DATA_H
#define VD_TEST_DATA_H

#include "vd_test.h"
#include "vd_formats.h"

/** strdup that fails the test on out of memory. */
char *vd_test_xstrdup(const char *s);
/** A new string from fmt with two ints. */
char *vd_test_xfmt(const char *fmt, int a, int b);
/** Sets a chunk's binary-safe text (n bytes, may hold NULs). */
void vd_test_set_text(vd_chunk *c, const char *t, size_t n);
/** The k-th float of chunk j of document i: -0, denormals, FLT_MAX, … */
float vd_test_val(int i, int j, int k);
/** Fills document i with nchunks chunks of dim floats (and a file). */
void vd_test_mk_group(vd_docgroup *g, int i, int nchunks, int dim, bool with_file);
/** An artifact header for a dataset of dimension dim. */
void vd_test_info_init(vd_artifact_info *info, int dim, bool files);
/** Equal strings, NULL equal to NULL. */
void vd_test_assert_str_eq(const char *a, const char *b);
/** Every field equal, embeddings bit for bit, the file when files. */
void vd_test_assert_group_eq(const vd_docgroup *a, const vd_docgroup *b, bool files);

#endif
