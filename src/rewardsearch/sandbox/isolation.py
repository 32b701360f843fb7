"""OS isolation of the sandbox worker: namespaces, a private uid, Landlock and seccomp, through ctypes.

Standard library only (the worker imports this file by path, without site-packages). The parent imports it
too, for the level names and for `plan_for`.

Levels, strongest first; each is a fixed set of mechanisms, so a level means the same on every machine:

| level      | mechanisms                                                                         |
| ---------- | ---------------------------------------------------------------------------------- |
| `strict`   | namespaces (net, pid, mount, ipc, uts; user too when not root) + Landlock + seccomp |
| `landlock` | Landlock + seccomp                                                                 |
| `seccomp`  | seccomp                                                                            |
| `process`  | none: a fresh interpreter, empty environment, rlimits, deadline (weak, opt-in)     |

When the worker starts as root, every level except `process` also moves it to a uid of its own (random, not
in /etc/passwd, not shared with any other worker): it can then read only world-readable files, signal only
itself, and RLIMIT_NPROC bounds its processes. The mechanisms, by process (see worker.py for the processes):

- namespaces: `unshare` in the worker before it forks the zygote, which becomes pid 1 of a new pid namespace
  (all candidate processes die with it) and mounts a fresh /proc that shows only the sandbox's processes; the
  new network namespace has only a loopback device that is down; mount propagation is made private first, so
  nothing mounted inside is seen outside.
- Landlock (kernel >= 5.13), applied in the zygote: files may be read only beneath the Python standard library
  (lazy imports); nothing may be written, created, removed or executed anywhere; TCP bind/connect are denied
  (ABI >= 4); signals and abstract UNIX sockets are scoped to the sandbox (ABI >= 6). Landlock also keeps a
  sandboxed process from ptrace-ing (or reading /proc/<pid>/mem of) any process outside its domain.
- seccomp (x86_64 only), two stacked filters: the zygote's denies sockets, exec, ptrace and cross-process
  memory access, System V / POSIX IPC, io_uring, bpf, perf, keys, mount and namespace calls, kernel
  administration, file writes (open with a write, create or truncate flag; unlink, rename, chmod, ...) and the
  TIOCSTI/TIOCLINUX ioctls; each call child adds one that denies new processes and threads (fork, vfork,
  clone, clone3), signals (kill, tkill, tgkill, sigqueue, pidfd), new sessions and process groups, and raising
  rlimits. Denied calls fail with EPERM (EACCES for writes) rather than killing, so the code sees an ordinary
  Python error; a syscall of another architecture or the x32 ABI kills the process.

What is NOT guaranteed: containment against kernel bugs (this is not a VM); seccomp on architectures other
than x86_64 (the level drops below `landlock` there); read isolation at `seccomp` level for a worker that
does not start as root (it reads what its user reads; the parent makes itself non-dumpable so its
/proc/<pid>/environ and mem stay closed); CPU, memory and time bounds (rlimits and the deadlines in
runner.py/worker.py do that).
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
import sys

LEVELS = ("strict", "landlock", "seccomp", "process")  # strongest first
WEAK_LEVELS = frozenset({"process"})
LEVEL_MECHANISMS = {
    "strict": ("namespaces", "landlock", "seccomp"),
    "landlock": ("landlock", "seccomp"),
    "seccomp": ("seccomp",),
    "process": (),
}

# -- libc ----------------------------------------------------------------------------------------------------
_libc: ctypes.CDLL | None = None


def libc() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
    return _libc


def _check(result: int, what: str) -> int:
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")
    return result


def _syscall(nr: int, *args: object) -> int:
    # Variadic: pass every integer as a full-width long, or the kernel may see garbage in the upper half.
    conv = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    return int(libc().syscall(ctypes.c_long(nr), *conv))


def prctl(option: int, arg2: int = 0, arg3: object = 0) -> int:
    a3 = ctypes.c_ulong(arg3) if isinstance(arg3, int) else arg3
    return _check(
        libc().prctl(ctypes.c_int(option), ctypes.c_ulong(arg2), a3, ctypes.c_ulong(0), ctypes.c_ulong(0)),
        f"prctl({option})",
    )


PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_SECCOMP = 22
PR_SET_NO_NEW_PRIVS = 38
SECCOMP_MODE_FILTER = 2


def set_no_new_privs() -> None:
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def set_dumpable(on: bool) -> None:
    prctl(PR_SET_DUMPABLE, 1 if on else 0)


def die_with_parent(parent_pid: int) -> None:
    """SIGKILL when the parent goes; exit at once if it already went (we were reparented)."""
    prctl(PR_SET_PDEATHSIG, 9)
    if parent_pid and os.getppid() != parent_pid:
        os._exit(0)


# -- namespaces and uid --------------------------------------------------------------------------------------
CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE = 2, 4, 8, 0x4000, 1 << 18


def unshare_namespaces(user: bool) -> None:
    """New net, pid (for children), mount, ipc and uts namespaces; a user namespace too when not root."""
    uid, gid = os.getuid(), os.getgid()
    flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID | CLONE_NEWNET
    if user:
        flags |= CLONE_NEWUSER
    _check(libc().unshare(ctypes.c_int(flags)), "unshare")
    if user:
        # Map only our own uid/gid (as 0 inside): files keep their outer owner, nothing else is reachable.
        for path, text in (("/proc/self/setgroups", "deny"), ("/proc/self/uid_map", f"0 {uid} 1"),
                           ("/proc/self/gid_map", f"0 {gid} 1")):  # fmt: skip
            with open(path, "w") as f:
                f.write(text)


def private_proc() -> None:
    """In the zygote (pid 1 of the new namespace): private mount propagation, then a /proc of our own."""
    _check(libc().mount(None, b"/", None, ctypes.c_ulong(MS_REC | MS_PRIVATE), None), "mount --make-rprivate /")
    _check(
        libc().mount(b"proc", b"/proc", b"proc", ctypes.c_ulong(MS_NOSUID | MS_NODEV | MS_NOEXEC), None),
        "mount proc",
    )


def drop_to_uid(uid: int) -> None:
    """root -> a private uid and gid with no supplementary groups; the kernel clears every capability."""
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)


def drop_capabilities() -> None:
    """Clear all capabilities of this process (used inside a user namespace, where we are uid 0)."""
    header = struct.pack("Ii", 0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = ctypes.create_string_buffer(24)  # two zeroed {effective, permitted, inheritable} sets
    _check(_syscall(126, ctypes.c_char_p(header), data), "capset")


# -- Landlock ------------------------------------------------------------------------------------------------
_LL_CREATE, _LL_ADD_RULE, _LL_RESTRICT = 444, 445, 446  # the same numbers on every architecture
_LL_VERSION = 1
_LL_RULE_PATH_BENEATH = 1
LL_EXECUTE, LL_WRITE_FILE, LL_READ_FILE, LL_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_LL_FS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1, 5: (1 << 16) - 1}
_LL_NET_TCP = (1 << 0) | (1 << 1)  # bind, connect (ABI >= 4)
_LL_SCOPE_ALL = (1 << 0) | (1 << 1)  # abstract UNIX sockets, signals (ABI >= 6)


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, or 0 where Landlock is missing or disabled."""
    try:
        result = _syscall(_LL_CREATE, None, 0, _LL_VERSION)
    except (OSError, AttributeError):
        return 0
    return max(result, 0)


