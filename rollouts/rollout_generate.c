/* The rollout engine's scheduler (rollouts/rollout.h): continuous batching over sequence
 * slots and a paged cache. Each iteration:
 *   1. pending samples of prefilled groups take free slots (they share the prompt blocks);
 *   2. admission: preempted sequences first (their cache recomputed), then new groups,
 *      while free slots and cache blocks allow (keeping a block for every running
 *      sequence's next token);
 *   3. prefill calls for what was admitted (chunks of max_prefill_tokens); a group's
 *      first tokens are drawn from its prompt's logits for all its samples at once;
 *   4. one decode step: every running sequence appends its pending token and draws the
 *      next; finished sequences give back their blocks and slots at once.
 * A sample draws token t with sampler_uniform(seed, t) only, so neither the batch nor the
 * schedule (preemption included) changes what it draws. */
#include "core/progress.h"
#include "rollouts/rollout_impl.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    rollout_engine *e;
    const rollout_prompt *prompts;
    rollout_output *out;
    rollout_group *groups;
    int n_groups;
    int next_group;          /* groups are admitted in order */
    int32_t *group_blocks;   /* storage of every group's prompt block list */
    sampler_result *first;   /* [n_prompts * G] */
    int remaining;           /* samples not finished */
} gen_state;

/* ---- drawing through the backend ---- */

/* The host sampling block's uniform numbers: [sample_rows]. */
static double *sample_uniforms(rollout_engine *e) { return (double *)e->sample_host; }

/* Draws n rows of backend logits (row i at logits + i * ldl; ldl 0: one row for all) with
 * the backend's sample op; row i uses sample_uniforms(e)[i], which the caller filled
 * (unused when greedy). Results into out[n]. Copies n uniforms up and the three result
 * arrays (16 bytes a row in all) back; the logits stay where they are. */
static void draw_rows(rollout_engine *e, const sampler_params *sp, const float *logits, int ldl, int n,
                      sampler_result *out) {
    backend *be = e->model->be;
    const int R = e->sample_rows;
    GRPO_ASSERT(n >= 1 && n <= R);
    char *dev = e->sample_device, *host = e->sample_host;
    double *u_dev = (double *)dev;
    int32_t *tokens_dev = (int32_t *)(u_dev + R);
    float *logprob_dev = (float *)(tokens_dev + R), *policy_dev = logprob_dev + R;
    const int greedy = sp->temperature == 0.0f;
    if (!greedy) be->to_device(be, u_dev, host, (size_t)n * sizeof(double));
    be->sample(be, tokens_dev, logprob_dev, policy_dev, logits, ldl, n, e->V, greedy ? NULL : u_dev, sp->temperature,
               sp->top_k, sp->top_p, sp->min_p);
    /* tokens, logprob and policy_logprob lie together after the uniforms: one copy */
    be->to_host(be, host + (size_t)R * sizeof(double), tokens_dev, (size_t)R * (sizeof(int32_t) + 2 * sizeof(float)));
    const int32_t *tokens = (const int32_t *)(host + (size_t)R * sizeof(double));
    const float *logprob = (const float *)(tokens + R), *policy = logprob + R;
    for (int i = 0; i < n; i++) out[i] = (sampler_result){tokens[i], logprob[i], policy[i]};
}

static int blocks_for(const rollout_engine *e, int tokens) {
    return (tokens + e->cfg.block_size - 1) / e->cfg.block_size;
}

/* ---- finishing ---- */

static void release_slot_blocks(rollout_engine *e, rollout_slot *s) {
    for (int i = 0; i < s->n_blocks; i++) kv_pool_release(e->pool, s->blocks[i]);
    s->n_blocks = 0;
}

/* Copies the slot's completion into its output sample and frees the slot. text_end: the
 * bytes of text kept ((size_t)-1: all). */
