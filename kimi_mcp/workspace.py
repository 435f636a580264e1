"""The workspace: the one place where tool families open, create, list, rename, copy and
delete files, and the containment rules it enforces at the moment of use.

The rules, in order:

1. A path is text without a null byte; `~` expands; a relative path joins the first root
   (never the process cwd); the result is normalised lexically.
2. It must lie inside a root by a separator-safe test (`/ws` admits `/ws/a`, never
   `/ws-evil`). A root is admitted both in the form it was configured in (which may run
   through a symlink) and in its real form.
3. **At use time**, the root is opened as a directory descriptor and the path is walked below
   it: in one `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)` call
   where the kernel has it, else one component at a time with `O_NOFOLLOW | O_DIRECTORY`.
   A symlink met on the way is read and followed only when its target lies inside a root
   (rule 2), walking again from that root's descriptor; a link out is refused, at any depth,
   however late it was planted.
4. The operation itself happens relative to the parent's descriptor with calls that never
   follow the final name: `O_NOFOLLOW` opens, `*at` stat/rename/unlink/mkdir/link.
5. Only regular files are opened for reading: FIFOs, sockets and devices are refused after
   an lstat, and again after the `O_NONBLOCK` open (fstat), so no open can block. The file
   opened must be the one that was checked (same device and inode).
6. Writes go to a temp file in the verified parent and are renamed over the target (atomic;
   a link planted at the target is replaced, never written through); new files use `O_EXCL`.
   The only writes made in place (appends, lock files) refuse a file with more than one name
   (hard links), whose other name may be outside.
7. Copies never follow links in the source or the destination: bytes are streamed between
   descriptors; a copied link is re-pointed (relative) at the same target when that target
   is inside the workspace, and refused when it would leave it.

Descriptors walked down from a verified directory descriptor with `O_NOFOLLOW` stay inside
by construction, which is what `subdir`, `listdir` and `read_at` offer to tree walkers.
Refusals raise `WorkspaceError` with a message that says what to do.
"""

from __future__ import annotations

import ctypes
import errno
import os
import secrets
import stat
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO

from kimi_mcp.config import root_refusal
from kimi_mcp.errors import WorkspaceError
from kimi_mcp.workspace_errors import kernel_errors, os_error

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
DIR_FLAGS = os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC
READ_FLAGS = os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _CLOEXEC
MAX_LINK_HOPS = 40
_COPY_CHUNK = 1 << 20

# openat2(2), Linux >= 5.6: one syscall walks a whole path with no symlink at all and never
# above the starting directory. Python has no wrapper; the syscall number is 437 on every
# architecture that uses the unified table.
_SYS_OPENAT2 = 437
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08
_STRICT = _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


class _Kernel:
    """openat2 and renameat2 through libc, probed once; absent pieces fall back."""

    def __init__(self) -> None:
        self.probed = False
        self.openat2: Callable[[int, str, int], int] | None = None
        self.renameat2: Callable[[int, str, int, str, int], int] | None = None

    def probe(self) -> None:
        if self.probed:
            return
        self.probed = True
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            syscall = libc.syscall
        except (OSError, AttributeError):
            return
        syscall.restype = ctypes.c_long
        syscall.argtypes = [
            ctypes.c_long, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t,
        ]
        hows: dict[int, _OpenHow] = {}

        def openat2(dir_fd: int, path: str, flags: int) -> int:
            how = hows.get(flags)
            if how is None:
                how = hows[flags] = _OpenHow(flags, 0, _STRICT)
            fd = int(syscall(_SYS_OPENAT2, dir_fd, os.fsencode(path), ctypes.addressof(how),
                             ctypes.sizeof(how)))
            if fd < 0:
                code = ctypes.get_errno()
                raise OSError(code, os.strerror(code), path)
            return fd

        try:
            probe_fd = os.open("/", DIR_FLAGS)
        except OSError:
            return
        try:
            os.close(openat2(probe_fd, ".", DIR_FLAGS))
            self.openat2 = openat2
        except OSError:
            self.openat2 = None  # ENOSYS (old kernel) or blocked by a seccomp filter
        finally:
            os.close(probe_fd)
        rename2 = getattr(libc, "renameat2", None)
        if rename2 is not None:

            def renameat2(src_fd: int, src: str, dst_fd: int, dst: str, flags: int) -> int:
                done = int(rename2(src_fd, os.fsencode(src), dst_fd, os.fsencode(dst), flags))
                if done != 0:
                    code = ctypes.get_errno()
                    raise OSError(code, os.strerror(code), dst)
                return done

            self.renameat2 = renameat2


