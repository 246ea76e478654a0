"""training.main and its parts: the recipe format, the step (precision, accumulation, schedule, decay groups),
a short run that writes every output, and bad media skipped and counted while the run goes on."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from torch import nn
from train_helpers import ROOT, SAMPLE, read_csv, single_thread, steps_of, tiny_args

from mmv.checkpoint import load_checkpoint
from mmv.data.manifest import load_manifest, save_manifest
from mmv.factory import get_config
from mmv.losses import MMVLoss
from training import config as config_lib
from training import distributed
from training import recipe as recipe_lib
from training.checkpointing import read_state
from training.main import main
from training.step import TrainStep, WarmupCosine, autocast, grad_scaler, param_groups, set_conv_memory_format

CONFIGS = ROOT / "training" / "configs"


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    single_thread()
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------------- config


def test_dotted_overrides_parse_yaml_values_into_typed_fields() -> None:
    cfg = recipe_lib.parse_args(
        [
            "--optim.lr", "1e-3", "--data.batch_size=8", "--train.compile", "--dist.sync-bn", "true",
            "--data.train", "[{manifest: a.parquet}, {manifest: b.parquet, proportion: 3}]",
            "--data.train.1.split", "null", "--model.overrides.video.num_frames", "4", "--resume", "latest",
        ]
    )  # fmt: skip
    assert cfg.optim.lr == pytest.approx(1e-3) and isinstance(cfg.optim.lr, float)
    assert cfg.data.batch_size == 8 and cfg.train.compile is True and cfg.dist.sync_bn is True
    assert [(s.manifest, s.proportion, s.split) for s in cfg.data.train] == [
        ("a.parquet", 1.0, "train"),
        ("b.parquet", 3.0, None),
    ]
    assert cfg.model.overrides == {"video": {"num_frames": 4}} and cfg.resume == "latest"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--optim.lrr", "1"], "optim.lrr: unknown key"),
        (["--nonsense", "1"], "nonsense: unknown key"),
        (["--data.batch_size", "many"], "data.batch_size: expected int"),
        (["--train.precision", "fp8"], "train.precision"),
        (["--data.train", "[{manifest: a, weight: 2}]"], "data.train.0.weight: unknown key"),
        (["--data.train.3.proportion", "1"], "data.train.3: no such list item"),
    ],
)
def test_bad_keys_and_values_are_errors_that_name_the_key(args: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        recipe_lib.parse_args(args)


def test_extends_merges_mappings_replaces_lists_and_refuses_cycles(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(
        "optim: {lr: 0.5, warmup_steps: 7}\ndata: {train: [{manifest: a}, {manifest: b}], batch_size: 3}\n"
    )
    (tmp_path / "sub").mkdir()
    child = "extends: ../base.yaml\noptim: {lr: 0.25}\ndata: {train: [{manifest: c}]}\n"
    (tmp_path / "sub" / "child.yaml").write_text(child)
    cfg = recipe_lib.resolve(tmp_path / "sub" / "child.yaml", [("optim.warmup_steps", 9)])
    assert (cfg.optim.lr, cfg.optim.warmup_steps, cfg.data.batch_size) == (0.25, 9, 3)
    assert [s.manifest for s in cfg.data.train] == ["c"]
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ValueError, match="cycle"):
        recipe_lib.resolve(tmp_path / "a.yaml")


@pytest.mark.parametrize("recipe", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_every_recipe_resolves_and_builds_a_valid_model_config(recipe: str) -> None:
    cfg = recipe_lib.resolve(CONFIGS / recipe)
    model_cfg = get_config(cfg.model.name, **cfg.model.overrides)
    assert cfg.data.train and model_cfg.graph in ("shared", "disjoint", "fac", "fac_relu", "fac_bnrelu")
    assert yaml.safe_load(config_lib.dump(cfg)) == cfg.to_dict()  # the written config reads back the same


def test_paper_recipes_and_ablations() -> None:
    s3d = recipe_lib.resolve(CONFIGS / "s3d_howto_audioset.yaml")
    assert (s3d.optim.lr, s3d.optim.warmup_steps, s3d.loss.temperature) == (0.002, 5000, 0.07)
    assert (s3d.train.precision, s3d.dist.sync_bn, s3d.data.num_captions) == ("bf16", True, 4)
    assert sorted(s.manifest.split("/")[-1] for s in s3d.data.train) == ["audioset.parquet", "howto100m.parquet"]
    graphs = {}
    for name in ("shared", "disjoint", "fac"):
        cfg = recipe_lib.resolve(CONFIGS / f"ablation_{name}.yaml")
        graphs[name] = get_config(cfg.model.name, **cfg.model.overrides).graph
    assert graphs == {"shared": "shared", "disjoint": "disjoint", "fac": "fac_relu"}
    nce = recipe_lib.resolve(CONFIGS / "ablation_nce_text.yaml")
    mil = recipe_lib.resolve(CONFIGS / "ablation_fac.yaml")
    assert (nce.data.num_captions, mil.data.num_captions) == (1, 4)


# ---------------------------------------------------------------------------------------------- the step


def test_schedule_is_linear_warmup_then_half_cosine_to_zero() -> None:
    fn = WarmupCosine(warmup_steps=4, total_steps=12)
    factors = [fn(n) for n in range(12)]  # update n + 1
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert factors[4:] == pytest.approx([0.5 * (1 + math.cos(math.pi * k / 8)) for k in range(1, 9)])
    assert factors[-1] == 0.0 and WarmupCosine(0, 10, final=0.1)(9) == pytest.approx(0.1)


def test_weight_decay_only_on_matrices_and_kernels() -> None:
    model = nn.Sequential(nn.Conv1d(2, 3, 3), nn.BatchNorm1d(3), nn.Flatten(), nn.Linear(3, 2))
    model[3].bias.requires_grad_(False)
    decay, no_decay = param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == {id(model[0].weight), id(model[3].weight)}
    assert {id(p) for p in no_decay["params"]} == {id(model[0].bias), id(model[1].weight), id(model[1].bias)}


class _Embed(nn.Module):
    """Linear towers giving the keys MMVLoss reads (video/audio in S_va, video/text in S_vat)."""

    def __init__(self) -> None:
        super().__init__()
        self.v, self.a, self.t = nn.Linear(6, 5), nn.Linear(3, 5), nn.Linear(4, 5)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        v = self.v(batch["video"])
        return {"video_va": v, "audio_va": self.a(batch["audio"]), "video_vat": v, "text_vat": self.t(batch["text"])}


def _batch(seed: int, n: int = 4) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "video": torch.randn(n, 6, generator=g),
        "audio": torch.randn(n, 3, generator=g),
        "text": torch.randn(n, 2, 4, generator=g),
    }


def test_accumulation_averages_micro_batch_gradients() -> None:
    torch.manual_seed(0)
    model, criterion = _Embed(), MMVLoss()
    before = [p.detach().clone() for p in model.parameters()]
    grads = []
    for seed in (1, 2):
        model.zero_grad()
        criterion(model(_batch(seed)))["loss"].backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    model.zero_grad()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda n: 1.0)
    cpu = torch.device("cpu")
    out = TrainStep(model, model, criterion, opt, sched, grad_scaler("fp32", cpu), "fp32", cpu)([_batch(1), _batch(2)])
    for p, p0, g1, g2 in zip(model.parameters(), before, *grads):
        torch.testing.assert_close(p.detach(), p0 - (g1 + g2) / 2)
    assert out["lr"] == 1.0 and set(out) >= {"loss", "va_loss", "vt_loss"}


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before:UserWarning")
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_step_on_cpu(precision: str) -> None:
    torch.manual_seed(0)
    model, cpu = _Embed(), torch.device("cpu")
    with autocast(precision, cpu):
        assert model.v(torch.randn(2, 6)).dtype == {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    opt = torch.optim.AdamW(model.parameters(), lr=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda n: 1.0)
    scaler = grad_scaler(precision, cpu)
    assert scaler.is_enabled() == (precision == "fp16")
    before = [p.detach().clone() for p in model.parameters()]
    step = TrainStep(model, model, MMVLoss(), opt, sched, scaler, precision, cpu, clip_grad_norm=0.5)
    norms = []
    for seed in range(3, 8):
        out = step([_batch(seed)])
        assert math.isfinite(float(out["loss"]))
        norms.append(float(out["grad_norm"]))
    if precision == "fp16":  # the first scales overflow fp16: the scaler skips those updates and backs off
        assert math.isnan(norms[0]) and scaler.get_scale() < 2.0**16
    assert math.isfinite(norms[-1]) and norms[-1] > 0
    assert all(not torch.equal(p, b) for p, b in zip(model.parameters(), before))
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_sync_batchnorm_and_channels_last_keep_the_checkpoint_format(tmp_path: Path) -> None:
    from mmv.checkpoint import save_checkpoint
    from mmv.factory import create_model

    torch.manual_seed(0)
    model = create_model("tiny_fac", video={"num_frames": 4, "frame_size": 32}, audio={"duration": 0.5})
    keys = list(model.state_dict())
    synced = distributed.convert_sync_batchnorm(model, distributed.DistEnv())
    assert any(isinstance(m, nn.SyncBatchNorm) for m in synced.modules()) and list(synced.state_dict()) == keys
    video = torch.randint(0, 256, (2, 4, 32, 32, 3), dtype=torch.uint8)
    synced.eval()
    want = synced.encode_video(video)["va"]
    set_conv_memory_format(synced, channels_last=True)
    conv = next(m for m in synced.modules() if isinstance(m, nn.Conv3d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(synced.encode_video(video)["va"], want, rtol=1e-4, atol=1e-5)
    set_conv_memory_format(synced, channels_last=False)
    loaded = load_checkpoint(save_checkpoint(synced, tmp_path / "m"))
    torch.testing.assert_close(loaded.encode_video(video)["va"], want, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------------- runs


def test_run_writes_config_metrics_checkpoints_model_and_evaluates(tmp_path: Path) -> None:
    calls, models = [], []

    def evaluate(model: nn.Module, step: int) -> dict[str, float]:
        calls.append((step, model.training, torch.is_grad_enabled()))
        models.append(model)
        return {"t2v_r1": 0.1 * step, "t2v_medr": 3.0}

    run = tmp_path / "run"
    argv = tiny_args(run, "--train.steps", "3", "--train.checkpoint_every", "2", "--eval.every", "2")
    argv += ["--eval.at_end", "true", "--log.tensorboard", "true"]
    summary = main(argv, evaluate_fn=evaluate)

    assert calls == [(2, False, False), (3, False, False)]  # eval mode, no autograd...
    assert models[0] is models[1] and models[0].training  # ...then back to training
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 1
    rows = read_csv(run / "metrics.csv")
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    assert list(rows[0])[:4] == ["step", "time", "lr", "loss"]
    assert {"va_loss", "vt_loss", "clips_per_s", "skipped", "eval/t2v_r1"} <= set(rows[0])
    assert [r["eval/t2v_r1"] for r in rows] == ["", "0.2", "0.30000000000000004"]
    lrs = [float(r["lr"]) for r in rows]
    assert lrs == pytest.approx([0.001, 0.002, 0.0])  # warm-up 2 steps to 0.002, then the cosine ends at 0
    for r in rows:
        assert float(r["loss"]) == pytest.approx(float(r["va_loss"]) + float(r["vt_loss"]), rel=1e-5)

    written = yaml.safe_load((run / "config.yaml").read_text())
    assert written == recipe_lib.parse_args(argv).to_dict()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest", "step_2.pt", "step_3.pt"]
    state = read_state(run / "checkpoints" / "step_3.pt")
    assert (state["step"], state["batches"], state["config"]) == (3, 3, written)

    model = load_checkpoint(summary["model_dir"])
    meta = model.checkpoint_metadata
    assert meta["steps"] == 3 and meta["final_metrics"]["eval/t2v_r1"] == pytest.approx(0.3)
    assert model.vocab is not None and model.vocab.words == state["vocab"]
    assert model.config.text.vocab_size == len(model.vocab) and "ball" in model.vocab
    for key, value in model.state_dict().items():
        assert torch.equal(value, state["model"][key]), key
    assert summary["completed"] and summary["step"] == 3 and summary["skipped"] == 0
    with pytest.raises(ValueError, match="already holds checkpoints"):
        main(argv)  # a fresh run never mixes with an old one's checkpoints


@pytest.mark.parametrize("in_memory", [False, True])
def test_bad_media_are_skipped_counted_and_the_run_continues(tmp_path: Path, in_memory: bool) -> None:
    df = load_manifest(SAMPLE)
    good = df[df["split"] == "train"].head(5).copy()
    bad = good.head(3).copy()
    (tmp_path / "empty.mp4").write_bytes(b"")
    data = Path(good["video_path"].iloc[0]).read_bytes()
    (tmp_path / "truncated.mp4").write_bytes(data[: len(data) // 3])
    bad["video_path"] = [str(tmp_path / n) for n in ("empty.mp4", "truncated.mp4", "missing.mp4")]
    bad["clip_id"] = ["bad/empty", "bad/truncated", "bad/missing"]
    mixed = pd.concat([good, bad], ignore_index=True)
    save_manifest(mixed, tmp_path / "manifest.parquet")

    run = tmp_path / "run"
    train = f"[{{manifest: '{tmp_path / 'manifest.parquet'}'}}]"
    argv = tiny_args(run, "--data.train", train, "--train.steps", "2", "--data.in_memory", str(in_memory).lower())
    summary = main(argv)  # 8 clips = 2 batches: all seen

    assert summary["completed"] and summary["skipped"] == 3
    assert {Path(p).name for p in summary["bad_samples"]} == {"empty.mp4", "truncated.mp4", "missing.mp4"}
    assert summary["bad_samples"][str(tmp_path / "empty.mp4")].startswith("empty file")
    rows = read_csv(run / "metrics.csv")
    assert [int(r["step"]) for r in rows] == [1, 2] and rows[-1]["skipped"] == "3"
    assert all(math.isfinite(float(r["loss"])) for r in rows)
    assert steps_of(run) == [1, 2]


def test_in_memory_data_trains_exactly_like_decoding(tmp_path: Path) -> None:
    # Native-size cache: every item equals the decoder's, so the same seed gives the same losses.
    losses = {}
    for in_memory in (False, True):
        run = tmp_path / f"run_{in_memory}"
        main(tiny_args(run, "--train.steps", "2", "--data.in_memory", str(in_memory).lower()))
        losses[in_memory] = [float(r["loss"]) for r in read_csv(run / "metrics.csv")]
    assert len(losses[True]) == 2
    assert losses[True] == pytest.approx(losses[False], rel=1e-6)


def test_periodic_evaluation_through_the_retrieval_hook(tmp_path: Path) -> None:
    run = tmp_path / "run"
    extra = ["--train.steps", "2", "--data.val", str(SAMPLE), "--eval.every", "2", "--eval.max_clips", "5"]
    summary = main(tiny_args(run, *extra))
    rows = read_csv(run / "metrics.csv")
    assert [r["eval/t2v_r1"] != "" for r in rows] == [False, True]
    assert 0.0 <= float(rows[1]["eval/t2v_r1"]) <= 1.0 and float(rows[1]["eval/v2a_medr"]) >= 1.0
    assert summary["metrics"]["eval/t2v_r1"] == float(rows[1]["eval/t2v_r1"])
