"""The embedding bank: every clip of a manifest embedded in every space of a model, searchable and mapped.

::

    from mmv.bank import Bank, BankOptions, build_bank
    options = BankOptions(num_windows=2, checkpoint_path=ckpt)   # what to embed and write; recorded whole
    bank = build_bank(model, "models/mine.parquet", "models/mine/bank", options)
    bank = Bank.load("models/mine/bank")                         # fast: no model, no UMAP
    scores, rows = bank.search("vat", "video", text_vectors, k=10)
    bank.meta.loc[rows[0], ["clip_id", "narration"]]
    bank.coords("vat")                                           # row, clip_id, modality, x, y
    bank.project("vat", new_vectors)                             # [Q, 2] on the stored map (approximate)

Modules: :mod:`mmv.bank.options` (:class:`BankOptions`: what a build reads, and what its provenance records),
:mod:`mmv.bank.build` (a model and a manifest -> vectors and metadata; clip descriptions through the caller's
``describe`` hook), :mod:`mmv.bank.write` (vectors -> a bank directory, with provenance), :mod:`mmv.bank.store`
(the directory layout and :class:`Bank`), :mod:`mmv.bank.index` (faiss: exact / IVF with measured recall),
:mod:`mmv.bank.project` (UMAP maps and placing new points without pickles), :mod:`mmv.bank.previews`
(thumbnails and previews). The format is documented in ``docs/formats.md`` ("Embedding bank").
"""

from typing import Any

from mmv.bank.store import Bank, BankError

__all__ = ["NARRATION_CAPTIONS", "Bank", "BankError", "BankOptions", "Describe", "build_bank", "write_bank"]

_LAZY = {
    "NARRATION_CAPTIONS": "build",
    "BankOptions": "options",
    "Describe": "build",
    "build_bank": "build",
    "write_bank": "write",
}


def __getattr__(name: str) -> Any:
    # Building imports torch; loading does not. The app's first page only loads a bank, so the builders are
    # imported on first use (about 1.5 s of CPU less before the first page on 2 cores).
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"mmv.bank.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'mmv.bank' has no attribute {name!r}")
