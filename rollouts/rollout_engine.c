/* The rollout engine's set-up (rollouts/rollout.h): configuration, sizing of the cache
 * pool and the decode buffers, sampling settings, outputs. The scheduler is in
 * rollout_generate.c. */
#include "rollouts/rollout_impl.h"

#include <stdlib.h>
#include <string.h>

void rollout_config_defaults(rollout_config *c) {
    memset(c, 0, sizeof *c);
    sampler_params_defaults(&c->sampling.sampler);
    c->sampling.max_tokens = 256;
    c->add_bos = 1;
    c->max_num_seqs = 64;
    c->block_size = 16;
    c->cache_mib = 256;
    c->max_model_len = 0;
    c->max_prefill_tokens = 2048;
    c->share_prompt = 1;
    c->speculative_mtp = 0;
}

uint64_t rollout_sample_seed(uint64_t prompt_seed, int g) {
    /* SplitMix64 (Steele, Lea, Flood 2014) finaliser over seed and sample index */
    uint64_t z = prompt_seed + 0x9E3779B97F4A7C15ull * ((uint64_t)g + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static grpo_status check_sampling(const rollout_engine *e, const rollout_sampling *s) {
    GRPO_TRY(sampler_params_validate(&s->sampler));
    if (s->max_tokens < 1)
        return grpo_fail(GRPO_ERR_INVALID, "rollout: max_tokens: expected >= 1, found %d", s->max_tokens);
    if (s->n_stop < 0 || s->n_stop > ROLLOUT_MAX_STOP)
        return grpo_fail(GRPO_ERR_INVALID, "rollout: %d stop strings, expected 0 .. %d", s->n_stop, ROLLOUT_MAX_STOP);
    if (s->n_stop > 0 && !e->tok)
        return grpo_fail(GRPO_ERR_INVALID, "rollout: stop strings need a tokenizer (the engine has none)");
    if (s->n_stop_token_ids < 0 || s->n_stop_token_ids > ROLLOUT_MAX_STOP)
        return grpo_fail(GRPO_ERR_INVALID, "rollout: %d stop token ids, expected 0 .. %d", s->n_stop_token_ids,
                         ROLLOUT_MAX_STOP);
    for (int i = 0; i < s->n_stop_token_ids; i++)
        if (s->stop_token_ids[i] < 0 || s->stop_token_ids[i] >= e->V)
            return grpo_fail(GRPO_ERR_INVALID, "rollout: stop token id %d outside the vocabulary (%d)",
                             s->stop_token_ids[i], e->V);
    return GRPO_OK;
}

/* Installs s (validated): our own copies of the stop strings, the stop id set. */
static grpo_status install_sampling(rollout_engine *e, const rollout_sampling *s) {
    GRPO_TRY(check_sampling(e, s));
    sampler_stop *stop;
    GRPO_TRY(sampler_stop_create(s->stop, s->n_stop, &stop));
    char *copies[ROLLOUT_MAX_STOP] = {0};
    for (int i = 0; i < s->n_stop; i++)
        if (!(copies[i] = strdup(s->stop[i]))) {
            for (int j = 0; j < i; j++) free(copies[j]);
            sampler_stop_free(stop);
            return grpo_fail(GRPO_ERR_NOMEM, "out of memory for stop strings");
        }
    for (int i = 0; i < ROLLOUT_MAX_STOP; i++) free(e->stop_storage[i]);
    sampler_stop_free(e->stop);
    e->stop = stop;
    e->cfg.sampling = *s;
    for (int i = 0; i < ROLLOUT_MAX_STOP; i++) {
        e->stop_storage[i] = copies[i];
        e->cfg.sampling.stop[i] = i < s->n_stop ? copies[i] : NULL;
    }
    e->n_stop_ids = 0;
    for (int i = 0; i < s->n_stop_token_ids; i++) e->stop_ids[e->n_stop_ids++] = s->stop_token_ids[i];
    int32_t eos = e->tok ? tokenizer_eos_id(e->tok) : -1;
    if (!s->ignore_eos && eos >= 0) e->stop_ids[e->n_stop_ids++] = eos;
    return GRPO_OK;
}

static void free_slots(rollout_engine *e) {
    free(e->slots);
    free(e->slot_tokens);
    free(e->slot_blocks);
    free(e->slot_floats);
    free(e->slot_windows);
    e->slots = NULL;
    e->slot_tokens = e->slot_blocks = NULL;
    e->slot_floats = NULL;
    e->slot_windows = NULL;
}

grpo_status rollout_engine_size_slots(rollout_engine *e) {
    free_slots(e);
    size_t S = (size_t)e->cfg.max_num_seqs, T = (size_t)e->cfg.sampling.max_tokens;
    e->window_bytes = sampler_stop_window_bytes(e->stop, e->max_piece);
    e->slots = calloc(S, sizeof *e->slots);
    e->slot_tokens = malloc(S * T * sizeof(int32_t));
    e->slot_floats = malloc(2 * S * T * sizeof(float));
    e->slot_blocks = malloc(S * e->max_blocks_per_seq * sizeof(int32_t));
    e->slot_windows = malloc(S * e->window_bytes);
    if (!e->slots || !e->slot_tokens || !e->slot_floats || !e->slot_blocks || !e->slot_windows) {
        free_slots(e);
        return grpo_fail(GRPO_ERR_NOMEM, "rollout: out of memory for %zu sequence slots of %zu tokens", S, T);
    }
    for (size_t i = 0; i < S; i++) {
        rollout_slot *s = &e->slots[i];
        s->tokens = e->slot_tokens + i * T;
        s->logprobs = e->slot_floats + 2 * i * T;
        s->policy_logprobs = s->logprobs + T;
        s->blocks = e->slot_blocks + i * e->max_blocks_per_seq;
        s->window = e->slot_windows + i * e->window_bytes;
    }
    return GRPO_OK;
}

grpo_status rollout_engine_set_sampling(rollout_engine *e, const rollout_sampling *s) {
    int old_max = e->cfg.sampling.max_tokens;
    size_t old_window = e->window_bytes;
    GRPO_TRY(install_sampling(e, s));
    if (s->max_tokens != old_max || sampler_stop_window_bytes(e->stop, e->max_piece) != old_window)
        GRPO_TRY(rollout_engine_size_slots(e));
    return GRPO_OK;
}

static grpo_status check_config(const lm *model, const rollout_config *c) {
    if (c->max_num_seqs < 1)
        return grpo_fail(GRPO_ERR_INVALID, "rollout: max_num_seqs: expected >= 1, found %d", c->max_num_seqs);
    if (c->block_size < 1 || c->block_size > 4096)
        return grpo_fail(GRPO_ERR_INVALID, "rollout: block_size: expected 1 .. 4096, found %d", c->block_size);
    if (!(c->cache_mib > 0) || c->cache_mib > 1e9)
        return grpo_fail(GRPO_ERR_INVALID, "rollout: cache_mib: expected > 0, found %g", c->cache_mib);
    if (c->max_model_len < 0 || c->max_model_len > model->max_position_embeddings)
        return grpo_fail(GRPO_ERR_INVALID, "rollout: max_model_len: expected 0 .. max_position_embeddings (%d), "
                         "found %d", model->max_position_embeddings, c->max_model_len);
    if (c->max_prefill_tokens < 1)
        return grpo_fail(GRPO_ERR_INVALID, "rollout: max_prefill_tokens: expected >= 1, found %d",
                         c->max_prefill_tokens);
    return GRPO_OK;
}

grpo_status rollout_engine_create(lm *model, const tokenizer *tok, const rollout_config *cfg,
                                  rollout_engine **out) {
    *out = NULL;
    if (!model->ops->decode)
        return grpo_fail(GRPO_ERR_UNSUPPORTED, "rollout: model_type %s has no cached decoding", model->model_type);
    GRPO_TRY(check_config(model, cfg));
    rollout_engine *e = calloc(1, sizeof *e);
    if (!e) return grpo_fail(GRPO_ERR_NOMEM, "out of memory creating the rollout engine");
    e->model = model;
    e->tok = tok;
    e->cfg = *cfg;
    for (int i = 0; i < ROLLOUT_MAX_STOP; i++) e->cfg.sampling.stop[i] = NULL;
    e->cfg.sampling.n_stop = 0;
    e->V = model->vocab_size;
    e->max_model_len = cfg->max_model_len > 0 ? cfg->max_model_len : model->max_position_embeddings;
    e->max_blocks_per_seq = (e->max_model_len + cfg->block_size - 1) / cfg->block_size;
    if (tok)
        for (int32_t id = 0; id < tokenizer_vocab_size(tok); id++) {
            size_t len = 0;
            if (tokenizer_token_bytes(tok, id, &len) && len > e->max_piece) e->max_piece = len;
        }
    grpo_status s = install_sampling(e, &cfg->sampling);
    const lm_decode_ops *ops = model->ops->decode;
    e->mtp = cfg->speculative_mtp != 0;
    if (!s && e->mtp && (!ops->draft || !ops->mtp_layers || ops->mtp_layers(model) < 1))
        s = grpo_fail(GRPO_ERR_UNSUPPORTED, "rollout: speculative_mtp needs a model with an MTP module (model_type %s "
                      "has none)", model->model_type);

    /* the pool: cache_mib of blocks, at least one full-length sequence and one block more,
     * at most what every slot at full length (twice, for prompts waiting in open groups) needs */
    int num_layers = 0;
    size_t floats_per_token = 0;
    if (!s) {
        ops->cache_layout(model, &num_layers, &floats_per_token);
        if (e->mtp) num_layers += ops->mtp_layers(model);
        size_t block_bytes = (size_t)cfg->block_size * num_layers * floats_per_token * sizeof(float);
        double want = cfg->cache_mib * 1048576.0 / (double)block_bytes;
        double most = 2.0 * cfg->max_num_seqs * e->max_blocks_per_seq;
        int num_blocks = (int)(want < most ? want : most);
        if (num_blocks < e->max_blocks_per_seq + 1)
            s = grpo_fail(GRPO_ERR_INVALID, "rollout: cache_mib %g holds %d blocks of %d tokens (%.1f KiB each); a "
                          "sequence of max_model_len %d needs %d and one more: raise cache_mib or lower max_model_len",
                          cfg->cache_mib, num_blocks, cfg->block_size, block_bytes / 1024.0, e->max_model_len,
                          e->max_blocks_per_seq);
        else
            s = kv_pool_create(model->be, num_layers, floats_per_token, cfg->block_size, num_blocks, &e->pool);
    }
    if (!s) {
        /* a decode step runs up to 2 tokens per sequence (pending + draft) */
        int step = (e->mtp ? 2 : 1) * cfg->max_num_seqs;
        e->decode_tokens = cfg->max_prefill_tokens > step ? cfg->max_prefill_tokens : step;
        lm_decode_limits lim = {e->decode_tokens, cfg->max_num_seqs, step, e->max_blocks_per_seq};
        s = lm_decoder_create(model, &lim, &e->decoder);
    }
    if (!s) s = rollout_engine_size_slots(e);
    if (!s) {
        size_t S = (size_t)cfg->max_num_seqs;
        e->calls = calloc(S, sizeof *e->calls);
        e->drafts = calloc(S, sizeof *e->drafts);
        e->call_ids = malloc((size_t)e->decode_tokens * sizeof(int32_t));
        e->draft_ids = malloc((size_t)e->decode_tokens * sizeof(int32_t));
        e->call_map = malloc(S * sizeof(int));
        e->call_row = malloc(S * sizeof(int));
        e->draft_map = malloc(S * sizeof(int));
        e->results = malloc(2 * S * sizeof *e->results);
        e->prefills = calloc(S, sizeof *e->prefills);
        e->sample_rows = (int)(2 * S);
        e->sample_host = malloc(rollout_sample_bytes(e->sample_rows));
        if (!e->calls || !e->drafts || !e->call_ids || !e->draft_ids || !e->call_map || !e->call_row ||
            !e->draft_map || !e->results || !e->prefills || !e->sample_host)
            s = grpo_fail(GRPO_ERR_NOMEM, "rollout: out of memory for the step buffers (%zu sequences)", S);
    }
    if (!s) s = BACKEND_REQUIRE(model->be, sample);
    if (!s && !(e->sample_device = model->be->alloc(model->be, rollout_sample_bytes(e->sample_rows))))
        s = grpo_fail(GRPO_ERR_NOMEM, "rollout: backend %s: out of memory for the sampling buffers (%d rows, %zu "
                      "bytes)", model->be->name, e->sample_rows, rollout_sample_bytes(e->sample_rows));
    if (s) {
        rollout_engine_free(e);
        return s;
    }
    *out = e;
    return GRPO_OK;
}

void rollout_engine_free(rollout_engine *e) {
    if (!e) return;
    lm_decoder_free(e->decoder);
    kv_pool_free(e->pool);
    sampler_stop_free(e->stop);
    for (int i = 0; i < ROLLOUT_MAX_STOP; i++) free(e->stop_storage[i]);
    free_slots(e);
    free(e->calls);
    free(e->drafts);
    free(e->call_ids);
    free(e->draft_ids);
    free(e->call_map);
    free(e->call_row);
    free(e->draft_map);
    free(e->results);
    free(e->prefills);
    free(e->sample_host);
    if (e->sample_device) e->model->be->free(e->model->be, e->sample_device);
    free(e);
}

size_t rollout_engine_bytes_per_token(const rollout_engine *e) { return kv_pool_bytes_per_token(e->pool); }
int rollout_engine_blocks_in_use(const rollout_engine *e) {
    return kv_pool_num_blocks(e->pool) - kv_pool_num_free(e->pool);
}

void rollout_output_deinit(rollout_output *o) {
    if (!o) return;
    if (o->samples)
        for (int i = 0; i < o->n_prompts * o->G; i++) {
            free(o->samples[i].tokens);
            free(o->samples[i].logprobs);
            free(o->samples[i].policy_logprobs);
            free(o->samples[i].text);
        }
    if (o->prompt_tokens)
        for (int p = 0; p < o->n_prompts; p++) free(o->prompt_tokens[p]);
    free(o->samples);
    free(o->prompt_tokens);
    free(o->prompt_lens);
    memset(o, 0, sizeof *o);
}
