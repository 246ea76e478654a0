"""Layout ``toyworld``: the synthetic set ``python -m training.make_toyworld`` writes, a manifest already in
the schema (:func:`read_toyworld`)."""

from __future__ import annotations

import logging
import os

import pandas as pd

from mmv.data.manifest import PATH_COLUMNS, load_manifest
from mmv.data.readers.common import absolute

logger = logging.getLogger(__name__)


def _drop_missing(df: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    present = [all(p is None or os.path.exists(p) for p in paths) for paths in zip(*(df[c] for c in PATH_COLUMNS))]
    keep = pd.Series(present, index=df.index, dtype=bool)
    return df[keep].reset_index(drop=True), int((~keep).sum())


def read_toyworld(root: str | os.PathLike) -> pd.DataFrame:
    """The synthetic ToyWorld set: ``root/manifest.parquet``, already in the manifest schema.

    Layout::

        root/
          manifest.parquet      # paths relative to root, e.g. clips/000123.mp4
          clips/000123.mp4 ...

    ``root`` may also be the manifest file itself. Rows whose files are missing are dropped and counted.
    """
    root = absolute(root)
    path = root if root.suffix.lower() in (".parquet", ".csv") else root / "manifest.parquet"
    df = load_manifest(path)
    attrs = dict(df.attrs)
    df, skipped = _drop_missing(df)
    df.attrs.update(attrs)
    df.attrs["skipped"] = skipped
    if skipped:
        logger.warning("%s: skipped %d entries whose media file is missing", path, skipped)
    return df
