"""S3D-G: the separable 3-D Inception video backbone of MMV (Xie et al. 2018, "Rethinking spatiotemporal ...").

The network is the chain of :data:`mmv.config.S3D_STAGES`, then ``Embeddings`` (mean over T, H, W, or with
``VideoConfig.spatial_pool='max'`` the mean over T then the max over H, W) of width 1024 at full width. It
follows the original Haiku model (spec section 2.1):

* a unit (:class:`SUnit3D`) is conv -> BN -> ReLU; a *separable* unit with a spatial kernel > 1 is a spatial
  ``[1, k, k]`` conv (carrying the spatial stride) and a temporal ``[k_t, 1, 1]`` conv (carrying the temporal
  stride), each with its own BN + ReLU; self-gating (:class:`SelfGating`) follows the unit's last ReLU;
* the stem ``Conv2d_1a_7x7`` is a full (not separable) 3-D conv: ``(k_t, 7, 7)`` stride 2 on RGB, or
  ``(2, 4, 4)`` stride 1 on the 24-channel space-to-depth input the released checkpoint expects;
* layers are walked in order, and from ``VideoConfig.s3d_gating_startat`` on every unit is gated, from
  ``VideoConfig.s3d_temporal_conv_startat`` on the separable units use a temporal kernel of 3 instead of 1;
* every convolution is bias-free with TF ``SAME`` padding, every pool pads with ``-inf``
  (:class:`~mmv.models.layers.ConvSame`, :class:`~mmv.models.layers.MaxPoolSame`).

The temporal convs of separable units are kept in their own ``temporal`` submodule so that deflation
(video -> image, spec section 6) can find and sum them over time.

Tensors are channels-first inside; the input and every endpoint are channels-last (``[B, T, H, W, C]``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mmv.config import S3D_STAGES, NormConfig, VideoConfig
from mmv.models.base import Backbone
from mmv.models.layers import ConvSame, MaxPoolSame, batch_norm, center_colours, haiku_init_, scaled, spatial_pool

# Channel sextets (b0, b1a, b1b, b2a, b2b, b3) of the Inception blocks, as in the original.
INCEPTION_CHANNELS: dict[str, tuple[int, int, int, int, int, int]] = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}
# Max-pools between the conv stages: (kernel, stride) over (T, H, W).
POOLS: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    "MaxPool_2a_3x3": ((1, 3, 3), (1, 2, 2)),
    "MaxPool_3a_3x3": ((1, 3, 3), (1, 2, 2)),
    "MaxPool_4a_3x3": ((3, 3, 3), (2, 2, 2)),
    "MaxPool_5a_2x2": ((2, 2, 2), (2, 2, 2)),
}


def space_to_depth(video: torch.Tensor) -> torch.Tensor:
    """Folds every 2x2x2 block of a clip into channels, as the released S3D-G checkpoint expects.

    Output channel ``((dt * 2 + dh) * 2 + dw) * C + c`` holds input ``[2t + dt, 2h + dh, 2w + dw, c]``, i.e. the
    8C channels are ordered (t-offset, h-offset, w-offset, c), like the original's ``space_to_depth_batch``.

    Args:
        video: ``[B, T, H, W, C]`` with even T, H and W.

    Returns:
        ``[B, T/2, H/2, W/2, 8C]``.
    """
    b, t, h, w, c = video.shape
    if t % 2 or h % 2 or w % 2:
        raise ValueError(f"space_to_depth needs even T, H and W, got {tuple(video.shape)}")
    x = video.reshape(b, t // 2, 2, h // 2, 2, w // 2, 2, c)
    x = x.permute(0, 1, 3, 5, 2, 4, 6, 7)  # [B, T/2, H/2, W/2, dt, dh, dw, C]
    return x.reshape(b, t // 2, h // 2, w // 2, 8 * c)


class SelfGating(nn.Module):
    """S3D-G feature gating: ``x * sigmoid(Linear(mean_{T,H,W} x))`` per channel.

    Shape:
        ``[B, C, T, H, W]`` -> ``[B, C, T, H, W]``
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = torch.sigmoid(self.fc(x.mean(dim=(2, 3, 4))))  # [B, C]
        return x * weights[:, :, None, None, None]


