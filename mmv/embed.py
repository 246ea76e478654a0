"""What every consumer of a trained model shares when it embeds: eval mode for a block, sentences -> S_vat.

The bank, the evaluation, deflation's comparisons and the app all embed outside training. Each needs BatchNorm's
running statistics (eval mode) without leaving the model in a different mode than it found it, and the text ones
need the same "sentence -> unit S_vat vector" step; both live here once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from mmv.models.mmv import MMV
    from mmv.tokenizer import Vocabulary


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Puts ``module`` in eval mode for the block and restores its previous mode after, even on an error."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


@torch.no_grad()
def embed_sentences(
    model: MMV, sentences: Sequence[str], vocab: Vocabulary | None = None, space: str = "vat"
) -> torch.Tensor:
    """Unit-length text embeddings ``[len(sentences), D]`` (float32, on the CPU) in ``space``.

    Args:
        model: a model with a text tower.
        sentences: plain sentences, tokenized with the model's text settings (``max_words``, stop words).
        vocab: the vocabulary to tokenize with (default: the model's own).
        space: the text output to take (``'vat'``; ``'at'`` for the disjoint graph's audio-text space).

    The normalisation runs in float64, so a vector is the same whichever consumer asked for it.
    """
    vocab = vocab if vocab is not None else model.vocab
    if vocab is None:
        raise ValueError("embed_sentences: the model has no vocabulary and none was given")
    cfg = model.config.text
    device = next(model.text.parameters()).device
    ids = vocab.encode_batch(list(sentences), cfg.max_words, cfg.remove_stop_words).to(device)
    with eval_mode(model):
        emb = model.encode_text(ids)[space]
    return F.normalize(emb.detach().to("cpu", torch.float64), dim=-1).to(torch.float32)
