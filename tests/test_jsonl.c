/* Tests for data/jsonl: reading good and bad lines (blank, CRLF, BOM, no final newline,
 * very long, not JSON, not an object, invalid UTF-8, duplicate keys), the field helpers'
 * messages, and the writer (round trip, append, write errors). */
#include "data/jsonl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/harness.h"

static char tmp_path[64];

/* Writes `len` bytes to a fresh temp file; returns its path (static). */
static const char *write_tmp(const char *text, size_t len) {
    if (tmp_path[0]) unlink(tmp_path);
    snprintf(tmp_path, sizeof tmp_path, "/tmp/test_jsonl_XXXXXX");
    int fd = mkstemp(tmp_path);
    if (fd < 0) return "/nonexistent";
    if (len && write(fd, text, len) != (ssize_t)len) fprintf(stderr, "short write\n");
    close(fd);
    return tmp_path;
}

/* "PATH:LINE:" for the temp file. */
static const char *at_line(long line) {
    static char buf[2][128];
    static int next;
    char *b = buf[next++ % 2];
    snprintf(b, 128, "%s:%ld:", tmp_path, line);
    return b;
}

static void test_good_lines(void) {
    /* BOM, a blank line, CRLF, whitespace-only line, last line without newline. */
    static const char text[] = "\xEF\xBB\xBF{\"id\": \"a\", \"prompt\": \"1+1\", \"answer\": \"2\"}\n"
                               "\n"
                               "{\"id\": \"b\", \"numbers\": [1, 2, 3.0], \"target\": 6}\r\n"
                               "   \t \r\n"
                               "{\"id\": \"c\", \"x\": 2.5, \"text\": \"caf\xc3\xa9\"}";
    const char *path = write_tmp(text, sizeof text - 1);
    jsonl_reader *r;
    CHECK_OK(jsonl_open(path, &r));
    if (!r) return;
    CHECK_STR(path, jsonl_name(r));
    CHECK_INT(0, jsonl_line(r));
    json_t *obj;
    const char *s;
    CHECK_OK(jsonl_next(r, &obj));
    CHECK(obj != NULL);
    CHECK_INT(1, jsonl_line(r));
    CHECK_OK(jsonl_get_string(r, obj, "prompt", &s));
    CHECK_STR("1+1", s);
    CHECK_OK(jsonl_get_string_opt(r, obj, "missing", "dflt", &s));
    CHECK_STR("dflt", s);
    CHECK_OK(jsonl_get_string_opt(r, obj, "answer", "dflt", &s));
    CHECK_STR("2", s);

    CHECK_OK(jsonl_next(r, &obj));
    CHECK_INT(3, jsonl_line(r));
    int64_t *numbers = NULL, target = 0;
    size_t count = 0;
    CHECK_OK(jsonl_get_int_array(r, obj, "numbers", &numbers, &count));
    CHECK_INT(3, count);
    if (count == 3) CHECK_INT(3, numbers[2]); /* 3.0 is an integer */
    free(numbers);
    CHECK_OK(jsonl_get_int(r, obj, "target", &target));
    CHECK_INT(6, target);
    double d = 0;
    CHECK_OK(jsonl_get_number(r, obj, "target", &d));
    CHECK_NEAR(6.0, d, 0, 0);
    /* field errors name the line */
    CHECK_FAILS(jsonl_get_string(r, obj, "prompt", &s), at_line(3));
    CHECK_FAILS(jsonl_get_string(r, obj, "prompt", &s), "missing field 'prompt'");
    CHECK_FAILS(jsonl_get_string(r, obj, "target", &s), "expected a string in 'target', found a number");
    CHECK_FAILS(jsonl_get_string(r, obj, "numbers", &s), "expected a string in 'numbers', found an array");
    CHECK_FAILS(jsonl_get_int(r, obj, "id", &target), "expected an integer in 'id', found a string");
    CHECK_FAILS(jsonl_get_number(r, obj, "id", &d), "expected a number in 'id', found a string");
    CHECK_FAILS(jsonl_get_int_array(r, obj, "target", &numbers, &count),
                "expected an array of integers in 'target', found a number");
    CHECK(numbers == NULL && count == 0);
    CHECK_FAILS(jsonl_fail(r, GRPO_ERR_INVALID, "expected language python or c, found '%s'", "rust"),
                "expected language python or c, found 'rust'");
    CHECK_FAILS(jsonl_fail(r, GRPO_ERR_INVALID, "x"), at_line(3));

    CHECK_OK(jsonl_next(r, &obj));
    CHECK_INT(5, jsonl_line(r));
    CHECK_FAILS(jsonl_get_int(r, obj, "x", &target), "expected an integer in 'x', found 2.5");
    CHECK_OK(jsonl_get_number(r, obj, "x", &d));
    CHECK_NEAR(2.5, d, 0, 0);
    CHECK_OK(jsonl_get_string(r, obj, "text", &s));
    CHECK_STR("caf\xc3\xa9", s);
    /* the end, and it stays the end */
    CHECK_OK(jsonl_next(r, &obj));
    CHECK(obj == NULL);
    CHECK_OK(jsonl_next(r, &obj));
    CHECK(obj == NULL);
    jsonl_close(r);
    jsonl_close(NULL);
}

