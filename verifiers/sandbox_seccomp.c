/* The sandbox's seccomp program, compiled once with libseccomp into raw BPF (bwrap
 * loads it with --seccomp FD; the fallback child loads it with prctl). Default allow;
 * the listed calls fail with EPERM (clone3 with ENOSYS, so libc falls back to clone,
 * whose namespace flags we can inspect). Foreign architectures (int 0x80) are killed. */
#include "verifiers/sandbox_impl.h"

#include <stdlib.h>
#include <string.h>

#ifdef GRPO_HAVE_SECCOMP
#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"

/* Calls a judged program has no business making. Names the running libseccomp does
 * not know on this architecture are skipped. */
static const char *const denied_calls[] = {
    "ptrace", "mount", "umount", "umount2", "pivot_root", "chroot", "reboot", "kexec_load",
    "kexec_file_load", "bpf", "perf_event_open", "keyctl", "add_key", "request_key", "unshare",
    "setns", "init_module", "finit_module", "delete_module", "swapon", "swapoff", "acct",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "sethostname", "setdomainname",
    "iopl", "ioperm", "process_vm_readv", "process_vm_writev", "userfaultfd", "open_by_handle_at",
    "name_to_handle_at", "quotactl", "quotactl_fd", "syslog", "vhangup", "fanotify_init", "kcmp",
    "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    "io_uring_setup", "io_uring_enter", "io_uring_register", "lookup_dcookie", "pidfd_getfd",
    "uselib", "nfsservctl", "create_module", "get_kernel_syms", "query_module",
};

static int add_rule(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned n,
                    const struct scmp_arg_cmp *args) {
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) return 0;   /* not on this architecture */
    int rc = seccomp_rule_add_array(ctx, action, nr, n, args);
    if (rc < 0) log_warn("sandbox: seccomp rule for %s: %s", name, strerror(-rc));
    return rc;
}

int sandbox_seccomp_build(int fallback, pid_t trainer_pid, sandbox_bpf *prog) {
    memset(prog, 0, sizeof *prog);
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx) return -1;
    int rc = 0;
    const uint32_t eperm = SCMP_ACT_ERRNO(EPERM);
    for (size_t i = 0; i < sizeof denied_calls / sizeof *denied_calls; i++)
        rc |= add_rule(ctx, eperm, denied_calls[i], 0, NULL);
    rc |= add_rule(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3", 0, NULL);
    /* clone: any namespace flag (x86_64 and aarch64 take flags as argument 0). */
    const unsigned long ns_flags[] = {CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWNET,
                                      CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWCGROUP};
    for (size_t i = 0; i < sizeof ns_flags / sizeof *ns_flags; i++) {
        struct scmp_arg_cmp a = SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags[i], ns_flags[i]);
        rc |= add_rule(ctx, eperm, "clone", 1, &a);
    }
    if (fallback) {
        /* No namespaces to hide the host: no sockets at all, and no signals to the
         * trainer or to "every process I may signal". */
        rc |= add_rule(ctx, eperm, "socket", 0, NULL);
        const long targets[] = {(long)trainer_pid, -1L, -(long)getpgrp()};
        const char *const sig_calls[] = {"kill", "tgkill", "pidfd_open", "rt_sigqueueinfo", "rt_tgsigqueueinfo"};
        for (size_t c = 0; c < 5; c++)
            for (size_t t = 0; t < 3; t++) {
                if (c > 0 && t > 0) continue;   /* only kill() takes process groups */
                struct scmp_arg_cmp a = SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)targets[t]);
                rc |= add_rule(ctx, eperm, sig_calls[c], 1, &a);
            }
        struct scmp_arg_cmp tk = SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)(long)trainer_pid);
        rc |= add_rule(ctx, eperm, "tkill", 1, &tk);
    } else {
        /* Inside the network namespace only AF_UNIX is of any use (socketpair stays allowed). */
        struct scmp_arg_cmp a = SCMP_A0(SCMP_CMP_NE, AF_UNIX);
        rc |= add_rule(ctx, eperm, "socket", 1, &a);
    }
    if (rc != 0) {
        seccomp_release(ctx);
        return -1;
    }
    int fd = memfd_create("grpo-seccomp", MFD_CLOEXEC);
    if (fd < 0) {
        seccomp_release(ctx);
        return -1;
    }
    rc = seccomp_export_bpf(ctx, fd);
    seccomp_release(ctx);
    off_t size = rc == 0 ? lseek(fd, 0, SEEK_END) : -1;
    if (size <= 0 || size % 8 != 0 || size / 8 > 65535) {
        close(fd);
        return -1;
    }
    prog->bytes = malloc((size_t)size);
    if (!prog->bytes || pread(fd, prog->bytes, (size_t)size, 0) != size) {
        free(prog->bytes);
        prog->bytes = NULL;
        close(fd);
        return -1;
    }
    close(fd);
    prog->count = (unsigned short)(size / 8);
    return 0;
}

#else

int sandbox_seccomp_build(int fallback, pid_t trainer_pid, sandbox_bpf *prog) {
    (void)fallback;
    (void)trainer_pid;
    memset(prog, 0, sizeof *prog);
    return -1;
}

#endif
