"""Atomic writes: nothing partial is ever visible, and results get ordinary permissions."""

from __future__ import annotations

import os
import stat

import pytest

from mmv.fileio import atomic_dir, atomic_file


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_file_replaces_on_success_with_umask_permissions(tmp_path):
    target = tmp_path / "sub" / "data.txt"
    old = os.umask(0o022)
    try:
        with atomic_file(target) as tmp:
            tmp.write_text("new")
            assert not target.exists()  # nothing visible before the rename
    finally:
        os.umask(old)
    assert target.read_text() == "new"
    assert _mode(target) == 0o644  # not tempfile's 0600
    assert sorted(p.name for p in target.parent.iterdir()) == ["data.txt"]


def test_atomic_file_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "data.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_file(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer died")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.txt"]


def test_atomic_dir_swaps_whole_directories(tmp_path):
    target = tmp_path / "ckpt"
    old = os.umask(0o022)
    try:
        with atomic_dir(target) as tmp:
            (tmp / "a").write_text("1")
        assert _mode(target) == 0o755
        with atomic_dir(target) as tmp:
            (tmp / "b").write_text("2")
    finally:
        os.umask(old)
    assert sorted(p.name for p in target.iterdir()) == ["b"]
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "c").write_text("3")
        raise RuntimeError("writer died")
    assert sorted(p.name for p in target.iterdir()) == ["b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