KERNEL = _Kernel()
RENAME_NOREPLACE = 1


def inside(path: str, root: str) -> bool:
    """Separator-safe containment: `/ws` holds `/ws` and `/ws/a`, never `/ws-evil`."""
    if path == root:
        return True
    prefix = root if root.endswith(os.sep) else root + os.sep
    return path.startswith(prefix)


@dataclass(frozen=True)
class Root:
    real: str  # every symlink resolved
    forms: tuple[str, ...]  # the configured form and the real form (one entry when equal)


@dataclass
class Located:
    """Where a path lives: its parent's open descriptor and its final name.

    `name` is "" when the path is a root itself (then `dir_fd` is that root). `dir_fd` is
    None when a parent is missing (only with `missing_ok`). `path` is the canonical path:
    real root + components, every link inside resolved.
    """

    dir_fd: int | None
    name: str
    path: str


class _Redirect(Exception):
    def __init__(self, target: str) -> None:
        self.target = target


class Workspace:
    """The allowed roots, the path rules and every file operation; knows nothing of MCP."""

    def __init__(self, roots: Callable[[], Sequence[Path | str]]) -> None:
        self._roots_source = roots
        self._cache_key: tuple[str, ...] = ()
        self._roots: list[Root] = []
        self.umask = _umask()
        KERNEL.probe()

    # ---- roots ---------------------------------------------------------------------------

    def _all_roots(self) -> list[Root]:
        key = tuple(str(p) for p in self._roots_source())
        if key != self._cache_key:
            built = []
            for raw in key:
                given = os.path.normpath(os.path.abspath(os.path.expanduser(raw)))
                real = os.path.realpath(given)
                refusal = root_refusal(real)
                if refusal:
                    raise WorkspaceError(f"Access denied: {refusal}")
                built.append(Root(real, (given, real) if given != real else (real,)))
            self._roots, self._cache_key = built, key
        if not self._roots:
            raise WorkspaceError(
                "Access denied: no workspace root is configured; set [mcp] workspace or "
                "pass --workspace DIR"
            )
        return self._roots

    @property
    def roots(self) -> list[str]:
        """The allowed roots as real, absolute paths (re-read, so client roots take effect)."""
        return [root.real for root in self._all_roots()]

    @kernel_errors
    def is_inside(self, path: str) -> bool:
        """Lexical test: `path` (absolute, normalised) is under a root in either form."""
        return any(inside(path, form) for root in self._all_roots() for form in root.forms)

    @kernel_errors
    def display(self, path: str) -> str:
        """A path as a tool shows it: relative to the first root when inside it, else absolute."""
        first = self.roots[0]
        if path == first:
            return "."
        if inside(path, first):
            return path[len(first.rstrip(os.sep)) + 1 :]
        return path

    def _split(self, normal: str, raw: str, why: str = "") -> tuple[Root, list[str]]:
        best: tuple[int, Root, str] | None = None
        for root in self._all_roots():
            for form in root.forms:
                if inside(normal, form) and (best is None or len(form) > best[0]):
                    best = (len(form), root, form)
        if best is None:
            allowed = ", ".join(self.roots)
            raise WorkspaceError(
                f"Access denied: path outside the workspace: {raw}{why} "
                f"(allowed roots: {allowed}); give a path inside a root"
            )
        rest = normal[len(best[2]) :]
        return best[1], [part for part in rest.split(os.sep) if part]

    def _lexical(self, path: str) -> str:
        if not isinstance(path, str) or path.strip() == "":
            raise WorkspaceError("Access denied: empty path; give a path inside the workspace")
        if "\x00" in path:
            raise WorkspaceError(f"Access denied: path contains a null byte: {path!r}")
        expanded = os.path.expanduser(path)
        if not os.path.isabs(expanded):
            expanded = os.path.join(self._all_roots()[0].real, expanded)
        normal = os.path.normpath(expanded)
        if normal.startswith("//"):
            normal = "/" + normal.lstrip("/")
        self._split(normal, path)
        return normal

    # ---- the walk --------------------------------------------------------------------------

    @kernel_errors
    def locate(
        self, path: str, *, follow: bool = True, make_dirs: bool = False, missing_ok: bool = False
    ) -> Located:
        """Walk `path` below its root's descriptor (rules 1-3); the caller closes `dir_fd`.

        `follow`: resolve a final symlink too (only to a target inside). `make_dirs`: create
        missing parents. `missing_ok`: a missing parent is not an error (then `dir_fd` is None).
        """
        normal = self._lexical(path)
        for _ in range(MAX_LINK_HOPS):
            root, parts = self._split(normal, path)
            try:
                fd = os.open(root.real, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
            except OSError as exc:
                raise WorkspaceError(
                    f"The workspace root {root.real} cannot be opened "
                    f"({exc.strerror or type(exc).__name__}); check [mcp] workspace / --workspace"
                ) from None
            try:
                return self._descend(fd, root, parts, path, follow, make_dirs, missing_ok)
            except _Redirect as hop:
                normal = hop.target
        raise WorkspaceError(f"Refused: too many levels of symlinks in {path}")

    def _descend(
        self,
        fd: int,
        root: Root,
        parts: list[str],
        raw: str,
        follow: bool,
        make_dirs: bool,
        missing_ok: bool,
    ) -> Located:
        """Own `fd` (a root); return the parent of the last part, or raise (closing fds)."""
        if not parts:
            return Located(fd, "", root.real)
        done = 0
        try:
            if len(parts) > 1 and KERNEL.openat2 is not None:
                try:
                    fast = KERNEL.openat2(fd, os.sep.join(parts[:-1]), DIR_FLAGS)
                except OSError:
                    fast = -1  # a link, a missing part or not a directory: walk to learn which
                if fast >= 0:
                    os.close(fd)
                    fd, done = fast, len(parts) - 1
            while done < len(parts) - 1:
                name = parts[done]
                try:
                    child = os.open(name, DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno == errno.ENOENT and make_dirs:
                        _mkdir_at(fd, name)
                        continue
                    if exc.errno == errno.ENOENT and missing_ok:
                        os.close(fd)
                        return Located(None, parts[-1], os.path.join(root.real, *parts))
                    self._link_or_raise(fd, root, parts, done, raw, exc)
                    raise AssertionError("unreachable") from None
                os.close(fd)
                fd, done = child, done + 1
            last = parts[-1]
            if follow:
                try:
                    st = os.stat(last, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    st = None
                if st is not None and stat.S_ISLNK(st.st_mode):
                    self._link_or_raise(fd, root, parts, len(parts) - 1, raw, None)
            return Located(fd, last, os.path.join(root.real, *parts))
        except BaseException:
            os.close(fd)
            raise

    def _link_or_raise(
        self, fd: int, root: Root, parts: list[str], index: int, raw: str, exc: OSError | None
    ) -> None:
        """parts[index] could not be entered: follow it if it is a link inside, else explain."""
        name = parts[index]
        here = os.path.join(root.real, *parts[: index + 1])
        try:
            target = os.readlink(name, dir_fd=fd)
        except OSError:
            raise os_error(exc, self.display(here)) from None
        base = os.path.join(root.real, *parts[:index])
        joined = os.path.normpath(os.path.join(base, os.path.expanduser(target)))
        if joined.startswith("//"):
            joined = "/" + joined.lstrip("/")
        onward = os.path.join(joined, *parts[index + 1 :])
        if not self.is_inside(joined):
            raise WorkspaceError(
                f"Access denied: path outside the workspace: {raw} goes through a symlink "
                f"({self.display(here)} -> {target}) that points outside; refusing to follow it"
            )
        raise _Redirect(os.path.normpath(onward))

    @contextmanager
    @kernel_errors
    def at(self, path: str, *, follow: bool = True, make_dirs: bool = False) -> Iterator[Located]:
        """`locate`, closing the parent descriptor afterwards."""
        loc = self.locate(path, follow=follow, make_dirs=make_dirs)
        try:
            yield loc
        finally:
            if loc.dir_fd is not None:
                os.close(loc.dir_fd)

    # ---- names and metadata ----------------------------------------------------------------

    @kernel_errors
    def resolve(self, path: str) -> str:
        """The canonical path (links inside resolved) of `path`; refuses anything outside.

        The parent of a path that does not exist yet need not exist either.
        """
        loc = self.locate(path, follow=True, missing_ok=True)
        if loc.dir_fd is not None:
            os.close(loc.dir_fd)
        return loc.path

    @kernel_errors
    def resolve_entry(self, path: str) -> str:
        """The canonical path of a directory entry itself: a final symlink is not followed."""
        loc = self.locate(path, follow=False, missing_ok=True)
        if loc.dir_fd is not None:
            os.close(loc.dir_fd)
        return loc.path

    @kernel_errors
    def stat(self, path: str, *, follow: bool = True) -> os.stat_result:
        """stat (or lstat with follow=False) through the walk; raises WorkspaceError."""
        with self.at(path, follow=follow) as loc:
            return _stat_at(loc, self.display(loc.path))

    @kernel_errors
    def lstat_or_none(self, path: str) -> os.stat_result | None:
        """lstat of the entry itself, None when it does not exist."""
        try:
            loc = self.locate(path, follow=False, missing_ok=True)
        except WorkspaceError:
            raise
        try:
            if loc.dir_fd is None:
                return None
            if not loc.name:
                return os.fstat(loc.dir_fd)
            try:
                return os.stat(loc.name, dir_fd=loc.dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                return None
        finally:
            if loc.dir_fd is not None:
                os.close(loc.dir_fd)

    @kernel_errors
    def is_dir(self, path: str) -> bool:
        try:
            return stat.S_ISDIR(self.stat(path).st_mode)
        except WorkspaceError:
            return False

    @kernel_errors
    def readlink(self, path: str) -> str:
        with self.at(path, follow=False) as loc:
            if not loc.name or loc.dir_fd is None:
                raise WorkspaceError(f"Not a symlink: {self.display(loc.path)}")
            try:
                return os.readlink(loc.name, dir_fd=loc.dir_fd)
            except OSError as exc:
                raise os_error(exc, self.display(loc.path)) from None

    def cheap(self, *paths: str, limit: int = 1 << 20) -> bool:
        """True when every path is a regular file of at most `limit` bytes, or is refused
        at once: such calls run inline, others in a worker thread."""
        for path in paths:
            try:
                st = self.stat(path)
            except (WorkspaceError, OSError, ValueError):
                continue
            if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
                return False
        return True

    # ---- reading ---------------------------------------------------------------------------

    @kernel_errors
    def open_read(self, path: str) -> BinaryIO:
        """Open a regular file for reading (rules 3-5); the caller caps what it reads."""
        for _ in range(3):
            with self.at(path) as loc:
                shown = self.display(loc.path)
                if not loc.name:
                    raise WorkspaceError(f"Is a directory, not a file: {shown}")
                assert loc.dir_fd is not None
                got = read_at(loc.dir_fd, loc.name, shown)
                if got is not None:
                    return got
        raise WorkspaceError(f"Refused: {path} kept changing into a symlink; try again")

    @kernel_errors
    def read_capped(self, path: str, limit: int) -> bytes:
        """At most `limit` bytes of a regular file; longer files are refused, not cut."""
        with self.open_read(path) as handle:
            data = handle.read(limit + 1)
        if len(data) > limit:
            raise WorkspaceError(f"File too large: {path} is over {limit:,} bytes")
        return data

    @contextmanager
    @kernel_errors
    def open_dir(self, path: str) -> Iterator[int]:
        """A descriptor of the directory at `path` (a final link inside is followed)."""
        with self.at(path) as loc:
            assert loc.dir_fd is not None
            if not loc.name:
                fd = os.dup(loc.dir_fd)
            else:
                fd = subdir(loc.dir_fd, loc.name, self.display(loc.path))
        try:
            yield fd
        finally:
            os.close(fd)

    # ---- writing ---------------------------------------------------------------------------

    @kernel_errors
    def create_exclusive(self, path: str, data: bytes) -> None:
        """Create a new file with O_EXCL; refuse if anything (even a dangling link) is there."""
        with self.at(path, follow=False) as loc:
            dfd, name = self.writable(loc)
            try:
                fd = os.open(
                    name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o666,
                    dir_fd=dfd,
                )
            except FileExistsError:
                raise WorkspaceError(f"Already exists: {self.display(loc.path)}") from None
            except OSError as exc:
                raise os_error(exc, self.display(loc.path)) from None
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)

    @kernel_errors
    def write_atomic(self, path: str, data: bytes, *, durable: bool = False) -> None:
        """Replace (or create) a file through a temp file in its verified directory;
        `durable` fsyncs it before the rename."""
        with self.write_stream(path, durable=durable) as handle:
            handle.write(data)

    @contextmanager
    @kernel_errors
    def write_stream(
        self, path: str, *, exclusive: bool = False, make_dirs: bool = False,
        follow: bool = True, mtime_ns: tuple[int, int] | None = None, durable: bool = False,
    ) -> Iterator[BinaryIO]:
        """A temp file in the target's verified directory, renamed over the target on success.

        `exclusive`: the target must not exist (linked into place, which fails if it does).
        `follow`: a final symlink to a file inside is written through to that file; without
        it (and always for a link planted meanwhile) the link itself is replaced.
        `mtime_ns` sets (atime, mtime) of the new file.
        """
        with self.at(path, follow=follow and not exclusive, make_dirs=make_dirs) as loc:
            dfd, name = self.writable(loc)
            with replace_at(dfd, name, self.display(loc.path), self.umask,
                            exclusive=exclusive, mtime_ns=mtime_ns, durable=durable) as handle:
                yield handle

    @kernel_errors
    def append(self, path: str, data: bytes) -> None:
        """Append to an existing regular file (never through a symlink), or create it."""
        with self.at(path) as loc:
            dfd, name = self.writable(loc)
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW | _NONBLOCK | _CLOEXEC
            try:
                fd = os.open(name, flags, 0o666, dir_fd=dfd)
            except OSError as exc:
                raise os_error(exc, self.display(loc.path)) from None
            with os.fdopen(fd, "ab") as handle:
                _require_single_name(os.fstat(fd), self.display(loc.path), "append to")
                handle.write(data)

    @contextmanager
    @kernel_errors
    def open_update(self, path: str) -> Iterator[BinaryIO]:
        """A regular file opened read-write in place, created if missing (lock files)."""
        with self.at(path, make_dirs=True) as loc:
            dfd, name = self.writable(loc)
            flags = os.O_RDWR | os.O_CREAT | _NOFOLLOW | _NONBLOCK | _CLOEXEC
            try:
                fd = os.open(name, flags, 0o666, dir_fd=dfd)
            except OSError as exc:
                raise os_error(exc, self.display(loc.path)) from None
        handle = os.fdopen(fd, "r+b")
        try:
            _require_single_name(os.fstat(fd), self.display(loc.path), "update")
            yield handle
        finally:
            handle.close()

    @kernel_errors
    def makedirs(self, path: str) -> bool:
        """Create a directory and its parents (never through a link out); True if created."""
        with self.at(path, make_dirs=True) as loc:
            if not loc.name:
                return False
            assert loc.dir_fd is not None
            try:
                os.mkdir(loc.name, 0o777, dir_fd=loc.dir_fd)
                return True
            except FileExistsError:
                st = os.stat(loc.name, dir_fd=loc.dir_fd, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    return False
                raise WorkspaceError(
                    f"Exists and is not a directory: {self.display(loc.path)}"
                ) from None
            except OSError as exc:
                raise os_error(exc, self.display(loc.path)) from None

    def writable(self, loc: Located) -> tuple[int, str]:
        if loc.dir_fd is None:
            raise WorkspaceError(f"Parent directory does not exist: {self.display(loc.path)}")
        if not loc.name:
            raise WorkspaceError(f"Is a directory, not a file: {self.display(loc.path)}")
        return loc.dir_fd, loc.name


# ---- descriptor helpers for tree walkers (inside by construction) ----------------------------


def subdir(dir_fd: int, name: str, shown: str = "") -> int:
    """Open the directory `name` below `dir_fd`, never through a symlink."""
    try:
        return os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        raise os_error(exc, shown or name) from None


def listdir(dir_fd: int) -> list[os.DirEntry[str]]:
    """The entries of an open directory (`entry.stat()` works while `dir_fd` is open)."""
    with os.scandir(dir_fd) as it:
        return list(it)


def read_at(dir_fd: int, name: str, shown: str) -> BinaryIO | None:
    """Open the regular file `name` below `dir_fd` for reading (rule 5).

    None when it turned into a symlink meanwhile (the caller walks again).
    """
    try:
        before = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError as exc:
        raise os_error(exc, shown) from None
    if stat.S_ISLNK(before.st_mode):
        return None
    _require_regular(before, shown)
    try:
        fd = os.open(name, READ_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None
        raise os_error(exc, shown) from None
    after = os.fstat(fd)
    if not stat.S_ISREG(after.st_mode) or (after.st_dev, after.st_ino) != (
        before.st_dev,
        before.st_ino,
    ):
        os.close(fd)
        raise WorkspaceError(f"Refused: {shown} changed while it was being opened; try again")
    return os.fdopen(fd, "rb")


@contextmanager
def replace_at(
    dfd: int, name: str, shown: str, umask: int, *, exclusive: bool = False,
    mtime_ns: tuple[int, int] | None = None, durable: bool = False,
) -> Iterator[BinaryIO]:
    """A temp file beside `name` in the open directory `dfd`, renamed over it on success
    (linked into place with `exclusive`, which fails if anything is there). Rule 6."""
    mode = 0o666 & ~umask
    try:
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        st = None
    if st is not None:
        if exclusive:
            raise WorkspaceError(f"Already exists: {shown}")
        if stat.S_ISDIR(st.st_mode):
            raise WorkspaceError(f"Is a directory, not a file: {shown}")
        if stat.S_ISREG(st.st_mode):
            mode = stat.S_IMODE(st.st_mode)
    tmp = f".{name[:64]}.{secrets.token_hex(6)}.tmp"
    try:
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o600,
                     dir_fd=dfd)
    except OSError as exc:
        raise os_error(exc, shown) from None
    try:
        with os.fdopen(fd, "w+b") as handle:
            yield handle
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            if mtime_ns is not None:
                os.utime(handle.fileno(), ns=mtime_ns)
            if durable:
                os.fsync(handle.fileno())
        if exclusive:
            try:
                os.link(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd, follow_symlinks=False)
            except FileExistsError:
                raise WorkspaceError(f"Already exists: {shown}") from None
            _unlink_quietly(tmp, dfd)
        else:
            os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
    except BaseException:
        _unlink_quietly(tmp, dfd)
        raise


def close_fd(fd: int) -> None:
    os.close(fd)


def copy_stream(source: IO[bytes], target: IO[bytes]) -> int:
    total = 0
    while chunk := source.read(_COPY_CHUNK):
        target.write(chunk)
        total += len(chunk)
    return total


def _stat_at(loc: Located, shown: str) -> os.stat_result:
    if loc.dir_fd is None:
        raise WorkspaceError(f"Not found: {shown}")
    if not loc.name:
        return os.fstat(loc.dir_fd)
    try:
        return os.stat(loc.name, dir_fd=loc.dir_fd, follow_symlinks=False)
    except OSError as exc:
        raise os_error(exc, shown) from None


def kind_of(mode: int) -> str:
    """A file type in words, for refusals."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISLNK(mode):
        return "a symlink"
    return "not a regular file"


def _require_regular(st: os.stat_result, shown: str) -> None:
    if stat.S_ISREG(st.st_mode):
        return
    if stat.S_ISDIR(st.st_mode):
        raise WorkspaceError(f"Is a directory, not a file: {shown}")
    raise WorkspaceError(
        f"Refused: {shown} is {kind_of(st.st_mode)}, not a regular file; only regular files "
        "are opened (reading a pipe or device could block the server)"
    )


def _require_single_name(st: os.stat_result, shown: str, doing: str) -> None:
    """Rule 6 for the only writes made in place (appends, lock files): a regular file with
    one name. A hard link's other name may lie outside the workspace; every other write
    replaces the name through a rename, which leaves the other names' bytes alone."""
    _require_regular(st, shown)
    if st.st_nlink > 1:
        raise WorkspaceError(
            f"Refused: {shown} has {st.st_nlink} names (hard links), and another may be outside "
            f"the workspace; kimi-mcp does not {doing} it in place. Write the whole file instead "
            "(it replaces this name only), or remove the other links"
        )


def _mkdir_at(dir_fd: int, name: str) -> None:
    try:
        os.mkdir(name, 0o777, dir_fd=dir_fd)
    except FileExistsError:
        return


def _unlink_quietly(name: str, dir_fd: int) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return


def _umask() -> int:
    # Read-and-restore is the only portable way to learn the umask; done when the workspace
    # is built, before any tool thread runs.
    current = os.umask(0)
    os.umask(current)
    return current
