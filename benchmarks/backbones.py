"""Forward + backward time per clip for each preset's towers, and our S3D-G against torchvision's S3D.

Usage::

    python benchmarks/backbones.py                       # CPU, every preset at its default input
    python benchmarks/backbones.py --presets tiny_fac --batch 8
    python benchmarks/backbones.py --device cuda --precision bf16 --batch 8   # + torchvision S3D ratio

Each tower runs train-mode forward + backward of ``output.sum()`` at the preset's own input size
(video ``[B, T, H, W, 3]``, audio ``[B, S]`` through the log-mel front end, text ``[B, K=4, L]``).
Times are medians over ``--repeats`` after ``--warmup`` untimed steps; on CUDA every step is synchronised.
The comparison with ``torchvision.models.video.s3d`` (when torchvision imports) uses the same input,
batch, precision and device, measured side by side in this run, and prints ours / theirs as a ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import device_name  # noqa: E402
from mmv.factory import create_model, list_models  # noqa: E402


def _time_step(step, device: torch.device, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _train_step(module, make_input, device: torch.device, precision: str):
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

    def step():
        module.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            out = module(make_input())
        out.float().sum().backward()

    return step


def bench_preset(name: str, batch: int, device: torch.device, precision: str, warmup: int, repeats: int):
    model = create_model(name).to(device).train()
    cfg = model.config
    rows = []
    if "video" in cfg.modalities:
        v = cfg.video
        x = torch.rand(batch, v.num_frames, v.frame_size, v.frame_size, 3, device=device)
        t = _time_step(_train_step(model.video, lambda: x, device, precision), device, warmup, repeats)
        rows.append((name, "video", f"{v.num_frames}x{v.frame_size}x{v.frame_size}", t / batch))
    if "audio" in cfg.modalities:
        a = cfg.audio
        wav = torch.rand(batch, a.num_samples, device=device) * 2 - 1
        tower = torch.nn.Sequential(model.audio_frontend, model.audio)
        t = _time_step(_train_step(tower, lambda: wav, device, precision), device, warmup, repeats)
        rows.append((name, "audio", f"{a.duration:g}s@{a.sample_rate // 1000}kHz", t / batch))
    if "text" in cfg.modalities:
        ids = torch.randint(2, cfg.text.vocab_size, (batch, 4, cfg.text.max_words), device=device)
        t = _time_step(_train_step(model.text, lambda: ids, device, precision), device, warmup, repeats)
        rows.append((name, "text", f"4x{cfg.text.max_words} words", t / batch))
    return rows


def bench_torchvision(batch: int, frames: int, size: int, device, precision: str, warmup: int, repeats: int):
    """Our S3D-G vs torchvision's S3D (no classifier) at one input; returns (ours, theirs) seconds per clip."""
    try:
        from torchvision.models.video import s3d
    except Exception as e:  # no CPU build of torchvision here; a GPU machine usually has it
        print(f"torchvision unavailable ({type(e).__name__}: {e}); skipping the comparison")
        return None
    theirs = s3d().to(device).train()
    theirs.classifier = torch.nn.Identity()
    # torchvision's own avgpool is a fixed (2, 7, 7) window sized for 224 px; the mean over the map is what both
    # backbones pool to, at any input size.
    theirs_fwd = torch.nn.Sequential(theirs.features, torch.nn.AdaptiveAvgPool3d(1))
    ours = create_model("s3d_fac", modalities=["video"]).video.to(device).train()
    x = torch.rand(batch, frames, size, size, 3, device=device)
    x_cf = x.permute(0, 4, 1, 2, 3).contiguous()
    t_ours = _time_step(_train_step(ours, lambda: x, device, precision), device, warmup, repeats)
    t_theirs = _time_step(_train_step(theirs_fwd, lambda: x_cf, device, precision), device, warmup, repeats)
    n_theirs = sum(p.numel() for p in theirs.parameters())
    print(f"torchvision S3D backbone parameters (classifier removed): {n_theirs:,}")
    return t_ours / batch, t_theirs / batch


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="forward+backward time per clip of each preset's towers")
    parser.add_argument("--presets", nargs="*", default=None, help=f"default: all of {list_models()}")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--batch", type=int, default=None, help="default: 8 for tiny presets, 1 (CPU) / 8 (GPU) else")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--torchvision",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="compare with torchvision's S3D (default: on for CUDA)",
    )
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    name = device_name(device)
    print(
        f"device: {device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"precision {args.precision}"
    )
    print(f"{'preset':<15} {'tower':<6} {'input':<18} {'batch':>5} {'ms/clip':>10}")
    for preset in args.presets or list_models():
        big = not preset.startswith("tiny")
        batch = args.batch or (8 if not big or device.type == "cuda" else 1)
        for row in bench_preset(preset, batch, device, args.precision, args.warmup, args.repeats):
            print(f"{row[0]:<15} {row[1]:<6} {row[2]:<18} {batch:>5} {row[3] * 1e3:>10.1f}", flush=True)
    if args.torchvision if args.torchvision is not None else device.type == "cuda":
        batch = args.batch or 8
        for frames, size in ((16, 224), (32, 200)):
            res = bench_torchvision(batch, frames, size, device, args.precision, args.warmup, args.repeats)
            if res is None:
                break
            ours, theirs = res
            print(
                f"S3D-G (ours) vs torchvision S3D, [{batch},{frames},{size},{size},3] {args.precision}: "
                f"{ours * 1e3:.1f} vs {theirs * 1e3:.1f} ms/clip, ratio ours/theirs = {ours / theirs:.2f}"
            )


if __name__ == "__main__":
    main()
