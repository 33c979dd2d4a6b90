/* The bump allocator: alignment, running out, marks and roll-back, foreign blocks. */
#include <stdint.h>

#include "core/arena.h"
#include "core/status.h"
#include "tests/harness.h"

static int aligned_to(const void *p, size_t align) { return ((uintptr_t)p & (align - 1)) == 0; }

static void test_basic(void) {
    arena *a = arena_create(1000);
    CHECK(a != NULL);
    if (!a) return;
    CHECK_INT(1000, arena_capacity(a));
    CHECK_INT(0, arena_used(a));
    CHECK(aligned_to(arena_base(a), 64));

    char *p1 = arena_alloc(a, 3, 1);
    CHECK(p1 == (char *)arena_base(a));
    CHECK_INT(3, arena_used(a));
    /* Zero-filled on first use. */
    CHECK(p1[0] == 0 && p1[1] == 0 && p1[2] == 0);
    float *p2 = arena_alloc(a, 10 * sizeof(float), 64);
    CHECK(aligned_to(p2, 64));
    CHECK_INT(64 + 40, arena_used(a));   /* 3 bytes, padding to 64, then 40 */
    int all_zero = 1;
    for (int i = 0; i < 10; i++) all_zero &= p2[i] == 0.0f;
    CHECK(all_zero);
    double *p3 = arena_alloc(a, sizeof(double), 0);   /* default alignment 16 */
    CHECK(aligned_to(p3, 16));
    CHECK_INT(112 + 8, arena_used(a));

    /* Views do not overlap: write each fully, read back. */
    for (int i = 0; i < 10; i++) p2[i] = (float)i;
    *p3 = 1.5;
    memset(p1, 7, 3);
    CHECK(p2[9] == 9.0f && *p3 == 1.5 && p1[2] == 7);

    /* Marks and roll-back. */
    size_t mark = arena_mark(a);
    void *q = arena_alloc(a, 100, 8);
    CHECK(q != NULL);
    arena_reset_to(a, mark);
    CHECK_INT(mark, arena_used(a));
    CHECK(arena_alloc(a, 100, 8) == q);   /* same address handed out again */

    /* Running out: NULL and nothing changes; then an exact fit succeeds. */
    size_t used = arena_used(a);
    CHECK(arena_alloc(a, 1000, 1) == NULL);
    CHECK_INT(used, arena_used(a));
    CHECK(arena_alloc(a, SIZE_MAX, 1) == NULL);
    CHECK(arena_alloc(a, 1, (size_t)1 << 20) == NULL);   /* the padding alone passes the end */
    CHECK_INT(used, arena_used(a));
    char *last = arena_alloc(a, 1000 - used, 1);
    CHECK(last != NULL);
    CHECK_INT(1000, arena_used(a));
    if (last) last[1000 - used - 1] = 1;   /* ASan: the last byte is inside the block */
    CHECK(arena_alloc(a, 1, 1) == NULL);
    CHECK(arena_alloc(a, 0, 1) != NULL);   /* an empty view at the end is fine */

    arena_reset_to(a, 0);
    CHECK_INT(0, arena_used(a));
    arena_free(a);
    arena_free(NULL);
}

static void test_over(void) {
    /* Carving a block owned by someone else, starting at an odd address. */
    static unsigned char block[256];
    arena *a = arena_create_over(block + 1, 200);
    CHECK(a != NULL);
    if (!a) return;
    void *p = arena_alloc(a, 4, 4);
    CHECK(aligned_to(p, 4));
    CHECK((unsigned char *)p >= block + 1 && (unsigned char *)p + 4 <= block + 201);
    CHECK(arena_used(a) == (size_t)((unsigned char *)p + 4 - (block + 1)));
    CHECK(arena_alloc(a, 200, 1) == NULL);
    arena_free(a);   /* must not free `block` */

    CHECK(arena_create_over(NULL, 10) == NULL);
    CHECK(strstr(grpo_error_message(), "NULL") != NULL);
    arena *empty = arena_create_over(NULL, 0);
    CHECK(empty != NULL);
    if (empty) CHECK(arena_alloc(empty, 0, 1) == NULL);
    arena_free(empty);

    /* An impossible size fails with a message instead of wrapping around. */
    CHECK(arena_create(SIZE_MAX) == NULL);
    CHECK(strstr(grpo_error_message(), "too large") != NULL);

    arena *zero = arena_create(0);
    CHECK(zero != NULL);
    if (zero) CHECK(arena_alloc(zero, 1, 1) == NULL);
    arena_free(zero);
}

int main(void) {
    test_basic();
    test_over();
    TEST_MAIN_END();
}
