/* The rollout engine: G sampled completions for each of B prompts, as the GRPO trainer
 * (rl/) and `grpo sample` need them. Design (rollouts/README.md has the long form):
 *  - Paged cache (rollouts/kv_pool.h): a sequence's cache grows a block at a time; a
 *    group's prompt is prefilled once and its blocks are shared by the G samples by
 *    reference count, never copied whole. A partly filled last prompt block is copied on
 *    the first write by a sample while others still share it (copy on write of that one
 *    block only).
 *  - Continuous batching: up to max_num_seqs sequences decode together, one token each per
 *    step (one batched model call); a finished sequence frees its blocks and slot at once
 *    and waiting work (new groups, pending samples of a prefilled group) fills them. When
 *    the pool runs dry, the most recently started sequence is preempted (its blocks freed,
 *    its tokens kept) and recomputed later (vLLM's recompute preemption): the output does
 *    not change.
 *  - Sampling (rollouts/sampler.h): temperature, top-k, top-p, min-p; the draw for token t
 *    of a sample uses Philox(stream = the sample's seed, counter = t), and the sample's
 *    seed is rollout_sample_seed(prompt seed, g), so a sample's completion does not depend
 *    on the batch it ran in, the order of prompts around it or the thread count.
 *  - Outputs: token ids, per-token log-probs (sampled distribution and untruncated policy
 *    at the temperature; see sampler.h), text, finish reason.
 *  - Speculative decoding with multi-token prediction (option, models with an MTP module):
 *    each step the MTP module guesses the token after the pending one and the main model
 *    runs both; the guess is kept when the main model's own draw (same seed, same
 *    position) equals it, so the output is that of plain decoding at any temperature.
 * Works with any model family whose lm_ops has `decode` (model/lm.h). */
#ifndef GRPO_ROLLOUT_H
#define GRPO_ROLLOUT_H

#include <stddef.h>
#include <stdint.h>

#include "model/lm.h"
#include "model/tokenizer.h"
#include "rollouts/sampler.h"

#define ROLLOUT_MAX_STOP 16   /* stop strings, and stop token ids, at most */

typedef struct {
    sampler_params sampler;       /* temperature (0 = greedy), top_k, top_p, min_p */
    int max_tokens;               /* max_completion_length: tokens generated at most (>= 1) */
    const char *stop[ROLLOUT_MAX_STOP];   /* stop strings (copied by the engine) */
    int n_stop;
    int32_t stop_token_ids[ROLLOUT_MAX_STOP];   /* besides the tokenizer's EOS */
    int n_stop_token_ids;
    int ignore_eos;               /* 1: the tokenizer's EOS does not stop */
    int include_stop_str_in_output;   /* 1: the text keeps the matched stop string (vLLM's option) */
} rollout_sampling;

typedef struct {
    rollout_sampling sampling;
    int add_bos;                  /* text prompts start with the tokenizer's BOS when it has one */
    int max_num_seqs;             /* sequences decoding at once */
    int block_size;               /* tokens per cache block */
    double cache_mib;             /* cache pool size in MiB (fixed at create) */
    int max_model_len;            /* prompt + completion at most; 0 = max_position_embeddings */
    int max_prefill_tokens;       /* tokens per prefill call (longer prompts go in chunks) */
    int share_prompt;             /* 1: one prefill per group, shared blocks; 0: one per sample */
    int speculative_mtp;          /* 1: the model's MTP module drafts one token per step and the
                                     main model verifies it (DeepSeek-V3 with MTP; same output) */
} rollout_config;

/* Defaults: temperature 1, top_k 0, top_p 1, min_p 0, max_tokens 256, no stop strings,
 * EOS stops, add_bos 1, max_num_seqs 64, block_size 16, cache 256 MiB, max_model_len 0,
 * max_prefill_tokens 2048, share_prompt 1, speculative_mtp 0. */
void rollout_config_defaults(rollout_config *c);

typedef struct {
    const char *text;             /* encoded (after BOS when add_bos) when ids is NULL */
    const int32_t *ids;           /* or the prompt's token ids, used as given */
    int n_ids;
    uint64_t seed;                /* the group's seed (see rollout_sample_seed) */
} rollout_prompt;

