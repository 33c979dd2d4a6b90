/* Fuzz target: normalisation, parsing and comparison of answers on arbitrary bytes
 * (both as gold and as prediction, against itself and a few fixed answers), plus the
 * Countdown expression parser. Must never crash, hang or leak. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "verifiers/countdown.h"
#include "verifiers/math.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = 0;
    char norm[256];
    verify_math_normalize(buf, size, norm, sizeof norm);
    int self = verify_math_equal(buf, buf);
    if (self < -1 || self > 1) abort();
    static const char *const fixed[] = { "x^2+1", "(1,2)", "\\{1,2\\}", "[0,1)", "2\\pi", "x>3", "50\\%", "B" };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        verify_math_equal(fixed[i], buf);
        verify_math_equal(buf, fixed[i]);
    }
    const long long numbers[] = { 3, 5, 7, 100, 25 };
    verify_countdown_result r;
    verify_countdown_expression(numbers, 5, 100, buf, size, NULL, &r);
    free(buf);
    return 0;
}
