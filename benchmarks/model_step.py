"""One training step of the whole model: towers + heads + MMV loss, forward and backward.

Usage::

    python benchmarks/model_step.py                      # tiny_fac, batch 32, CPU
    python benchmarks/model_step.py --preset tiny_tsm_fac --batch 16
    python benchmarks/model_step.py --preset s3d_fac --batch 8 --device cuda --precision bf16

The batch is random video ``[B, T, H, W, 3]`` (uint8, as the loader delivers it), audio ``[B, S]`` and
K = 4 candidate narrations ``[B, 4, L]`` with a quarter of the clips marked as having no text
(AudioSet-like). Prints the median step time over ``--repeats`` after ``--warmup`` steps, and checks
that every trainable parameter received a gradient.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmv.factory import create_model  # noqa: E402
from mmv.losses import MMVLoss  # noqa: E402


def random_batch(model, batch: int, k: int = 4, device="cpu") -> dict[str, torch.Tensor]:
    cfg = model.config
    g = torch.Generator().manual_seed(0)
    size = (batch, cfg.video.num_frames, cfg.video.frame_size, cfg.video.frame_size, 3)
    has_text = torch.arange(batch) % 4 != 3
    out = {
        "video": torch.randint(0, 256, size, dtype=torch.uint8, generator=g),
        "audio": torch.rand(batch, cfg.audio.num_samples, generator=g) * 2 - 1,
        "text": torch.randint(2, cfg.text.vocab_size, (batch, k, cfg.text.max_words), generator=g),
        "text_mask": torch.ones(batch, k, dtype=torch.bool),
        "has_text": has_text,
    }
    return {key: v.to(device) for key, v in out.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="time one forward+backward step of the whole MMV model")
    parser.add_argument("--preset", default="tiny_fac")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = create_model(args.preset).to(device).train()
    criterion = MMVLoss()
    batch = random_batch(model, args.batch, device=device)
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32

    def step() -> dict[str, torch.Tensor]:
        model.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype, enabled=args.precision == "bf16"):
            losses = criterion(model(batch))
        losses["loss"].backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return losses

    for _ in range(args.warmup):
        losses = step()
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        losses = step()
        times.append(time.perf_counter() - start)
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    terms = ", ".join(f"{k} {v.item():.3f}" for k, v in losses.items())
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, {args.precision}")
    print(
        f"{args.preset} batch {args.batch}: forward+backward {statistics.median(times) * 1e3:.0f} ms/step "
        f"(min {min(times) * 1e3:.0f}, max {max(times) * 1e3:.0f}); {terms}"
    )
    print(f"trainable parameters without a gradient: {missing or 'none'}")


if __name__ == "__main__":
    main()
