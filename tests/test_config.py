"""Configs, presets and the factory: validation names the field, overrides land where they say."""

from __future__ import annotations

import json

import pytest

from mmv.config import HeadConfig, MMVConfig
from mmv.factory import get_config, list_models

PAPER_PRESETS = ("s3d_fac", "tsm_r50_fac", "tsm_r50x2_fac")


def test_presets_listed():
    names = list_models()
    assert names == sorted(names)
    for name in (*PAPER_PRESETS, "tiny_fac", "tiny_tsm_fac"):
        assert name in names


@pytest.mark.parametrize("name", PAPER_PRESETS)
def test_paper_presets_hold_the_released_settings(name):
    cfg = get_config(name)
    assert cfg.name == name
    assert cfg.graph == "fac_relu"
    assert (cfg.video.num_frames, cfg.video.frame_size, cfg.video.fps) == (32, 200, 10.0)
    a = cfg.audio
    assert (a.sample_rate, a.n_fft, a.hop_length, a.n_mels, a.depth) == (48000, 2048, 1024, 80, 50)
    assert a.num_samples == 153_600
    t = cfg.text
    assert (t.vocab_size, t.word_dim, t.sentence_dim, t.max_words, t.freeze_word_vectors) == (
        65536,
        300,
        2048,
        16,
        True,
    )
    assert cfg.heads["video_va"] == HeadConfig("mlp@512", 512, True)
    assert cfg.heads["audio_va"] == HeadConfig("linear", 512, False)
    assert cfg.heads["va_vat"] == HeadConfig("linear", 256, True)
    assert cfg.heads["text_vat"] == HeadConfig("linear", 256, False)
    assert (cfg.norm.momentum, cfg.norm.eps) == (0.1, 1e-5)


def test_tsm_presets_differ_only_in_width():
    r50, r50x2 = get_config("tsm_r50_fac"), get_config("tsm_r50x2_fac")
    assert (r50.video.backbone, r50.video.depth, r50.video.width_mult) == ("tsm_resnet", 50, 1.0)
    assert r50x2.video.width_mult == 2.0
    assert r50.video.shift_fraction == 0.125
    d50, d2 = r50.to_dict(), r50x2.to_dict()
    d50["video"].pop("width_mult"), d2["video"].pop("width_mult"), d50.pop("name"), d2.pop("name")
    assert d50 == d2


def test_json_round_trip():
    cfg = get_config("tiny_fac")
    again = MMVConfig.from_dict(json.loads(cfg.to_json()))
    assert again == cfg


def test_overrides_nested_and_flat_agree():
    a = get_config("tiny_fac", video={"num_frames": 16}, graph="fac")
    b = get_config("tiny_fac", video__num_frames=16, graph="fac")
    assert a == b
    assert a.video.num_frames == 16 and a.video.frame_size == get_config("tiny_fac").video.frame_size
    c = get_config("tiny_fac", heads__va_vat__dim=32)
    assert c.heads["va_vat"].dim == 32 and c.heads["va_vat"].bn_after is True


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"video": {"backbone": "i3d"}}, "VideoConfig.backbone"),
        ({"video": {"num_frames": 0}}, "VideoConfig.num_frames"),
        ({"video": {"s3d_first_temporal_kernel": 4}}, "VideoConfig.s3d_first_temporal_kernel"),
        ({"video": {"s3d_gating_startat": "Mixed_9z"}}, "VideoConfig.s3d_gating_startat"),
        ({"video": {"backbone": "tsm_resnet", "space_to_depth": True}}, "VideoConfig.space_to_depth"),
        ({"video": {"shift_fraction": 0.75}}, "VideoConfig.shift_fraction"),
        ({"video": {"depth": 34}}, "VideoConfig.depth"),
        ({"video": {"colour": 1}}, "MMVConfig.video.colour"),
        ({"audio": {"fmax": 30000.0}}, "AudioConfig.fmax"),
        ({"audio": {"mel_scale": "bark"}}, "AudioConfig.mel_scale"),
        ({"audio": {"depth": 7}}, "AudioConfig.depth"),
        ({"text": {"vocab_size": 1}}, "TextConfig.vocab_size"),
        ({"text": {"sentence_dim": -3}}, "TextConfig.sentence_dim"),
        ({"graph": "tree"}, "MMVConfig.graph"),
        ({"modalities": ["video", "smell"]}, "MMVConfig.modalities"),
        ({"modalities": []}, "MMVConfig.modalities"),
        ({"heads": {"video_va": {"mode": "mlp@x"}}}, "MMVConfig.heads['video_va'].mode"),
        ({"heads": {"video_va": {"mode": "linear@512"}}}, "MMVConfig.heads['video_va'].mode"),
        ({"norm": {"momentum": 0.0}}, "NormConfig.momentum"),
        ({"dropout": 0.5}, "MMVConfig.dropout"),
    ],
)
def test_invalid_configs_name_the_field(overrides, field):
    with pytest.raises(ValueError) as err:
        get_config("tiny_fac", **overrides)
    assert str(err.value).startswith(field), str(err.value)


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        get_config("nope")


def test_bool_is_not_a_count():
    with pytest.raises(ValueError, match="VideoConfig.num_frames"):
        get_config("tiny_fac", video={"num_frames": True})
