"""Images per second: an image as a static video (inflated, T = 16 and 32) vs the deflated image network.

Usage::

    python benchmarks/deflation.py                          # CPU: tiny_fac and s3d_fac
    python benchmarks/deflation.py --presets s3d_fac --batch 4 --repeats 5
    python benchmarks/deflation.py --device cuda --batch 32 # a GPU
    python benchmarks/deflation.py --threads 1              # a CPU shared with other jobs

Each preset's video backbone (random weights: speed does not depend on them) runs in eval mode under
``torch.no_grad()`` on a batch of ``[B, S, S, 3]`` images at the preset's frame size S: *inflated*, each
image repeated T times through the video network (``[B, T, S, S, 3]``), and *deflated*, the image through
:func:`mmv.deflation.deflate` of that network (its 2-D kernels are the 3-D ones summed over time, computed
once and cached while the video weights are unchanged). Times are medians over ``--repeats`` batches after
``--warmup`` untimed ones, synchronised on CUDA; the ratio is deflated images/s over inflated images/s,
measured side by side in one run. The backbone only: the heads cost the same in every mode.
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
from mmv.deflation import deflate, inflate  # noqa: E402
from mmv.factory import create_model  # noqa: E402

FRAMES = (16, 32)


def _seconds(fn, device: torch.device, warmup: int, repeats: int) -> float:
    with torch.no_grad():
        for _ in range(warmup):
            fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_preset(name: str, batch: int, device: torch.device, dtype: torch.dtype, warmup: int, repeats: int):
    """``{'size', 'inflated': {T: images/s}, 'deflated': images/s}`` for one preset's video backbone."""
    model = create_model(name, modalities=["video"], load_word_vectors=False)
    video = model.video.to(device=device, dtype=dtype).eval()
    image_net = deflate(video).to(device=device, dtype=dtype)
    size = model.config.video.frame_size
    images = torch.rand(batch, size, size, 3, device=device, dtype=dtype)
    result = {"size": size, "inflated": {}}
    for t in FRAMES:
        clip = inflate(images, t)
        result["inflated"][t] = batch / _seconds(lambda clip=clip: video(clip), device, warmup, repeats)
    result["deflated"] = batch / _seconds(lambda: image_net(images), device, warmup, repeats)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="images/s: inflated (T = 16, 32) vs deflated video backbones")
    parser.add_argument("--presets", nargs="*", default=["tiny_fac", "s3d_fac"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--batch", type=int, default=None, help="images per batch (CPU: 16 tiny, 2 big; GPU: 32)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    torch.backends.cudnn.benchmark = True
    name = device_name(device)
    print(f"device: {device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}, {args.precision}")
    head = f"{'preset':<10} {'input':>8} {'batch':>5}"
    head += "".join(f" {f'inflated T={t}':>15}" for t in FRAMES) + f" {'deflated':>10}"
    head += "".join(f" {f'ratio vs T={t}':>13}" for t in FRAMES)
    print(head + "   (images/s)")
    for preset in args.presets:
        big = not preset.startswith("tiny")
        batch = args.batch or (32 if device.type == "cuda" else 2 if big else 16)
        r = bench_preset(preset, batch, device, dtype, args.warmup, args.repeats)
        row = f"{preset:<10} {r['size']:>4}x{r['size']:<3} {batch:>5}"
        row += "".join(f" {r['inflated'][t]:>15.2f}" for t in FRAMES) + f" {r['deflated']:>10.2f}"
        row += "".join(f" {r['deflated'] / r['inflated'][t]:>12.1f}x" for t in FRAMES)
        print(row, flush=True)


if __name__ == "__main__":
    main()