def landlock_read_only(read_paths: list[str]) -> int:
    """Restrict this process (and its future children) to reading beneath `read_paths`; returns the ABI used.

    Every right the ABI knows is handled and only read rights are granted, so nothing can be written,
    created, removed, renamed, truncated or executed anywhere; TCP and cross-domain signals are denied where
    the ABI can express it.
    """
    abi = landlock_abi()
    if abi < 1:
        raise OSError(errno.ENOSYS, "Landlock is not available in this kernel")
    fs = _LL_FS_BY_ABI.get(abi, _LL_FS_BY_ABI[5])
    if abi >= 6:
        attr = struct.pack("QQQ", fs, _LL_NET_TCP, _LL_SCOPE_ALL)
    elif abi >= 4:
        attr = struct.pack("QQ", fs, _LL_NET_TCP)
    else:
        attr = struct.pack("Q", fs)
    buf = ctypes.create_string_buffer(attr, len(attr))
    ruleset = _check(_syscall(_LL_CREATE, buf, len(attr), 0), "landlock_create_ruleset")
    try:
        for path in read_paths:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue  # a sys.path entry that does not exist: nothing to grant
            try:
                is_dir = os.path.isdir(path)
                access = (LL_READ_FILE | LL_READ_DIR) if is_dir else LL_READ_FILE
                rule = ctypes.create_string_buffer(struct.pack("=Qi", access, fd), 12)  # packed struct
                _check(_syscall(_LL_ADD_RULE, ruleset, _LL_RULE_PATH_BENEATH, rule, 0), "landlock_add_rule")
            finally:
                os.close(fd)
        set_no_new_privs()
        _check(_syscall(_LL_RESTRICT, ruleset, 0), "landlock_restrict_self")
    finally:
        os.close(ruleset)
    return abi


