/* Distillation helpers (rl/distill.h): the one-tokenizer check that logit KD needs, and
 * the held-out KD loss of a student against a teacher. */
#include "rl/distill.h"

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend_pool.h"
#include "core/fs.h"

#define KD_ONLY_SAMPLES "logit distillation needs one tokenizer (use kd_alpha: 0 for sample-only distillation)"

/* Text that exercises the pre-tokenizer and many merges: words, digits, spaces, newlines,
 * punctuation, the R1 tags and non-ASCII letters. */
static const char probe_text[] =
    "A conversation between User and Assistant. The assistant first thinks about the reasoning process.\n"
    "<think> 12 + 345 = 357; 7 * 8 = 56, so x = -3.25e4 / (2^10)!   Let's check: isn't it 1,024? </think>\n"
    "<answer> \\boxed{\\frac{1}{2}} </answer> naive cafe: caf\xc3\xa9, na\xc3\xafve, \xe4\xbd\xa0\xe5\xa5\xbd, "
    "\xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82\t\ttabs  and   runs of spaces\r\n def f(a, b):\n    return a+b\n";

grpo_status distill_check_tokenizers(const tokenizer *teacher, const char *teacher_name, const tokenizer *student,
                                     const char *student_name) {
    const char *tn = teacher_name ? teacher_name : "(teacher)", *sn = student_name ? student_name : "(student)";
    int vt = tokenizer_vocab_size(teacher), vs = tokenizer_vocab_size(student);
    if (vt != vs)
        return grpo_fail(GRPO_ERR_INVALID, "tokenizers differ: teacher '%s' has %d tokens, student '%s' has %d: %s", tn,
                         vt, sn, vs, KD_ONLY_SAMPLES);
    for (int32_t id = 0; id < vt; id++) {
        const char *a = tokenizer_id_to_token(teacher, id), *b = tokenizer_id_to_token(student, id);
        if ((a == NULL) != (b == NULL) || (a && strcmp(a, b)))
            return grpo_fail(GRPO_ERR_INVALID, "tokenizers differ at id %d: teacher '%s' has \"%.40s\", student '%s' "
                             "has \"%.40s\": %s", (int)id, tn, a ? a : "(unused)", sn, b ? b : "(unused)",
                             KD_ONLY_SAMPLES);
        if (tokenizer_is_special(teacher, id) != tokenizer_is_special(student, id))
            return grpo_fail(GRPO_ERR_INVALID, "tokenizers differ at id %d (\"%.40s\"): special in %s '%s' only: %s",
                             (int)id, a ? a : "", tokenizer_is_special(teacher, id) ? "teacher" : "student",
                             tokenizer_is_special(teacher, id) ? tn : sn, KD_ONLY_SAMPLES);
    }
    struct { const char *what; int32_t t, s; } specials[] = {
        {"bos", tokenizer_bos_id(teacher), tokenizer_bos_id(student)},
        {"eos", tokenizer_eos_id(teacher), tokenizer_eos_id(student)},
        {"pad", tokenizer_pad_id(teacher), tokenizer_pad_id(student)},
    };
    for (int i = 0; i < 3; i++)
        if (specials[i].t != specials[i].s)
            return grpo_fail(GRPO_ERR_INVALID, "tokenizers differ: %s id is %d in teacher '%s', %d in student '%s': %s",
                             specials[i].what, (int)specials[i].t, tn, (int)specials[i].s, sn, KD_ONLY_SAMPLES);
    /* Every token's own bytes must encode the same way with both: a merge one of them lacks
     * splits the token it makes. */
    int32_t *a = NULL, *b = NULL;
    int na = 0, nb = 0;
    grpo_status s = GRPO_OK;
    for (int32_t id = 0; id < vt && !s; id++) {
        size_t len;
        const char *bytes = tokenizer_token_bytes(teacher, id, &len);
        if (!bytes || len == 0 || tokenizer_is_special(teacher, id)) continue;
        s = tokenizer_encode(teacher, bytes, len, &a, &na);
        if (!s) s = tokenizer_encode(student, bytes, len, &b, &nb);
        if (!s && (na != nb || memcmp(a, b, (size_t)na * sizeof *a)))
            s = grpo_fail(GRPO_ERR_INVALID, "tokenizers differ: token %d (\"%.40s\") encodes to %d tokens with teacher "
                          "'%s' and %d with student '%s' (merges differ): %s", (int)id,
                          tokenizer_id_to_token(teacher, id), na, tn, nb, sn, KD_ONLY_SAMPLES);
        free(a);
        free(b);
        a = b = NULL;
    }
    if (!s) s = tokenizer_encode(teacher, probe_text, sizeof probe_text - 1, &a, &na);
    if (!s) s = tokenizer_encode(student, probe_text, sizeof probe_text - 1, &b, &nb);
    if (!s) {
        int i = 0;
        while (i < na && i < nb && a[i] == b[i]) i++;
        if (i < na || i < nb)
            s = grpo_fail(GRPO_ERR_INVALID, "tokenizers differ: the same text encodes to %d tokens with teacher '%s' "
                          "and %d with student '%s', first different at token %d (merges or pre-tokenizer differ): %s",
                          na, tn, nb, sn, i, KD_ONLY_SAMPLES);
    }
    free(a);
    free(b);
    return s;
}

