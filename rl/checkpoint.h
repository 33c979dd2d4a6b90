/* Checkpoints of a run: RUN_DIR/ckpt/step-N/ holds an HF-layout model (config.json,
 * model.safetensors, tokenizer files), the optimizer state (optimizer.safetensors) and
 * the trainer state (trainer_state.json: step, stage, RNG). The directory is written as
 * ckpt/.step-N.tmp, every file fsync'd, then renamed into place, so a crash leaves
 * either the whole checkpoint or none. */
#ifndef GRPO_CHECKPOINT_H
#define GRPO_CHECKPOINT_H

#include <stdint.h>

#include "core/rng.h"
#include "core/status.h"
#include "model/lm.h"
#include "rl/optim.h"
#include "rl/train_run.h"

#define CHECKPOINT_STATE_VERSION 1

typedef struct {
    int step;              /* optimizer steps done within the stage */
    int global_step;       /* across the run's stages: names the directory step-N (0: = step) */
    int stage_index;
    char stage[64];
    uint64_t seed;
    rng_stream rng;        /* the trainer's sampling stream, exactly where it stopped */
    int world_size;        /* ranks of the run that wrote it (1 in states from before) */
} trainer_state;

/* With several ranks (core/comm.h) the save functions are collectives: every rank calls
 * them, rank 0 writes, and all return once the checkpoint is in place; ts->world_size is
 * set to the world's size. Resuming on a different number of ranks is an error that
 * says so. */

/* Writes the checkpoint for ts->step. tokenizer_dir (may be NULL) is where the
 * tokenizer files of the model came from; they are copied beside the weights.
 * The final path goes to path_out[size] when non-NULL. */
grpo_status checkpoint_save(const char *run_dir, const trainer_state *ts, lm *model, const optim *opt,
                            const char *tokenizer_dir, char *path_out, size_t size);
/* The newest complete checkpoint directory of a run into path[size]; GRPO_ERR_NOTFOUND
 * when none. */
grpo_status checkpoint_latest(const char *run_dir, char *path, size_t size);
/* Reads DIR/trainer_state.json, checking its format and version. */
grpo_status checkpoint_read_state(const char *dir, trainer_state *ts);
/* Restores model weights and optimizer state from DIR into existing objects. */
grpo_status checkpoint_restore(const char *dir, lm *model, optim *opt);
/* Keeps the newest `keep` checkpoints of the run and removes older ones (keep <= 0: all). */
grpo_status checkpoint_prune(const char *run_dir, int keep);

/* For trainers: writes the checkpoint of `step` of the run's current stage (a no-op
 * without run->run_dir), with the trainer's RNG stream, then prunes to keep_last (0: all).
 * The path written goes to path_out[size] when non-NULL. */
grpo_status checkpoint_save_step(const train_run *run, int step, uint64_t seed, const rng_stream *rng,
                                 lm *model, const optim *opt, int keep_last, char *path_out, size_t size);
/* For trainers: when run->resume and the newest checkpoint belongs to this stage,
 * restores model and optimizer from it and returns its state in *ts and 1 in *resumed;
 * else *resumed = 0 and nothing changes. */
grpo_status checkpoint_resume_stage(const train_run *run, lm *model, optim *opt, trainer_state *ts, int *resumed);

#endif
