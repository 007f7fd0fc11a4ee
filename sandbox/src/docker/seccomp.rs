//! The seccomp profile of every container gitfaas starts, passed to Docker as
//! its content (`seccomp=<json>`). A profile given this way replaces Docker's
//! default one whole, so this is Docker's default allow-list as it applies to a
//! container with no capability worth naming (the rules Docker grants only with
//! `CAP_SYS_ADMIN`, `CAP_SYS_PTRACE`, … are left out, as Docker leaves them out
//! for such a container), with its argument filters (no namespace flags on
//! `clone`, no `AF_VSOCK` socket, only the usual `personality` values, `clone3`
//! answered `ENOSYS` so the C library falls back to `clone`), less the calls
//! that reach into another process — `ptrace`, `process_vm_readv`,
//! `process_vm_writev` (Docker allows these three to everyone on kernels from
//! 4.8) — and io_uring, whose operations are not seen by seccomp at all.
//! `kcmp`, `pidfd_getfd`, `process_madvise` and `perf_event_open` stay denied as
//! Docker denies them without the capability. Everything not listed fails with
//! `EPERM`, as under Docker's own profile.

use serde_json::{json, Value};

/// Calls that act on another process's memory, descriptors or execution; never
/// allowed, whatever else changes in the list below.
pub const DENIED: &[&str] = &[
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "pidfd_getfd",
    "process_madvise",
    "perf_event_open",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
];

/// Allowed with any arguments. A name the kernel's architecture does not know
/// is skipped by the OCI runtime, so one list serves x86-64 and arm64; the last
/// line is architecture-specific: x86 (thread pointer, LDT), arm (cache, TLS).
const ALLOWED: &str = "\
    accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown chown32 clock_adjtime \
    clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64 clock_nanosleep \
    clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2 dup3 epoll_create \
    epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd \
    eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate \
    fanotify_mark fchdir fchmod fchmodat fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr \
    flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync \
    ftruncate ftruncate64 futex futex_time64 futex_waitv futimesat getcpu getcwd getdents getdents64 \
    getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups getgroups32 getitimer getpeername \
    getpgid getpgrp getpid getppid getpriority getrandom getresgid getresgid32 getresuid getresuid32 \
    getrlimit get_robust_list getrusage getsid getsockname getsockopt get_thread_area gettid \
    gettimeofday getuid getuid32 getxattr inotify_add_watch inotify_init inotify_init1 inotify_rm_watch \
    io_cancel ioctl io_destroy io_getevents io_pgetevents io_pgetevents_time64 ioprio_get ioprio_set \
    io_setup io_submit ipc kill landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown \
    lchown32 lgetxattr link linkat listen listxattr llistxattr _llseek lremovexattr lseek lsetxattr \
    lstat lstat64 madvise membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat \
    mlock mlock2 mlockall mmap mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive \
    mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap msgctl msgget msgrcv \
    msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep newfstatat _newselect open \
    openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect \
    poll ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64 process_mrelease pselect6 \
    pselect6_time64 pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv recv recvfrom \
    recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr rename renameat renameat2 \
    restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn \
    rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity \
    sched_getattr sched_getparam sched_get_priority_max sched_get_priority_min sched_getscheduler \
    sched_rr_get_interval sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam \
    sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop semtimedop_time64 send \
    sendfile sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32 \
    setgroups setgroups32 setitimer setpgid setpriority setregid setregid32 setresgid setresgid32 \
    setresuid setresuid32 setreuid setreuid32 setrlimit set_robust_list setsid setsockopt \
    set_thread_area set_tid_address setuid setuid32 setxattr shmat shmctl shmdt shmget shutdown \
    sigaltstack signalfd signalfd4 sigprocmask sigreturn socketcall socketpair splice stat stat64 \
    statfs statfs64 statx symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time \
    timer_create timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime \
    timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64 \
    times tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat utime utimensat \
    utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev \
    arch_prctl modify_ldt arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls";

/// `clone` flags that create namespaces (`CLONE_NEWNS` … `CLONE_NEWNET`,
/// `CLONE_NEWCGROUP`): a `clone` with any of them is refused.
const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;
/// `AF_VSOCK`: no socket to the host's hypervisor.
const AF_VSOCK: u64 = 40;
/// `personality` values programs use: default, `UNAME26`, `ADDR_NO_RANDOMIZE`,
/// both, and the query.
const PERSONALITIES: &[u64] = &[0, 8, 0x20000, 0x20008, 0xFFFF_FFFF];
const ENOSYS: u64 = 38;
const EPERM: u64 = 1;

/// The profile as JSON text, for `HostConfig.security_opt`.
pub fn profile() -> String {
    let allowed: Vec<&str> = ALLOWED.split_whitespace().filter(|name| !DENIED.contains(name)).collect();
    let mut syscalls = vec![
        json!({"names": allowed, "action": "SCMP_ACT_ALLOW"}),
        json!({"names": ["socket"], "action": "SCMP_ACT_ALLOW",
               "args": [{"index": 0, "value": AF_VSOCK, "op": "SCMP_CMP_NE"}]}),
        json!({"names": ["clone"], "action": "SCMP_ACT_ALLOW",
               "args": [{"index": 0, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]}),
        json!({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS}),
    ];
    syscalls.extend(PERSONALITIES.iter().map(|value| {
        json!({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
               "args": [{"index": 0, "value": value, "op": "SCMP_CMP_EQ"}]})
    }));
    let profile = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": EPERM,
        "archMap": [
            {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
            {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
        ],
        "syscalls": syscalls,
    });
    profile.to_string()
}

/// The syscall names a profile allows with any arguments (for tests that read
/// a container's profile back from Docker).
pub fn allowed_names(profile: &Value) -> Vec<String> {
    let Some(rules) = profile["syscalls"].as_array() else { return Vec::new() };
    rules
        .iter()
        .filter(|rule| rule["action"] == "SCMP_ACT_ALLOW" && rule.get("args").is_none())
        .filter_map(|rule| rule["names"].as_array())
        .flatten()
        .filter_map(|name| name.as_str().map(str::to_owned))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_denies_every_call_into_another_process_and_keeps_the_common_ones() {
        let profile: Value = serde_json::from_str(&profile()).unwrap();
        assert_eq!(profile["defaultAction"], "SCMP_ACT_ERRNO");
        let allowed = allowed_names(&profile);
        for denied in DENIED {
            assert!(!allowed.iter().any(|name| name == denied), "{denied} is allowed");
        }
        for needed in ["read", "write", "execve", "fork", "wait4", "setresuid", "setgroups", "kill", "openat"] {
            assert!(allowed.iter().any(|name| name == needed), "{needed} is missing");
        }
        for conditional in ["unshare", "setns", "mount", "bpf", "clone", "socket"] {
            assert!(!allowed.iter().any(|name| name == conditional), "{conditional} unconditionally allowed");
        }
    }
}
