/* Model presets: config.json files from configs/models/, compiled into the binary. */
#ifndef GRPO_PRESETS_H
#define GRPO_PRESETS_H

#include <stddef.h>

/* The preset's config.json text (NUL-terminated), or NULL when no preset has that name. */
const char *preset_find(const char *name, size_t *size);
/* Name of preset i (0-based), NULL past the end. */
const char *preset_name(int i);

#endif