class SUnit3D(nn.Module):
    """Conv -> BN -> ReLU (two of them when separable), then optional self-gating.

    When ``separable`` and the spatial kernel is larger than 1, ``conv`` is the spatial ``[1, kh, kw]`` conv
    with stride ``[1, sh, sw]`` and ``temporal`` the ``[kt, 1, 1]`` conv with stride ``[st, 1, 1]``; otherwise
    ``conv`` is the full kernel and ``temporal`` is ``None``. As in the original, a ``[1, 3, 3]`` separable
    unit still has a (1-tap) temporal conv.

    Shape:
        ``[B, C_in, T, H, W]`` -> ``[B, C_out, ceil(T / st), ceil(H / sh), ceil(W / sw)]``
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: Sequence[int],
        norm: NormConfig,
        stride: Sequence[int] = (1, 1, 1),
        separable: bool = False,
        gating: bool = False,
    ) -> None:
        super().__init__()
        kt, kh, kw = kernel
        st, sh, sw = stride
        self.temporal: ConvSame | None = None
        self.temporal_bn: nn.Module | None = None
        if separable and kh != 1:
            self.conv = ConvSame(3, in_channels, out_channels, (1, kh, kw), (1, sh, sw))
            self.bn = batch_norm(out_channels, 3, norm)
            self.temporal = ConvSame(3, out_channels, out_channels, (kt, 1, 1), (st, 1, 1))
            self.temporal_bn = batch_norm(out_channels, 3, norm)
        else:
            self.conv = ConvSame(3, in_channels, out_channels, tuple(kernel), tuple(stride))
            self.bn = batch_norm(out_channels, 3, norm)
        self.gating = SelfGating(out_channels) if gating else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # In-place ReLU is safe after BN: BN's backward needs its input, not its output.
        x = F.relu(self.bn(self.conv(x)), inplace=True)
        if self.temporal is not None:
            x = F.relu(self.temporal_bn(self.temporal(x)), inplace=True)
        if self.gating is not None:
            x = self.gating(x)
        return x


def inception_forward(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The wiring of an Inception block, shared with its deflated (image) twin: four branches, concatenated.

    ``block`` has ``branch_0``, ``branch_1a``/``1b``, ``branch_2a``/``2b``, ``branch_3_pool`` and ``branch_3``.
    Shape: ``[B, C_in, ...]`` -> ``[B, b0 + b1b + b2b + b3, ...]`` (channels-first, 3-D or deflated 2-D).
    """
    return torch.cat(
        (
            block.branch_0(x),
            block.branch_1b(block.branch_1a(x)),
            block.branch_2b(block.branch_2a(x)),
            block.branch_3(block.branch_3_pool(x)),
        ),
        dim=1,
    )


class InceptionBlock3D(nn.Module):
    """Separable 3-D Inception block; branches concatenated on channels in the order b0, b1, b2, b3.

    b0: 1x1x1 unit (gated); b1, b2: 1x1x1 unit (not gated) -> separable ``(kt, 3, 3)`` unit (gated);
    b3: ``3x3x3`` max-pool, stride 1 -> 1x1x1 unit (gated). Gating applies only when ``gating`` is true.

    Shape:
        ``[B, C_in, T, H, W]`` -> ``[B, b0 + b1b + b2b + b3, T, H, W]``
    """

    def __init__(
        self,
        in_channels: int,
        channels: Sequence[int],
        norm: NormConfig,
        temporal_kernel: int,
        gating: bool,
    ) -> None:
        super().__init__()
        b0, b1a, b1b, b2a, b2b, b3 = channels
        one = (1, 1, 1)
        sep = (temporal_kernel, 3, 3)
        self.branch_0 = SUnit3D(in_channels, b0, one, norm, gating=gating)
        self.branch_1a = SUnit3D(in_channels, b1a, one, norm)
        self.branch_1b = SUnit3D(b1a, b1b, sep, norm, separable=True, gating=gating)
        self.branch_2a = SUnit3D(in_channels, b2a, one, norm)
        self.branch_2b = SUnit3D(b2a, b2b, sep, norm, separable=True, gating=gating)
        self.branch_3_pool = MaxPoolSame(3, (3, 3, 3), (1, 1, 1))
        self.branch_3 = SUnit3D(in_channels, b3, one, norm, gating=gating)
        self.out_channels = b0 + b1b + b2b + b3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return inception_forward(self, x)