/* path, or path/tokenizer.json when path is a directory. */
static void tokenizer_file(const char *path, char *out, size_t size) {
    if (fs_is_dir(path))
        snprintf(out, size, "%s/tokenizer.json", path);
    else
        snprintf(out, size, "%s", path);
}

static grpo_status load_json(const char *file, json_t **out) {
    *out = NULL;
    if (!fs_exists(file)) return grpo_fail(GRPO_ERR_IO, "%s: no such tokenizer file", file);
    json_error_t err;
    json_t *root = json_load_file(file, 0, &err);
    if (!root) return grpo_fail(GRPO_ERR_PARSE, "%s:%d:%d: %s", file, err.line, err.column, err.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return grpo_fail(GRPO_ERR_PARSE, "%s: expected a JSON object (tokenizer.json), found something else", file);
    }
    *out = root;
    return GRPO_OK;
}

/* The first difference between two tokenizer.json documents in what defines the
 * tokenization; "" when none. */
static void first_difference(const json_t *a, const json_t *b, char *what, size_t size) {
    static const char *const sections[] = {"model", "added_tokens", "normalizer", "pre_tokenizer", "decoder"};
    what[0] = 0;
    for (size_t i = 0; i < sizeof sections / sizeof *sections; i++) {
        const json_t *x = json_object_get(a, sections[i]), *y = json_object_get(b, sections[i]);
        if (x && json_is_null(x)) x = NULL;
        if (y && json_is_null(y)) y = NULL;
        if ((!x && !y) || (x && y && json_equal(x, y))) continue;
        if (i == 0 && x && y) {
            const char *keys[] = {"type", "vocab", "merges"};
            for (int k = 0; k < 3; k++) {
                const json_t *u = json_object_get(x, keys[k]), *v = json_object_get(y, keys[k]);
                if ((u == NULL) == (v == NULL) && (!u || json_equal(u, v))) continue;
                size_t nu = json_is_object(u) ? json_object_size(u) : json_is_array(u) ? json_array_size(u) : 0;
                size_t nv = json_is_object(v) ? json_object_size(v) : json_is_array(v) ? json_array_size(v) : 0;
                snprintf(what, size, "model.%s (%zu vs %zu entries)", keys[k], nu, nv);
                return;
            }
            snprintf(what, size, "model (options such as unk_token or ignore_merges)");
            return;
        }
        snprintf(what, size, "%s", sections[i]);
        return;
    }
}

grpo_status distill_check_tokenizer_files(const char *teacher_path, const char *student_path) {
    char tf[PATH_MAX], sf[PATH_MAX], what[128];
    tokenizer_file(teacher_path, tf, sizeof tf);
    tokenizer_file(student_path, sf, sizeof sf);
    json_t *a = NULL, *b = NULL;
    grpo_status s = load_json(tf, &a);
    if (!s) s = load_json(sf, &b);
    if (!s) {
        first_difference(a, b, what, sizeof what);
        if (what[0])
            s = grpo_fail(GRPO_ERR_INVALID, "tokenizers differ: teacher %s and student %s differ in %s: %s", tf, sf,
                          what, KD_ONLY_SAMPLES);
    }
    json_decref(a);
    json_decref(b);
    if (s) return s;
    tokenizer *tt = NULL, *ts = NULL;
    s = fs_is_dir(teacher_path) ? tokenizer_load_dir(teacher_path, &tt) : tokenizer_load(tf, &tt);
    if (!s) s = fs_is_dir(student_path) ? tokenizer_load_dir(student_path, &ts) : tokenizer_load(sf, &ts);
    if (!s) s = distill_check_tokenizers(tt, teacher_path, ts, student_path);
    tokenizer_free(tt);
    tokenizer_free(ts);
    return s;
}

