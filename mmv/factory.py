"""Named presets and the one entry point that builds a model from a config.

>>> from mmv.factory import create_model, list_models
>>> list_models()  # the released models (mmv_*), the paper's training presets, the tiny CPU ones
['mmv_s3d', 'mmv_tsm_resnet_x1', 'mmv_tsm_resnet_x2', 's3d_fac', 'tiny_fac', 'tiny_tsm_fac', 'tsm_r50_fac',
 'tsm_r50x2_fac']
>>> model = create_model("tiny_fac", video={"num_frames": 16})           # nested override
>>> model = create_model("tiny_fac", video__num_frames=16, graph="fac")  # the same, flat

Building dispatches on typed config fields (``video.backbone``), never on the preset's name.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from importlib import resources
from typing import Any

from mmv.config import MMVConfig


def list_models() -> list[str]:
    """Names of the bundled presets (``mmv/presets/*.json``), sorted."""
    files = resources.files("mmv.presets").iterdir()
    return sorted(f.name[: -len(".json")] for f in files if f.name.endswith(".json"))


def _merge(base: dict[str, Any], key: str, value: Any) -> None:
    """Applies one override: ``a__b=v`` or ``a={'b': v}`` descend into sub-configs."""
    if "__" in key:
        head, rest = key.split("__", 1)
        if not isinstance(base.get(head), dict):
            raise ValueError(f"MMVConfig.{head}: cannot override {rest!r} in a non-mapping field")
        _merge(base[head], rest, value)
    elif isinstance(value, Mapping) and isinstance(base.get(key), dict):
        for sub_key, sub_value in value.items():
            _merge(base[key], sub_key, sub_value)
    else:
        base[key] = copy.deepcopy(value)


def get_config(name: str | MMVConfig | Mapping[str, Any], **overrides: Any) -> MMVConfig:
    """Resolves a preset name, a config or a dict, applies overrides and validates.

    Raises:
        ValueError: unknown preset name, unknown field, or an invalid value (the message names the field).
    """
    if isinstance(name, MMVConfig):
        data = name.to_dict()
    elif isinstance(name, Mapping):
        data = copy.deepcopy(dict(name))
    else:
        if name not in list_models():
            raise ValueError(f"unknown model {name!r}; presets are {list_models()}")
        data = json.loads(resources.files("mmv.presets").joinpath(f"{name}.json").read_text())
    for key, value in overrides.items():
        _merge(data, key, value)
    return MMVConfig.from_dict(data)


def create_model(name: str | MMVConfig | Mapping[str, Any], load_word_vectors: bool = True, **overrides: Any):
    """Builds an :class:`mmv.models.mmv.MMV` from a preset name (or config) plus overrides.

    Args:
        name: preset name from :func:`list_models`, an ``MMVConfig`` or a config dict.
        load_word_vectors: read ``text.word_vectors`` from disk when the config names a file; the
            checkpoint loader turns this off since the table is in the weights.
        **overrides: field overrides, nested (``video={'num_frames': 16}``) or flat (``video__num_frames=16``).
    """
    from mmv.models.mmv import MMV

    return MMV(get_config(name, **overrides), load_word_vectors=load_word_vectors)