typedef enum { ROLLOUT_FINISH_STOP = 0, ROLLOUT_FINISH_LENGTH = 1 } rollout_finish;

typedef struct {
    int prompt_index, sample_index;
    uint64_t seed;                /* rollout_sample_seed(prompt seed, sample_index) */
    int32_t *tokens;              /* [n_tokens] completion ids, the stop token included */
    float *logprobs;              /* [n_tokens] log q(token): the tempered, truncated distribution drawn from */
    float *policy_logprobs;       /* [n_tokens] log softmax(logits / T)[token] (T = 1 when greedy) */
    int n_tokens;
    char *text;                   /* NUL-terminated completion text (NULL without a tokenizer): the
                                     tokens' bytes without a final stop token, cut before a matched
                                     stop string (after it with include_stop_str_in_output) */
    size_t text_len;
    rollout_finish finish_reason; /* stop: a stop token or string; length: max_tokens or max_model_len */
    int32_t stop_token;           /* the stop token id that ended it, else -1 */
    int stop_string;              /* index of the matched stop string, else -1 */
} rollout_sample;

typedef struct {
    int64_t prompt_tokens;        /* prompts' tokens (each once per group when shared) */
    int64_t prefill_tokens;       /* tokens run through prefill calls (recomputation included) */
    int64_t generated_tokens;
    double prefill_seconds;       /* prefill calls + first-token sampling */
    double decode_seconds;        /* decode steps: block upkeep, model call, sampling, stops */
    double total_seconds;
    int64_t decode_steps, prefill_calls, preemptions, cow_copies;
    int64_t draft_tokens;         /* MTP drafts verified (speculative_mtp) */
    int64_t accepted_tokens;      /* of which the main model's draw agreed */
    int peak_blocks;              /* most cache blocks in use at once */
    int peak_running;             /* most sequences decoding at once */
    int num_blocks, block_size;
    size_t cache_bytes_per_token; /* all layers */
    size_t pool_bytes;
} rollout_stats;

typedef struct {
    int n_prompts, G;
    rollout_sample *samples;      /* [n_prompts * G], sample g of prompt p at p * G + g */
    int32_t **prompt_tokens;      /* [n_prompts] the ids each prompt was run with */
    int *prompt_lens;             /* [n_prompts] */
    rollout_stats stats;
} rollout_output;

typedef struct rollout_engine rollout_engine;

/* Sizes the engine for model (which must have cached decoding) and allocates the cache
 * pool and decode buffers once. tok may be NULL (then prompts must be ids, no text and no
 * stop strings). model and tok are borrowed: they must outlive the engine. */
grpo_status rollout_engine_create(lm *model, const tokenizer *tok, const rollout_config *cfg,
                                  rollout_engine **out);
void rollout_engine_free(rollout_engine *e);   /* NULL is a no-op */

/* Replaces the sampling settings for the next rollout_generate (e.g. greedy evaluation
 * between training steps). Stop strings are copied. */
grpo_status rollout_engine_set_sampling(rollout_engine *e, const rollout_sampling *s);

/* G completions for each prompt. On success *out owns everything in it (free with
 * rollout_output_deinit); on failure *out is empty. Prompt errors (empty, too long for
 * max_model_len, an id outside the vocabulary) name the prompt's index. */
grpo_status rollout_generate(rollout_engine *e, const rollout_prompt *prompts, int n_prompts, int G,
                             rollout_output *out);
void rollout_output_deinit(rollout_output *o);

/* The seed of sample g of a prompt with seed `prompt_seed` (SplitMix64 mixing). */
uint64_t rollout_sample_seed(uint64_t prompt_seed, int g);

/* The cache bytes one token takes in this engine's model (all layers). */
size_t rollout_engine_bytes_per_token(const rollout_engine *e);
/* Cache blocks in use now (0 between rollout_generate calls: nothing leaks). */
int rollout_engine_blocks_in_use(const rollout_engine *e);

#endif
