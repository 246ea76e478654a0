"""Copies the part of ``shared/official_parity`` the parity tests need into this folder (run once, from the repo root).

    python tests/data/official_parity/make_subset.py ../shared/official_parity

For every model: ``<model>.json.gz`` (the model description and every official leaf: name, collection, shape,
dtype, crc32) and ``<model>.npz`` (the inputs, the float64 outputs of the endpoints in ``KEEP`` and every stored
float32 output among them). The kept endpoints are the late ones and the pooled outputs: any slip in an earlier
layer reaches them, and they keep the folder at about 5 MB instead of 25 MB.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import numpy as np

KEEP = {
    "s3d": ("Mixed_4f", "Mixed_5c", "Embeddings"),
    "s3d_s2d": ("Mixed_4f", "Mixed_5c", "Embeddings"),
    "tsm": ("last_conv", "Embeddings"),
    "tsm_x2": ("tsm_resnet_unit_3", "last_conv", "Embeddings"),
    "audio": ("resnet_unit_3", "last_conv", "output"),
}
FAC = ("fac_s3d", "fac_tsm")


def main(source: Path, target: Path) -> None:
    for model in (*KEEP, *FAC):
        meta = json.loads((source / f"{model}.json").read_text())
        ref = np.load(source / f"{model}.npz")
        keep = KEEP.get(model) or tuple(o["name"] for o in meta["outputs"])
        arrays = {k: ref[k] for k in ref.files if k.startswith("in:")}
        for name in keep:
            arrays[f"out64:{name}"] = ref[f"out64:{name}"]
            if f"out32:{name}" in ref.files:
                arrays[f"out32:{name}"] = ref[f"out32:{name}"]
        np.savez_compressed(target / f"{model}.npz", **arrays)
        meta["outputs"] = [o for o in meta["outputs"] if o["name"] in keep]
        with gzip.open(target / f"{model}.json.gz", "wt", encoding="utf-8") as f:
            json.dump(meta, f, separators=(",", ":"))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(__file__).resolve().parent)
