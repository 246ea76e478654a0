"""Deflation: a video backbone -> an image backbone that shares its weights (spec section 6).

:func:`deflate` turns a video backbone into an image backbone taking ``[B, H, W, 3]``:

* **S3D-G** (:class:`DeflatedS3DG`): every 3-D kernel ``[O, I, kt, kh, kw]`` is summed over ``kt`` into a 2-D
  kernel ``[O, I, kh, kw]``; temporal strides, temporal padding and the time axis of the max-pools disappear;
  self-gating pools over ``H, W`` only (the spatial equivalent of its mean over ``T, H, W``). With the
  space-to-depth stem (``(2, 4, 4)`` over 24 channels ordered ``(dt, dh, dw, c)``), the kernel is summed over
  its temporal taps *and* over the temporal sub-channel ``dt``: a 4x4 conv over the 12-channel 2x2
  space-to-depth image.
* **TSM-ResNet** (:class:`DeflatedTSMResNet`): the same 2-D ResNet on one frame, with the temporal shift's
  channel *permutation* kept and its time offset dropped (``TemporalShift(static=True)``: without the
  permutation ``conv_0`` would read its channels in the wrong order, spec section 6).

Why summing is right: on a static video (an image repeated T times), a temporal conv sees the same frame under
each tap, so ``sum_t W_t * x = (sum_t W_t) * x`` on every *interior* frame. The first and last frames see
TF SAME zero padding instead of frames, so the video network's output on a static video differs from the
deflated network's near the clip edges; deep in the network, and through the mean over time of self-gating
and of the final pooling, those edges reach every output. That is what BatchNorm recalibration
(:mod:`mmv.deflation.calibrate`) compensates.

**Weight sharing.** The deflated network *owns* only new BatchNorm scales and offsets (``gamma``/``beta``,
initialised from the video network's, or the video network's own when ``own_bn=False``: naive deflation that
follows the video network as it trains). Everything else is read from the video network at each call:
2-D kernels are sums computed on the fly from the 3-D ones (cached while the video weight is unchanged: the
cache key holds the tensor's version counter, which every in-place update such as an optimiser step bumps), so
training the video network later keeps the image network consistent with no copy to refresh. BatchNorm runs
in inference mode with the video network's running statistics. The video modules are referenced, not
registered as submodules, so ``deflated.parameters()`` and ``deflated.state_dict()`` hold exactly the new
``gamma``/``beta`` (under the same names as the video network's BN parameters) and the video model's own
``state_dict``, optimiser and DDP never see the image network.

Endpoints are those of the video backbone, channels-last without a time axis (``[B, H', W', C]``), then
``Embeddings`` ``[B, output_dim]``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from mmv.models.base import Backbone
from mmv.models.layers import ConvSame, MaxPoolSame, center_colours, same_pads, spatial_pool
from mmv.models.s3d import S3DG, InceptionBlock3D, SelfGating, SUnit3D, inception_forward
from mmv.models.tsm_resnet import TemporalShift, TSMBlock, TSMResNet


def _share(module: nn.Module, name: str, source: nn.Module | None) -> None:
    """Keeps a reference to a video-network module without registering it: the image net shares, never owns."""
    object.__setattr__(module, name, source)


def _same_pad_2d(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int], value: float = 0.0) -> torch.Tensor:
    """TF SAME padding of ``[B, C, H, W]`` for a 2-D kernel/stride (``F.pad`` takes the last axis first)."""
    (h_lo, h_hi), (w_lo, w_hi) = (same_pads(n, k, s) for n, k, s in zip(x.shape[2:], kernel, stride))
    if h_lo or h_hi or w_lo or w_hi:
        x = F.pad(x, (w_lo, w_hi, h_lo, h_hi), value=value)
    return x


def image_space_to_depth(images: torch.Tensor) -> torch.Tensor:
    """Folds every 2x2 block of an image into channels: the image version of :func:`mmv.models.s3d.space_to_depth`.

    Output channel ``(dh * 2 + dw) * C + c`` holds input ``[2h + dh, 2w + dw, c]``, which is the order of the
    ``dt = 0`` half of the video version's ``(dt, dh, dw, c)`` channels.

    Args:
        images: ``[B, H, W, C]`` with even H and W.

    Returns:
        ``[B, H/2, W/2, 4C]``.
    """
    b, h, w, c = images.shape
    if h % 2 or w % 2:
        raise ValueError(f"space_to_depth needs even H and W, got {tuple(images.shape)}")
    x = images.reshape(b, h // 2, 2, w // 2, 2, c).permute(0, 1, 3, 2, 4, 5)  # [B, H/2, W/2, dh, dw, C]
    return x.reshape(b, h // 2, w // 2, 4 * c)


class DeflatedBatchNorm(nn.Module):
    """Inference BatchNorm over ``[B, C, H, W]`` with the video BN's running statistics.

    Args:
        source: the video network's BatchNorm (any dimensionality; only its per-channel tensors are used).
        own_params: give this module new ``weight`` (gamma) and ``bias`` (beta) parameters initialised from
            the source's (the ones recalibration learns); ``False`` uses the source's own (naive deflation).
    """

    def __init__(self, source: _BatchNorm, own_params: bool = True) -> None:
        super().__init__()
        if not source.affine or source.running_mean is None:
            raise ValueError("deflate: BatchNorm layers need affine=True and running statistics")
        _share(self, "source", source)
        self.own_params = own_params
        if own_params:
            self.weight = nn.Parameter(source.weight.detach().clone())
            self.bias = nn.Parameter(source.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.source
        weight, bias = (self.weight, self.bias) if self.own_params else (s.weight, s.bias)
        # Always the running statistics: a single image batch has no temporal statistics to match, and the
        # video network's are what the inflated reference uses in eval mode.
        return F.batch_norm(x, s.running_mean, s.running_var, weight, bias, False, 0.0, s.eps)

    def extra_repr(self) -> str:
        return f"{self.source.num_features}, own_params={self.own_params}"


class DeflatedConv(nn.Module):
    """A 3-D :class:`ConvSame` run as a 2-D conv: kernel summed over time, temporal stride and padding dropped.

    Args:
        source: the video conv, weight ``[O, I, kt, kh, kw]``.
        fold_time_channels: also sum the two temporal sub-channel halves of the input (``[O, 2 * I', ...]`` ->
            ``[O, I', ...]``): the space-to-depth stem, whose input channels are ordered ``(dt, dh, dw, c)``.

    Shape:
        ``[B, I, H, W]`` -> ``[B, O, ceil(H / sh), ceil(W / sw)]``
    """

    def __init__(self, source: ConvSame, fold_time_channels: bool = False) -> None:
        super().__init__()
        if source.dims != 3:
            raise ValueError(f"DeflatedConv: expected a 3-D ConvSame, got dims={source.dims}")
        _share(self, "source", source)
        self.kernel = tuple(source.kernel[1:])
        self.stride = tuple(source.stride[1:])
        self.fold_time_channels = fold_time_channels
        self._cache: tuple[Any, torch.Tensor] | None = None

    def weight(self) -> torch.Tensor:
        """The 2-D kernel ``[O, I, kh, kw]``, computed from the video kernel (cached while it is unchanged)."""
        w = self.source.weight
        key = (w.data_ptr(), w._version, w.device, w.dtype, w.shape)
        # Reuse only without autograd: with grad enabled the sum must be part of the graph.
        if not (torch.is_grad_enabled() and w.requires_grad) and self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        out = w.sum(dim=2)
        if self.fold_time_channels:
            o, i = out.shape[:2]
            out = out.reshape(o, 2, i // 2, *out.shape[2:]).sum(dim=1)
        if not (torch.is_grad_enabled() and w.requires_grad):
            self._cache = (key, out.detach())
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _same_pad_2d(x, self.kernel, self.stride)
        return F.conv2d(x, self.weight(), self.source.conv.bias, self.stride)

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, stride={self.stride}, fold_time_channels={self.fold_time_channels}"


class DeflatedSelfGating(nn.Module):
    """``x * sigmoid(fc(mean_{H,W} x))`` with the video gating's ``fc``. Shape ``[B, C, H, W]`` -> same."""

    def __init__(self, source: SelfGating) -> None:
        super().__init__()
        _share(self, "source", source)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = torch.sigmoid(self.source.fc(x.mean(dim=(2, 3))))  # [B, C]
        return x * weights[:, :, None, None]


class Shared(nn.Module):
    """Calls a module of the video network as it is (2-D convs and pools of TSM-ResNet) without owning it."""

    def __init__(self, source: nn.Module) -> None:
        super().__init__()
        _share(self, "source", source)

    def forward(self, *args: Any) -> torch.Tensor:
        return self.source(*args)

    def extra_repr(self) -> str:
        return f"shares {type(self.source).__name__}"


class DeflatedUnit(nn.Module):
    """:class:`SUnit3D` on images: conv -> BN -> ReLU (and the 1x1 summed temporal conv -> BN -> ReLU), gating."""

    def __init__(self, unit: SUnit3D, own_bn: bool, fold_time_channels: bool = False) -> None:
        super().__init__()
        self.conv = DeflatedConv(unit.conv, fold_time_channels)
        self.bn = DeflatedBatchNorm(unit.bn, own_bn)
        self.temporal = DeflatedConv(unit.temporal) if unit.temporal is not None else None
        self.temporal_bn = DeflatedBatchNorm(unit.temporal_bn, own_bn) if unit.temporal_bn is not None else None
        self.gating = DeflatedSelfGating(unit.gating) if unit.gating is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.conv(x)))
        if self.temporal is not None:
            x = F.relu(self.temporal_bn(self.temporal(x)))
        if self.gating is not None:
            x = self.gating(x)
        return x


class DeflatedInception(nn.Module):
    """:class:`InceptionBlock3D` on images (its 3x3x3 max-pool becomes 3x3)."""

    def __init__(self, block: InceptionBlock3D, own_bn: bool) -> None:
        super().__init__()
        for name in ("branch_0", "branch_1a", "branch_1b", "branch_2a", "branch_2b", "branch_3"):
            setattr(self, name, DeflatedUnit(getattr(block, name), own_bn))
        self.branch_3_pool = deflate_pool(block.branch_3_pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return inception_forward(self, x)


def deflate_pool(pool: MaxPoolSame) -> MaxPoolSame:
    """A 3-D max-pool without its time axis. On a static clip the max over identical frames is the frame itself
    (padded cells are ``-inf`` and never win), so the pool's temporal kernel and stride change no values."""
    return MaxPoolSame(2, pool.kernel[1:], pool.stride[1:])


class DeflatedS3DG(Backbone):
    """S3D-G deflated to images. Endpoints: the video net's, each ``[B, H', W', C]``; ``Embeddings`` ``[B, D]``.

    Args:
        video: the S3D-G whose weights are shared.
        own_bn: new BN gamma/beta parameters (for recalibration) or the video network's (naive, always current).

    Shape:
        input ``[B, H, W, 3]`` (or ``[B, H/2, W/2, 12]`` already folded, with space-to-depth) -> ``[B, output_dim]``.
    """

    ENDPOINTS = S3DG.ENDPOINTS

    def __init__(self, video: S3DG, own_bn: bool = True) -> None:
        super().__init__()
        _share(self, "video", video)
        self.ENDPOINTS = tuple(video.ENDPOINTS)  # a video net built up to an earlier final endpoint has fewer
        self.space_to_depth = video.space_to_depth
        self.in_channels = 12 if video.space_to_depth else 3
        self.output_dim = video.output_dim
        self.stages = nn.ModuleDict()
        for i, (name, layer) in enumerate(video.stages.items()):
            if isinstance(layer, MaxPoolSame):
                self.stages[name] = deflate_pool(layer)
            elif isinstance(layer, InceptionBlock3D):
                self.stages[name] = DeflatedInception(layer, own_bn)
            elif isinstance(layer, SUnit3D):
                self.stages[name] = DeflatedUnit(layer, own_bn, fold_time_channels=i == 0 and video.space_to_depth)
            else:  # pragma: no cover - a new layer type in S3DG
                raise TypeError(f"deflate: no image version of S3D-G stage {name!r} ({type(layer).__name__})")

    def iter_endpoints(self, x: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        """Yields ``(name, [B, H', W', C])`` per stage in order, then ``('Embeddings', [B, output_dim])``."""
        if x.dim() != 4:
            raise ValueError(f"deflated S3D-G expects [B, H, W, C] images, got shape {tuple(x.shape)}")
        if self.video.input_centering:
            x = center_colours(x)
        if self.space_to_depth and x.shape[-1] == 3:
            x = image_space_to_depth(x)
        if x.shape[-1] != self.in_channels:
            raise ValueError(
                f"deflated S3D-G (space_to_depth={self.space_to_depth}) expects {self.in_channels} input "
                f"channels, got shape {tuple(x.shape)}"
            )
        # [B, C, H, W] in channels-last memory: the permute of the channels-last input is already that layout (no
        # copy), and on the CPU the 2-D max-pools run about 14x faster on it than on channels-first tensors.
        x = x.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
        for name, layer in self.stages.items():
            x = layer(x)
            yield name, x.permute(0, 2, 3, 1)
        yield "Embeddings", spatial_pool(x, self.video.spatial_pool)


class DeflatedTSMBlock(nn.Module):
    """:class:`TSMBlock` on images: the shift keeps its channel permutation and drops its time offset."""

    def __init__(self, block: TSMBlock, own_bn: bool) -> None:
        super().__init__()
        self.bn_0 = DeflatedBatchNorm(block.bn_0, own_bn)
        self.shortcut_conv = Shared(block.shortcut_conv) if block.shortcut_conv is not None else None
        self.shift = TemporalShift(block.shift.shift_fraction, static=True)
        self.conv_0 = Shared(block.conv_0)
        self.bn_1 = DeflatedBatchNorm(block.bn_1, own_bn)
        self.conv_1 = Shared(block.conv_1)
        self.bn_2 = DeflatedBatchNorm(block.bn_2, own_bn)
        self.conv_2 = Shared(block.conv_2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        preact = F.relu(self.bn_0(x))
        shortcut = x if self.shortcut_conv is None else self.shortcut_conv(preact)
        net = self.conv_0(self.shift(preact))
        net = self.conv_1(F.relu(self.bn_1(net)))
        net = self.conv_2(F.relu(self.bn_2(net)))
        return shortcut + net


class DeflatedTSMResNet(Backbone):
    """TSM-ResNet deflated to images: frames = 1, static shift. Endpoints as the video net's, ``[B, H', W', C]``.

    Shape:
        ``[B, H, W, 3]`` -> ``[B, output_dim]``
    """

    ENDPOINTS = TSMResNet.ENDPOINTS

    def __init__(self, video: TSMResNet, own_bn: bool = True) -> None:
        super().__init__()
        _share(self, "video", video)
        self.output_dim = video.output_dim
        self.stem = Shared(video.stem)
        self.stem_pool = Shared(video.stem_pool)
        self.units = nn.ModuleList(nn.ModuleList(DeflatedTSMBlock(b, own_bn) for b in unit) for unit in video.units)
        self.final_bn = DeflatedBatchNorm(video.final_bn, own_bn)

    def iter_endpoints(self, x: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        """Yields ``(name, [B, H', W', C])`` for every endpoint in order, then ``('Embeddings', [B, D])``."""
        if x.dim() != 4 or x.shape[-1] != 3:
            raise ValueError(f"deflated TSM-ResNet expects [B, H, W, 3] images, got shape {tuple(x.shape)}")
        if self.video.input_centering:
            x = center_colours(x)
        net = self.stem_pool(self.stem(x.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)))
        yield "tsm_resnet_stem", net.permute(0, 2, 3, 1)
        for i, unit in enumerate(self.units):
            for block in unit:
                net = block(net)
            yield f"tsm_resnet_unit_{i}", net.permute(0, 2, 3, 1)
        net = F.relu(self.final_bn(net))
        yield "last_conv", net.permute(0, 2, 3, 1)
        yield "Embeddings", spatial_pool(net, self.video.spatial_pool)


def deflate(video_backbone: nn.Module, own_bn: bool = True) -> Backbone:
    """The image network of a video backbone (see the module docstring).

    Args:
        video_backbone: an :class:`~mmv.models.s3d.S3DG` or :class:`~mmv.models.tsm_resnet.TSMResNet` (``model.video``).
        own_bn: ``True`` (default): BN gamma/beta become new parameters initialised from the video network's,
            the only parameters of the result (recalibration learns them). ``False``: naive deflation that uses
            the video network's gamma/beta too, so it has no parameters at all and always follows the video net.

    Returns:
        A :class:`~mmv.models.base.Backbone` taking ``[B, H, W, 3]`` float images.

    Raises:
        TypeError: a backbone with no image version.
    """
    if isinstance(video_backbone, S3DG):
        return DeflatedS3DG(video_backbone, own_bn)
    if isinstance(video_backbone, TSMResNet):
        return DeflatedTSMResNet(video_backbone, own_bn)
    raise TypeError(f"deflate: no image version of {type(video_backbone).__name__} (S3DG and TSMResNet have one)")


def bn_parameters(image_backbone: nn.Module) -> list[nn.Parameter]:
    """The new BN gamma/beta of a deflated network (everything its ``parameters()`` holds), in order."""
    return list(image_backbone.parameters())


def inflate(images: torch.Tensor, num_frames: int) -> torch.Tensor:
    """The static video of an image: ``[B, H, W, C]`` -> ``[B, T, H, W, C]`` (a view: no copy)."""
    if images.dim() != 4:
        raise ValueError(f"inflate: expected [B, H, W, C] images, got shape {tuple(images.shape)}")
    return images[:, None].expand(-1, int(num_frames), -1, -1, -1)


@torch.no_grad()
def video_fingerprint(video_backbone: nn.Module) -> str:
    """SHA-256 of the video backbone's state (names, shapes, float32 bytes): which weights a calibration is for.

    A recalibrated image tower is only valid for the video weights it was learnt on; the checkpoint stores this
    with the calibrated parameters so a loader can tell that the video network has been retrained since.
    """
    h = hashlib.sha256()
    for name, tensor in video_backbone.state_dict().items():
        t = tensor.detach().to("cpu")
        t = t.float() if t.is_floating_point() else t
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()