static grpo_status finish(gen_state *g, rollout_slot *s, rollout_finish reason, int32_t stop_token, int stop_string,
                          size_t text_end) {
    rollout_engine *e = g->e;
    rollout_sample *o = &g->out->samples[(size_t)s->prompt * g->out->G + s->sample];
    int n = s->n_gen;
    o->prompt_index = s->prompt;
    o->sample_index = s->sample;
    o->seed = s->seed;
    o->n_tokens = n;
    o->finish_reason = reason;
    o->stop_token = stop_token;
    o->stop_string = stop_string;
    o->tokens = malloc((size_t)n * sizeof(int32_t));
    o->logprobs = malloc((size_t)n * sizeof(float));
    o->policy_logprobs = malloc((size_t)n * sizeof(float));
    if (!o->tokens || !o->logprobs || !o->policy_logprobs)
        return grpo_fail(GRPO_ERR_NOMEM, "rollout: out of memory for a completion of %d tokens", n);
    memcpy(o->tokens, s->tokens, (size_t)n * sizeof(int32_t));
    memcpy(o->logprobs, s->logprobs, (size_t)n * sizeof(float));
    memcpy(o->policy_logprobs, s->policy_logprobs, (size_t)n * sizeof(float));
    if (e->tok) {
        size_t len = text_end < s->text_bytes ? text_end : s->text_bytes;
        o->text = malloc(len + 1);
        if (!o->text) return grpo_fail(GRPO_ERR_NOMEM, "rollout: out of memory for a completion's text");
        size_t at = 0;
        int n_text = stop_token >= 0 ? n - 1 : n;   /* the stop token has no text */
        for (int i = 0; i < n_text && at < len; i++) {
            size_t piece_len = 0;
            const char *piece = tokenizer_token_bytes(e->tok, s->tokens[i], &piece_len);
            if (!piece) continue;
            size_t take = piece_len < len - at ? piece_len : len - at;
            memcpy(o->text + at, piece, take);
            at += take;
        }
        o->text[at] = 0;
        o->text_len = at;
    }
    release_slot_blocks(e, s);
    s->state = SLOT_FREE;
    g->remaining--;
    return GRPO_OK;
}

/* Appends a drawn token to a running slot and applies the stop rules: a stop token id,
 * then stop strings over the text, then the length limits. */
static grpo_status push_token(gen_state *g, rollout_slot *s, const sampler_result *r) {
    rollout_engine *e = g->e;
    s->next[0] = r->token;   /* the new pending token */
    s->tokens[s->n_gen] = r->token;
    s->logprobs[s->n_gen] = r->logprob;
    s->policy_logprobs[s->n_gen] = r->policy_logprob;
    s->n_gen++;
    g->out->stats.generated_tokens++;
    for (int i = 0; i < e->n_stop_ids; i++)
        if (r->token == e->stop_ids[i]) return finish(g, s, ROLLOUT_FINISH_STOP, r->token, -1, (size_t)-1);
    if (e->tok) {
        size_t len = 0;
        const char *piece = tokenizer_token_bytes(e->tok, r->token, &len);
        if (!piece) len = 0;
        s->text_bytes += len;
        size_t start, end;
        int which = sampler_stop_feed(e->stop, &s->stop, piece ? piece : "", len, &start, &end);
        if (which >= 0)
            return finish(g, s, ROLLOUT_FINISH_STOP, -1, which,
                          e->cfg.sampling.include_stop_str_in_output ? end : start);
    }
    if (s->n_gen >= e->cfg.sampling.max_tokens || s->prompt_len + s->n_gen >= e->max_model_len)
        return finish(g, s, ROLLOUT_FINISH_LENGTH, -1, -1, (size_t)-1);
    return GRPO_OK;
}

/* ---- starting samples ---- */

static int free_slot(const rollout_engine *e) {
    for (int i = 0; i < e->cfg.max_num_seqs; i++)
        if (e->slots[i].state == SLOT_FREE) return i;
    return -1;
}

static void close_group(rollout_engine *e, rollout_group *gr) {
    for (int i = 0; i < gr->n_blocks; i++) kv_pool_release(e->pool, gr->blocks[i]);
    gr->n_blocks = 0;
    gr->state = GROUP_CLOSED;
}

