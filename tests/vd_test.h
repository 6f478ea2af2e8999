/*
 * vd_test.h - helpers shared by the cmocka tests: where the real services
 * are, fresh Redis connections, peak RSS.
 */
#ifndef VD_TEST_H
#define VD_TEST_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "vd_store.h"

/** Port of the test redis-server (VECDUMP_TEST_REDIS_PORT), or 0 if unset. */
int vd_test_redis_port(void);
/** Bootstrap servers of the test Kafka broker (VECDUMP_TEST_KAFKA), or NULL. */
const char *vd_test_kafka(void);
/** A namespace unique to this process and call: "t<pid>_<n>_<tag>". */
const char *vd_test_ns(const char *tag);
/** Peak resident set size of this process, in KiB (VmHWM). */
long vd_test_peak_rss_kb(void);
/** A fresh empty temp directory (mkdtemp under $TMPDIR); caller frees. */
char *vd_test_tmpdir(void);

/* ---- the test Redis ------------------------------------------------------ */
/** Connection settings of the test redis-server (127.0.0.1, its port, 5 s). */
const vd_store_conf *vd_test_store_conf(void);
/** A connection to the test Redis; fails the test when it cannot connect. */
vd_store *vd_test_connect(void);
/** Runs a hiredis command (printf-style); fails the test on an error reply. */
void vd_test_cmd(vd_store *s, const char *fmt, ...);
/** Runs a command that must answer an integer, and returns it. */
long long vd_test_cmd_int(vd_store *s, const char *fmt, ...);
/** Deletes every key of the namespace. */
void vd_test_drop(vd_store *s, const char *ns);
/** rm -rf of a test directory (write bits restored first). */
void vd_test_rm_rf(const char *dir);

/* Skip the current test (cmocka skip()) unless Redis / Kafka are set. */
#define VD_NEED_REDIS()                                                        \
    do {                                                                       \
        if (!vd_test_redis_port()) {                                           \
            print_message("skip: VECDUMP_TEST_REDIS_PORT not set\n");         \
            skip();                                                            \
        }                                                                      \
    } while (0)
#define VD_NEED_KAFKA()                                                        \
    do {                                                                       \
        if (!vd_test_kafka()) {                                                \
            print_message("skip: VECDUMP_TEST_KAFKA not set\n");              \
            skip();                                                            \
        }                                                                      \
    } while (0)

#endif
