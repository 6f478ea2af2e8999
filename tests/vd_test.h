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
