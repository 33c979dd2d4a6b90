/* Fuzz target: answer extraction and the whole verify_math path on arbitrary bytes.
 * The input is "gold \0 response" (no NUL: the whole input is the response against a
 * fixed gold). Must never crash, hang or leak. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "verifiers/math.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = 0;
    const char *gold = "\\frac{1}{2}", *response = buf;
    char *nul = memchr(buf, 0, size);
    if (nul && nul + 1 <= buf + size) { gold = buf; response = nul + 1; }
    verify_math_options opt;
    verify_math_options_default(&opt);
    size_t a, n;
    verify_math_rule rule = verify_math_extract(buf, size, &opt, &a, &n);
    if (rule != VERIFY_MATH_RULE_NONE && (a > size || n > size - a)) abort();
    verify_math_result r;
    verify_math(gold, response, &opt, &r);
    if (r.correct && r.status != VERIFY_MATH_OK) abort();
    opt.last_number_fallback = 1;
    opt.bare_max_len = 4096;
    verify_math(gold, response, &opt, &r);
    free(buf);
    return 0;
}
