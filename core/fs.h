/* Small file-system helpers: directories, whole-file reads, crash-safe writes. */
#ifndef GRPO_FS_H
#define GRPO_FS_H

#include <stddef.h>

#include "core/status.h"

/* mkdir -p. */
grpo_status fs_mkdirs(const char *path);
/* rm -rf of a directory we created (refuses "/" and ""). */
grpo_status fs_remove_tree(const char *path);
int fs_exists(const char *path);
int fs_is_dir(const char *path);
/* Reads a whole file; *data is malloc'd and NUL-terminated (the caller frees). */
grpo_status fs_read_file(const char *path, char **data, size_t *size);
/* Writes path atomically: path.tmp, fsync, rename, fsync of the directory. */
grpo_status fs_write_atomic(const char *path, const void *data, size_t size);
grpo_status fs_copy_file(const char *src, const char *dst);
/* fsync a file or directory by path. */
grpo_status fs_sync_path(const char *path);

#endif
