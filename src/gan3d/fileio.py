"""Atomic writes: every output file is written to a temporary name beside it and renamed into place,
so an interrupted or failed write never leaves a half-written file under the final name.

An output place that cannot be written (an existing folder where a file is meant, a path under a
file, a read-only folder, a full disk) is one :class:`gan3d.errors.Gan3dError` naming the path and
the reason, raised by :func:`atomic_path` and :func:`make_dirs`, so every writer reports it the same way.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path
from typing import Iterator

from gan3d.errors import Gan3dError

_REASONS = {
    errno.EEXIST: "a file is in the way (an existing file where a folder is meant)",
    errno.ENOTDIR: "a file is in the way (the path goes through a file, not a folder)",
    errno.EISDIR: "is an existing folder, not a file",
    errno.EACCES: "not writable (permission denied)",
    errno.EPERM: "not writable (operation not permitted)",
    errno.EROFS: "not writable (read-only file system)",
    errno.ENOSPC: "cannot write: no space left on the device (disk full)",
    errno.EDQUOT: "cannot write: disk quota exceeded",
    errno.ENAMETOOLONG: "file name too long",
}


def os_error(e: OSError, path: str | os.PathLike) -> Gan3dError:
    """One Gan3dError for an OSError met while writing ``path``: the path and the reason in words."""
    reason = _REASONS.get(e.errno or -1) or f"cannot write ({e.strerror or type(e).__name__})"
    return Gan3dError(reason, path)


def check_output(path: str | os.PathLike, *, folder: bool = False) -> Path:
    """Check, before any work, that ``path`` can become an output file (``folder``: a folder): it is
    not an existing folder (file), and no file stands where one of its parent folders should be."""
    path = Path(path)
    if path.exists() and path.is_dir() != folder:
        raise Gan3dError(_REASONS[errno.EEXIST] if folder else _REASONS[errno.EISDIR], path)
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise Gan3dError(_REASONS[errno.ENOTDIR], path)
            break
    return path


def make_dirs(path: str | os.PathLike) -> Path:
    """``mkdir -p path``; a path under a file, a file in the way or a read-only parent is one
    Gan3dError naming the folder."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise Gan3dError(_REASONS[errno.EEXIST], path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise os_error(e, path) from None
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the same directory as ``path``; on success rename it to ``path``.

    On any exception the temporary file is removed and ``path`` is left as it was. An output place
    that cannot be written, or a full disk while writing, is a Gan3dError naming ``path``.
    The temporary name keeps the final suffix, so writers that choose a format by suffix still work.
    """
    path = Path(path)
    if path.is_dir():
        raise Gan3dError(_REASONS[errno.EISDIR], path)
    make_dirs(path.parent)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
        os.close(fd)
    except OSError as e:
        raise os_error(e, path) from None
    tmp = Path(tmp_name)
    try:
        try:
            yield tmp
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file ordinary permissions
            os.replace(tmp, path)
        except OSError as e:
            if e.errno not in _REASONS:  # not about the output place: the caller's own error
                raise
            raise os_error(e, path) from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb"):
    """Open a temporary file for writing; it replaces ``path`` only when the block ends without error."""
    with atomic_path(path) as tmp:
        with open(tmp, mode) as f:
            yield f


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