# -- seccomp -------------------------------------------------------------------------------------------------
AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000
RET_KILL_PROCESS, RET_ERRNO, RET_ALLOW = 0x80000000, 0x00050000, 0x7FFF0000
_LD_ABS, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
_NR_OFF, _ARCH_OFF = 0, 4


def _arg_lo(i: int) -> int:
    return 16 + 8 * i  # seccomp_data.args[i], low 32 bits on little-endian


# x86_64 numbers (arch/x86/entry/syscalls/syscall_64.tbl).
ZYGOTE_DENY: dict[str, int] = {
    # network
    "socket": 41, "connect": 42, "accept": 43, "sendto": 44, "recvfrom": 45, "sendmsg": 46, "recvmsg": 47,
    "bind": 49, "listen": 50, "socketpair": 53, "accept4": 288, "recvmmsg": 299, "sendmmsg": 307,
    # programs and other processes' memory
    "execve": 59, "execveat": 322, "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311,
    "kcmp": 312, "pidfd_getfd": 438, "process_madvise": 440, "process_mrelease": 448, "migrate_pages": 256,
    "move_pages": 279,
    # System V and POSIX IPC: state that would outlive a call (and, without namespaces, the worker)
    "shmget": 29, "shmat": 30, "shmctl": 31, "semget": 64, "semop": 65, "semctl": 66, "shmdt": 67,
    "msgget": 68, "msgsnd": 69, "msgrcv": 70, "msgctl": 71, "semtimedop": 220, "mq_open": 240,
    "mq_unlink": 241, "mq_timedsend": 242, "mq_timedreceive": 243, "mq_notify": 244, "mq_getsetattr": 245,
    # file writes (open/openat with write flags are handled by argument below)
    "creat": 85, "openat2": 437, "truncate": 76, "rename": 82, "mkdir": 83, "rmdir": 84, "link": 86,
    "unlink": 87, "symlink": 88, "chmod": 90, "fchmod": 91, "chown": 92, "fchown": 93, "lchown": 94,
    "utime": 132, "mknod": 133, "setxattr": 188, "lsetxattr": 189, "fsetxattr": 190, "removexattr": 197,
    "lremovexattr": 198, "fremovexattr": 199, "utimes": 235, "mkdirat": 258, "mknodat": 259, "fchownat": 260,
    "futimesat": 261, "unlinkat": 263, "renameat": 264, "linkat": 265, "symlinkat": 266, "fchmodat": 268,
    "utimensat": 280, "fallocate": 285, "renameat2": 316, "memfd_create": 319, "fchmodat2": 452,
    "setxattrat": 463, "removexattrat": 466, "file_setattr": 469, "name_to_handle_at": 303,
    "open_by_handle_at": 304,
    # kernel interfaces a reward never needs (and that widen the attack surface)
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "bpf": 321,
    "perf_event_open": 298, "userfaultfd": 323, "add_key": 248, "request_key": 249, "keyctl": 250,
    "fanotify_init": 300, "lookup_dcookie": 212, "uselib": 134, "_sysctl": 156, "quotactl_fd": 443,
    "memfd_secret": 447, "lsm_set_self_attr": 460, "statmount": 457, "listmount": 458, "open_tree_attr": 467,
    "listns": 470, "modify_ldt": 154,
    # mounts, namespaces, identity, administration
    "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161, "unshare": 272, "setns": 308,
    "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
    "mount_setattr": 442, "setuid": 105, "setgid": 106, "setreuid": 113, "setregid": 114, "setgroups": 116,
    "setresuid": 117, "setresgid": 119, "setfsuid": 122, "setfsgid": 123, "capset": 126,
    "personality": 135, "acct": 163, "swapon": 167, "swapoff": 168, "reboot": 169, "sethostname": 170,
    "setdomainname": 171, "iopl": 172, "ioperm": 173, "init_module": 175, "delete_module": 176,
    "finit_module": 313, "kexec_load": 246, "kexec_file_load": 320, "quotactl": 179, "syslog": 103,
    "settimeofday": 164, "clock_settime": 227, "adjtimex": 159, "clock_adjtime": 305, "vhangup": 153,
}  # fmt: skip
CALL_DENY: dict[str, int] = {
    # no new processes or threads
    "clone": 56, "fork": 57, "vfork": 58, "clone3": 435,
    # no signals to anyone (the parent's SIGKILL still reaches us: that is the kernel, not a syscall here)
    "kill": 62, "tkill": 200, "tgkill": 234, "rt_sigqueueinfo": 129, "rt_tgsigqueueinfo": 297,
    "pidfd_send_signal": 424, "pidfd_open": 434,
    # no escape from the process group the parent kills, no raised limits
    "setsid": 112, "setpgid": 109, "setrlimit": 160,
}  # fmt: skip
_NR_OPEN, _NR_OPENAT, _NR_IOCTL, _NR_PRLIMIT64 = 2, 257, 16, 302
# O_WRONLY | O_RDWR | O_CREAT | O_TRUNC (O_TMPFILE needs O_WRONLY/O_RDWR too)
_WRITE_OPEN_FLAGS = 0o1 | 0o2 | 0o100 | 0o1000
_TIOCSTI, _TIOCLINUX = 0x5412, 0x541C