/* The open group's next sample takes slot `slot`, sharing the prompt blocks. */
static grpo_status start_sample(gen_state *g, int group, int slot) {
    rollout_engine *e = g->e;
    rollout_group *gr = &g->groups[group];
    rollout_slot *s = &e->slots[slot];
    int k = gr->started++;
    s->state = SLOT_RUNNING;
    s->group = group;
    s->prompt = gr->prompt;
    s->sample = gr->first_sample + k;
    s->seed = rollout_sample_seed(g->prompts[gr->prompt].seed, s->sample);
    s->prompt_len = g->out->prompt_lens[gr->prompt];
    s->n_cached = s->prompt_len;
    s->n_gen = 0;
    s->has_draft = 0;
    s->order = e->next_order++;
    s->n_blocks = gr->n_blocks;
    for (int i = 0; i < gr->n_blocks; i++) {
        s->blocks[i] = gr->blocks[i];
        kv_pool_retain(e->pool, gr->blocks[i]);
    }
    sampler_stop_state_init(&s->stop, s->window, e->window_bytes);
    s->text_bytes = 0;
    if (gr->started == gr->n_samples) close_group(e, gr);
    if (e->mtp) {
        /* the prompt's last token is pending: the sample's first step draws its first token
         * (with the hidden state MTP needs) and verifies the group's guess of it */
        s->n_cached = s->prompt_len - 1;
        s->next[0] = g->out->prompt_tokens[gr->prompt][s->prompt_len - 1];
        s->next[1] = gr->draft;
        s->has_draft = gr->draft >= 0;
        return GRPO_OK;
    }
    return push_token(g, s, &gr->first[k]);
}

/* Free slots go to pending samples of open groups, oldest group first. Returns how many started. */
static grpo_status start_pending(gen_state *g, int *started) {
    *started = 0;
    for (int i = 0; i < g->n_groups; i++) {
        rollout_group *gr = &g->groups[i];
        while (gr->state == GROUP_OPEN && gr->started < gr->n_samples) {
            int slot = free_slot(g->e);
            if (slot < 0) return GRPO_OK;
            GRPO_TRY(start_sample(g, i, slot));
            (*started)++;
        }
    }
    return GRPO_OK;
}

/* ---- cache blocks ---- */

static void preempt(gen_state *g, rollout_slot *s) {
    release_slot_blocks(g->e, s);
    s->state = SLOT_PREEMPTED;
    s->n_cached = 0;
    s->has_draft = 0;   /* the recompute draws a new guess */
    g->out->stats.preemptions++;
}

/* A free block for slot `who`, preempting the most recently started running sequences
 * while none is free; -1 when `who` itself had to go. */
static int alloc_or_preempt(gen_state *g, int who) {
    rollout_engine *e = g->e;
    for (;;) {
        int b = kv_pool_alloc(e->pool);
        if (b >= 0) return b;
        int victim = -1;
        for (int i = 0; i < e->cfg.max_num_seqs; i++)
            if (e->slots[i].state == SLOT_RUNNING && (victim < 0 || e->slots[i].order > e->slots[victim].order))
                victim = i;
        GRPO_ASSERT(victim >= 0);   /* `who` itself is running */
        preempt(g, &e->slots[victim]);
        if (victim == who) return -1;
    }
}

/* Makes the block of position pos (n_cached or the one after) the slot's own: a new block
 * at a block boundary, a private copy of a shared partly filled block (copy on write). */
static void ensure_block(gen_state *g, int who, int pos) {
    rollout_engine *e = g->e;
    rollout_slot *s = &e->slots[who];
    int bs = e->cfg.block_size, bi = pos / bs;
    if (bi < s->n_blocks && kv_pool_refcount(e->pool, s->blocks[bi]) == 1) return;
    int b = alloc_or_preempt(g, who);
    if (b < 0) return;
    if (bi < s->n_blocks) {
        kv_pool_copy_block(e->pool, b, s->blocks[bi]);
        kv_pool_release(e->pool, s->blocks[bi]);
        s->blocks[bi] = b;
        g->out->stats.cow_copies++;
    } else {
        GRPO_ASSERT(bi == s->n_blocks && bi < e->max_blocks_per_seq);
        s->blocks[s->n_blocks++] = b;
    }
}

