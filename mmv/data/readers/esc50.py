"""Layout ``esc50``: 2000 five-second environmental sound clips in 50 classes and 5 folds (:func:`read_esc50`)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from mmv.data.readers.common import absolute, clip_row, manifest_from_rows


def read_esc50(root: str | os.PathLike, test_fold: int | None = None) -> pd.DataFrame:
    """ESC-50: 2000 five-second environmental sound clips in 50 classes and 5 folds.

    Layout (the GitHub repository ``karolpiczak/ESC-50``)::

        root/meta/esc50.csv    # filename,fold,target,category,esc10,src_file,take
        root/audio/1-100032-A-0.wav ...

    ``audio_path`` = ``root/audio/<filename>``, ``label_class`` = category, ``label_target`` = target (0-49),
    ``fold`` = fold (1-5), extra column ``esc10`` (bool: part of the ESC-10 subset). ``clip_id`` is the file
    stem. The benchmark is 5-fold cross-validation over ``fold``: every row is ``train`` unless ``test_fold``
    is given, which puts that fold in ``test``. Rows whose file is missing are skipped and counted.
    """
    root = absolute(root)
    meta = root / "meta" / "esc50.csv"
    table = pd.read_csv(meta, dtype={"filename": str, "category": str}, keep_default_na=False)
    missing = {"filename", "fold", "target", "category"} - set(table.columns)
    if missing:
        raise ValueError(f"{meta}: missing column(s) {', '.join(sorted(missing))}")
    rows, skipped = [], 0
    for rec in table.to_dict("records"):
        path = root / "audio" / rec["filename"]
        if not path.is_file():
            skipped += 1
            continue
        fold = int(rec["fold"])
        esc10 = rec.get("esc10", False)
        rows.append(
            clip_row(
                Path(rec["filename"]).stem,
                "esc50",
                "test" if test_fold is not None and fold == int(test_fold) else "train",
                audio_path=str(path),
                fold=fold,
                label_class=rec["category"],
                label_target=int(rec["target"]),
                esc10=str(esc10).strip().lower() in ("true", "1"),
            )
        )
    return manifest_from_rows(rows, root, skipped, str(meta))
