"""Dataset layouts on disk, shared by the reader and prepare-CLI tests (placeholder files: readers never decode)."""

from __future__ import annotations

from pathlib import Path


def touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\0")


ESC50_META = """\
filename,fold,target,category,esc10,src_file,take
1-100032-A-0.wav,1,0,dog,True,100032,A
1-100038-A-14.wav,1,14,chirping_birds,False,100038,A
2-100648-A-43.wav,2,43,chainsaw,False,100648,A
5-103415-A-2.wav,5,2,pig,False,103415,A
5-9032-A-0.wav,5,0,dog,True,9032,A
"""


def esc50_layout(root: Path) -> Path:
    """An ESC-50 checkout (meta CSV + audio/) with one listed file missing."""
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "esc50.csv").write_text(ESC50_META, encoding="utf-8")
    touch(root / "audio", "1-100032-A-0.wav", "1-100038-A-14.wav", "2-100648-A-43.wav", "5-9032-A-0.wav")
    return root