/* Blocks the running sequences need for their next token. */
static int blocks_reserved(const rollout_engine *e) {
    int n = 0;
    for (int i = 0; i < e->cfg.max_num_seqs; i++) {
        const rollout_slot *s = &e->slots[i];
        if (s->state != SLOT_RUNNING) continue;
        int bi = s->n_cached / e->cfg.block_size;
        n += bi >= s->n_blocks || kv_pool_refcount(e->pool, s->blocks[bi]) > 1;
    }
    return n;
}

/* Takes n blocks from the pool into dst (the caller checked they are free). */
static void take_blocks(rollout_engine *e, int32_t *dst, int n) {
    for (int i = 0; i < n; i++) {
        dst[i] = kv_pool_alloc(e->pool);
        GRPO_ASSERT(dst[i] >= 0);
    }
}

/* ---- admission and prefill ---- */

static int admit(gen_state *g) {
    rollout_engine *e = g->e;
    int n_jobs = 0, avail = kv_pool_num_free(e->pool) - blocks_reserved(e);
    /* preempted sequences, earliest started first; nothing new while one waits */
    for (;;) {
        int who = -1;
        for (int i = 0; i < e->cfg.max_num_seqs; i++) {
            rollout_slot *s = &e->slots[i];
            if (s->state == SLOT_PREEMPTED && s->n_blocks == 0 && (who < 0 || s->order < e->slots[who].order))
                who = i;
        }
        if (who < 0) break;
        rollout_slot *s = &e->slots[who];
        int len = s->prompt_len + s->n_gen - 1, need = blocks_for(e, len);   /* all before the pending */
        if (need + 1 > avail) return n_jobs;
        if (len == 0) {   /* only the pending token (speculative_mtp, a 1-token prompt): nothing to redo */
            s->state = SLOT_RUNNING;
            continue;
        }
        take_blocks(e, s->blocks, need);
        s->n_blocks = need;
        avail -= need + 1;
        e->prefills[n_jobs++] = (rollout_prefill){-1, who, g->out->prompt_tokens[s->prompt], s->tokens,
                                                  s->prompt_len, len, 0, s->blocks};
    }
    for (int i = 0; i < e->cfg.max_num_seqs; i++)
        if (e->slots[i].state == SLOT_PREEMPTED && e->slots[i].n_blocks == 0) return n_jobs;
    /* new groups, each needing a free slot for its first sample */
    int slots = 0;
    for (int i = 0; i < e->cfg.max_num_seqs; i++) slots += e->slots[i].state == SLOT_FREE;
    while (g->next_group < g->n_groups && slots > 0) {
        rollout_group *gr = &g->groups[g->next_group];
        int P = g->out->prompt_lens[gr->prompt], len = e->mtp ? P - 1 : P, need = blocks_for(e, len);
        if (need + 1 > avail) break;
        take_blocks(e, gr->blocks, need);
        gr->n_blocks = need;
        gr->draft = -1;
        avail -= need + 1;
        slots--;
        g->next_group++;
        if (len == 0) {   /* speculative_mtp with a 1-token prompt: nothing to prefill */
            gr->state = GROUP_OPEN;
            continue;
        }
        gr->state = GROUP_PREFILLING;
        e->prefills[n_jobs++] = (rollout_prefill){(int)(gr - g->groups), -1, g->out->prompt_tokens[gr->prompt], NULL,
                                                  P, len, 0, gr->blocks};
    }
    return n_jobs;
}

static int32_t job_token(const rollout_prefill *j, int i) {
    return i < j->prompt_len ? j->prompt[i] : j->generated[i - j->prompt_len];
}

/* A prefilled group: its samples' first tokens (position 0, each its own seed) from the
 * prompt's logits row (backend memory), sample_rows samples a call. */
