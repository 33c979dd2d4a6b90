/* File-system helpers (core/fs.h). */
#include "core/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

grpo_status fs_mkdirs(const char *path) {
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return grpo_fail(GRPO_ERR_INVALID, "path too long: %s", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == 0) {
            char c = *p;
            *p = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return grpo_fail(GRPO_ERR_IO, "cannot create directory %s: %s", buf, strerror(errno));
            *p = c;
            if (!c) break;
        }
    }
    if (!fs_is_dir(path)) return grpo_fail(GRPO_ERR_IO, "%s exists and is not a directory", path);
    return GRPO_OK;
}

int fs_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int fs_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

grpo_status fs_remove_tree(const char *path) {
    if (!path[0] || !strcmp(path, "/")) return grpo_fail(GRPO_ERR_INVALID, "refusing to remove '%s'", path);
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? GRPO_OK : grpo_fail(GRPO_ERR_IO, "%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (!d) return grpo_fail(GRPO_ERR_IO, "cannot open directory %s: %s", path, strerror(errno));
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char child[PATH_MAX];
            snprintf(child, sizeof child, "%s/%s", path, e->d_name);
            grpo_status s = fs_remove_tree(child);
            if (s) { closedir(d); return s; }
        }
        closedir(d);
        if (rmdir(path) != 0) return grpo_fail(GRPO_ERR_IO, "cannot remove %s: %s", path, strerror(errno));
    } else if (unlink(path) != 0) {
        return grpo_fail(GRPO_ERR_IO, "cannot remove %s: %s", path, strerror(errno));
    }
    return GRPO_OK;
}

grpo_status fs_read_file(const char *path, char **data, size_t *size) {
    *data = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return grpo_fail(errno == ENOENT ? GRPO_ERR_NOTFOUND : GRPO_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    if (fseek(f, 0, SEEK_END) != 0) { fclose(f); return grpo_fail(GRPO_ERR_IO, "cannot seek %s", path); }
    long n = ftell(f);
    rewind(f);
    if (n < 0) { fclose(f); return grpo_fail(GRPO_ERR_IO, "cannot size %s (is it a directory?)", path); }
    char *buf = malloc((size_t)n + 1);
    if (!buf) { fclose(f); return grpo_fail(GRPO_ERR_NOMEM, "%s: cannot allocate %ld bytes", path, n); }
    size_t got = fread(buf, 1, (size_t)n, f);
    fclose(f);
    if (got != (size_t)n) { free(buf); return grpo_fail(GRPO_ERR_IO, "%s: short read", path); }
    buf[n] = 0;
    *data = buf;
    if (size) *size = (size_t)n;
    return GRPO_OK;
}

grpo_status fs_sync_path(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return grpo_fail(GRPO_ERR_IO, "cannot open %s to sync: %s", path, strerror(errno));
    int rc = fsync(fd);
    close(fd);
    if (rc != 0 && errno != EINVAL) return grpo_fail(GRPO_ERR_IO, "fsync %s: %s", path, strerror(errno));
    return GRPO_OK;
}

static void parent_dir(const char *path, char *out, size_t size) {
    snprintf(out, size, "%s", path);
    char *slash = strrchr(out, '/');
    if (slash == out) slash[1] = 0;
    else if (slash) *slash = 0;
    else snprintf(out, size, ".");
}

grpo_status fs_write_atomic(const char *path, const void *data, size_t size) {
    char tmp[PATH_MAX], dir[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return grpo_fail(GRPO_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    const char *p = data;
    size_t left = size;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            close(fd);
            unlink(tmp);
            return grpo_fail(GRPO_ERR_IO, "write %s: %s", tmp, strerror(errno));
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        unlink(tmp);
        return grpo_fail(GRPO_ERR_IO, "cannot flush %s: %s", tmp, strerror(errno));
    }
    if (rename(tmp, path) != 0) {
        unlink(tmp);
        return grpo_fail(GRPO_ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    }
    parent_dir(path, dir, sizeof dir);
    return fs_sync_path(dir);
}

grpo_status fs_copy_file(const char *src, const char *dst) {
    char *data;
    size_t size;
    GRPO_TRY(fs_read_file(src, &data, &size));
    grpo_status s = fs_write_atomic(dst, data, size);
    free(data);
    return s;
}
