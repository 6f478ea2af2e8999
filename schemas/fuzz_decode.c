/*
 * fuzz_decode.c - libFuzzer entry point: every input goes through the three
 * decoders, once as is and once behind a valid header of each schema, so the
 * fuzzer reaches the body walk without having to guess a fingerprint.
 *
 *   cmake -B build-fuzz -DCMAKE_C_COMPILER=clang -DVD_FUZZ=ON
 *   cmake --build build-fuzz --target fuzz_decode
 *   ./build-fuzz/schemas/fuzz_decode -max_total_time=60
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vd_schemas.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void decode_all(const uint8_t *p, size_t n) {
    char err[256];
    vd_command c;
    vd_task_event e;
    vd_health_report h;
    if (vd_command_decode(p, n, &c, err, sizeof err) == VD_ERR_OK) {
        char *j = vd_command_to_json(&c);
        free(j);
    }
    vd_command_free(&c);
    if (vd_event_decode(p, n, &e, err, sizeof err) == VD_ERR_OK) {
        char *j = vd_event_to_json(&e);
        free(j);
    }
    vd_event_free(&e);
    if (vd_health_decode(p, n, &h, err, sizeof err) == VD_ERR_OK) {
        char *j = vd_health_to_json(&h);
        free(j);
    }
    vd_health_free(&h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    decode_all(data, size);
    if (size < 1)
        return 0;
    /* First byte picks a schema; the rest is the body. */
    vd_msg_type t = (vd_msg_type)(data[0] % 3);
    uint64_t fp = vd_schema_current_fingerprint(t);
    uint8_t *m = malloc(size - 1 + VD_SO_HEADER_LEN);
    if (!m)
        return 0;
    m[0] = VD_SO_MAGIC0;
    m[1] = VD_SO_MAGIC1;
    for (int i = 0; i < 8; i++)
        m[2 + i] = (uint8_t)(fp >> (8 * i));
    if (size > 1)
        memcpy(m + VD_SO_HEADER_LEN, data + 1, size - 1);
    decode_all(m, size - 1 + VD_SO_HEADER_LEN);
    free(m);
    return 0;
}