static void draw_first_tokens(gen_state *g, rollout_group *gr, const float *row) {
    rollout_engine *e = g->e;
    const sampler_params *sp = &e->cfg.sampling.sampler;
    uint64_t prompt_seed = g->prompts[gr->prompt].seed;
    double *u = sample_uniforms(e);
    for (int done = 0; done < gr->n_samples;) {
        int n = gr->n_samples - done < e->sample_rows ? gr->n_samples - done : e->sample_rows;
        for (int k = 0; k < n; k++)
            u[k] = sampler_uniform(rollout_sample_seed(prompt_seed, gr->first_sample + done + k), 0);
        draw_rows(e, sp, row, 0, n, gr->first + done);
        done += n;
    }
    gr->state = GROUP_OPEN;
}

/* The MTP module's guesses: the argmax of each of n rows of draft logits (the backend's
 * sample op at temperature 0: lowest id on ties), into e->results[n]. */
static void draw_guesses(rollout_engine *e, const float *logits, int n) {
    const sampler_params greedy = {0.0f, 0, 1.0f, 0.0f};
    draw_rows(e, &greedy, logits, e->V, n, e->results);
}

/* After a prefill call under speculative_mtp: the MTP module over every prefilled position
 * (each one's next token is known); a finished job keeps the guess of the token after its
 * next one (a group's: its samples' first token; a slot's: the one after its pending). */
static grpo_status prefill_drafts(gen_state *g, int n) {
    rollout_engine *e = g->e;
    int row = 0;
    for (int r = 0; r < n; r++) {
        const rollout_prefill *job = &e->prefills[e->call_map[r]];
        int32_t *next = e->draft_ids + row;
        for (int i = 0; i < e->calls[r].n_new; i++) next[i] = job_token(job, job->done + i + 1);
        e->drafts[r] = (lm_draft_seq){row, e->calls[r].n_new, job->done, 1, next, job->blocks};
        row += e->calls[r].n_new;
    }
    float *logits;
    GRPO_TRY(e->model->ops->decode->draft(e->decoder, kv_pool_cache(e->pool), e->drafts, n, &logits));
    draw_guesses(e, logits, n);
    for (int r = 0; r < n; r++) {
        const rollout_prefill *job = &e->prefills[e->call_map[r]];
        if (job->done + e->calls[r].n_new < job->len) continue;
        int32_t guess = e->results[r].token;
        if (job->group >= 0) {
            g->groups[job->group].draft = guess;
        } else {
            e->slots[job->slot].next[1] = guess;
            e->slots[job->slot].has_draft = 1;
        }
    }
    return GRPO_OK;
}

static grpo_status run_prefills(gen_state *g, int n_jobs) {
    rollout_engine *e = g->e;
    const lm_cache *cache = kv_pool_cache(e->pool);
    int budget = e->cfg.max_prefill_tokens;
    for (;;) {
        int n = 0, tokens = 0;
        for (int j = 0; j < n_jobs && tokens < budget; j++) {
            rollout_prefill *job = &e->prefills[j];
            if (job->done == job->len) continue;
            int chunk = job->len - job->done < budget - tokens ? job->len - job->done : budget - tokens;
            int32_t *ids = e->call_ids + tokens;
            for (int i = 0; i < chunk; i++) ids[i] = job_token(job, job->done + i);
            e->calls[n] = (lm_decode_seq){ids, chunk, job->done, 1, job->blocks};
            e->call_map[n++] = j;
            tokens += chunk;
        }
        if (n == 0) return GRPO_OK;
        float *logits;
        GRPO_TRY(lm_decode(e->decoder, cache, e->calls, n, &logits));
        g->out->stats.prefill_calls++;
        g->out->stats.prefill_tokens += tokens;
        if (e->mtp) GRPO_TRY(prefill_drafts(g, n));   /* the first tokens wait for the first step */
        for (int r = 0; r < n; r++) {
            rollout_prefill *job = &e->prefills[e->call_map[r]];
            job->done += e->calls[r].n_new;
            if (job->done < job->len) continue;
            if (job->group >= 0) {
                if (e->mtp) g->groups[job->group].state = GROUP_OPEN;   /* samples draw in their first step */
                else draw_first_tokens(g, &g->groups[job->group], logits + (size_t)r * e->V);
            } else {
                rollout_slot *s = &e->slots[job->slot];   /* its pending token stays pending */
                s->n_cached = job->len;
                s->state = SLOT_RUNNING;
            }
        }
    }
}

