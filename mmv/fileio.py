"""Atomic writes: a reader never sees half a file, a failure leaves nothing behind.

Every writer in the project (manifests, media, the audio cache, checkpoints) goes through these two
context managers: the data is written under a temporary name beside the target, then renamed into
place with ``os.replace`` (atomic on POSIX within one file system). ``tempfile`` creates its files with
mode 0600 (directories 0700); the result is given the permissions an ordinary ``open()`` would have
given it under the current umask, so generated data stays readable by the other users of a machine.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; on success it replaces ``path``, on failure it is removed.

    Example::

        with atomic_file("out/manifest.parquet") as tmp:
            df.to_parquet(tmp)
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yields a temporary directory beside ``path``; on success it replaces the directory ``path``.

    An existing ``path`` is moved aside first and deleted after the new one is in place, so at every
    moment either the old or the new directory is complete.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
