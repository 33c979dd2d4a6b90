/* Private to the rollout engine's files: the engine, its sequence slots and the groups of
 * one rollout_generate call. */
#ifndef GRPO_ROLLOUT_IMPL_H
#define GRPO_ROLLOUT_IMPL_H

#include "rollouts/kv_pool.h"
#include "rollouts/rollout.h"

typedef enum {
    SLOT_FREE = 0,
    SLOT_RUNNING,     /* next[0] is pending: known, not yet in the cache */
    SLOT_PREEMPTED    /* blocks given back; waits to recompute its cache */
} slot_state;

/* One sequence in flight. Buffers are the engine's, sized at create (max_tokens). */
typedef struct {
    slot_state state;
    int group;            /* index into the call's groups */
    int prompt, sample;   /* prompt index, g */
    uint64_t seed;
    int prompt_len;
    int n_cached;         /* tokens in the cache; the pending token sits at position n_cached */
    int n_gen;            /* tokens generated */
    int32_t next[2];      /* the pending token (tokens[n_gen - 1], or with speculative_mtp the
                             prompt's last before the first step), then the MTP draft */
    int has_draft;
    int64_t order;        /* start order: preemption takes the latest */
    int32_t *tokens;      /* [max_tokens] */
    float *logprobs, *policy_logprobs;   /* [max_tokens] */
    int32_t *blocks;      /* [max_blocks_per_seq] */
    int n_blocks;
    char *window;         /* stop-string window */
    sampler_stop_state stop;
    size_t text_bytes;    /* bytes of text the tokens so far stand for */
} rollout_slot;

typedef enum { GROUP_WAITING = 0, GROUP_PREFILLING, GROUP_OPEN, GROUP_CLOSED } group_state;

/* A prompt's samples first_sample .. first_sample + n_samples - 1 sharing one prefill
 * (with share_prompt off, each sample is its own group). */
typedef struct {
    group_state state;
    int prompt;
    int first_sample, n_samples;
    int started;
    int32_t *blocks;      /* the group's own references on the prompt blocks while samples wait */
    int n_blocks;
    sampler_result *first;   /* [n_samples] first tokens, drawn from the prompt's logits */
    int32_t draft;        /* speculative_mtp: the MTP guess of the first token, -1 none */
} rollout_group;

/* A prefill in progress: a group's prompt (without its last token under speculative_mtp),
 * or a preempted slot's tokens before its pending one. Token i is prompt[i] below
 * prompt_len, else generated[i - prompt_len]; token len (the next) exists too. */
typedef struct {
    int group;            /* >= 0: a group's prompt */
    int slot;             /* >= 0: a preempted slot */
    const int32_t *prompt, *generated;
    int prompt_len;
    int len, done;
    const int32_t *blocks;
} rollout_prefill;

struct rollout_engine {
    lm *model;
    const tokenizer *tok;
    rollout_config cfg;
    char *stop_storage[ROLLOUT_MAX_STOP];   /* our copies of cfg.sampling.stop */
    sampler_stop *stop;
    int32_t stop_ids[ROLLOUT_MAX_STOP + 1];
    int n_stop_ids;
    int V;
    int max_model_len;
    int max_blocks_per_seq;
    size_t max_piece;     /* longest token text in bytes */
    kv_pool *pool;
    lm_decoder *decoder;
    int decode_tokens;    /* decoder's max_tokens */

    rollout_slot *slots;  /* [max_num_seqs] */
    int32_t *slot_tokens, *slot_blocks;
    float *slot_floats;
    char *slot_windows;
    size_t window_bytes;

    int mtp;                      /* speculative_mtp on */
    lm_decode_seq *calls;         /* [max_num_seqs] */
    lm_draft_seq *drafts;         /* [max_num_seqs] */
    int32_t *call_ids;            /* [decode_tokens] */
    int32_t *draft_ids;           /* [decode_tokens] */
    int *call_map;                /* [max_num_seqs] slot or prefill index per call */
    int *call_row;                /* [max_num_seqs] first token row of each call */
    int *draft_map;               /* [max_num_seqs] slot of each draft sequence */
    sampler_result *results;      /* [2 max_num_seqs] */
    rollout_prefill *prefills;    /* [max_num_seqs] */
    /* Draws go through the backend's sample op (rows of logits stay on the device): per
     * row a uniform number goes up and a token and two log-probs come back. One host and
     * one backend block, each carved as u [sample_rows] double, then tokens [sample_rows]
     * int32, logprob and policy_logprob [sample_rows] float; made with the engine. */
    int sample_rows;              /* 2 max_num_seqs: a decode step's rows */
    void *sample_host;
    void *sample_device;
    int64_t next_order;
};

/* Bytes of one sampling block (host or backend) for `rows` rows. */
static inline size_t rollout_sample_bytes(int rows) {
    return (size_t)rows * (sizeof(double) + sizeof(int32_t) + 2 * sizeof(float));
}

/* Frees the slot buffers and reallocates them for cfg.sampling.max_tokens. */
grpo_status rollout_engine_size_slots(rollout_engine *e);

#endif
