"""Converting a released-size MMV checkpoint, and embedding a clip with it (``training.convert_official``).

Usage::

    python benchmarks/official.py                      # CPU, 1 and 2 threads
    python benchmarks/official.py --device cuda        # + the converted model on the GPU (float32 and bf16)
    python benchmarks/official.py --device cuda --parity   # + the parity models' outputs on the GPU

Builds a tree with the released ``mmv_s3d.pkl``'s leaves and shapes (the parity reference's leaf list, with the
real 65,536 x 300 word table; values from the parity recipe), pickles it as the release is, then times: the
restricted unpickler, the conversion and the safetensors write. Then embeds one 32 x 200 x 200 clip with the
converted model (space-to-depth stem) and with ``s3d_fac`` (RGB stem) side by side and prints the ratio: what an
upload or a bank build costs per clip on this machine. With ``--parity`` it also converts the two whole-model
parity references and compares their outputs on ``--device`` with the official float32 outputs (TF32 off), the
check ``tests/test_official_parity.py`` makes on the CPU.
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from official_helpers import F32_GATE, fac_outputs, flat_tree, make_leaf, meta, reference, relative_error  # noqa: E402

from benchmarks.machine import device_name  # noqa: E402
from mmv.checkpoint import save_checkpoint  # noqa: E402
from mmv.factory import create_model  # noqa: E402
from mmv.official.convert import convert_official  # noqa: E402
from mmv.official.unpickle import load_official  # noqa: E402


def released_size_tree() -> dict:
    tree: dict = {"params": {}, "state": {}}
    for record in meta("fac_s3d")["leaves"]:
        shape = [65536, 300] if record["name"].endswith("embed:embeddings") else record["shape"]
        module, _, leaf = record["name"].rpartition(":")
        tree[record["collection"]].setdefault(module, {})[leaf] = make_leaf(record["name"], shape)
    return tree


def median_ms(fn, repeats: int, device: torch.device) -> float:
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def parity(device: torch.device) -> None:
    """The converted parity models' outputs on ``device`` against the official float32 outputs."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    for name in ("fac_s3d", "fac_tsm"):
        model, _ = convert_official(flat_tree(name))
        model = model.to(device)
        ref = reference(name)
        ours = fac_outputs(model, ref, torch.float32, device)
        errors = {k: relative_error(v, ref[f"out32:{k}"]) for k, v in ours.items()}
        worst = max(errors, key=errors.get)
        verdict = "within" if errors[worst] < F32_GATE else "OVER"
        error = f"max relative error {errors[worst]:.2e} ({worst})"
        print(f"parity {name} on {device}: {error}, {verdict} the {F32_GATE:g} gate")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--parity", action="store_true", help="also compare the parity models' outputs on --device")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.parity:
        parity(device)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mmv_s3d.pkl"
        path.write_bytes(pickle.dumps(released_size_tree(), protocol=4))
        t0 = time.perf_counter()
        flat = load_official(path)
        t1 = time.perf_counter()
        model, _ = convert_official(flat)
        t2 = time.perf_counter()
        save_checkpoint(model, Path(tmp) / "converted")
        t3 = time.perf_counter()
        size = path.stat().st_size / 1e6
    print(f"device: {device_name(device)}")
    print(
        f"released-size mmv_s3d tree: {size:.0f} MB pickle, {sum(p.numel() for p in model.parameters()):,} parameters"
    )
    print(f"read (restricted unpickler) {t1 - t0:.2f} s, convert {t2 - t1:.2f} s, write safetensors {t3 - t2:.2f} s")
    rgb = create_model("s3d_fac", modalities=["video"], load_word_vectors=False).eval()
    clip = torch.rand(1, 32, 200, 200, 3)
    runs = [(n, "float32") for n in ((1, 2) if device.type == "cpu" else (0,))]
    if device.type == "cuda":
        runs.append((0, "bf16"))
    for threads, precision in runs:
        if threads:
            torch.set_num_threads(threads)
        row = {}
        for name, net in (("mmv_s3d (space-to-depth)", model), ("s3d_fac (RGB stem)", rgb)):
            net = net.to(device)
            x = clip.to(device)
            with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=precision == "bf16"):
                row[name] = median_ms(lambda n=net, x=x: n.encode_video(x), args.repeats, device)
        where = f"{threads} thread(s)" if threads else precision
        cells = ", ".join(f"{k} {v:.0f} ms" for k, v in row.items())
        ratio = row["mmv_s3d (space-to-depth)"] / row["s3d_fac (RGB stem)"]
        print(f"one 32x200x200 clip, {where}: {cells}; ratio {ratio:.2f}")


if __name__ == "__main__":
    main()
