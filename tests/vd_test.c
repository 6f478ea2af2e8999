/* vd_test.c - see vd_test.h. */
#include "vd_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int vd_test_redis_port(void) {
    const char *p = getenv("VECDUMP_TEST_REDIS_PORT");
    if (!p || !*p)
        return 0;
    long v = strtol(p, NULL, 10);
    return v > 0 && v < 65536 ? (int)v : 0;
}

const char *vd_test_kafka(void) {
    const char *p = getenv("VECDUMP_TEST_KAFKA");
    return p && *p ? p : NULL;
}

const char *vd_test_ns(const char *tag) {
    static char buf[8][96];
    static int n;
    char *b = buf[n % 8];
    snprintf(b, sizeof buf[0], "t%ld_%d_%s", (long)getpid(), n, tag ? tag : "x");
    n++;
    return b;
}

long vd_test_peak_rss_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    fclose(f);
    return kb;
}

char *vd_test_tmpdir(void) {
    const char *base = getenv("TMPDIR");
    char tmpl[512];
    snprintf(tmpl, sizeof tmpl, "%s/vdtest.XXXXXX", base && *base ? base : "/tmp");
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}
