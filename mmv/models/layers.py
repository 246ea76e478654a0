"""Building blocks shared by the backbones: TF-style SAME convs and pools, BatchNorm, Haiku init.

Why SAME padding by hand: the original is written in Haiku, where ``padding='SAME'`` pads
``max(k - s, 0)`` in total for an input divisible by the stride, with the extra cell at the *end*
(7x7 stride 2 on 224 pads (2, 3)). PyTorch's symmetric ``padding=k // 2`` gives the same output sizes
but a shifted sampling grid. :func:`same_pads` reproduces TF exactly, for any input size, so shapes,
weights and deflation arithmetic follow the original. Padded max-pool cells act as ``-inf``.

All modules here work on channels-first tensors (``[B, C, T, H, W]`` / ``[B, C, H, W]``); backbones
convert from the project's channels-last ``[B, T, H, W, 3]`` once at their entry.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mmv.config import SPATIAL_POOLS, NormConfig


def same_pads(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TF ``SAME`` padding ``(before, after)`` along one axis of length ``size``."""
    effective = (kernel - 1) * dilation + 1
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def _pad_list(spatial: Sequence[int], kernel: Sequence[int], stride: Sequence[int]) -> list[int]:
    # F.pad takes the last axis first: (w_lo, w_hi, h_lo, h_hi, t_lo, t_hi).
    pads: list[int] = []
    for size, k, s in reversed(list(zip(spatial, kernel, stride))):
        pads.extend(same_pads(size, k, s))
    return pads


def _tuple(value: int | Sequence[int], n: int) -> tuple[int, ...]:
    return (value,) * n if isinstance(value, int) else tuple(value)


class ConvSame(nn.Module):
    """A bias-free (by default) N-d convolution with TF SAME padding, N = 2 or 3.

    When the padding does not depend on the input size (stride 1 everywhere, odd kernels) it is
    handed to the convolution itself; otherwise it is computed per call from the input shape.

    Shape:
        ``[B, C_in, *spatial]`` -> ``[B, C_out, *ceil(spatial / stride)]``
    """

    def __init__(
        self,
        dims: int,
        in_channels: int,
        out_channels: int,
        kernel: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        bias: bool = False,
    ) -> None:
        super().__init__()
        self.dims = dims
        self.kernel = _tuple(kernel, dims)
        self.stride = _tuple(stride, dims)
        static = all(s == 1 and k % 2 == 1 for k, s in zip(self.kernel, self.stride))
        self.static_padding = static
        conv = nn.Conv3d if dims == 3 else nn.Conv2d
        self.conv = conv(
            in_channels,
            out_channels,
            self.kernel,
            self.stride,
            padding=tuple(k // 2 for k in self.kernel) if static else 0,
            bias=bias,
        )

    @property
    def weight(self) -> nn.Parameter:
        return self.conv.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.static_padding:
            x = F.pad(x, _pad_list(x.shape[2:], self.kernel, self.stride))
        return self.conv(x)


class MaxPoolSame(nn.Module):
    """N-d max-pool with TF SAME padding; padded cells are ``-inf`` so they never win.

    Shape:
        ``[B, C, *spatial]`` -> ``[B, C, *ceil(spatial / stride)]``
    """

    def __init__(self, dims: int, kernel: int | Sequence[int], stride: int | Sequence[int]) -> None:
        super().__init__()
        self.dims = dims
        self.kernel = _tuple(kernel, dims)
        self.stride = _tuple(stride, dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, _pad_list(x.shape[2:], self.kernel, self.stride), value=float("-inf"))
        pool = F.max_pool3d if self.dims == 3 else F.max_pool2d
        return pool(x, self.kernel, self.stride)

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, stride={self.stride}"


def batch_norm(channels: int, dims: int, norm: NormConfig) -> nn.Module:
    """BatchNorm over ``[B, C, ...]`` with the model's momentum/eps (``dims`` = spatial dims: 0, 2, 3)."""
    cls = {0: nn.BatchNorm1d, 1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[dims]
    return cls(channels, eps=norm.eps, momentum=norm.momentum)


def center_colours(x: torch.Tensor) -> torch.Tensor:
    """Subtracts each example's mean colour (``VideoConfig.input_centering``).

    ``x`` is channels-last ``[B, ..., C]`` with ``C`` a multiple of 3: RGB, or RGB folded by space-to-depth, whose
    channel ``c`` holds colour ``c % 3`` (:func:`mmv.models.s3d.space_to_depth`). The mean of each colour is taken
    over every position (and every folded offset) of the example, so a clip ``[B, T, H, W, 3]`` loses its mean
    over T, H and W and an image ``[B, H, W, 3]`` its mean over H and W; a static clip and its frame lose the
    same values. Why: the toy world's grey backgrounds vary from clip to clip far more than a small object's
    edges, and without this the first layers spend hundreds of steps learning to ignore the background level.
    """
    if x.shape[-1] % 3:
        raise ValueError(f"center_colours expects RGB channels (a multiple of 3), got shape {tuple(x.shape)}")
    grouped = x.unflatten(-1, (-1, 3))  # [B, ..., C/3, 3]
    mean = grouped.mean(dim=tuple(range(1, grouped.dim() - 1)), keepdim=True)
    return (grouped - mean).flatten(-2)


def spatial_pool(x: torch.Tensor, mode: str) -> torch.Tensor:
    """``[B, C, H, W]`` -> ``[B, C]``: the mean (the original's) or the max over space (``VideoConfig.spatial_pool``).

    The max keeps a small object's response whole instead of averaging it with the background; on the toy world
    it halves the steps a video network needs before it separates shapes (``docs/results.md``, "Demo model").
    """
    if mode == "mean":
        return x.mean(dim=(-2, -1))
    if mode == "max":
        return x.amax(dim=(-2, -1))
    raise ValueError(f"spatial_pool: mode must be one of {SPATIAL_POOLS}, got {mode!r}")


def scaled(channels: int, mult: float, minimum: int = 4) -> int:
    """Channel count ``channels * mult`` rounded, at least ``minimum`` (for width-scaled presets)."""
    if mult == 1:
        return channels
    return max(minimum, int(round(channels * mult)))


@torch.no_grad()
def _truncated_normal_(tensor: torch.Tensor, std: float) -> None:
    """Normal(0, std) cut at +-2 std, sampled in one pass by inverting the CDF (fast for 100M-weight models)."""
    lo, hi = (1.0 + math.erf(-2.0 / math.sqrt(2.0))) / 2.0, (1.0 + math.erf(2.0 / math.sqrt(2.0))) / 2.0
    tensor.uniform_(2.0 * lo - 1.0, 2.0 * hi - 1.0)
    tensor.erfinv_().mul_(std * math.sqrt(2.0)).clamp_(-2.0 * std, 2.0 * std)


def haiku_init_(module: nn.Module) -> None:
    """Re-initialises weights as Haiku does by default, which is what the original trained with.

    Conv and Linear weights: truncated normal (cut at two standard deviations) with std 1/sqrt(fan_in),
    fan_in = kernel volume x input channels; biases 0; BatchNorm scale 1, offset 0. Embedding tables
    are left alone (they are loaded or initialised by the text tower).
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d, nn.Linear)):
            fan_in = m.weight[0].numel()
            _truncated_normal_(m.weight, std=1.0 / math.sqrt(fan_in))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
