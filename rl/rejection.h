/* Rejection sampling (R1 report sec. 2.3.3; also the data side of distillation, sec. 2.4):
 * sample N completions per prompt from a model, keep only those the verifiers judge
 * correct (and well formatted when asked), drop repeats of a completion within a prompt,
 * keep at most a cap per prompt, optionally mix in non-reasoning SFT lines, and write the
 * result as SFT JSONL ({"prompt": ..., "response": ...}, DESIGN.md "Datasets") by temp
 * file + fsync + rename, so a crash never leaves a half-written file under the name.
 *
 * The written "prompt" is the problem's rendered prompt text, exactly what the model was
 * given (problem_set.prompts[k], BOS not included), so an SFT stage reading the file
 * should use prompt_template "{prompt}". Mixed lines are rendered through
 * rejection_options.prompt_template (when given) so that every line of the file follows
 * that convention. */
#ifndef GRPO_REJECTION_H
#define GRPO_REJECTION_H

#include <stdint.h>

#include "model/lm.h"
#include "model/tokenizer.h"
#include "rl/problems.h"
#include "rollouts/sampler.h"
#include "verifiers/reward.h"

typedef struct {
    int samples_per_prompt;       /* N completions drawn per prompt (>= 1) */
    sampler_params sampling;      /* temperature, top_p, top_k, min_p (temperature 0: greedy,
                                     then the N samples are identical and dedup keeps one) */
    int max_completion_length;    /* tokens per completion at most (>= 1) */
    int max_kept_per_prompt;      /* keep at most this many per prompt (0: no cap); the first
                                     ones in sample order are kept */
    int require_format;           /* 1: keep only responses that also match format_pattern */
    int keep_truncated;           /* 0 (default): a completion cut at max_completion_length is
                                     dropped even when its answer verifies */
    uint64_t seed;                /* prompt k's sampling seed derives from (seed, k) */
    const char *prompt_template;  /* applied to mixed lines' "prompt" ({prompt}); NULL or "":
                                     mixed lines are copied as they are */
    const char *mix_path;         /* non-reasoning SFT JSONL to mix in (NULL or "": none) */
    double mix_ratio;             /* mixed lines written per kept line (R1 used about 200k
                                     non-reasoning to 600k reasoning: 1/3); lines are drawn
                                     without replacement in a seeded order, at most all of them */
    int prompts_per_batch;        /* prompts per rollout_generate call (0: 16) */
    int max_num_seqs;             /* sequences decoding at once (0: the engine's default) */
    double cache_mib;             /* engine cache pool (0: the engine's default) */
    int quiet;                    /* 1: no progress line */
    const char *format_pattern;   /* what "well formatted" means: a PCRE2 pattern the whole
                                     response must match (NULL: the R1 template,
                                     VERIFY_FORMAT_R1_PATTERN of verifiers/format.h) */
} rejection_options;

/* Defaults: N 4, sampling defaults (temperature 1, top_p 1), max_completion_length 256,
 * no cap, require_format 0, keep_truncated 0, seed 0, no template, no mix, mix_ratio 0. */
rejection_options rejection_options_default(void);
/* Checks ranges; messages name the option (samples_per_prompt, max_completion_length,
 * max_kept_per_prompt, mix_ratio, ...). */
grpo_status rejection_options_validate(const rejection_options *o);

/* Every sample lands in exactly one of wrong, rejected_truncated, rejected_format,
 * rejected_encoding, duplicates, capped and kept, in that order of checks:
 *   samples = wrong + rejected_truncated + rejected_format + rejected_encoding
 *             + duplicates + capped + kept. */
typedef struct {
    int prompts;                  /* problems sampled */
    int64_t samples;              /* completions drawn: prompts * N */
    int64_t correct;              /* judged correct by the verdict rewards */
    int64_t well_formatted;       /* matching format_pattern (counted whether or not required) */
    int64_t truncated;            /* cut at max_completion_length (correct or not) */
    int64_t scoring_errors;       /* samples the reward set could not score (counted as wrong) */
    int64_t wrong;                /* not correct (scoring errors included) */
    int64_t rejected_truncated;   /* correct but cut at max_completion_length (keep_truncated 0) */
    int64_t rejected_format;      /* correct but not well formatted (require_format 1) */
    int64_t rejected_encoding;    /* correct but not valid UTF-8 (JSON cannot hold it) */
    int64_t duplicates;           /* otherwise kept, but the same text as an earlier kept
                                     completion of the same prompt */
    int64_t capped;               /* otherwise kept, beyond max_kept_per_prompt */
    int64_t kept;                 /* lines written from samples */
    int64_t mixed;                /* lines written from mix_path */
    int64_t lines;                /* kept + mixed: the lines of the output file */
    double kept_share_mean;       /* mean over prompts of kept / N */
    double zero_kept_share;       /* share of prompts with nothing kept */
    double mean_kept_tokens;      /* mean completion tokens of kept responses (NAN if none) */
    int max_kept_tokens;          /* longest kept response in tokens (0 if none) */
    int64_t generated_tokens;     /* all completions' tokens */
    double seconds;
} rejection_stats;

/* Samples every problem of `problems` (rendered and tokenized with tok, BOS included as
 * problem_set_load does it) o->samples_per_prompt times with `model` through the rollout
 * engine, scores each completion with `rewards` (which must hold a verdict reward:
 * accuracy, countdown or code; a sample is correct when its verdict is), filters, and
 * writes out_path (SFT JSONL, temp file + fsync + rename; the file's directory must
 * exist). Kept lines come in problem order, each problem's in sample order; mixed lines
 * are spread evenly among them. Each kept line is
 *   {"prompt": <rendered prompt>, "response": <completion text>, "id": <the problem's
 *    "id" when it has one>, "source": "rejection"}
 * and each mixed line is its input line with "prompt" rendered through prompt_template and
 * "source": "mix" added. A missing or bad mix file (not JSONL, a line without string
 * "prompt"/"response") fails naming file:line before anything is written; on any failure
 * out_path is left as it was. stats may be NULL. model and tok are borrowed. */
grpo_status rejection_run(lm *model, const tokenizer *tok, const problem_set *problems, const reward_set *rewards,
                          const rejection_options *o, const char *out_path, rejection_stats *stats);

/* The stats as metric names/values for the run store ("rejection/kept", ...): fills up to
 * max entries of names (static strings) and values and returns how many. */
int rejection_stats_metrics(const rejection_stats *st, int max, const char **names, double *values);

#endif