grpo_status distill_kd_evaluate(lm *student, lm *teacher, const sft_dataset *ds, const kd_options *kd, int batch_size,
                                int max_length, int32_t pad_id, double *kd_loss_mean) {
    *kd_loss_mean = NAN;
    GRPO_TRY(kd_options_validate(kd));
    if (batch_size < 1 || max_length < 2)
        return grpo_fail(GRPO_ERR_INVALID, "distill_kd_evaluate: expected batch_size >= 1 and max_length >= 2, found "
                         "%d and %d", batch_size, max_length);
    if (student->be != teacher->be)
        return grpo_fail(GRPO_ERR_INVALID, "distill_kd_evaluate: teacher and student must share a backend");
    backend *be = student->be;
    GRPO_TRY(lm_reserve(student, batch_size, max_length));
    GRPO_TRY(lm_reserve(teacher, batch_size, max_length));
    int Vs = student->vocab_size, Vt = teacher->vocab_size, V = Vs > Vt ? Vs : Vt;
    size_t n_max = (size_t)batch_size * (size_t)max_length;
    int chunk = (1 << 22) / V > 0 ? (1 << 22) / V : 1;
    if ((size_t)chunk > n_max) chunk = (int)n_max;
    int32_t *host_ids = malloc(n_max * sizeof(int32_t)), *host_targets = malloc(n_max * sizeof(int32_t));
    int *indices = malloc((size_t)batch_size * sizeof(int));
    float *zs = malloc((size_t)chunk * Vs * sizeof(float)), *zt = malloc((size_t)chunk * Vt * sizeof(float));
    uint8_t *mask = malloc((size_t)chunk);
    grpo_status s = host_ids && host_targets && indices && zs && zt && mask
                        ? GRPO_OK
                        : grpo_fail(GRPO_ERR_NOMEM, "distill_kd_evaluate: out of host memory");
    int32_t *ids = s ? NULL : backend_alloc(be, n_max * sizeof(int32_t), "KD evaluation token ids");
    if (!s && !ids) s = GRPO_ERR_NOMEM;
    double sum = 0;
    long tokens = 0;
    for (int start = 0; start < ds->count && !s; start += batch_size) {
        int B = ds->count - start < batch_size ? ds->count - start : batch_size, n_targets;
        for (int i = 0; i < B; i++) indices[i] = start + i;
        int T = sft_batch_fill(ds, indices, B, max_length, pad_id, host_ids, host_targets, &n_targets);
        int n = B * T;
        for (int i = 0; i < n && !s; i++)
            if (host_ids[i] < 0 || host_ids[i] >= Vs || host_ids[i] >= Vt)
                s = grpo_fail(GRPO_ERR_INVALID, "distill_kd_evaluate: token id %d is outside the vocabularies "
                              "(student %d, teacher %d)", (int)host_ids[i], Vs, Vt);
        if (s) break;
        be->to_device(be, ids, host_ids, (size_t)n * sizeof(int32_t));
        float *ls, *lt;
        /* The teacher first: the student's logits stay valid until its own next forward. */
        s = lm_forward(teacher, ids, NULL, B, T, &lt);
        if (!s) s = lm_forward(student, ids, NULL, B, T, &ls);
        for (int r0 = 0; r0 < n && !s; r0 += chunk) {
            int rows = n - r0 < chunk ? n - r0 : chunk;
            be->to_host(be, zs, ls + (size_t)r0 * Vs, (size_t)rows * Vs * sizeof(float));
            be->to_host(be, zt, lt + (size_t)r0 * Vt, (size_t)rows * Vt * sizeof(float));
            int counted = 0;
            for (int i = 0; i < rows; i++) counted += mask[i] = host_targets[r0 + i] >= 0;
            double part;
            s = kd_loss(kd, rows, zs, Vs, zt, Vt, mask, 1.0, &part, NULL);   /* the sum over counted rows */
            sum += part;
            tokens += counted;
        }
    }
    free(host_ids);
    free(host_targets);
    free(indices);
    free(zs);
    free(zt);
    free(mask);
    be->free(be, ids);
    if (s) return s;
    *kd_loss_mean = tokens ? sum / (double)tokens : NAN;
    return GRPO_OK;
}
