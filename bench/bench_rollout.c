/* Rollout throughput on the CPU: B random prompts of P tokens, one sampled completion of
 * exactly N tokens each (temperature 1, EOS ignored), all B decoding at once through the
 * rollout engine. Prefill tokens/s = prompt tokens / prefill seconds; decode tokens/s =
 * tokens drawn in decode steps (all but each sequence's first, which comes from the
 * prefill logits) / decode seconds; cache per sequence = peak blocks in use x block bytes
 * / B. One warm-up run, then the best of --reps runs.
 * usage: bench_rollout [--preset tiny-dense] [--batch 64] [--prompt 64] [--gen 64] [--reps 2]
 *                      [--G 1] (G > 1: B/G prompts with G samples each, sharing the prompt)
 *                      [--mtp 1] (speculative decoding with the model's MTP module) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "model/lm.h"
#include "model/presets.h"
#include "rollouts/rollout.h"

int main(int argc, char **argv) {
    const char *preset = "tiny-dense";
    int B = 64, P = 64, N = 64, reps = 2, G = 1, mtp = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--preset")) preset = argv[i + 1];
        else if (!strcmp(argv[i], "--batch")) B = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--prompt")) P = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--gen")) N = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--G")) G = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--mtp")) mtp = atoi(argv[i + 1]);
        else { fprintf(stderr, "unknown option %s\n", argv[i]); return 2; }
    }
    if (B < 1 || P < 1 || N < 1 || reps < 1 || G < 1 || B % G) {
        fprintf(stderr, "expected positive sizes and G dividing batch\n");
        return 2;
    }
    size_t len;
    const char *json = preset_find(preset, &len);
    if (!json) { fprintf(stderr, "no preset %s\n", preset); return 2; }
    backend *be = backend_cpu_create();
    lm *m;
    if (lm_create_random(be, json, len, preset, 1, &m)) {
        fprintf(stderr, "setup: %s\n", grpo_error_message());
        return 1;
    }
    rollout_config cfg;
    rollout_config_defaults(&cfg);
    cfg.sampling.max_tokens = N;
    cfg.sampling.ignore_eos = 1;
    cfg.max_num_seqs = B;
    cfg.max_prefill_tokens = 4096;
    cfg.max_model_len = P + N;
    cfg.speculative_mtp = mtp;
    /* room for every sequence at full length, so the run measures batching, not preemption */
    int layers = 0;
    size_t floats = 0;
    m->ops->decode->cache_layout(m, &layers, &floats);
    if (mtp) layers += m->ops->decode->mtp_layers(m);
    double per_seq = (double)((P + N + cfg.block_size - 1) / cfg.block_size + 1) * cfg.block_size * layers *
                     floats * sizeof(float);
    cfg.cache_mib = 2.0 * B * per_seq / 1048576.0 + 1;
    rollout_engine *e;
    if (rollout_engine_create(m, NULL, &cfg, &e)) {
        fprintf(stderr, "engine: %s\n", grpo_error_message());
        return 1;
    }
    int n_prompts = B / G;
    int32_t *ids = malloc((size_t)n_prompts * P * sizeof(int32_t));
    rollout_prompt *prompts = malloc((size_t)n_prompts * sizeof *prompts);
    uint64_t x = 7;
    for (int p = 0; p < n_prompts; p++) {
        for (int t = 0; t < P; t++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            ids[(size_t)p * P + t] = (int32_t)((x >> 33) % (uint64_t)m->vocab_size);
        }
        prompts[p] = (rollout_prompt){.ids = ids + (size_t)p * P, .n_ids = P, .seed = (uint64_t)p};
    }
    double best_prefill = 0, best_decode = 0, best_total = 0;
    rollout_stats last = {0};
    for (int r = 0; r <= reps; r++) {
        rollout_output out;
        if (rollout_generate(e, prompts, n_prompts, G, &out)) {
            fprintf(stderr, "generate: %s\n", grpo_error_message());
            return 1;
        }
        const rollout_stats *s = &out.stats;
        double prefill = s->prompt_tokens / s->prefill_seconds;
        double decode = (double)(s->generated_tokens - B) / s->decode_seconds;
        double total = (double)s->generated_tokens / s->total_seconds;
        if (r > 0) {   /* run 0 warms up */
            if (prefill > best_prefill) best_prefill = prefill;
            if (decode > best_decode) best_decode = decode;
            if (total > best_total) best_total = total;
        }
        last = *s;
        rollout_output_deinit(&out);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cache_kib = (double)last.peak_blocks * last.block_size * last.cache_bytes_per_token / 1024.0 / B;
    printf("grpo.c %s batch %d (G %d), prompt %d, gen %d: prefill %.0f tokens/s, decode %.0f tokens/s, "
           "end to end %.0f tokens/s; cache %.1f KiB per sequence at peak (%d blocks of %d), %.0f bytes per "
           "token, max RSS %.0f MiB\n",
           preset, B, G, P, N, best_prefill, best_decode, best_total, cache_kib, last.peak_blocks, last.block_size,
           (double)last.cache_bytes_per_token, ru.ru_maxrss / 1024.0);
    if (mtp)
        printf("MTP drafts accepted: %lld of %lld\n", (long long)last.accepted_tokens, (long long)last.draft_tokens);
    printf("RESULT preset=%s batch=%d prefill_tps=%.1f decode_tps=%.1f total_tps=%.1f cache_kib_per_seq=%.2f\n",
           preset, B, best_prefill, best_decode, best_total, cache_kib);
    free(ids);
    free(prompts);
    rollout_engine_free(e);
    lm_free(m);
    backend_free(be);
    return 0;
}
