/* `grpo run` on several ranks (mpirun -np N, srun): rank 0 owns the files of the run
 * directory that are shared (run.db, tokenizer/, generated data/, models/STAGE, ref-STAGE,
 * summary.json); the other ranks read them after a barrier and take the same decisions
 * (the stage to resume at comes from rank 0). Trainers run data-parallel on every rank;
 * sampling-only work (evaluations, rejection sampling) runs on rank 0 while the others
 * wait. RUN_DIR must be on a filesystem every rank sees. With one rank every function
 * here is trivial and nothing waits. */
#ifndef GRPO_RUN_RANKS_H
#define GRPO_RUN_RANKS_H

#include <stddef.h>

#include "core/status.h"
#include "model/lm.h"
#include "model/tokenizer.h"
#include "rl/run_impl.h"

/* Once, before `grpo run` prints anything: ranks other than 0 log only warnings and
 * errors, each line prefixed "rank R: ", and draw no progress line. */
void run_ranks_setup(void);
/* 1 on rank 0 (and in a single process). */
int run_ranks_is_root(void);
/* The CUDA device of this rank: its rank on the node modulo the devices it sees. */
int run_ranks_device(void);

/* A collective (every rank calls it at the same point): every rank learns whether any
 * failed, the failing rank's own message kept. It waits without the collectives' deadline
 * (GRPO_COMM_TIMEOUT_S), since it follows work rank 0 does alone; a rank that dies still
 * stops the job through the launcher. */
grpo_status run_ranks_join(grpo_status s);
/* `call` on rank 0 only, then run_ranks_join: the others see its result (and its files). */
#define RUN_ON_ROOT(call) run_ranks_join(run_ranks_is_root() ? (call) : GRPO_OK)

/* A collective: agrees on s, then *value becomes rank 0's on every rank. */
grpo_status run_ranks_share_int(grpo_status s, int *value);

/* A collective: rank 0 creates run_dir, failing when it exists and must_be_new (run.resume
 * false); every rank returns the same status. */
grpo_status run_ranks_make_run_dir(const char *run_dir, int must_be_new);

/* A collective: rank 0 saves `model` to dir (HF layout) unless dir/config.json exists;
 * afterwards every rank can load it. */
grpo_status run_ranks_save_once(lm *model, const char *dir);

/* A collective: rank 0 writes every generated dataset of the config to RUN_DIR/data
 * (run_dataset_path), so the other ranks, whose run_dataset_path only names the file,
 * find them. */
grpo_status run_ranks_materialise(const run_ctx *r);

/* The other ranks' side of the run's tokenizer: loads RUN_DIR/tokenizer (that rank 0
 * prepared before a join) and names it in dir. */
grpo_status run_ranks_load_tokenizer(const char *run_dir, char *dir, size_t size, tokenizer **tok);

#endif