/* ---- decoding ---- */

/* Tokens the slot runs this step: its pending one, and its MTP draft when it has one and
 * the draft's position fits. */
static int step_tokens(const rollout_engine *e, const rollout_slot *s) {
    return 1 + (e->mtp && s->has_draft && s->n_cached + 2 <= e->max_model_len);
}

/* After a speculative step: MTP over each continuing slot's newly confirmed positions
 * (rows of this step's call), whose last logits guess the token after the new pending one. */
static grpo_status step_drafts(gen_state *g, int k) {
    rollout_engine *e = g->e;
    float *logits;
    GRPO_TRY(e->model->ops->decode->draft(e->decoder, kv_pool_cache(e->pool), e->drafts, k, &logits));
    draw_guesses(e, logits, k);   /* the step's results are used up by now */
    for (int r = 0; r < k; r++) {
        rollout_slot *s = &e->slots[e->draft_map[r]];
        s->next[1] = e->results[r].token;
        s->has_draft = 1;
    }
    return GRPO_OK;
}

static grpo_status decode_step(gen_state *g, int *ran) {
    rollout_engine *e = g->e;
    const int S = e->cfg.max_num_seqs;
    *ran = 0;
    for (int i = 0; i < S; i++) {
        rollout_slot *s = &e->slots[i];
        if (s->state != SLOT_RUNNING) continue;
        int n_new = step_tokens(e, s);
        ensure_block(g, i, s->n_cached);
        if (n_new == 2 && s->state == SLOT_RUNNING) ensure_block(g, i, s->n_cached + 1);
    }
    int n = 0, rows = 0;
    for (int i = 0; i < S; i++) {
        rollout_slot *s = &e->slots[i];
        if (s->state != SLOT_RUNNING) continue;
        int n_new = step_tokens(e, s);
        e->calls[n] = (lm_decode_seq){s->next, n_new, s->n_cached, n_new, s->blocks};
        e->call_row[n] = rows;
        e->call_map[n++] = i;
        rows += n_new;
    }
    if (n == 0) return GRPO_OK;
    if (n > g->out->stats.peak_running) g->out->stats.peak_running = n;
    float *logits;
    GRPO_TRY(lm_decode(e->decoder, kv_pool_cache(e->pool), e->calls, n, &logits));
    /* every row drawn at its own position; a draft's row is used only when the draft holds */
    const sampler_params *sp = &e->cfg.sampling.sampler;
    double *u = sample_uniforms(e);
    for (int r = 0; r < n; r++) {
        const rollout_slot *s = &e->slots[e->call_map[r]];
        for (int j = 0; j < e->calls[r].n_new; j++)
            u[e->call_row[r] + j] = sp->temperature == 0.0f ? 0.0 : sampler_uniform(s->seed, (uint64_t)(s->n_gen + j));
    }
    draw_rows(e, sp, logits, e->V, rows, e->results);
    int k = 0;
    for (int r = 0; r < n; r++) {
        rollout_slot *s = &e->slots[e->call_map[r]];
        const int first = s->n_cached, row = e->call_row[r], with_draft = e->calls[r].n_new == 2;
        const int32_t guess = s->next[1];
        const sampler_result *x = &e->results[row];
        s->n_cached++;
        s->has_draft = 0;
        GRPO_TRY(push_token(g, s, x));
        int confirmed = 1;
        if (with_draft) {
            g->out->stats.draft_tokens++;
            if (x->token == guess) {
                g->out->stats.accepted_tokens++;
                if (s->state == SLOT_RUNNING) {   /* the draft's cache row holds: take the token after it */
                    s->n_cached++;
                    GRPO_TRY(push_token(g, s, &e->results[row + 1]));
                    confirmed = 2;
                }
            }
        }
        if (e->mtp && s->state == SLOT_RUNNING) {
            int32_t *next = e->draft_ids + row;
            next[0] = x->token;
            if (confirmed == 2) next[1] = e->results[row + 1].token;
            e->drafts[k] = (lm_draft_seq){row, confirmed, first, 1, next, s->blocks};
            e->draft_map[k++] = e->call_map[r];
        }
    }
    if (k > 0) GRPO_TRY(step_drafts(g, k));
    g->out->stats.decode_steps++;
    *ran = 1;
    return GRPO_OK;
}

