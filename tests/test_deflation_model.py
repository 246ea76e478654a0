"""MMV.encode_image (naive fallback, calibrated, inflated) and deflation.safetensors next to a checkpoint."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from safetensors import safe_open
from train_helpers import single_thread

from mmv.checkpoint import DEFLATION_FILE, load_checkpoint, save_checkpoint, save_deflation
from mmv.deflation import CalibrationOptions, deflate, inflate, recalibrate, video_fingerprint
from mmv.factory import create_model
from mmv.models.mmv import MMV


def _model(preset: str = "tiny_fac") -> MMV:
    single_thread()
    torch.manual_seed(0)
    model = create_model(preset, video={"num_frames": 4, "frame_size": 32}, audio={"duration": 1.0})
    model.train()
    with torch.no_grad():  # move the BN running statistics away from their init, as training would
        for _ in range(3):
            model.encode_video(torch.rand(4, 4, 32, 32, 3))
    return model.eval()


def _images(n: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 32, 32, 3), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


@pytest.fixture(scope="module")
def calibrated():
    model = _model()
    options = CalibrationOptions(steps=6, batch_size=8)
    recalibrate(model, _images(24, 1), options, held_out=_images(6, 2), info={"data": "noise"})
    return model


def test_encode_image_without_calibration_warns_once_and_deflates_naively():
    model = _model()
    images = _images()
    with pytest.warns(UserWarning, match="naive deflation"):
        out = model.encode_image(images)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = model.encode_image(images)  # the warning is said once per model
    assert set(out) == {"repr", "va", "vat"}
    assert out["repr"].shape == (6, model.video.output_dim) and out["vat"].shape == (6, 64)
    x = images.float() / 255
    with torch.no_grad():
        naive = deflate(model.video, own_bn=False)(x)
        torch.testing.assert_close(out["repr"], naive)
        torch.testing.assert_close(again["vat"], model._video_heads(naive)["vat"])  # the video heads
        torch.testing.assert_close(model.encode_image(images, mode="naive")["va"], out["va"])
    with pytest.raises(ValueError, match="training.deflate"):
        model.encode_image(images, mode="calibrated")
    with pytest.raises(ValueError, match=r"\[B, H, W, 3\]"):
        model.encode_image(torch.rand(2, 4, 32, 32, 3))


def test_inflated_mode_is_the_static_video():
    model = _model("tiny_tsm_fac")
    images = _images(3)
    with torch.no_grad():
        out = model.encode_image(images, mode="inflated")
        ref = model.encode_video(inflate(images.float() / 255, 4))
    for k in ref:
        torch.testing.assert_close(out[k], ref[k])


def test_encode_image_uses_the_attached_calibration(calibrated):
    model = calibrated
    assert model.calibrated_deflation is not None
    assert model.deflation_info["data"] == "noise" and model.deflation_info["steps"] == 6
    images = _images()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning
        out = model.encode_image(images)
        torch.testing.assert_close(out["repr"], model.encode_image(images, mode="calibrated")["repr"])
    with torch.no_grad():
        torch.testing.assert_close(out["repr"], model.calibrated_deflation(images.float() / 255))
    naive = model.encode_image(images, mode="naive")["repr"]
    assert not torch.allclose(naive, out["repr"], atol=1e-5)  # the recalibrated gamma/beta do change things
    # The tower is not part of the model's state: model.safetensors stays the video model's.
    assert not any("deflat" in k for k in model.state_dict())
    assert len(list(model.parameters())) == len(list(_model().parameters()))


def test_checkpoint_round_trip_of_calibrated_params(tmp_path, calibrated):
    model = calibrated
    path = save_checkpoint(model, tmp_path / "ckpt")
    assert (path / DEFLATION_FILE).is_file()
    with safe_open(str(path / DEFLATION_FILE), framework="pt") as f:
        meta = f.metadata()
        keys = set(f.keys())
    assert meta["format"] == "mmv-deflation" and meta["backbone"] == "S3DG"
    assert meta["video_fingerprint"] == video_fingerprint(model.video)
    assert json.loads(meta["info"])["num_frames"] == 4
    assert keys == set(model.calibrated_deflation.state_dict())  # gamma/beta only, named like the video BNs
    loaded = load_checkpoint(path)
    assert loaded.calibrated_deflation is not None and loaded.deflation_info["steps"] == 6
    for (name, p), q in zip(model.calibrated_deflation.named_parameters(), loaded.calibrated_deflation.parameters()):
        assert torch.equal(p, q), name
    images = _images()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        torch.testing.assert_close(loaded.encode_image(images)["vat"], model.encode_image(images)["vat"])


def test_save_deflation_into_an_existing_checkpoint_and_fallbacks(tmp_path, calibrated):
    plain = _model()  # the same weights as `calibrated` before recalibration (same seed, same warm-up)
    path = save_checkpoint(plain, tmp_path / "ckpt")
    assert not (path / DEFLATION_FILE).exists()
    with pytest.raises(ValueError, match="no calibrated deflation"):
        save_deflation(plain, path)
    save_deflation(calibrated, path)
    assert load_checkpoint(path).calibrated_deflation is not None
    # Retrained video weights: the stored gamma/beta belong to other weights -> warn, fall back to naive.
    with torch.no_grad():
        plain.video.stages["Conv2d_1a_7x7"].conv.weight.add_(0.01)
    save_checkpoint(plain, tmp_path / "retrained")
    (tmp_path / "retrained" / DEFLATION_FILE).write_bytes((path / DEFLATION_FILE).read_bytes())
    with pytest.warns(UserWarning, match="other video weights"):
        stale = load_checkpoint(tmp_path / "retrained")
    assert stale.calibrated_deflation is None
    with pytest.warns(UserWarning, match="naive deflation"):
        stale.encode_image(_images(2))
    # A corrupt file: the model still loads, with a warning.
    (path / DEFLATION_FILE).write_bytes(b"not a safetensors file")
    with pytest.warns(UserWarning, match="cannot read"):
        broken = load_checkpoint(path)
    assert broken.calibrated_deflation is None


def test_set_calibrated_deflation_checks_the_tower():
    a, b = _model(), _model()
    with pytest.raises(ValueError, match="this model's video tower"):
        a.set_calibrated_deflation(deflate(b.video))
    a.set_calibrated_deflation(deflate(a.video), {"x": 1})
    assert a.deflation_info == {"x": 1}
    a.set_calibrated_deflation(None)
    assert a.calibrated_deflation is None and a.deflation_info == {}
