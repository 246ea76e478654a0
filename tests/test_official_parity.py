"""Converted official checkpoints compute what the official JAX/Haiku implementation computes.

For each of the seven reference models of ``shared/official_parity`` (copied in part to tests/data): regenerate the
official parameters with the recipe, write them in the released layout (a pickle of the nested params/state dict,
or a flat npz), convert them, run the stored inputs and compare every stored endpoint and output: float64 within
1e-9 relative, float32 within 1e-4 (the gates the reference's README suggests; observed: 4e-15 and 3e-6).
The mutation tests at the end show that a transposed kernel, a dropped head bias or the other padding rule is
caught by the same comparison.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from official_helpers import (
    F32_GATE,
    F64_GATE,
    fac_outputs,
    flat_tree,
    meta,
    reference,
    relative_error,
    write_official_pickle,
)

from mmv.config import AudioConfig, NormConfig, VideoConfig
from mmv.models.audio_resnet import AudioResNet
from mmv.models.s3d import S3DG
from mmv.models.tsm_resnet import TSMResNet
from mmv.official import convert as convert_mod
from mmv.official import mapping
from mmv.official.convert import convert_official, load_official_backbone
from mmv.official.unpickle import load_official

BACKBONES = {
    "s3d": lambda: S3DG(VideoConfig(), NormConfig()),
    "s3d_s2d": lambda: S3DG(VideoConfig(space_to_depth=True), NormConfig()),
    "tsm": lambda: TSMResNet(VideoConfig(backbone="tsm_resnet", width_mult=1.0), NormConfig()),
    "tsm_x2": lambda: TSMResNet(VideoConfig(backbone="tsm_resnet", width_mult=2.0), NormConfig()),
    "audio": lambda: AudioResNet(AudioConfig(), NormConfig()),
}


@pytest.fixture(autouse=True)
def one_thread():
    # Inputs are tiny: on a busy 2-core machine two threads made these passes up to 50x slower (reference README).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def backbone_outputs(model: str, net, dtype: torch.dtype) -> dict[str, np.ndarray]:
    """Our endpoints in the official layout (TSM's ``[B, T, …]`` folded to ``[B*T, …]``; audio's ``output``)."""
    ref = reference(model)
    x = torch.from_numpy(ref["in:x"]).to(dtype)
    with torch.no_grad():
        ours = net.extract_endpoints(x)
    out = {}
    for name, value in ours.items():
        if model.startswith("tsm") and value.dim() == 5:
            value = value.reshape(-1, *value.shape[2:])
        out["output" if name == "Embeddings" and model == "audio" else name] = value.numpy()
    return out


def compare(outputs: dict[str, np.ndarray], model: str, precision: str) -> dict[str, float]:
    """Relative error of every stored output (float64, or float32 against the official float32 where stored)."""
    ref = reference(model)
    errors = {}
    for record in meta(model)["outputs"]:
        name = record["name"]
        if name not in outputs:
            continue
        official = ref[f"out32:{name}"] if precision == "32" and f"out32:{name}" in ref else ref[f"out64:{name}"]
        errors[name] = relative_error(outputs[name], official)
    return errors


@pytest.fixture(scope="module")
def backbone_files(tmp_path_factory):
    """Each backbone's regenerated tree written as a flat npz (the ``module/path:leaf`` export format)."""
    root = tmp_path_factory.mktemp("official_backbones")
    files = {}
    for model in BACKBONES:
        files[model] = root / f"{model}.npz"
        np.savez(files[model], **flat_tree(model))
    return files


@pytest.mark.parametrize("model", list(BACKBONES))
def test_backbone_matches_official(model, backbone_files):
    flat = load_official(backbone_files[model])
    n_leaves = sum(meta(model)["n_leaves"].values())
    assert len(flat) == n_leaves
    net64 = load_official_backbone(BACKBONES[model](), flat, torch.float64)
    errors64 = compare(backbone_outputs(model, net64, torch.float64), model, "64")
    assert set(errors64) == {o["name"] for o in meta(model)["outputs"]}
    assert max(errors64.values()) < F64_GATE, errors64
    net32 = load_official_backbone(BACKBONES[model](), flat, torch.float32)
    errors32 = compare(backbone_outputs(model, net32, torch.float32), model, "32")
    assert max(errors32.values()) < F32_GATE, errors32


