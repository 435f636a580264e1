"""The workspace: which paths a tool may touch, and how files are read and written safely.

Every path goes through `Workspace.resolve` (or `resolve_entry` for operations on a directory
entry itself, such as deleting a symlink). The rules, in order:

1. a null byte is refused;
2. `~` is expanded; a relative path is joined to the first root (never the process cwd);
3. the path is normalised and must lie inside a root by a separator-safe test
   (`/ws` admits `/ws/a`, never `/ws-evil`);
4. its real path (every symlink resolved; for a path that does not exist yet, the real path of
   its nearest existing parent plus the rest) must lie inside a root as well.

Reads open the real path with `O_NOFOLLOW` and check the opened descriptor again. Writes happen
relative to a verified directory descriptor: new files with `O_EXCL`, overwrites through a temp
file and an atomic `os.replace`, so a symlink planted after the check is replaced, never followed.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from kimi_mcp.errors import WorkspaceError

_PROC_FD = "/proc/self/fd"
_HAS_PROC = os.path.isdir(_PROC_FD)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def inside(path: str, root: str) -> bool:
    """Separator-safe containment: `/ws` holds `/ws` and `/ws/a`, never `/ws-evil`."""
    if path == root:
        return True
    prefix = root if root.endswith(os.sep) else root + os.sep
    return path.startswith(prefix)


class Workspace:
    """The allowed roots and the path rules; knows nothing of MCP."""

    def __init__(self, roots: Callable[[], Sequence[Path]]) -> None:
        self._roots_source = roots
        self._cache_key: tuple[str, ...] = ()
        self._cache: list[str] = []
        self._umask = _umask()

    # ---- roots ---------------------------------------------------------------------------

    @property
    def roots(self) -> list[str]:
        """The allowed roots as real, absolute paths (re-read, so client roots take effect)."""
        key = tuple(str(p) for p in self._roots_source())
        if key != self._cache_key:
            self._cache = [os.path.realpath(os.path.expanduser(p)) for p in key]
            self._cache_key = key
        if not self._cache:
            raise WorkspaceError("Access denied: no workspace root is configured")
        return self._cache

    def is_inside(self, path: str) -> bool:
        return any(inside(path, root) for root in self.roots)

    def display(self, path: str) -> str:
        """A path as a tool shows it: relative to the first root when inside it, else absolute."""
        first = self.roots[0]
        if path == first:
            return "."
        if inside(path, first):
            return path[len(first.rstrip(os.sep)) + 1 :]
        return path

    # ---- resolution ----------------------------------------------------------------------

    def _lexical(self, path: str) -> str:
        if not isinstance(path, str) or path == "":
            raise WorkspaceError("Access denied: empty path (give a path inside the workspace)")
        if "\x00" in path:
            raise WorkspaceError(f"Access denied: path contains a null byte: {path!r}")
        expanded = os.path.expanduser(path)
        if not os.path.isabs(expanded):
            expanded = os.path.join(self.roots[0], expanded)
        normal = os.path.normpath(expanded)
        if not self.is_inside(normal):
            raise WorkspaceError(
                f"Access denied: path outside the workspace: {path} "
                f"(allowed roots: {', '.join(self.roots)})"
            )
        return normal

    def resolve(self, path: str) -> str:
        """The checked real path for `path` (symlinks resolved); raise WorkspaceError if refused."""
        normal = self._lexical(path)
        real = os.path.realpath(normal)
        if not self.is_inside(real):
            raise WorkspaceError(
                f"Access denied: path outside the workspace: {path} resolves through a "
                f"symlink to {real}"
            )
        return real

    def resolve_entry(self, path: str) -> str:
        """The checked path of a directory entry itself: real parent + final name (not followed).

        Used to delete or move a symlink rather than what it points to.
        """
        normal = self._lexical(path)
        if normal in self.roots:
            return normal
        parent, name = os.path.split(normal)
        real_parent = os.path.realpath(parent)
        if not self.is_inside(real_parent):
            raise WorkspaceError(
                f"Access denied: path outside the workspace: {path} (its parent resolves to "
                f"{real_parent})"
            )
        return os.path.join(real_parent, name)

    def cheap(self, *paths: str, limit: int = 1 << 20) -> bool:
        """True when every path is a file of at most `limit` bytes, or cannot be resolved at
        all (then the refusal is quick): such calls run inline, others in a worker thread."""
        for path in paths:
            try:
                st = os.stat(self.resolve(path))
            except (WorkspaceError, OSError, ValueError):
                continue
            if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
                return False
        return True

    def require_inside(self, real: str, what: str) -> None:
        if not self.is_inside(os.path.realpath(real)):
            raise WorkspaceError(f"Access denied: {what} resolves outside the workspace: {real}")

    # ---- descriptors ---------------------------------------------------------------------

    def _check_fd(self, fd: int, shown: str) -> None:
        if not _HAS_PROC:
            return
        try:
            actual = os.readlink(f"{_PROC_FD}/{fd}")
        except OSError:
            return
        if not self.is_inside(actual):
            os.close(fd)
            raise WorkspaceError(
                f"Access denied: {shown} changed after the check and now points outside "
                f"the workspace ({actual})"
            )

    def open_read(self, real: str) -> BinaryIO:
        """Open a checked real path for reading without following a late-planted symlink."""
        try:
            fd = os.open(real, os.O_RDONLY | _NOFOLLOW | _CLOEXEC)
        except OSError as exc:
            raise _os_error(exc, real) from None
        self._check_fd(fd, real)
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            os.close(fd)
            raise WorkspaceError(f"Is a directory, not a file: {self.display(real)}")
        return os.fdopen(fd, "rb")

    @contextmanager
    def _dir_fd(self, directory: str) -> Iterator[int]:
        try:
            fd = os.open(directory, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC)
        except OSError as exc:
            raise _os_error(exc, directory) from None
        self._check_fd(fd, directory)
        try:
            yield fd
        finally:
            os.close(fd)

    def create_exclusive(self, real: str, data: bytes) -> None:
        """Create a new file with O_EXCL; refuse if anything (even a dangling link) is there."""
        directory, name = os.path.split(real)
        with self._dir_fd(directory) as dfd:
            try:
                fd = os.open(
                    name,
                    os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC,
                    0o666,
                    dir_fd=dfd,
                )
            except FileExistsError:
                raise WorkspaceError(f"Already exists: {self.display(real)}") from None
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)

    def write_atomic(self, real: str, data: bytes) -> None:
        """Replace (or create) a file through a temp file in the same directory + os.replace."""
        with self.write_stream(real) as handle:
            handle.write(data)

    @contextmanager
    def write_stream(self, real: str, *, exclusive: bool = False) -> Iterator[BinaryIO]:
        """A temp file in the target's verified directory, renamed over the target on success.

        `exclusive`: the target must not exist (linked into place, which fails if it does).
        A symlink planted at the target in the meantime is replaced, never followed.
        """
        directory, name = os.path.split(real)
        with self._dir_fd(directory) as dfd:
            mode = 0o666
            try:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                if exclusive:
                    raise WorkspaceError(f"Already exists: {self.display(real)}")
                if stat.S_ISDIR(st.st_mode):
                    raise WorkspaceError(f"Is a directory, not a file: {self.display(real)}")
                if stat.S_ISREG(st.st_mode):
                    mode = stat.S_IMODE(st.st_mode)
            except FileNotFoundError:
                pass
            tmp = f".{name[:64]}.{secrets.token_hex(6)}.tmp"
            flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
            fd = os.open(tmp, flags, 0o600, dir_fd=dfd)
            try:
                with os.fdopen(fd, "w+b") as handle:
                    yield handle
                    os.fchmod(handle.fileno(), mode & ~self._umask)
                if exclusive:
                    try:
                        os.link(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd, follow_symlinks=False)
                    except FileExistsError:
                        raise WorkspaceError(f"Already exists: {self.display(real)}") from None
                    _silent_unlink(tmp, dfd)
                else:
                    os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
            except BaseException:
                _silent_unlink(tmp, dfd)
                raise

    def append(self, real: str, data: bytes) -> None:
        """Append to an existing regular file (never through a symlink), or create it."""
        directory, name = os.path.split(real)
        with self._dir_fd(directory) as dfd:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW | _CLOEXEC
            try:
                fd = os.open(name, flags, 0o666, dir_fd=dfd)
            except OSError as exc:
                raise _os_error(exc, real) from None
            with os.fdopen(fd, "ab") as handle:
                handle.write(data)

    def makedirs(self, real: str) -> bool:
        """Create a directory and its parents; True if it was created."""
        if os.path.isdir(real):
            return False
        self.require_inside(real, "the new directory")
        try:
            os.makedirs(real)
        except FileExistsError:
            raise WorkspaceError(f"Exists and is not a directory: {self.display(real)}") from None
        self.require_inside(real, "the new directory")
        return True


def _umask() -> int:
    # Read-and-restore is the only portable way to learn the umask; done once, when the
    # workspace is built, before any tool thread runs.
    current = os.umask(0)
    os.umask(current)
    return current


def _silent_unlink(name: str, dir_fd: int) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return


def _os_error(exc: OSError, path: str) -> WorkspaceError:
    if isinstance(exc, FileNotFoundError):
        return WorkspaceError(f"Not found: {path}")
    if exc.errno == errno.ELOOP:
        return WorkspaceError(
            f"Access denied: {path} became a symlink after the check; refusing to follow it"
        )
    if isinstance(exc, PermissionError):
        return WorkspaceError(f"Permission denied by the operating system: {path}")
    return WorkspaceError(f"{exc.strerror or exc}: {path}")
