"""The registry of layouts (mmv.data.readers.registry): dispatch by name."""

from __future__ import annotations

from pathlib import Path

import pytest
from layouts import esc50_layout, touch

from mmv.data.readers.registry import read_layout


def test_read_layout_dispatches(tmp_path: Path) -> None:
    esc = read_layout("esc50", esc50_layout(tmp_path / "esc"))
    assert len(esc) == 4 and set(esc["split"]) == {"train"} and esc["fold"].tolist() == [1, 1, 2, 5]
    touch(tmp_path / "pets", "cat/a.jpg", "dog/b.png")
    pets = read_layout("classes", tmp_path / "pets", modality="image")
    assert pets["label_class"].tolist() == ["cat", "dog"] and pets["image_path"].notna().all()
    with pytest.raises(ValueError, match="split-files folder"):
        read_layout("ucf101", tmp_path)
    with pytest.raises(ValueError, match="unknown dataset kind"):
        read_layout("kinetics", tmp_path)
