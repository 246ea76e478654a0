"""TSM-ResNet-V2: a pre-activation 2-D ResNet run on every frame, with a temporal channel shift per block.

Follows MMV's ``tsm_resnet.py`` / ``tsm_utils.py`` (spec section 2.2). A ``[B, T, H, W, 3]`` clip is
folded into a batch of ``B*T`` images (the original's "gpu" layout); every block shifts a fraction of its
pre-activated channels one frame forwards / backwards in time before its residual branch, and the pooled
representation is the mean over space and then over the T frames.

MMV's shift also *permutes* the channels (see :class:`TemporalShift`); the released checkpoints were
trained that way, and deflation (spec section 6) keeps the permutation while dropping the time offset
(``TemporalShift(..., static=True)``, swapped in by :func:`set_static_shift_`).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from mmv.config import NormConfig, VideoConfig
from mmv.models.base import Backbone
from mmv.models.layers import ConvSame, MaxPoolSame, batch_norm, center_colours, haiku_init_, scaled, spatial_pool

TSM_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
TSM_CHANNELS = (256, 512, 1024, 2048)
TSM_STRIDES = (1, 2, 2, 2)


class TemporalShift(nn.Module):
    """MMV's temporal shift ("gpu" version), which moves and reorders channels.

    With ``C`` channels and ``n = int(C * shift_fraction)``, output channels of frame ``t`` are, in order:

    1. ``[0, n)``: input channels ``[C - n, C)`` of frame ``t + 1`` (zeros for the last frame);
    2. ``[n, C - n)``: input channels ``[n, C - n)`` of frame ``t`` (unchanged);
    3. ``[C - n, C)``: input channels ``[0, n)`` of frame ``t - 1`` (zeros for the first frame).

    So the last ``n`` channels move to the front and the first ``n`` to the back, unlike mit-han-lab's TSM
    which keeps channel positions. With ``static=True`` the module applies the same channel permutation with
    no time offset and no zero padding (the deflated, image-only version): on a static video it equals the
    shifted version on every interior frame. ``n == 0`` (``shift_fraction == 0`` or few channels) is the
    identity.

    Shape:
        ``[B*T, C, H, W]`` (frames of a clip contiguous, batch-major) -> ``[B*T, C, H, W]``
    """

    def __init__(self, shift_fraction: float = 0.125, static: bool = False) -> None:
        super().__init__()
        if not 0.0 <= shift_fraction <= 0.5:
            raise ValueError(f"shift_fraction: must be in [0, 0.5], got {shift_fraction!r}")
        self.shift_fraction = shift_fraction
        self.static = static

    def num_shifted(self, channels: int) -> int:
        """``n``, the channels moved in each direction for a ``channels``-wide input."""
        return int(channels * self.shift_fraction)

    def forward(self, x: torch.Tensor, num_frames: int | None = None) -> torch.Tensor:
        """Shifts (or, if static, only permutes) the channels of ``x``.

        Args:
            x: ``[B*T, C, H, W]`` frames, the T frames of each clip consecutive.
            num_frames: T; required unless ``static``.

        Returns:
            ``[B*T, C, H, W]`` in the channel order described in the class docstring.
        """
        c = x.shape[1]
        n = self.num_shifted(c)
        if n == 0:
            return x
        if self.static:
            return torch.cat([x[:, c - n :], x[:, n : c - n], x[:, :n]], dim=1)
        if num_frames is None:
            raise ValueError("TemporalShift: num_frames is required unless static=True")
        if x.shape[0] % num_frames:
            raise ValueError(f"TemporalShift: batch {x.shape[0]} is not a multiple of num_frames={num_frames}")
        v = x.reshape(-1, num_frames, *x.shape[1:])  # [B, T, C, H, W]
        # F.pad lists the last axis first: (W, W, H, H, C, C, T_before, T_after).
        from_next = F.pad(v[:, 1:, c - n :], (0, 0, 0, 0, 0, 0, 0, 1))
        from_prev = F.pad(v[:, :-1, :n], (0, 0, 0, 0, 0, 0, 1, 0))
        out = torch.cat([from_next, v[:, :, n : c - n], from_prev], dim=2)
        return out.reshape(x.shape)

    def extra_repr(self) -> str:
        return f"shift_fraction={self.shift_fraction}, static={self.static}"


class TSMBlock(nn.Module):
    """Pre-activation bottleneck block with a temporal shift on the residual branch.

    ``preact = ReLU(BN(x))``; ``shortcut = conv1x1/s(preact)`` if projecting, else ``x``;
    ``residual = conv_2(ReLU(BN(conv_1/s(ReLU(BN(conv_0(shift(preact))))))))``; output ``shortcut + residual``.

    Shape:
        ``[B*T, C_in, H, W]`` -> ``[B*T, C_out, ceil(H / s), ceil(W / s)]``
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        use_projection: bool,
        shift_fraction: float,
        norm: NormConfig,
    ) -> None:
        super().__init__()
        mid = max(1, out_channels // 4)
        self.bn_0 = batch_norm(in_channels, 2, norm)
        self.shortcut_conv = ConvSame(2, in_channels, out_channels, 1, stride) if use_projection else None
        self.shift = TemporalShift(shift_fraction)
        self.conv_0 = ConvSame(2, in_channels, mid, 1)
        self.bn_1 = batch_norm(mid, 2, norm)
        self.conv_1 = ConvSame(2, mid, mid, 3, stride)
        self.bn_2 = batch_norm(mid, 2, norm)
        self.conv_2 = ConvSame(2, mid, out_channels, 1)

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Args: x ``[B*T, C_in, H, W]``; num_frames T. Returns ``[B*T, C_out, H', W']``."""
        preact = F.relu(self.bn_0(x))
        shortcut = x if self.shortcut_conv is None else self.shortcut_conv(preact)
        net = self.conv_0(self.shift(preact, num_frames))
        net = self.conv_1(F.relu(self.bn_1(net)))
        net = self.conv_2(F.relu(self.bn_2(net)))
        return shortcut + net


class TSMResNet(Backbone):
    """TSM-ResNet-V2-50/101 video backbone (``width_mult`` 1 or 2 as in the paper, < 1 for tiny models).

    Endpoints (channels-last, ``T`` kept): ``tsm_resnet_stem`` (7x7/2 conv, no BN, then 3x3/2 max-pool),
    ``tsm_resnet_unit_0..3``, ``last_conv`` (after the final BN-ReLU), each ``[B, T, H', W', C]``;
    ``Embeddings`` ``[B, output_dim]`` = mean over H, W per frame, then over the T frames. T is read from
    the input (``cfg.num_frames`` is not needed), so any clip length works.

    Shape:
        ``[B, T, H, W, 3]`` -> ``[B, output_dim]`` with ``output_dim = scaled(2048, width_mult)``
    """

    ENDPOINTS = (
        "tsm_resnet_stem",
        "tsm_resnet_unit_0",
        "tsm_resnet_unit_1",
        "tsm_resnet_unit_2",
        "tsm_resnet_unit_3",
        "last_conv",
        "Embeddings",
    )

    def __init__(self, cfg: VideoConfig, norm: NormConfig) -> None:
        super().__init__()
        if cfg.depth not in TSM_BLOCKS:
            raise ValueError(f"VideoConfig.depth: TSM-ResNet supports {tuple(TSM_BLOCKS)}, got {cfg.depth!r}")
        w = cfg.width_mult
        self.depth = cfg.depth
        self.shift_fraction = cfg.shift_fraction
        self.input_centering = cfg.input_centering
        self.spatial_pool = cfg.spatial_pool
        stem_channels = scaled(64, w)
        self.stem = ConvSame(2, 3, stem_channels, 7, 2)
        self.stem_pool = MaxPoolSame(2, 3, 2)
        self.units = nn.ModuleList()
        in_channels = stem_channels
        for channels, num_blocks, stride in zip(TSM_CHANNELS, TSM_BLOCKS[cfg.depth], TSM_STRIDES, strict=True):
            out_channels = scaled(channels, w)
            blocks = nn.ModuleList()
            for i in range(num_blocks):
                blocks.append(
                    TSMBlock(
                        in_channels,
                        out_channels,
                        stride if i == 0 else 1,
                        use_projection=i == 0,
                        shift_fraction=cfg.shift_fraction,
                        norm=norm,
                    )
                )
                in_channels = out_channels
            self.units.append(blocks)
        self.final_bn = batch_norm(in_channels, 2, norm)
        self.output_dim = in_channels
        haiku_init_(self)

    @staticmethod
    def _channels_last(x: torch.Tensor, batch: int, num_frames: int) -> torch.Tensor:
        # [B*T, C, H, W] -> [B, T, H, W, C] (a view).
        return x.view(batch, num_frames, *x.shape[1:]).permute(0, 1, 3, 4, 2)

    def iter_endpoints(self, x: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        """Yields ``(name, tensor)`` for every endpoint in order.

        Args:
            x: ``[B, T, H, W, 3]`` clip, channels-last.

        Yields:
            ``[B, T, H', W', C]`` feature maps, then ``('Embeddings', [B, output_dim])``.
        """
        if x.dim() != 5:
            raise ValueError(f"TSMResNet expects a [B, T, H, W, 3] clip, got shape {tuple(x.shape)}")
        batch, num_frames = x.shape[:2]
        if self.input_centering:
            x = center_colours(x)
        net = x.reshape(batch * num_frames, *x.shape[2:]).permute(0, 3, 1, 2)  # [B*T, 3, H, W]
        net = self.stem_pool(self.stem(net))
        yield "tsm_resnet_stem", self._channels_last(net, batch, num_frames)
        for i, unit in enumerate(self.units):
            for block in unit:
                net = block(net, num_frames)
            yield f"tsm_resnet_unit_{i}", self._channels_last(net, batch, num_frames)
        net = F.relu(self.final_bn(net))
        yield "last_conv", self._channels_last(net, batch, num_frames)
        frames = net.view(batch, num_frames, *net.shape[1:])  # [B, T, C, H, W]
        yield "Embeddings", spatial_pool(frames.mean(dim=1), self.spatial_pool)


def set_static_shift_(model: nn.Module, static: bool = True) -> nn.Module:
    """Switches every :class:`TemporalShift` in ``model`` to the time-free permutation (deflation), in place.

    Returns:
        ``model``, for chaining.
    """
    for m in model.modules():
        if isinstance(m, TemporalShift):
            m.static = static
    return model
