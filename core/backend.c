/* Backend helpers shared by both implementations, and stubs for builds without CUDA. */
#include "core/backend.h"

#include <stdio.h>

grpo_status backend_require(const backend *be, const void *op, const char *op_name) {
    if (op) return GRPO_OK;
    return grpo_fail(GRPO_ERR_UNSUPPORTED, "backend %s lacks op %s", be->name, op_name);
}

#ifndef GRPO_HAVE_CUDA
backend *backend_cuda_create(int device) {
    (void)device;
    grpo_fail(GRPO_ERR_UNSUPPORTED, "this build has no CUDA backend (configure with -DGRPO_CUDA=ON)");
    return NULL;
}
int backend_cuda_device_count(void) { return 0; }
void backend_cuda_describe(char *buf, size_t size) { snprintf(buf, size, "CUDA: not compiled in"); }
#endif

void backend_free(backend *be) {
    if (be && be->destroy) be->destroy(be);
}
