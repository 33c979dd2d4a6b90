/* Data parallelism for the trainers (rl/data_parallel.h). */
#include "rl/data_parallel.h"

#include <stdlib.h>
#include <string.h>

#include "core/comm.h"

int dp_rank(void) { return comm_rank(comm_world()); }
int dp_size(void) { return comm_size(comm_world()); }

int64_t dp_first_slot(int64_t index, int per_rank) {
    comm *w = comm_world();
    return (index * comm_size(w) + comm_rank(w)) * (int64_t)per_rank;
}

grpo_status dp_sum_int(int *v) {
    comm *w = comm_world();
    if (comm_size(w) == 1) return GRPO_OK;
    int64_t x = *v;
    GRPO_TRY(comm_allreduce_i64(w, &x, 1, COMM_SUM));
    *v = (int)x;
    return GRPO_OK;
}

grpo_status dp_sum_double(double *v, int n) { return comm_allreduce_f64(comm_world(), v, (size_t)n, COMM_SUM); }

grpo_status dp_grpo_loss_options(grpo_loss_options *lo, int batch_scaled_advantages) {
    comm *w = comm_world();
    int W = comm_size(w);
    if (W == 1) return GRPO_OK;
    if (batch_scaled_advantages)
        return grpo_fail(GRPO_ERR_UNSUPPORTED, "scale_rewards: batch divides by the standard deviation of the whole "
                         "batch, which is split over %d ranks here; use scale_rewards: group or none with several "
                         "ranks", W);
    lo->gradient_accumulation_steps *= W;
    lo->steps_per_generation *= W;
    double items = lo->num_items_in_batch;
    GRPO_TRY(comm_allreduce_f64(w, &items, 1, COMM_SUM));
    lo->num_items_in_batch = items;
    return GRPO_OK;
}

grpo_status dp_reduce_metrics(int n, const char *const *names, double *values) {
    comm *w = comm_world();
    int W = comm_size(w);
    if (W == 1 || n == 0) return GRPO_OK;
    /* one all-reduce each for sums and maxima: [0, n) sums (means are sums / W), [n, 2n) maxima */
    double *buf = malloc(2 * (size_t)n * sizeof(double));
    if (!buf) return grpo_fail(GRPO_ERR_NOMEM, "dp_reduce_metrics: out of memory");
    for (int i = 0; i < n; i++) {
        buf[i] = values[i];
        buf[n + i] = values[i];
    }
    grpo_status s = comm_allreduce_f64(w, buf, (size_t)n, COMM_SUM);
    if (!s) s = comm_allreduce_f64(w, buf + n, (size_t)n, COMM_MAX);
    for (int i = 0; i < n && !s; i++) {
        const char *name = names[i];
        if (strstr(name, "max") || !strncmp(name, "time/", 5)) values[i] = buf[n + i];
        else if (!strcmp(name, "loss")) values[i] = buf[i];
        else values[i] = buf[i] / W;
    }
    free(buf);
    return s;
}

grpo_status dp_update_router_bias(lm *model, float gamma) {
    comm *w = comm_world();
    if (comm_size(w) > 1 && gamma != 0 && model->ops->moe_layer_loads && model->ops->num_moe_layers) {
        int layers = model->ops->num_moe_layers(model);
        for (int i = 0; i < layers; i++) {
            int E = 0;
            int64_t *loads = model->ops->moe_layer_loads(model, i, &E);
            if (loads && E > 0) GRPO_TRY(comm_allreduce_i64(w, loads, (size_t)E, COMM_SUM));
        }
    }
    lm_update_router_bias(model, gamma);
    return GRPO_OK;
}
