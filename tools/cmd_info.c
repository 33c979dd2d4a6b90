/* `grpo info`: version, backends compiled in, devices seen; with --model-config, the
 * shapes and memory needs of a DeepSeek-V3/V2 config.json, computed without allocating. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/backend.h"
#include "core/fs.h"
#include "model/deepseek_v3.h"
#include "model/presets.h"
#include "tools/args.h"
#include "tools/commands.h"

int cmd_wants_help(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
    return 0;
}

/* --model-config FILE|PRESET: parameters (total, activated per token), bytes in fp32 / bf16 /
 * fp8, latent KV cache per token beside MHA. */
static int model_report(const char *what) {
    char *text = NULL, origin[512];
    size_t len = 0;
    grpo_status s = GRPO_OK;
    const char *preset = fs_exists(what) ? NULL : preset_find(what, &len);
    if (preset) {
        snprintf(origin, sizeof origin, "preset %s", what);
    } else {
        snprintf(origin, sizeof origin, "%s", what);
        s = fs_read_file(what, &text, &len);
    }
    deepseek_v3_config cfg;
    if (!s) s = hf_config_v3_parse(preset ? preset : text, len, origin, &cfg);
    if (!s) deepseek_v3_describe(&cfg, stdout);
    else fprintf(stderr, "grpo info: %s\n", grpo_error_message());
    free(text);
    return grpo_exit_code(s);
}

int cmd_info(int argc, char **argv) {
    if (cmd_wants_help(argc, argv)) {
        printf("usage: grpo info [--model-config FILE|PRESET]\n\nPrints the version, the backends compiled in and the "
               "devices seen.\nWith --model-config: the shapes and memory needs of a DeepSeek-V3/V2 config.json\n"
               "(parameters total and activated per token, bytes in fp32/bf16/fp8, latent KV cache per\n"
               "token vs MHA), computed without allocating the model.\n");
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        const char *value;
        int m = arg_match(argc, argv, &i, "--model-config", &value);
        if (m < 0) return 2;
        if (m > 0) return model_report(value);
        fprintf(stderr, "grpo info: unknown option '%s'\n", argv[i]);
        return 2;
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