def test_space_to_depth_backbone_folds_rgb_like_the_reference(backbone_files):
    net = load_official_backbone(BACKBONES["s3d_s2d"](), load_official(backbone_files["s3d_s2d"]), torch.float64)
    ref = reference("s3d_s2d")
    with torch.no_grad():
        folded_here = net(torch.from_numpy(ref["in:video_rgb"]).double())
    assert relative_error(folded_here, ref["out64:Embeddings"]) < F64_GATE


@pytest.fixture(scope="module")
def fac_pickles(tmp_path_factory):
    root = tmp_path_factory.mktemp("official_fac")
    return {m: write_official_pickle(m, root / f"{m}.pkl") for m in ("fac_s3d", "fac_tsm")}


@pytest.mark.parametrize("model", ["fac_s3d", "fac_tsm"])
def test_whole_model_matches_official(model, fac_pickles):
    flat = load_official(fac_pickles[model])
    ref = reference(model)
    for dtype, precision, gate in ((torch.float64, "64", F64_GATE), (torch.float32, "32", F32_GATE)):
        converted, report = convert_official(flat, dtype=dtype)
        errors = compare(fac_outputs(converted, ref, dtype), model, precision)
        assert len(errors) == 7 and max(errors.values()) < gate, errors
    expected = {"s3d": "mmv_s3d", "tsm_resnet": "mmv_tsm_resnet_x1"}[converted.config.video.backbone]
    assert report.preset == expected
    assert converted.config.text.pool_padding and converted.config.text.vocab_size == 512
    assert report.left_out["txt2audio_embd"] == 2 and report.left_out["audio2txt_embd"] == 2
    assert report.leaves_used == len(flat) - sum(report.left_out.values())


def test_released_presets_match_the_released_models():
    from mmv.factory import get_config

    s3d, x1, x2 = (get_config(n) for n in ("mmv_s3d", "mmv_tsm_resnet_x1", "mmv_tsm_resnet_x2"))
    assert s3d.video.space_to_depth and s3d.video.backbone == "s3d"
    assert (x1.video.backbone, x1.video.width_mult, x2.video.width_mult) == ("tsm_resnet", 1.0, 2.0)
    for cfg in (s3d, x1, x2):
        assert cfg.text.pool_padding and cfg.text.vocab_size == 65536 and "audio_text" not in cfg.heads


# --- the comparison catches the slips it is there for ---------------------------------------------------------


def _fac_errors(flat, model: str) -> dict[str, float]:
    converted, _ = convert_official(flat, dtype=torch.float64)
    return compare(fac_outputs(converted, reference(model), torch.float64), model, "64")


def test_a_transposed_kernel_fails_parity(monkeypatch, fac_pickles):
    flat = load_official(fac_pickles["fac_s3d"])
    # Swap the spatial axes of every 3-D kernel: shapes still fit (square kernels), values land wrong.
    monkeypatch.setitem(mapping.LAYOUTS, "conv3d", lambda w: w.transpose(4, 3, 0, 2, 1))
    errors = _fac_errors(flat, "fac_s3d")
    assert errors["vid_repr"] > 1e-3 and errors["aud_repr"] < F64_GATE


def test_a_dropped_head_bias_fails_parity(monkeypatch, fac_pickles):
    flat = load_official(fac_pickles["fac_s3d"])
    name = next(n for n in flat if n.endswith("vis_embd/final_projection:b"))
    flat = {**flat, name: np.zeros_like(flat[name])}  # what dropping the bias instead of folding it computes
    errors = _fac_errors(flat, "fac_s3d")
    assert errors["vid_embd.totxt"] > 1e-2 and errors["aud_embd.totxt"] > 1e-2
    assert errors["vid_embd.toaud"] < F64_GATE


def test_masking_padding_fails_parity_on_the_padded_row(monkeypatch, fac_pickles):
    flat = load_official(fac_pickles["fac_s3d"])
    real = convert_mod.official_config
    monkeypatch.setattr(convert_mod, "official_config", lambda f: _with_masked_padding(real(f)))
    errors = _fac_errors(flat, "fac_s3d")
    assert errors["txt_embd.tovid"] > 1e-2  # the last row is half padding
    assert errors["vid_repr"] < F64_GATE


def _with_masked_padding(cfg):
    import dataclasses

    return dataclasses.replace(cfg, text=dataclasses.replace(cfg.text, pool_padding=False))
