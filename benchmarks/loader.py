"""Data-loader throughput: clips per second of ``ClipDataset`` + ``DataLoader`` on the toy world.

Usage::

    python benchmarks/loader.py                          # 256 toy clips in a temporary directory
    python benchmarks/loader.py --data /tmp/toyworld --clips 512 --workers 2 --batch 16
    python benchmarks/loader.py --no-color               # colour augmentation off (or --color-on-device)

The toy world (``mmv.toyworld.generate``: 4-s 128x128 8-fps MP4s with 16-kHz audio) is generated into
``--data`` when its ``manifest.parquet`` is missing. The loader reads 16 frames at 8 fps (a 2-s window),
random-resized-crops them to 112x112 with colour augmentation (the training transform), and 2 s of audio
at 16 kHz from the FLAC cache; a batch of 16 is collated with ``collate_clips``. The first epoch fills the
audio cache and warms the workers up and is not timed (``--warmup-batches`` more untimed batches follow);
then ``--timed`` clips are loaded, cycling over epochs, and clips/s is printed with the machine's load
average (other processes share the cores).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from torch.utils.data import DataLoader  # noqa: E402

import mmv.toyworld as toyworld  # noqa: E402
from benchmarks.machine import load_average  # noqa: E402
from mmv.config import AudioConfig, VideoConfig  # noqa: E402
from mmv.data.collate import collate_clips  # noqa: E402
from mmv.data.dataset import ClipDataset  # noqa: E402
from mmv.data.transforms import TrainVideoTransform  # noqa: E402


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="toy-world directory (default: a temporary one)")
    parser.add_argument("--clips", type=int, default=256, help="clips to generate when the manifest is missing")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--fps", type=float, default=8.0)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--audio-seconds", type=float, default=2.0)
    parser.add_argument("--timed", type=int, default=512, help="clips loaded in the timed part")
    parser.add_argument("--warmup-batches", type=int, default=4)
    colour = parser.add_mutually_exclusive_group()
    colour.add_argument("--no-color", action="store_true", help="no colour augmentation")
    colour.add_argument("--color-on-device", action="store_true", help="only draw colour parameters")
    args = parser.parse_args(argv)

    tmp = None
    data = args.data
    if data is None:
        tmp = tempfile.TemporaryDirectory(prefix="mmv-loader-bench-")
        data = Path(tmp.name)
    manifest = data / "manifest.parquet"
    if not manifest.exists():
        start = time.perf_counter()
        toyworld.generate(data, args.clips, seed=0, workers=args.workers, progress=False)
        print(f"generated {args.clips} toy clips in {data} in {time.perf_counter() - start:.1f} s")

    video = VideoConfig(num_frames=args.frames, frame_size=args.size, fps=args.fps)
    audio = AudioConfig(sample_rate=16000, duration=args.audio_seconds, fmax=7600.0)
    transform = TrainVideoTransform(
        args.size, color_prob=0.0 if args.no_color else 0.8, color_in_loader=not args.color_on_device
    )
    ds = ClipDataset(manifest, video, audio, transform=transform, cache_dir=data / "audio-cache", seed=0)
    loader = DataLoader(
        ds,
        batch_size=args.batch,
        shuffle=True,
        num_workers=args.workers,
        collate_fn=collate_clips,
        persistent_workers=args.workers > 0,
        drop_last=True,
    )

    epoch = 0
    warm_start = time.perf_counter()
    for _ in loader:  # the first epoch: audio cache, worker start-up
        pass
    warm = time.perf_counter() - warm_start

    def batches():
        nonlocal epoch
        while True:
            epoch += 1
            ds.set_epoch(epoch)
            yield from loader

    stream = batches()
    for _ in range(args.warmup_batches):
        next(stream)
    clips = skipped = 0
    start = time.perf_counter()
    while clips < args.timed:
        batch = next(stream)
        clips += len(batch["clip_id"])
        skipped += batch["num_skipped"]
    elapsed = time.perf_counter() - start
    rate = clips / elapsed
    shape = tuple(batch["video"].shape)
    print(
        f"video {shape} uint8 + audio {tuple(batch['audio'].shape)}, workers={args.workers}, batch={args.batch}, "
        f"colour={'off' if args.no_color else 'device' if args.color_on_device else 'loader'}"
    )
    print(f"first epoch ({len(ds)} clips, cache fill + start-up): {warm:.1f} s")
    print(f"{clips} clips in {elapsed:.2f} s: {rate:.1f} clips/s  (skipped {skipped}; load average {load_average()})")
    if tmp is not None:
        del loader, stream
        tmp.cleanup()
    return rate


if __name__ == "__main__":
    main()