static void test_bad_lines(void) {
    static const char text[] = "{\"ok\": 1}\n"
                               "{\"prompt\": }\n"
                               "[1, 2]\n"
                               "\"just a string\"\n"
                               "{\"s\": \"caf\xc3\x28\"}\n"
                               "{\"a\": 1, \"a\": 2}\n"
                               "{\"a\": 1} {\"b\": 2}\n"
                               "{\"a\": [1, \"two\", 3]}\n"
                               "{\"a\": 1\n"
                               "{\"last\": true}";
    const char *path = write_tmp(text, sizeof text - 1);
    jsonl_reader *r;
    CHECK_OK(jsonl_open(path, &r));
    if (!r) return;
    json_t *obj;
    CHECK_OK(jsonl_next(r, &obj));
    /* Not JSON: jansson's message with line:col ('}' is byte 12 of line 2). */
    char want[160];
    const char *want_p = want;
    snprintf(want, sizeof want, "%s:2:12: unexpected token", path);
    CHECK_FAILS(jsonl_next(r, &obj), want_p);
    CHECK(obj == NULL);
    char arr[160];
    const char *arr_p = arr;
    snprintf(arr, sizeof arr, "%s:3: expected a JSON object, found an array", path);
    CHECK_FAILS(jsonl_next(r, &obj), arr_p);
    snprintf(arr, sizeof arr, "%s:4: expected a JSON object, found a string", path);
    CHECK_FAILS(jsonl_next(r, &obj), arr_p);
    CHECK_FAILS(jsonl_next(r, &obj), at_line(5)); /* invalid UTF-8: jansson refuses */
    CHECK_MSG(strstr(grpo_error_message(), "UTF-8") != NULL || strstr(grpo_error_message(), "decode") != NULL,
              "got \"%s\"", grpo_error_message());
    CHECK_FAILS(jsonl_next(r, &obj), "duplicate object key");
    CHECK_FAILS(jsonl_next(r, &obj), at_line(7)); /* two objects on one line */
    CHECK_OK(jsonl_next(r, &obj));                /* line 8 parses; its field is bad */
    int64_t *values = NULL;
    size_t count = 0;
    CHECK_FAILS(jsonl_get_int_array(r, obj, "a", &values, &count),
                "expected an array of integers in 'a', found a string at index 1");
    CHECK(values == NULL);
    CHECK_FAILS(jsonl_next(r, &obj), at_line(9)); /* truncated object */
    CHECK_OK(jsonl_next(r, &obj));                /* last line, no newline: valid */
    CHECK(obj && json_is_true(json_object_get(obj, "last")));
    CHECK_INT(10, jsonl_line(r));
    CHECK_OK(jsonl_next(r, &obj));
    CHECK(obj == NULL);
    jsonl_close(r);

    r = (jsonl_reader *)1;
    CHECK_FAILS(jsonl_open("/nonexistent/x.jsonl", &r), "/nonexistent/x.jsonl: cannot open");
    CHECK(r == NULL);
    /* NUL bytes inside a line */
    path = write_tmp("{\"a\": \"x\0y\"}\n", 13);
    CHECK_OK(jsonl_open(path, &r));
    if (r) {
        CHECK_FAILS(jsonl_next(r, &obj), at_line(1));
        jsonl_close(r);
    }
}

static void test_long_line(void) {
    size_t n = 3u << 20; /* a 3 MiB string value */
    char *text = malloc(n + 64);
    if (!text) return;
    size_t len = (size_t)sprintf(text, "{\"id\": 1}\n{\"big\": \"");
    memset(text + len, 'x', n);
    len += n;
    len += (size_t)sprintf(text + len, "\"}\n{\"id\": 3}\n");
    const char *path = write_tmp(text, len);
    free(text);
    jsonl_reader *r;
    CHECK_OK(jsonl_open(path, &r));
    if (!r) return;
    json_t *obj;
    const char *s;
    CHECK_OK(jsonl_next(r, &obj));
    CHECK_OK(jsonl_next(r, &obj));
    CHECK_OK(jsonl_get_string(r, obj, "big", &s));
    CHECK_INT(n, s ? strlen(s) : 0);
    CHECK_OK(jsonl_next(r, &obj));
    CHECK_INT(3, jsonl_line(r));
    jsonl_close(r);
}

