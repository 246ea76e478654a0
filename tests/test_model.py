"""The assembled towers: paper presets build with the right sizes, every parameter learns, word vectors stay frozen."""

from __future__ import annotations

import pytest
import torch

from mmv.factory import create_model
from mmv.losses import MMVLoss
from training.models import count_parameters
from training.models import main as models_cli

# output widths d_v, d_a, d_t of the paper's models (spec section 2)
PAPER_DIMS = {"s3d_fac": (1024, 2048, 2048), "tsm_r50_fac": (2048, 2048, 2048), "tsm_r50x2_fac": (4096, 2048, 2048)}


@pytest.mark.parametrize("preset", sorted(PAPER_DIMS))
def test_paper_presets_build(preset, capsys):
    torch.manual_seed(0)
    model = create_model(preset)
    dims = (model.video.output_dim, model.audio.output_dim, model.text.output_dim)
    assert dims == PAPER_DIMS[preset]
    counts = {t: count_parameters(getattr(model, t)) for t in ("video", "audio", "text")}
    with capsys.disabled():
        print(f"\n{preset}: " + ", ".join(f"{t} {n:,}" for t, n in counts.items()))
    # The text tower is the 65,536 x 300 word2vec table + Linear(300 -> 2048).
    assert counts["text"] == 65536 * 300 + 300 * 2048 + 2048
    # Audio: ResNet-V2-50 on a 1-channel spectrogram, the same in every released model.
    assert counts["audio"] == count_parameters(create_model("s3d_fac", modalities=["audio"]).audio)


def test_tsm_x2_is_about_four_times_r50():
    with torch.device("meta"):
        r50 = count_parameters(create_model("tsm_r50_fac", modalities=["video"]).video)
        r50x2 = count_parameters(create_model("tsm_r50x2_fac", modalities=["video"]).video)
    assert 3.9 < r50x2 / r50 < 4.0  # convs scale with width^2, BN with width


@pytest.mark.parametrize("preset", ["tiny_fac", "tiny_tsm_fac"])
def test_every_parameter_gets_a_gradient(preset):
    torch.manual_seed(0)
    model = create_model(preset).train()
    cfg = model.config
    video = torch.rand(2, cfg.video.num_frames, cfg.video.frame_size, cfg.video.frame_size, 3)
    audio = torch.rand(2, cfg.audio.num_samples) * 2 - 1
    text = torch.randint(2, cfg.text.vocab_size, (2, 3, cfg.text.max_words))
    text[:, :, -4:] = 0  # some padding
    out = model({"video": video, "audio": audio, "text": text})
    assert set(out) >= {"video_va", "video_vat", "audio_va", "text_vat", "video_repr", "audio_repr", "text_repr"}
    losses = MMVLoss()(out)
    assert set(losses) == {"va_loss", "vt_loss", "loss"}
    losses["loss"].backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())]
    assert not missing, missing
    assert all(p.requires_grad for p in model.parameters())  # tiny presets train their word table


def test_frozen_word_vectors_get_no_gradient():
    model = create_model("tiny_fac", modalities=["text"], text={"freeze_word_vectors": True}).train()
    ids = torch.randint(2, model.config.text.vocab_size, (3, 2, model.config.text.max_words))
    model.encode_text(ids)["repr"].sum().backward()
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen == ["text.embedding.weight"]
    assert model.text.embedding.weight.grad is None
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and all(p.grad is not None and p.grad.any() for p in trainable)


def test_modality_subsets():
    model = create_model("tiny_fac", modalities=["video", "audio"])
    assert not hasattr(model, "text")
    with pytest.raises(ValueError, match="no text tower"):
        model.encode_text(torch.zeros(1, 4, dtype=torch.long))
    assert model.modalities == ["video", "audio"]


def test_word_vectors_from_config(tmp_path):
    path = tmp_path / "vectors.txt"
    path.write_text("ball 1 0 0 0\ncube 0 1 0 0\nred 0 0 1 0\n")  # GloVe text layout, no header
    model = create_model("tiny_fac", modalities=["text"], text={"word_vectors": str(path), "word_dim": 4})
    assert model.config.text.vocab_size == len(model.vocab) == 5  # + <pad>, <unk>
    ids = model.tokenize(["red ball", "a cube"])
    assert ids.shape == (2, model.config.text.max_words)
    w = model.text.embedding.weight
    assert torch.equal(w[model.vocab.index("cube")], torch.tensor([0.0, 1.0, 0.0, 0.0]))
    assert w.requires_grad  # tiny_fac trains its table; freezing is the config's choice, not the loader's


def test_models_cli_counts_match_the_built_models(capsys):
    import json

    assert models_cli(["tiny_fac", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    model = create_model("tiny_fac")
    assert row["video"]["params"] == count_parameters(model.video)
    assert row["audio"]["params"] == count_parameters(model.audio)
    assert row["text"]["params"] == count_parameters(model.text)
    assert row["video"]["input"] == [8, 64, 64, 3]