def seccomp_supported() -> bool:
    return sys.platform == "linux" and os.uname().machine == "x86_64"


class _Asm:
    """A few classic-BPF instructions; enough for a readable syscall filter."""

    def __init__(self) -> None:
        self.code: list[tuple[int, int, int, int]] = []

    def ld(self, offset: int) -> None:
        self.code.append((_LD_ABS, 0, 0, offset))

    def jump(self, op: int, k: int, jt: int, jf: int) -> None:
        self.code.append((op, jt, jf, k))

    def ret(self, value: int) -> None:
        self.code.append((_RET, 0, 0, value))

    def program(self) -> bytes:
        return b"".join(struct.pack("HBBI", *ins) for ins in self.code)


def build_filter(kind: str) -> bytes:
    """The BPF program for `kind` = "zygote" or "call" (stacked on the zygote's in each call child)."""
    eperm, eacces = RET_ERRNO | errno.EPERM, RET_ERRNO | errno.EACCES
    a = _Asm()
    a.ld(_ARCH_OFF)
    a.jump(_JEQ, AUDIT_ARCH_X86_64, 1, 0)
    a.ret(RET_KILL_PROCESS)  # i386 int 0x80 or another ABI: its numbers mean other calls
    a.ld(_NR_OFF)
    a.jump(_JGE, X32_SYSCALL_BIT, 0, 1)
    a.ret(RET_KILL_PROCESS)  # x32 numbers alias the ones below
    if kind == "zygote":
        deny = ZYGOTE_DENY
        # open(path, flags) / openat(dirfd, path, flags): deny write, create and truncate flags
        for nr, arg in ((_NR_OPEN, 1), (_NR_OPENAT, 2)):
            a.jump(_JEQ, nr, 0, 4)
            a.ld(_arg_lo(arg))
            a.jump(_JSET, _WRITE_OPEN_FLAGS, 0, 1)
            a.ret(eacces)
            a.ret(RET_ALLOW)
        # ioctl(fd, TIOCSTI | TIOCLINUX): typing into a terminal
        a.jump(_JEQ, _NR_IOCTL, 0, 5)
        a.ld(_arg_lo(1))
        a.jump(_JEQ, _TIOCSTI, 2, 0)
        a.jump(_JEQ, _TIOCLINUX, 1, 0)
        a.ret(RET_ALLOW)
        a.ret(eperm)
    elif kind == "call":
        deny = CALL_DENY
        # prlimit64(pid, resource, new_limit, old_limit): reading is fine, setting is not
        a.jump(_JEQ, _NR_PRLIMIT64, 0, 6)
        a.ld(_arg_lo(2))
        a.jump(_JEQ, 0, 0, 3)
        a.ld(_arg_lo(2) + 4)
        a.jump(_JEQ, 0, 0, 1)
        a.ret(RET_ALLOW)
        a.ret(eperm)
    else:
        raise ValueError(f"filter kind {kind!r}: expected 'zygote' or 'call'")
    for nr in sorted(set(deny.values())):
        a.jump(_JEQ, nr, 0, 1)
        a.ret(eperm)
    a.ret(RET_ALLOW)
    return a.program()


def install_filter(program: bytes) -> None:
    """Install a BPF program built by `build_filter` on this thread (no-new-privs is set first)."""
    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    buf = ctypes.create_string_buffer(program, len(program))
    prog = SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    set_no_new_privs()
    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog))
