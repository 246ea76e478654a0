"""Which official (Haiku) leaf fills which parameter of ours, and how its layout changes.

A released checkpoint names every leaf ``<module path>:<leaf>`` (``shared/official_parity/README.md``). The
spelling of a path depends on the Haiku version that wrote it: ``~`` segments mark submodules built in a
constructor (``res_net_v2/~/block_group_0``) and BatchNorm modules are named by creation order
(``__cross_replica_batch_norm``, ``…_1``). To match files from any of those versions, both sides are compared in
a *canonical* spelling (:func:`canonical_name`): ``~`` segments dropped, each BatchNorm segment written ``bnN``
(its creation index), and for a whole model the top module's name (``text_audio_video``) dropped.

:func:`official_name` maps one key of our ``state_dict`` to ``(canonical official name, layout)``; the layouts
(:data:`LAYOUTS`) turn the channels-last Haiku arrays into PyTorch's:

=========  ==========================  ===========================
layout     Haiku                       PyTorch
=========  ==========================  ===========================
conv3d     ``[kt, kh, kw, in, out]``   ``[out, in, kt, kh, kw]``
conv2d     ``[kh, kw, in, out]``       ``[out, in, kh, kw]``
linear     ``[in, out]``               ``[out, in]``
conv1d     ``[1, in, out]`` (k = 1)    ``[out, in]`` (a Linear)
vector     ``[1, …, 1, C]`` or ``[C]``  ``[C]``
table      ``[vocab, dim]``            ``[vocab, dim]``
=========  ==========================  ===========================
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

LAYOUTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "conv3d": lambda w: w.transpose(4, 3, 0, 1, 2),
    "conv2d": lambda w: w.transpose(3, 2, 0, 1),
    "linear": lambda w: w.T,
    "conv1d": lambda w: w[0].T,
    "vector": lambda w: w.reshape(-1),
    "table": lambda w: w,
}

_BN_SEGMENT = re.compile(r"^_*(?:cross_replica_)?batch_?norm(?:_(\d+))?$")
# The submodules of the whole model; the segment before the first of them is the model's own name.
_MODEL_PARTS = ("visual_module", "audio_module", "text_module")
# Official heads of the FAC graph by their own names (matched whatever scope holds them).
HEAD_NAMES = ("vid2audio_embd", "vis_embd", "audio_embd", "txt_embd", "txt2audio_embd", "audio2txt_embd")
# Official heads with no counterpart here: text->S_va is never used by FAC, audio->text only in training.
DROPPED_HEADS = ("txt2audio_embd", "audio2txt_embd")

S3D_BRANCHES = {
    "branch_0": "Branch_0_Conv2d_0a_1x1",
    "branch_1a": "Branch_1_Conv2d_0a_1x1",
    "branch_1b": "Branch_1_Conv2d_0b_3x3",
    "branch_2a": "Branch_2_Conv2d_0a_1x1",
    "branch_2b": "Branch_2_Conv2d_0b_3x3",
    "branch_3": "Branch_3_Conv2d_0b_1x1",
}
_S3D_UNIT_LEAVES = {
    "conv.conv.weight": ("conv3_d:w", "conv3d"),
    "temporal.conv.weight": ("conv3_d_1:w", "conv3d"),
    "gating.fc.weight": ("self_gating:w", "linear"),
    "gating.fc.bias": ("self_gating:b", "vector"),
}
_S3D_UNIT_BNS = {"bn": "bn0", "temporal_bn": "bn1"}
_BN_LEAVES = {
    "weight": ":scale",
    "bias": ":offset",
    "running_mean": "/mean_ema:average",
    "running_var": "/var_ema:average",
}
# Our heads' layers (``ProjectionHead.net`` indices) -> the official head's Linear / BatchNorm.
HEAD_LAYERS = {
    "video_va": {"0": "vid2audio_embd/final_projection_inner", "1": "vid2audio_embd/bn0",
                 "3": "vid2audio_embd/final_projection", "4": "vid2audio_embd/bn1"},
    "audio_va": {"0": "audio_embd/final_projection"},
    "va_vat": {"0": "vis_embd/final_projection", "1": "vis_embd/bn0"},
    "text_vat": {"0": "txt_embd/final_projection"},
}  # fmt: skip
# The S_va -> S_vat Linear keeps a bias before its BatchNorm in the original; it is folded into that BN.
VA_VAT_BIAS = "vis_embd/final_projection:b"
VA_VAT_BN_MEAN = "heads.va_vat.net.1.running_mean"


def canonical_name(name: str, whole_model: bool = False) -> str:
    """The spelling both sides are compared in: no ``~`` segments, BatchNorms as ``bnN``.

    ``whole_model``: also drop the model's own top segment (``text_audio_video/visual_module/…`` ->
    ``visual_module/…``) and any scope above a head (``…/~_get_pair_embedding_heads/vis_embd`` -> ``vis_embd``).
    """
    module, sep, leaf = name.rpartition(":")
    if not sep:
        raise ValueError(f"{name!r}: an official leaf name is 'module/path:leaf'")
    segments = []
    for segment in module.split("/"):
        if not segment or segment.startswith("~"):
            continue
        match = _BN_SEGMENT.match(segment)
        segments.append(f"bn{match.group(1) or 0}" if match else segment)
    if whole_model:
        for i, segment in enumerate(segments):
            if segment in _MODEL_PARTS or segment in HEAD_NAMES:
                segments = segments[i:]
                break
    return "/".join(segments) + ":" + leaf


def _bn(path: str, param: str) -> str:
    return path + _BN_LEAVES[param]


def s3d_name(key: str) -> tuple[str, str]:
    """``stages.Mixed_3b.branch_1b.temporal_bn.weight`` -> ``('S3D/Mixed_3b/Branch_1_Conv2d_0b_3x3/bn1:scale', …)``."""
    parts = key.split(".")
    if parts[0] != "stages" or len(parts) < 4:
        raise KeyError(key)
    if parts[1].startswith("Mixed_"):
        unit, rest = f"S3D/{parts[1]}/{S3D_BRANCHES[parts[2]]}", parts[3:]
    else:
        unit, rest = f"S3D/{parts[1]}", parts[2:]
    joined = ".".join(rest)
    if joined in _S3D_UNIT_LEAVES:
        leaf, layout = _S3D_UNIT_LEAVES[joined]
        return f"{unit}/{leaf}", layout
    if len(rest) == 2 and rest[0] in _S3D_UNIT_BNS:
        return _bn(f"{unit}/{_S3D_UNIT_BNS[rest[0]]}", rest[1]), "vector"
    raise KeyError(key)


def resnet_name(key: str, root: str, stem: tuple[str, str], unit: str) -> tuple[str, str]:
    """A pre-activation ResNet's key (ours: ``units.u.b.conv_1.conv.weight``) -> its official name.

    Args:
        root: ``'TSMResNetV2'`` or ``'res_net_v2'``.
        stem: our stem attribute and the official stem module, ``('stem', 'tsm_resnet_stem')`` or
            ``('initial_conv', 'initial_conv')``.
        unit: the official unit/block path with ``{u}``/``{b}`` fields (``'tsm_resnet_unit_{u}/block_{b}'``).
    """
    parts = key.split(".")
    ours, theirs = stem
    if parts == [ours, "conv", "weight"]:
        return f"{root}/{theirs}:w", "conv2d"
    if parts[0] == "final_bn" and len(parts) == 2:
        return _bn(f"{root}/bn0", parts[1]), "vector"
    if parts[0] == "units" and len(parts) >= 5:
        block = f"{root}/" + unit.format(u=parts[1], b=parts[2])
        layer = parts[3]
        if layer.startswith("bn_") and len(parts) == 5:
            return _bn(f"{block}/bn{layer[3:]}", parts[4]), "vector"
        if parts[4:] == ["conv", "weight"] and (layer.startswith("conv_") or layer == "shortcut_conv"):
            return f"{block}/{layer}:w", "conv2d"
    raise KeyError(key)


def tsm_name(key: str) -> tuple[str, str]:
    return resnet_name(key, "TSMResNetV2", ("stem", "tsm_resnet_stem"), "tsm_resnet_unit_{u}/block_{b}")


def audio_resnet_name(key: str) -> tuple[str, str]:
    return resnet_name(key, "res_net_v2", ("initial_conv", "initial_conv"), "block_group_{u}/block_{b}")


def head_name(key: str) -> tuple[str, str]:
    """``video_va.net.3.weight`` -> ``('vid2audio_embd/final_projection:w', 'linear')``."""
    role, net, index, param = key.split(".")
    layer = HEAD_LAYERS[role][index]
    if layer.rsplit("/", 1)[1].startswith("bn"):
        return _bn(layer, param), "vector"
    return f"{layer}:{'w' if param == 'weight' else 'b'}", "linear" if param == "weight" else "vector"


def official_name(key: str, video_backbone: str) -> tuple[str, str] | None:
    """The canonical whole-model official name and layout of one of our ``MMV.state_dict()`` keys.

    Returns ``None`` for buffers the original does not have (BatchNorm's ``num_batches_tracked``); raises
    ``KeyError`` for a key with no official counterpart.
    """
    if key.endswith("num_batches_tracked"):
        return None
    tower, _, rest = key.partition(".")
    if tower == "video":
        name, layout = s3d_name(rest) if video_backbone == "s3d" else tsm_name(rest)
        return f"visual_module/{name}", layout
    if tower == "audio":
        name, layout = audio_resnet_name(rest)
        return f"audio_module/{name}", layout
    if key == "text.embedding.weight":
        return "text_module/embed:embeddings", "table"
    if key == "text.linear.weight":
        return "text_module/text_conv1:w", "conv1d"
    if key == "text.linear.bias":
        return "text_module/text_conv1:b", "vector"
    if tower == "heads":
        return head_name(rest)
    raise KeyError(key)


def is_expected_leftover(name: str) -> bool:
    """Official leaves a conversion leaves out on purpose: the EMA ``hidden``/``counter`` and the dropped heads."""
    if name.endswith((":hidden", ":counter")):
        return True
    return name.split("/", 1)[0] in DROPPED_HEADS
