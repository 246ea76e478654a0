"""The text tower: word vectors -> Linear -> ReLU -> max over words (``shared/mmv_spec.md`` section 2.4).

The original looks up frozen 300-d word2vec vectors (gradient stopped), applies a kernel-1 1-D conv
(a Linear 300 -> 2048 with bias on every word), a ReLU and a max over the word axis.

The original does not mask padding, so a padded word (whose vector is whatever row 0 holds) takes part in
the max. Models trained here mask it by default: padded positions (id 0) are set to ``-inf`` before the max,
so a padding word can never win it, and a sentence made only of padding (an empty caption, or a padding
sentence of a ragged bag) gives the zero vector. ``TextConfig.pool_padding=True`` restores the original's
max over every position, which the released checkpoints need (``mmv.official``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmv.config import TextConfig
from mmv.models.layers import haiku_init_
from mmv.tokenizer import PAD_ID


class TextTower(nn.Module):
    """Token ids ``[B, L]`` or ``[B, K, L]`` -> sentence features ``[B, d_t]`` or ``[B, K, d_t]``.

    Args:
        cfg: the :class:`~mmv.config.TextConfig` (``word_dim``, ``sentence_dim``, ``vocab_size``,
            ``freeze_word_vectors``).
        vectors: optional pretrained ``[V, word_dim]`` table; then ``V`` replaces ``cfg.vocab_size``.
            Without it the table is drawn from N(0, 1) with the ``<pad>`` row zero.

    Attributes:
        output_dim: d_t = ``cfg.sentence_dim``.
        vocab_size: rows of the word table.
        frozen: the table is excluded from gradients (``cfg.freeze_word_vectors``). The lookup then
            reads a detached table, so even a later ``requires_grad_(True)`` on the whole model cannot
            leak a gradient into it.
    """

    def __init__(self, cfg: TextConfig, vectors: torch.Tensor | np.ndarray | None = None) -> None:
        super().__init__()
        if vectors is not None:
            table = torch.as_tensor(np.asarray(vectors) if not isinstance(vectors, torch.Tensor) else vectors)
            if table.dim() != 2:
                raise ValueError(f"vectors: expected a [V, word_dim] table, got shape {tuple(table.shape)}")
            if table.shape[1] != cfg.word_dim:
                raise ValueError(
                    f"TextConfig.word_dim: is {cfg.word_dim} but the word vectors are {table.shape[1]}-d "
                    f"(shape {tuple(table.shape)})"
                )
            if table.shape[0] < 2:
                raise ValueError(f"vectors: need at least <pad> and <unk> rows, got shape {tuple(table.shape)}")
            self.vocab_size = int(table.shape[0])
        else:
            table = None
            self.vocab_size = cfg.vocab_size
        self.word_dim = cfg.word_dim
        self.output_dim = cfg.sentence_dim
        self.frozen = bool(cfg.freeze_word_vectors)
        self.pool_padding = bool(cfg.pool_padding)

        self.embedding = nn.Embedding(self.vocab_size, cfg.word_dim, padding_idx=PAD_ID)
        with torch.no_grad():
            if table is not None:
                self.embedding.weight.copy_(table.to(torch.float32))
            else:
                nn.init.normal_(self.embedding.weight, 0.0, 1.0)
                self.embedding.weight[PAD_ID].zero_()
        self.embedding.weight.requires_grad_(not self.frozen)

        self.linear = nn.Linear(cfg.word_dim, cfg.sentence_dim)
        haiku_init_(self.linear)

    def embed_words(self, ids: torch.Tensor) -> torch.Tensor:
        """Word vectors of ``ids`` (``[..., L]`` -> ``[..., L, word_dim]``), detached when frozen."""
        if self.frozen:
            return F.embedding(ids, self.embedding.weight.detach(), padding_idx=PAD_ID)
        return self.embedding(ids)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Encodes sentences.

        Args:
            ids: integer tensor ``[B, L]`` or ``[B, K, L]`` of word ids, 0 = padding.

        Returns:
            ``[B, output_dim]`` or ``[B, K, output_dim]``; all-padding sentences give zeros unless
            ``pool_padding`` (then every position, padding included, takes part in the max).
        """
        if ids.dim() not in (2, 3):
            raise ValueError(f"ids: expected [B, L] or [B, K, L], got shape {tuple(ids.shape)}")
        if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
            raise ValueError(f"ids: expected an integer tensor, got {ids.dtype}")
        words = self.embed_words(ids)  # [..., L, word_dim]
        hidden = F.relu(self.linear(words))  # [..., L, d_t]
        if self.pool_padding:
            return hidden.amax(dim=-2)
        valid = (ids != PAD_ID).unsqueeze(-1)  # [..., L, 1]
        pooled = hidden.masked_fill(~valid, float("-inf")).amax(dim=-2)  # [..., d_t]
        return torch.where(valid.any(dim=-2), pooled, torch.zeros_like(pooled))
