/* `grpo info`: version, backends compiled in, devices seen. */
#include <stdio.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/backend.h"
#include "tools/commands.h"

int cmd_wants_help(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
    return 0;
}

int cmd_info(int argc, char **argv) {
    if (cmd_wants_help(argc, argv)) {
        printf("usage: grpo info\n\nPrints the version, the backends compiled in and the devices seen.\n");
        return 0;
    }
    printf("grpo %s\n", GRPO_VERSION);
#ifdef _OPENMP
    printf("cpu backend: yes (OpenMP, %d threads)\n", omp_get_max_threads());
#else
    printf("cpu backend: yes (no OpenMP)\n");
#endif
#ifdef GRPO_HAVE_CUDA
    printf("cuda backend: compiled in\n");
#else
    printf("cuda backend: not compiled in\n");
#endif
    char buf[2048];
    backend_cuda_describe(buf, sizeof buf);
    printf("%s\n", buf);
    return 0;
}
