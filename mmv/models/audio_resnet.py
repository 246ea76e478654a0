"""The audio backbone: a 2-D pre-activation ResNet-V2 on the log-mel spectrogram (spec section 2.3).

Follows MMV's ``resnet.py`` (``ResNetV2`` with ``num_classes=None``): the ``[B, F, M]`` spectrogram
(frames x mel bins) is a one-channel image. ResNet-50 (the released models) uses bottleneck blocks;
ResNet-18/34 use MMV's unusual "basic" block whose first conv is 1x1, not 3x3. ``last_conv`` is the map
*before* the final BN-ReLU, as in the original (the TF-Hub audio signature exposes it for downstream use).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from mmv.config import AudioConfig, NormConfig
from mmv.models.base import Backbone
from mmv.models.layers import ConvSame, MaxPoolSame, batch_norm, haiku_init_, scaled

RESNET_BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
BOTTLENECK_CHANNELS = (256, 512, 1024, 2048)
BASIC_CHANNELS = (64, 128, 256, 512)
RESNET_STRIDES = (1, 2, 2, 2)


class PreactBlock(nn.Module):
    """A pre-activation residual block: every conv is preceded by BN -> ReLU.

    Bottleneck (depth >= 50): ``conv_0`` 1x1 (c/4), ``conv_1`` 3x3/s (c/4), ``conv_2`` 1x1 (c).
    Basic (depth 18/34): ``conv_0`` 1x1 (c), ``conv_1`` 3x3/s (c). The projection shortcut (1x1/s), when
    present, reads the output of the first BN-ReLU; otherwise the shortcut is the block input.

    Shape:
        ``[B, C_in, F, M]`` -> ``[B, C_out, ceil(F / s), ceil(M / s)]``
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        use_projection: bool,
        bottleneck: bool,
        norm: NormConfig,
    ) -> None:
        super().__init__()
        self.bottleneck = bottleneck
        mid = max(1, out_channels // 4) if bottleneck else out_channels
        self.shortcut_conv = ConvSame(2, in_channels, out_channels, 1, stride) if use_projection else None
        self.bn_0 = batch_norm(in_channels, 2, norm)
        self.conv_0 = ConvSame(2, in_channels, mid, 1)
        self.bn_1 = batch_norm(mid, 2, norm)
        self.conv_1 = ConvSame(2, mid, mid if bottleneck else out_channels, 3, stride)
        if bottleneck:
            self.bn_2 = batch_norm(mid, 2, norm)
            self.conv_2 = ConvSame(2, mid, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x ``[B, C_in, F, M]``. Returns ``[B, C_out, F', M']``."""
        net = F.relu(self.bn_0(x))
        shortcut = x if self.shortcut_conv is None else self.shortcut_conv(net)
        net = self.conv_0(net)
        net = self.conv_1(F.relu(self.bn_1(net)))
        if self.bottleneck:
            net = self.conv_2(F.relu(self.bn_2(net)))
        return net + shortcut


class AudioResNet(Backbone):
    """ResNet-V2 (18/34/50/101) on a log-mel spectrogram.

    Endpoints (channels-last): ``resnet_stem`` (7x7/2 conv then 3x3/2 max-pool), ``resnet_unit_0..3``,
    ``last_conv`` (= the last unit's output, before the final BN-ReLU), each ``[B, F', M', C]``;
    ``Embeddings`` ``[B, output_dim]`` = mean over both axes of ReLU(BN(last_conv)).

    Shape:
        ``[B, F, M]`` or ``[B, F, M, 1]`` -> ``[B, output_dim]``; ``output_dim = scaled(2048, w)`` for
        depth >= 50, ``scaled(512, w)`` for 18/34. A ``[B, 150, 80]`` input gives a 5x3 ``last_conv``.
    """

    ENDPOINTS = (
        "resnet_stem",
        "resnet_unit_0",
        "resnet_unit_1",
        "resnet_unit_2",
        "resnet_unit_3",
        "last_conv",
        "Embeddings",
    )

    def __init__(self, cfg: AudioConfig, norm: NormConfig) -> None:
        super().__init__()
        if cfg.depth not in RESNET_BLOCKS:
            raise ValueError(f"AudioConfig.depth: must be one of {tuple(RESNET_BLOCKS)}, got {cfg.depth!r}")
        w = cfg.width_mult
        self.depth = cfg.depth
        bottleneck = cfg.depth >= 50
        stem_channels = scaled(64, w)
        self.initial_conv = ConvSame(2, 1, stem_channels, 7, 2)
        self.stem_pool = MaxPoolSame(2, 3, 2)
        self.units = nn.ModuleList()
        in_channels = stem_channels
        widths = BOTTLENECK_CHANNELS if bottleneck else BASIC_CHANNELS
        for channels, num_blocks, stride in zip(widths, RESNET_BLOCKS[cfg.depth], RESNET_STRIDES, strict=True):
            out_channels = scaled(channels, w)
            blocks = nn.ModuleList()
            for i in range(num_blocks):
                # As the original: project only in a unit's first block, and only if the width changes.
                use_projection = i == 0 and out_channels != in_channels
                blocks.append(
                    PreactBlock(in_channels, out_channels, stride if i == 0 else 1, use_projection, bottleneck, norm)
                )
                in_channels = out_channels
            self.units.append(blocks)
        self.final_bn = batch_norm(in_channels, 2, norm)
        self.output_dim = in_channels
        haiku_init_(self)

    def iter_endpoints(self, x: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        """Yields ``(name, tensor)`` for every endpoint in order.

        Args:
            x: ``[B, F, M]`` (or ``[B, F, M, 1]``) log-mel spectrogram.

        Yields:
            ``[B, F', M', C]`` feature maps, then ``('Embeddings', [B, output_dim])``.
        """
        if x.dim() == 4 and x.shape[-1] == 1:
            x = x.squeeze(-1)
        if x.dim() != 3:
            raise ValueError(f"AudioResNet expects a [B, F, M] or [B, F, M, 1] spectrogram, got {tuple(x.shape)}")
        net = self.stem_pool(self.initial_conv(x.unsqueeze(1)))  # [B, C, F', M']
        yield "resnet_stem", net.permute(0, 2, 3, 1)
        for i, unit in enumerate(self.units):
            for block in unit:
                net = block(net)
            yield f"resnet_unit_{i}", net.permute(0, 2, 3, 1)
        yield "last_conv", net.permute(0, 2, 3, 1)
        net = F.relu(self.final_bn(net))
        yield "Embeddings", net.mean(dim=(2, 3))