static void test_writer(void) {
    const char *path = write_tmp("", 0);
    jsonl_writer *w;
    CHECK_OK(jsonl_writer_open(path, 0, &w));
    if (!w) return;
    for (int i = 0; i < 3; i++) {
        json_t *o = json_pack("{s:i, s:s, s:[i,i], s:f}", "step", i, "text", "line\nbreak \"q\"", "ids", i, i + 1,
                              "reward", 0.5 * i);
        CHECK_OK(jsonl_write_object(w, o));
        json_decref(o);
    }
    json_t *str = json_string("not an object");
    CHECK_FAILS(jsonl_write_object(w, str), "cannot encode a string");
    json_decref(str);
    CHECK_OK(jsonl_writer_close(w));
    CHECK_OK(jsonl_writer_open(path, 1, &w)); /* append */
    if (w) {
        json_t *o = json_pack("{s:i}", "step", 3);
        CHECK_OK(jsonl_write_object(w, o));
        json_decref(o);
        CHECK_OK(jsonl_writer_close(w));
    }
    /* Compact: one line per object. */
    FILE *f = fopen(path, "rb");
    char line[256];
    int lines = 0;
    while (f && fgets(line, sizeof line, f)) lines++;
    if (f) fclose(f);
    CHECK_INT(4, lines);
    jsonl_reader *r;
    CHECK_OK(jsonl_open(path, &r));
    if (!r) return;
    json_t *obj;
    int64_t step;
    for (int i = 0; i < 4; i++) {
        CHECK_OK(jsonl_next(r, &obj));
        CHECK_OK(jsonl_get_int(r, obj, "step", &step));
        CHECK_INT(i, step);
        if (i < 3) {
            const char *s;
            double reward;
            CHECK_OK(jsonl_get_string(r, obj, "text", &s));
            CHECK_STR("line\nbreak \"q\"", s);
            CHECK_OK(jsonl_get_number(r, obj, "reward", &reward));
            CHECK_NEAR(0.5 * i, reward, 0, 0);
        }
    }
    CHECK_OK(jsonl_next(r, &obj));
    CHECK(obj == NULL);
    jsonl_close(r);
    CHECK_OK(jsonl_writer_close(NULL));

    /* A full disk is reported (at the latest) by close. */
    FILE *full = fopen("/dev/full", "wb");
    if (full) {
        CHECK_OK(jsonl_writer_open_stream(full, "/dev/full", &w));
        json_t *o = json_pack("{s:i}", "x", 1);
        grpo_status st = jsonl_write_object(w, o);
        json_decref(o);
        grpo_status st2 = jsonl_writer_close(w);
        CHECK(st != GRPO_OK || st2 != GRPO_OK);
        CHECK_MSG(strstr(grpo_error_message(), "/dev/full: write error") != NULL, "got \"%s\"", grpo_error_message());
        fclose(full);
    }
    CHECK_FAILS(jsonl_writer_open("/nonexistent/dir/out.jsonl", 0, &w), "cannot open for writing");
}

static void test_stream(void) {
    static char text[] = "{\"a\": 1}\n{\"a\": 2}\n";
    FILE *f = fmemopen(text, sizeof text - 1, "r");
    if (!f) return;
    jsonl_reader *r;
    CHECK_OK(jsonl_open_stream(f, "<stdin>", &r));
    if (r) {
        json_t *obj;
        int64_t a = 0;
        CHECK_OK(jsonl_next(r, &obj));
        CHECK_OK(jsonl_next(r, &obj));
        CHECK_OK(jsonl_get_int(r, obj, "a", &a));
        CHECK_INT(2, a);
        CHECK_FAILS(jsonl_get_int(r, obj, "b", &a), "<stdin>:2: missing field 'b'");
        jsonl_close(r);
    }
    fclose(f); /* the reader did not close the caller's stream */
}

int main(void) {
    test_good_lines();
    test_bad_lines();
    test_long_line();
    test_writer();
    test_stream();
    if (tmp_path[0]) unlink(tmp_path);
    TEST_MAIN_END();
}
