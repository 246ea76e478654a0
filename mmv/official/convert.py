"""Turn a released MMV checkpoint (a flat ``{'module/path:leaf': array}`` tree) into our :class:`~mmv.models.mmv.MMV`.

The conversion is strict in both directions: every parameter and BatchNorm statistic of ours must be filled
from a leaf of the right shape, and every official leaf must be used, except those left out on purpose
(:func:`mmv.official.mapping.is_expected_leftover`: the EMA ``hidden``/``counter`` copies, which eval mode never
reads, and the two heads FAC never uses at evaluation, ``txt2audio_embd`` and ``audio2txt_embd``). A missing,
misshapen or unexpected leaf raises :class:`OfficialCheckpointError` naming it, so a changed Haiku spelling
fails loudly instead of leaving a layer at its random initialisation.

Two differences from our own models are bridged here:

* the released S_va -> S_vat Linear (``vis_embd``) has a bias although a BatchNorm follows; in eval mode it
  folds exactly into that BatchNorm (``running_mean := mean - b``), and in training mode the batch mean cancels
  it anyway, so our bias-free head plus the folded mean computes the same thing;
* the released text tower takes the max over every word position, padding included: the presets named after
  the released files (``mmv_s3d``, ``mmv_tsm_resnet_x1``, ``mmv_tsm_resnet_x2``) set ``text.pool_padding``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from mmv.config import MMVConfig
from mmv.factory import get_config
from mmv.models.mmv import MMV
from mmv.official.mapping import (
    DROPPED_HEADS,
    LAYOUTS,
    VA_VAT_BIAS,
    VA_VAT_BN_MEAN,
    audio_resnet_name,
    canonical_name,
    is_expected_leftover,
    official_name,
    s3d_name,
    tsm_name,
)
from mmv.official.unpickle import OfficialCheckpointError
from mmv.tokenizer import Vocabulary

RELEASED_PRESETS = {"s3d": "mmv_s3d", 1.0: "mmv_tsm_resnet_x1", 2.0: "mmv_tsm_resnet_x2"}


@dataclasses.dataclass
class ConversionReport:
    """What a conversion did, for the CLI's summary and the checkpoint's metadata."""

    preset: str
    leaves_used: int
    values: int
    left_out: dict[str, int]
    folded: list[str]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def canonical_tree(flat: Mapping[str, np.ndarray], whole_model: bool) -> dict[str, str]:
    """``{canonical name: original name}``; two leaves with one canonical spelling is an error."""
    out: dict[str, str] = {}
    for name in flat:
        key = canonical_name(name, whole_model)
        if key in out:
            raise OfficialCheckpointError(f"leaves {out[key]!r} and {name!r} are the same parameter spelled twice")
        out[key] = name
    return out


def _count_blocks(names: list[str], prefix: str) -> int:
    return len({n[len(prefix) :].split("/", 1)[0] for n in names if n.startswith(prefix)})


def official_config(flat: Mapping[str, np.ndarray]) -> MMVConfig:
    """The :class:`MMVConfig` of a released whole-model tree, read from its leaves' names and shapes.

    Starts from the preset named after the released file of the same backbone and width, then takes the word
    table's size and every width it can read from the tree; the strict shape checks of :func:`convert_state_dict`
    catch anything else that differs.
    """
    canon = canonical_tree(flat, whole_model=True)
    names = sorted(canon)

    def shape(name: str) -> tuple[int, ...]:
        if name not in canon:
            raise OfficialCheckpointError(f"the checkpoint has no leaf {name!r} (canonical spelling)")
        return tuple(np.shape(flat[canon[name]]))

    video: dict = {}
    if any(n.startswith("visual_module/S3D/") for n in names):
        kt, _, _, cin, cout = shape("visual_module/S3D/Conv2d_1a_7x7/conv3_d:w")
        preset = RELEASED_PRESETS["s3d"]
        video = {"space_to_depth": cin == 24, "width_mult": cout / 64}
        if cin != 24:
            video["s3d_first_temporal_kernel"] = kt
    elif any(n.startswith("visual_module/TSMResNetV2/") for n in names):
        width = shape("visual_module/TSMResNetV2/tsm_resnet_stem:w")[-1] / 64
        blocks = _count_blocks(names, "visual_module/TSMResNetV2/tsm_resnet_unit_2/")
        preset = RELEASED_PRESETS.get(width, RELEASED_PRESETS[1.0])
        video = {"width_mult": width, "depth": {6: 50, 23: 101}.get(blocks, blocks)}
    else:
        raise OfficialCheckpointError("no visual_module/S3D or visual_module/TSMResNetV2 leaves: not an MMV model")
    vocab, word_dim = shape("text_module/embed:embeddings")
    sentence_dim = shape("text_module/text_conv1:w")[-1]
    text = {"vocab_size": vocab, "word_dim": word_dim, "sentence_dim": sentence_dim}
    return get_config(preset, video=video, text=text)


def _to_tensor(array: np.ndarray, layout: str, like: torch.Tensor, key: str, name: str, dtype: torch.dtype):
    value = np.ascontiguousarray(LAYOUTS[layout](np.asarray(array)))
    if tuple(value.shape) != tuple(like.shape):
        raise OfficialCheckpointError(
            f"{name!r} has shape {tuple(np.shape(array))} ({layout} layout -> {tuple(value.shape)}), "
            f"but {key} needs {tuple(like.shape)}"
        )
    return torch.from_numpy(value.astype(np.float64 if dtype == torch.float64 else np.float32)).to(dtype)


def map_state_dict(
    module: nn.Module,
    flat: Mapping[str, np.ndarray],
    namer,
    whole_model: bool,
    dtype: torch.dtype = torch.float32,
) -> tuple[dict[str, torch.Tensor], set[str]]:
    """Fills ``module``'s state dict from ``flat``; returns it and the canonical names it used.

    Args:
        namer: our key -> ``(canonical official name, layout)``, ``None`` to keep our value, ``KeyError`` if unknown.
        whole_model: ``flat`` is a whole model (its top segment is dropped when matching names).
    """
    canon = canonical_tree(flat, whole_model)
    state: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for key, ours in module.state_dict().items():
        try:
            mapped = namer(key)
        except KeyError:
            raise OfficialCheckpointError(f"{key}: no official counterpart is known for this parameter") from None
        if mapped is None:
            state[key] = ours
            continue
        name, layout = mapped
        if name not in canon:
            raise OfficialCheckpointError(f"{key}: the checkpoint has no leaf {name!r} (canonical spelling)")
        state[key] = _to_tensor(flat[canon[name]], layout, ours, key, canon[name], dtype)
        used.add(name)
    return state, used


def _check_leftovers(canon: Mapping[str, str], used: set[str], allowed) -> dict[str, int]:
    left = sorted(set(canon) - used)
    unexpected = [canon[n] for n in left if not allowed(n)]
    if unexpected:
        more = f" and {len(unexpected) - 8} more" if len(unexpected) > 8 else ""
        raise OfficialCheckpointError(f"leaves with no place in the model: {unexpected[:8]}{more}")
    counts: dict[str, int] = {}
    for n in left:
        head = n.split("/", 1)[0]
        reason = head if head in DROPPED_HEADS else "EMA hidden/counter copies (not read in eval mode)"
        counts[reason] = counts.get(reason, 0) + 1
    return counts


def convert_official(
    flat: Mapping[str, np.ndarray],
    vocab: Vocabulary | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[MMV, ConversionReport]:
    """Builds our model from a released whole-model tree.

    Args:
        flat: ``{'module/path:leaf': array}`` (:func:`mmv.official.unpickle.load_official`).
        vocab: the word list of the table's rows, or ``None``: then video and audio work and text queries raise a
            clear error (the released files hold the table but not its words).
        dtype: the model's dtype; the released leaves are float32, so float64 only widens them (and makes the
            bias fold exact to the last bit of the float64 parity tests).

    Returns:
        The model in eval mode and a :class:`ConversionReport`.
    """
    config = official_config(flat)
    if vocab is not None and len(vocab) != config.text.vocab_size:
        raise OfficialCheckpointError(
            f"the word list has {len(vocab)} entries but the checkpoint's word table has {config.text.vocab_size} "
            "rows: give one word per row, in row order"
        )
    model = MMV(config, load_word_vectors=False, vocab=vocab).to(dtype)
    backbone = config.video.backbone
    state, used = map_state_dict(model, flat, lambda key: official_name(key, backbone), True, dtype)
    canon = canonical_tree(flat, whole_model=True)
    bias = torch.from_numpy(np.asarray(flat[canon[VA_VAT_BIAS]], dtype=np.float64).reshape(-1)).to(dtype)
    state[VA_VAT_BN_MEAN] = state[VA_VAT_BN_MEAN] - bias
    used.add(VA_VAT_BIAS)
    left_out = _check_leftovers(canon, used, is_expected_leftover)
    model.load_state_dict(state, strict=True)
    model.eval()
    report = ConversionReport(
        preset=config.name,
        leaves_used=len(used),
        values=int(sum(np.size(flat[canon[n]]) for n in used)),
        left_out=left_out,
        folded=[f"{VA_VAT_BIAS} -> {VA_VAT_BN_MEAN} (running_mean -= bias)"],
    )
    return model, report


BACKBONE_ROOTS = {"S3D": s3d_name, "TSMResNetV2": tsm_name, "res_net_v2": audio_resnet_name}


def load_official_backbone(backbone: nn.Module, flat: Mapping[str, np.ndarray], dtype: torch.dtype = torch.float32):
    """Loads a backbone-only official tree (top module ``S3D``, ``TSMResNetV2`` or ``res_net_v2``) into ``backbone``.

    Used by the parity tests for the official backbones on their own; the same name mapping serves
    :func:`convert_official`.

    Returns:
        ``backbone`` (converted to ``dtype``, eval mode).
    """
    roots = {name.split("/", 1)[0] for name in flat}
    if len(roots) != 1 or next(iter(roots)) not in BACKBONE_ROOTS:
        raise OfficialCheckpointError(f"expected one backbone root among {sorted(BACKBONE_ROOTS)}, got {sorted(roots)}")
    namer = BACKBONE_ROOTS[next(iter(roots))]
    backbone.to(dtype)
    state, used = map_state_dict(
        backbone, flat, lambda key: None if key.endswith("num_batches_tracked") else namer(key), False, dtype
    )
    _check_leftovers(canonical_tree(flat, False), used, lambda n: n.endswith((":hidden", ":counter")))
    backbone.load_state_dict(state, strict=True)
    return backbone.eval()