/* ---- the call ---- */

/* The prompt's ids: given, or BOS + the encoded text. Checked against the vocabulary and
 * max_model_len (one token of room at least). */
static grpo_status prepare_prompt(rollout_engine *e, const rollout_prompt *p, int index, int32_t **ids, int *len) {
    *ids = NULL;
    *len = 0;
    int n = 0;
    int32_t *buf = NULL;
    if (p->ids) {
        if (p->n_ids < 0) return grpo_fail(GRPO_ERR_INVALID, "rollout: prompt %d: n_ids %d < 0", index, p->n_ids);
        buf = malloc(((size_t)p->n_ids + 1) * sizeof(int32_t));
        if (!buf) return grpo_fail(GRPO_ERR_NOMEM, "rollout: out of memory for prompt %d", index);
        if (p->n_ids) memcpy(buf, p->ids, (size_t)p->n_ids * sizeof(int32_t));
        n = p->n_ids;
    } else {
        if (!p->text) return grpo_fail(GRPO_ERR_INVALID, "rollout: prompt %d has neither ids nor text", index);
        if (!e->tok) return grpo_fail(GRPO_ERR_INVALID, "rollout: prompt %d is text but the engine has no tokenizer",
                                      index);
        int32_t *enc = NULL;
        GRPO_TRY(tokenizer_encode(e->tok, p->text, strlen(p->text), &enc, &n));
        int32_t bos = e->cfg.add_bos ? tokenizer_bos_id(e->tok) : -1;
        buf = malloc(((size_t)n + 1) * sizeof(int32_t));
        if (!buf) {
            free(enc);
            return grpo_fail(GRPO_ERR_NOMEM, "rollout: out of memory for prompt %d", index);
        }
        int at = 0;
        if (bos >= 0) buf[at++] = bos;
        if (n) memcpy(buf + at, enc, (size_t)n * sizeof(int32_t));
        free(enc);
        n += at;
    }
    grpo_status s = GRPO_OK;
    if (n == 0) s = grpo_fail(GRPO_ERR_INVALID, "rollout: prompt %d is empty", index);
    else if (n >= e->max_model_len)
        s = grpo_fail(GRPO_ERR_INVALID, "rollout: prompt %d has %d tokens; max_model_len %d leaves no room for a "
                      "completion", index, n, e->max_model_len);
    for (int i = 0; !s && i < n; i++)
        if (buf[i] < 0 || buf[i] >= e->V)
            s = grpo_fail(GRPO_ERR_INVALID, "rollout: prompt %d: token %d is %d, outside the vocabulary (%d)", index,
                          i, buf[i], e->V);
    if (s) {
        free(buf);
        return s;
    }
    *ids = buf;
    *len = n;
    return GRPO_OK;
}

/* Gives back every block still held (slots and groups), after an error or at the end. */
static void release_all(gen_state *g) {
    rollout_engine *e = g->e;
    for (int i = 0; i < e->cfg.max_num_seqs; i++) {
        release_slot_blocks(e, &e->slots[i]);
        e->slots[i].state = SLOT_FREE;
    }
    for (int i = 0; g->groups && i < g->n_groups; i++)
        if (g->groups[i].n_blocks) close_group(e, &g->groups[i]);
}