class S3DG(Backbone):
    """S3D-G video backbone with ordered endpoints ``S3D_STAGES + ('Embeddings',)``.

    Args:
        cfg: the video tower config (``width_mult``, ``s3d_first_temporal_kernel``, the two ``*_startat``
            layer names, ``s3d_final_endpoint`` and ``space_to_depth`` are used here).
        norm: BatchNorm momentum / eps.

    Shape:
        input: ``[B, T, H, W, 3]`` float, or ``[B, T/2, H/2, W/2, 24]`` when ``cfg.space_to_depth`` (an RGB
        clip is then folded here by :func:`space_to_depth`).
        endpoints: ``[B, T', H', W', C]`` channels-last views; ``Embeddings`` is ``[B, output_dim]``. For
        ``[2, 16, 224, 224, 3]``: ``Conv2d_1a_7x7`` ``[2, 8, 112, 112, 64]`` ... ``Mixed_5c``
        ``[2, 2, 7, 7, 1024]``, ``Embeddings`` ``[2, 1024]``.
    """

    ENDPOINTS = (*S3D_STAGES, "Embeddings")

    def __init__(self, cfg: VideoConfig, norm: NormConfig) -> None:
        super().__init__()
        # Stages after ``cfg.s3d_final_endpoint`` are neither built nor listed among the endpoints.
        last = S3D_STAGES.index(cfg.s3d_final_endpoint)
        self.ENDPOINTS = (*S3D_STAGES[: last + 1], "Embeddings")
        self.space_to_depth = cfg.space_to_depth
        self.in_channels = 24 if cfg.space_to_depth else 3
        self.input_centering = cfg.input_centering
        self.spatial_pool = cfg.spatial_pool

        def width(c: int) -> int:
            return scaled(c, cfg.width_mult)

        gating = False
        temporal_kernel = 1
        channels = self.in_channels
        self.stages = nn.ModuleDict()
        for name in S3D_STAGES:
            # As in the original, each switch turns on at its layer and stays on for every later layer.
            gating = gating or name == cfg.s3d_gating_startat
            if name == cfg.s3d_temporal_conv_startat:
                temporal_kernel = 3
            if name in POOLS:
                kernel, stride = POOLS[name]
                layer: nn.Module = MaxPoolSame(3, kernel, stride)
            elif name in INCEPTION_CHANNELS:
                layer = InceptionBlock3D(
                    channels, [width(c) for c in INCEPTION_CHANNELS[name]], norm, temporal_kernel, gating
                )
                channels = layer.out_channels
            elif name == "Conv2d_1a_7x7":
                if cfg.space_to_depth:
                    kernel, stride = (2, 4, 4), (1, 1, 1)
                else:
                    kernel, stride = (cfg.s3d_first_temporal_kernel, 7, 7), (2, 2, 2)
                layer = SUnit3D(channels, width(64), kernel, norm, stride, gating=gating)
                channels = width(64)
            elif name == "Conv2d_2b_1x1":
                layer = SUnit3D(channels, width(64), (1, 1, 1), norm, gating=gating)
                channels = width(64)
            elif name == "Conv2d_2c_3x3":
                layer = SUnit3D(channels, width(192), (temporal_kernel, 3, 3), norm, separable=True, gating=gating)
                channels = width(192)
            else:  # pragma: no cover - S3D_STAGES and the tables above are out of sync
                raise AssertionError(f"no layer for stage {name!r}")
            self.stages[name] = layer
            if name == cfg.s3d_final_endpoint:
                break
        self.output_dim = channels
        haiku_init_(self)

    def _memory_format(self) -> torch.memory_format:
        weight = self.stages["Conv2d_1a_7x7"].conv.weight
        if not weight.is_contiguous() and weight.is_contiguous(memory_format=torch.channels_last_3d):
            return torch.channels_last_3d
        return torch.contiguous_format

    def iter_endpoints(self, x: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        """Yields ``(name, [B, T', H', W', C])`` per stage in order, then ``('Embeddings', [B, output_dim])``."""
        if x.dim() != 5:
            raise ValueError(f"S3DG expects a [B, T, H, W, C] clip, got shape {tuple(x.shape)}")
        if self.input_centering:
            x = center_colours(x)
        if self.space_to_depth and x.shape[-1] == 3:
            x = space_to_depth(x)
        if x.shape[-1] != self.in_channels:
            raise ValueError(
                f"S3DG (space_to_depth={self.space_to_depth}) expects {self.in_channels} input channels, "
                f"got shape {tuple(x.shape)}"
            )
        # [B, C, T, H, W], laid out like the stem's weight: channels-first by default, or channels-last-3d after
        # ``model.to(memory_format=torch.channels_last_3d)`` (then the permute is already that layout, no copy).
        x = x.permute(0, 4, 1, 2, 3).contiguous(memory_format=self._memory_format())
        for name, layer in self.stages.items():
            x = layer(x)
            yield name, x.permute(0, 2, 3, 4, 1)
        yield "Embeddings", spatial_pool(x.mean(dim=2), self.spatial_pool)
