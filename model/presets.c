/* Lookup in the table generated from configs/models/ (cmake/embed.cmake). */
#include "model/presets.h"

#include <string.h>

typedef struct { const char *name; const char *text; size_t size; } embedded_file;
extern const embedded_file model_presets[];
extern const int model_presets_count;

const char *preset_find(const char *name, size_t *size) {
    for (int i = 0; i < model_presets_count; i++)
        if (!strcmp(model_presets[i].name, name)) {
            if (size) *size = model_presets[i].size;
            return model_presets[i].text;
        }
    return NULL;
}

const char *preset_name(int i) { return i >= 0 && i < model_presets_count ? model_presets[i].name : NULL; }
