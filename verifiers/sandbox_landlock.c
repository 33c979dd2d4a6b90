/* Landlock for the fallback sandbox (no mount namespace there): the program may read
 * and execute under the system directories, use a few device files, and do anything
 * inside its work dir; every other path (the host's /tmp, home directories, the run
 * store) is out of reach whatever the file modes say. ABI 6 also scopes signals and
 * abstract unix sockets to the sandbox. Structures are declared here so an old
 * <linux/landlock.h> does not limit what a newer kernel offers. */
#include "verifiers/sandbox_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#endif
#ifndef SYS_landlock_add_rule
#define SYS_landlock_add_rule 445
#endif

#define LL_CREATE_RULESET_VERSION (1U << 0)
#define LL_RULE_PATH_BENEATH 1
#define LL_FS_EXECUTE (1ULL << 0)
#define LL_FS_WRITE_FILE (1ULL << 1)
#define LL_FS_READ_FILE (1ULL << 2)
#define LL_FS_READ_DIR (1ULL << 3)
#define LL_FS_ABI1_ALL ((1ULL << 13) - 1)   /* EXECUTE .. MAKE_SYM */
#define LL_FS_REFER (1ULL << 13)            /* ABI 2 */
#define LL_FS_TRUNCATE (1ULL << 14)         /* ABI 3 */
#define LL_FS_IOCTL_DEV (1ULL << 15)        /* ABI 5 */
#define LL_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)   /* ABI 6 */
#define LL_SCOPE_SIGNAL (1ULL << 1)

struct ll_ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
};

struct ll_path_beneath_attr {
    uint64_t allowed_access;
    int32_t parent_fd;
} __attribute__((packed));

static int add_path(int ruleset, const char *path, uint64_t access, uint64_t handled) {
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? 0 : -1;   /* a missing system dir is fine */
    struct ll_path_beneath_attr rule = {.allowed_access = access & handled, .parent_fd = fd};
    /* Rights that only make sense on directories are refused (EINVAL) for a file. */
    int rc = (int)syscall(SYS_landlock_add_rule, ruleset, LL_RULE_PATH_BENEATH, &rule, 0);
    if (rc < 0 && errno == EINVAL) {
        rule.allowed_access &= LL_FS_EXECUTE | LL_FS_WRITE_FILE | LL_FS_READ_FILE | LL_FS_TRUNCATE | LL_FS_IOCTL_DEV;
        rc = (int)syscall(SYS_landlock_add_rule, ruleset, LL_RULE_PATH_BENEATH, &rule, 0);
    }
    close(fd);
    return rc < 0 ? -1 : 0;
}

int sandbox_landlock_ruleset(const char *rw_dir, const char *const *ro_paths, const char *const *rw_files) {
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LL_CREATE_RULESET_VERSION);
    if (abi < 1) return -1;
    struct ll_ruleset_attr attr = {.handled_access_fs = LL_FS_ABI1_ALL};
    size_t attr_size = sizeof attr.handled_access_fs;
    if (abi >= 2) attr.handled_access_fs |= LL_FS_REFER;
    if (abi >= 3) attr.handled_access_fs |= LL_FS_TRUNCATE;
    if (abi >= 4) attr_size = 2 * sizeof(uint64_t);
    if (abi >= 5) attr.handled_access_fs |= LL_FS_IOCTL_DEV;
    if (abi >= 6) {
        attr.scoped = LL_SCOPE_ABSTRACT_UNIX_SOCKET | LL_SCOPE_SIGNAL;
        attr_size = sizeof attr;
    }
    int ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, attr_size, 0);
    if (ruleset < 0) return -1;
    uint64_t handled = attr.handled_access_fs;
    uint64_t read_exec = LL_FS_EXECUTE | LL_FS_READ_FILE | LL_FS_READ_DIR;
    int rc = add_path(ruleset, rw_dir, handled, handled);
    for (size_t i = 0; ro_paths && ro_paths[i] && rc == 0; i++) rc = add_path(ruleset, ro_paths[i], read_exec, handled);
    for (size_t i = 0; rw_files && rw_files[i] && rc == 0; i++)
        rc = add_path(ruleset, rw_files[i], LL_FS_READ_FILE | LL_FS_WRITE_FILE | LL_FS_TRUNCATE | LL_FS_IOCTL_DEV, handled);
    if (rc != 0) {
        close(ruleset);
        return -1;
    }
    return ruleset;
}
