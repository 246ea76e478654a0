"""Projection heads: a backbone representation -> an embedding in a shared space.

One module covers the paper's modes (spec section 3.1), configured by a :class:`~mmv.config.HeadConfig`:

* ``linear``: ``Linear(d)`` with bias;
* ``mlp@h1[@h2...]``: for each hidden width ``Linear(h, bias) -> BN -> ReLU``, then ``Linear(d)``;
  ``mlp_nobn@...`` drops the inner BN;
* ``bn_after``: one more BatchNorm on the output; the final Linear then has no bias (BN's offset
  replaces it), as in the original.

Heads only project: no normalisation to unit length (the losses and the bank do that).
"""

from __future__ import annotations

import torch
from torch import nn

from mmv.config import HeadConfig, NormConfig
from mmv.models.layers import batch_norm, haiku_init_


class ProjectionHead(nn.Module):
    """``[..., in_dim]`` -> ``[..., cfg.dim]`` (leading dims are flattened for BatchNorm and restored).

    Args:
        in_dim: width of the input representation.
        cfg: mode, output dim and output BN.
        norm: BatchNorm momentum / eps.
    """

    def __init__(self, in_dim: int, cfg: HeadConfig, norm: NormConfig) -> None:
        super().__init__()
        kind, *hidden = cfg.mode.split("@")
        layers: list[nn.Module] = []
        width = in_dim
        for h in map(int, hidden):
            layers.append(nn.Linear(width, h, bias=True))
            if kind == "mlp":
                layers.append(batch_norm(h, 0, norm))
            layers.append(nn.ReLU(inplace=True))
            width = h
        layers.append(nn.Linear(width, cfg.dim, bias=not cfg.bn_after))
        if cfg.bn_after:
            layers.append(batch_norm(cfg.dim, 0, norm))
        self.net = nn.Sequential(*layers)
        self.in_dim, self.out_dim, self.mode = in_dim, cfg.dim, cfg.mode
        haiku_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        return self.net(x.reshape(-1, x.shape[-1])).reshape(*lead, self.out_dim)

    def extra_repr(self) -> str:
        return f"{self.in_dim} -> {self.out_dim}, mode={self.mode!r}"


class FacActivation(nn.Module):
    """What sits between S_va and the va->vat head in the FAC graphs: nothing, ReLU, or BN then ReLU.

    ``fac_relu`` is the released models' choice. With ``fac_bnrelu`` the same BN module serves video in
    training and audio at evaluation, as in the original.
    """

    def __init__(self, kind: str, dim: int, norm: NormConfig) -> None:
        super().__init__()
        self.kind = kind
        self.bn = batch_norm(dim, 0, norm) if kind == "bnrelu" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bn is not None:
            lead = x.shape[:-1]
            x = self.bn(x.reshape(-1, x.shape[-1])).reshape(*lead, x.shape[-1])
        return torch.relu(x) if self.kind in ("relu", "bnrelu") else x

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}"
