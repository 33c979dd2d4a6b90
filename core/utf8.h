/* UTF-8 code points (RFC 3629): decoding that rejects overlong forms, surrogates and
 * values above U+10FFFF, and encoding. Shared by the tokenizer, the report and inspect. */
#ifndef GRPO_UTF8_H
#define GRPO_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Length (1..4) of the valid UTF-8 sequence at s[0..n), 0 when there is none; *cp gets
 * the code point. Never reads past s[n - 1]. */
int utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);
/* Writes cp (<= U+10FFFF) as UTF-8 into out; returns its length (1..4). */
int utf8_encode(uint32_t cp, char out[4]);

#endif