static grpo_status setup(gen_state *g, int n_prompts, int G) {
    rollout_engine *e = g->e;
    rollout_output *out = g->out;
    out->n_prompts = n_prompts;
    out->G = G;
    out->samples = calloc((size_t)n_prompts * G, sizeof *out->samples);
    out->prompt_tokens = calloc((size_t)n_prompts, sizeof *out->prompt_tokens);
    out->prompt_lens = calloc((size_t)n_prompts, sizeof *out->prompt_lens);
    int share = e->cfg.share_prompt;
    g->n_groups = share ? n_prompts : n_prompts * G;
    g->groups = calloc((size_t)g->n_groups, sizeof *g->groups);
    g->first = calloc((size_t)n_prompts * G, sizeof *g->first);
    if (!out->samples || !out->prompt_tokens || !out->prompt_lens || !g->groups || !g->first)
        return grpo_fail(GRPO_ERR_NOMEM, "rollout: out of memory for %d prompts x %d samples", n_prompts, G);
    size_t total_blocks = 0;
    for (int p = 0; p < n_prompts; p++) {
        GRPO_TRY(prepare_prompt(e, &g->prompts[p], p, &out->prompt_tokens[p], &out->prompt_lens[p]));
        out->stats.prompt_tokens += (int64_t)out->prompt_lens[p] * (share ? 1 : G);
        total_blocks += (size_t)blocks_for(e, out->prompt_lens[p]) * (share ? 1 : G);
    }
    g->group_blocks = malloc((total_blocks > 0 ? total_blocks : 1) * sizeof(int32_t));
    if (!g->group_blocks) return grpo_fail(GRPO_ERR_NOMEM, "rollout: out of memory for prompt block lists");
    size_t at = 0;
    for (int i = 0; i < g->n_groups; i++) {
        rollout_group *gr = &g->groups[i];
        gr->prompt = share ? i : i / G;
        gr->first_sample = share ? 0 : i % G;
        gr->n_samples = share ? G : 1;
        gr->first = g->first + (size_t)gr->prompt * G + gr->first_sample;
        gr->blocks = g->group_blocks + at;
        at += (size_t)blocks_for(e, out->prompt_lens[gr->prompt]);
    }
    g->remaining = n_prompts * G;
    return GRPO_OK;
}

static grpo_status run(gen_state *g) {
    rollout_engine *e = g->e;
    rollout_stats *st = &g->out->stats;
    while (g->remaining > 0) {
        int started, started_after, ran;
        GRPO_TRY(start_pending(g, &started));
        double t0 = progress_now();
        int n_jobs = admit(g);
        if (n_jobs > 0) GRPO_TRY(run_prefills(g, n_jobs));
        GRPO_TRY(start_pending(g, &started_after));   /* the groups just prefilled */
        started += started_after;
        double t1 = progress_now();
        st->prefill_seconds += t1 - t0;
        GRPO_TRY(decode_step(g, &ran));
        st->decode_seconds += progress_now() - t1;
        if (!ran && n_jobs == 0 && started == 0 && g->remaining > 0)
            return grpo_fail(GRPO_ERR_INVALID, "rollout: the cache (%d blocks of %d tokens) cannot hold the waiting "
                             "work (%d samples left); raise cache_mib", kv_pool_num_blocks(e->pool),
                             e->cfg.block_size, g->remaining);
    }
    return GRPO_OK;
}

grpo_status rollout_generate(rollout_engine *e, const rollout_prompt *prompts, int n_prompts, int G,
                             rollout_output *out) {
    memset(out, 0, sizeof *out);
    if (n_prompts < 0 || G < 1)
        return grpo_fail(GRPO_ERR_INVALID, "rollout_generate: %d prompts x %d samples: expected >= 0 prompts and "
                         "G >= 1", n_prompts, G);
    gen_state g = {.e = e, .prompts = prompts, .out = out};
    double t0 = progress_now();
    kv_pool_reset_peak(e->pool);
    e->next_order = 0;
    grpo_status s = setup(&g, n_prompts, G);
    if (!s) s = run(&g);
    release_all(&g);
    free(g.groups);
    free(g.group_blocks);
    free(g.first);
    if (s) {
        rollout_output_deinit(out);
        return s;
    }
    rollout_stats *st = &out->stats;
    st->total_seconds = progress_now() - t0;
    st->peak_blocks = kv_pool_peak_used(e->pool);
    st->num_blocks = kv_pool_num_blocks(e->pool);
    st->block_size = e->cfg.block_size;
    st->cache_bytes_per_token = kv_pool_bytes_per_token(e->pool);
    st->pool_bytes = kv_pool_bytes(e->pool);
    return GRPO_OK;
}
