/* The report's text buffer and its HTML escaping (tools/report.h). Everything taken
 * from the store passes report_buf_html: prompts and completions are model output. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"
#include "tools/report.h"

static int reserve(report_buf *b, size_t extra) {
    if (b->failed) return 0;
    if (b->len + extra + 1 <= b->cap) return 1;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra + 1) cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) {
        b->failed = 1;
        return 0;
    }
    b->data = p;
    b->cap = cap;
    return 1;
}

static void append(report_buf *b, const char *text, size_t n) {
    if (!reserve(b, n)) return;
    memcpy(b->data + b->len, text, n);
    b->len += n;
    b->data[b->len] = 0;
}

void report_buf_puts(report_buf *b, const char *text) {
    if (text) append(b, text, strlen(text));
}

void report_buf_printf(report_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at s (1..4), 0 when it is not one, minus the length
 * for a C1 control (valid, but dropped from HTML text). */
static int utf8_sequence(const unsigned char *s) {
    uint32_t c;
    int n = utf8_decode(s, 4, &c);   /* stops at the NUL: not a continuation byte */
    return n > 0 && c >= 0x80 && c <= 0x9f ? -n : n;
}

void report_buf_html(report_buf *b, const char *text) {
    if (!text) return;
    const unsigned char *s = (const unsigned char *)text;
    while (*s) {
        unsigned c = *s;
        if (c < 0x80) {
            switch (c) {
            case '&': report_buf_puts(b, "&amp;"); break;
            case '<': report_buf_puts(b, "&lt;"); break;
            case '>': report_buf_puts(b, "&gt;"); break;
            case '"': report_buf_puts(b, "&quot;"); break;
            case '\'': report_buf_puts(b, "&#39;"); break;
            default:
                if (c >= 0x20 && c != 0x7f) append(b, (const char *)s, 1);
                else if (c == '\n' || c == '\t') append(b, (const char *)s, 1);
                break;   /* other control characters are not allowed in HTML text */
            }
            s++;
            continue;
        }
        int n = utf8_sequence(s);
        if (n > 0) append(b, (const char *)s, (size_t)n);
        else if (n == 0) report_buf_puts(b, "\xef\xbf\xbd");   /* U+FFFD for one bad byte */
        s += n > 0 ? n : n < 0 ? -n : 1;
    }
}

void report_buf_free(report_buf *b) {
    if (!b) return;
    free(b->data);
    memset(b, 0, sizeof *b);
}
