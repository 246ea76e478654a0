"""Benchmark of the app's three targets (issue 8): start-up, text query, uploaded clip.

1. **Start-up** (and one upload in the browser): wall time from launching ``streamlit run app`` (a subprocess,
   ``--server.headless true``) to ``/_stcore/health`` answering ``ok``, and to the **first page rendered in a
   browser**: Debian's Chromium, driven by Playwright, opens the Spaces page and waits until both maps are drawn
   (the text "points (... clips)" under each, and the script run has finished). The browser is started before
   the server and not counted. Then, in the same browser, the Upload page: time from choosing a 10-s clip
   (below) to its last direction's results being listed. Without Playwright or Chromium only the health time
   is printed.
2. **Text query**: the logic behind the Retrieval page, in-process (model and bank already loaded, as in the
   server): tokenise + text tower + top-10 text -> video search + percentiles. Median and 90th percentile.
3. **Uploaded clip**: a 10-s 480x270 25-fps mp4 with sound (synthetic, a new one per run so no cache helps) ->
   results: upload checks (probe), decoding of the default averaged windows (frames + audio, resampled), both
   towers, and the top-5 in every direction. Median of the runs, wall time and CPU time of the process (all its
   threads): on a shared machine the wall time depends on the other load, the CPU time much less.

Usage (the demo's model and bank by default; ``make demo`` builds them)::

    python benchmarks/app.py [--model data_samples/demo_model] [--bank models/demo/bank] [--threads 1] [--runs 3]

Targets (2 CPU cores, the demo bank): first page <= 10 s, text query <= 0.5 s, 10-s clip -> results <= 5 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

QUERIES = (
    "a red circle moves to the right",
    "a small blue square bounces",
    "the green star falls down",
    "a yellow triangle grows",
    "purple thing shrinks slowly",
)


def synthetic_clip(path: Path, seconds: float = 10.0, fps: int = 25, size: tuple[int, int] = (270, 480), seed: int = 0):
    """A ``seconds``-long mp4: a coloured disc moving over a gradient, with a two-tone sound (48 kHz)."""
    from mmv.data.media import write_video

    rng = np.random.default_rng(seed)
    h, w = size
    n = int(seconds * fps)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 // w, yy * 255 // h, np.full_like(xx, 80)], -1).astype(np.uint8)
    colour = rng.integers(0, 256, 3).astype(np.uint8)
    frames = np.repeat(base[None], n, axis=0)
    for i in range(n):
        cx, cy = int(w * (0.1 + 0.8 * i / n)), int(h * (0.5 + 0.3 * np.sin(i / 10)))
        frames[i][(xx - cx) ** 2 + (yy - cy) ** 2 < (h // 8) ** 2] = colour
    sr = 48000
    t = np.arange(int(seconds * sr)) / sr
    f0 = float(rng.uniform(200, 800))
    audio = 0.3 * np.sin(2 * np.pi * f0 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * t))
    write_video(path, frames, fps, audio=audio.astype(np.float32), sample_rate=sr)


IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (Linux ``/proc``), or ``None``."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def bench_startup(model: Path, bank: Path, timeout: float = 120.0) -> dict[str, float]:
    from conftest import CHROMIUM, start_server, stop_server, wait_for_health

    out: dict[str, float] = {}
    browser = None
    try:
        from playwright.sync_api import sync_playwright

        pw = sync_playwright().start()
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
    except Exception as e:  # no Playwright or no Chromium: health only
        print(f"  (no browser: {e}; only the health time is measured)")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        process, url = start_server(model, bank, Path(tmp) / "streamlit.log")
        try:
            out["health_s"] = wait_for_health(url, timeout, process)
            if browser is not None:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(timeout * 1000)
                page.goto(url)
                page.get_by_text("S_vat (video, audio, text)").first.wait_for()
                page.locator("text=/points \\(.* clips\\)/").nth(1).wait_for()
                page.wait_for_selector(IDLE)
                out["first_page_s"] = time.perf_counter() - t0
                out["server_cpu_s"] = cpu_seconds(process.pid)
                # An upload through the page: file chosen -> first results listed (decoding, the preview, both
                # towers, the searches; the first of this server process, so decoders and kernels start cold).
                clip = Path(tmp) / "upload.mp4"
                synthetic_clip(clip, seed=123)
                page.goto(f"{url}/upload")
                page.locator('[data-testid="stFileUploaderDropzoneInput"]').wait_for(state="attached")
                page.wait_for_selector(IDLE)
                t1 = time.perf_counter()
                page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(clip))
                page.get_by_role("heading", name="audio \u2192 text (S_vat)").wait_for()
                out["upload_page_s"] = time.perf_counter() - t1
        finally:
            stop_server(process)
            if browser is not None:
                browser.close()
                pw.stop()
    return out


def bench_text(model, search, runs: int = 50) -> list[float]:
    from app.logic.query_embedding import embed_query, prepare_text

    def one(q: str) -> None:
        vectors = embed_query(model, prepare_text(q, model.config))["text"]
        search.search(vectors, "text", "video", 10)

    for q in QUERIES:  # warm-up: first calls allocate, fill the percentile cache of each direction
        one(q)
    times = []
    for i in range(runs):
        t = time.perf_counter()
        one(QUERIES[i % len(QUERIES)])
        times.append(time.perf_counter() - t)
    return times


def bench_upload(model, search, runs: int = 3) -> tuple[float, list[float], list[float]]:
    from app.logic.query_embedding import embed_query, prepare_upload
    from app.logic.uploads import validate_upload

    times, cpu = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs + 1):
            clip = Path(tmp) / f"clip{i}.mp4"
            synthetic_clip(clip, seed=i)
            data = clip.read_bytes()
            t, c = time.perf_counter(), time.process_time()
            valid = validate_upload(clip.name, data, Path(tmp) / "uploads")
            prepared = prepare_upload(valid, model.config)  # default: averaged windows over the clip
            results = search.search_all(embed_query(model, prepared), 5)
            elapsed, used = time.perf_counter() - t, time.process_time() - c
            assert len(results) == 4 and all(len(r) == 5 for r in results.values())
            if i == 0:  # the first upload of a process also initialises the decoders and the model's kernels
                cold = elapsed
            else:
                times.append(elapsed)
                cpu.append(used)
            windows = len(prepared.windows)
    print(f"  (upload: {valid.duration:.1f} s, {valid.width}x{valid.height} at {valid.fps:g} fps, "
          f"{valid.sample_rate} Hz; {windows} windows averaged)")  # fmt: skip
    return cold, times, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "data_samples" / "demo_model"))
    parser.add_argument("--bank", default=str(ROOT / "models" / "demo" / "bank"))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (as the app: MMV_APP_THREADS, 1)")
    parser.add_argument("--runs", type=int, default=3, help="uploaded clips timed")
    parser.add_argument("--skip-startup", action="store_true")
    args = parser.parse_args(argv)
    model_dir, bank_dir = Path(args.model), Path(args.bank)
    if not (model_dir / "config.json").is_file() or not (bank_dir / "provenance.json").is_file():
        print(f"needs a model and a bank: {model_dir}, {bank_dir} (make demo builds them)")
        return 2
    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    from app.logic.bank_search import BankSearch
    from mmv.bank import Bank
    from mmv.checkpoint import load_checkpoint

    print(f"model {model_dir}, bank {bank_dir}; torch threads {args.threads}, {os.cpu_count()} CPUs")
    rows = []
    if not args.skip_startup:
        s = bench_startup(model_dir, bank_dir)
        rows.append(("streamlit run -> /_stcore/health ok", s.get("health_s"), None))
        rows.append(("streamlit run -> Spaces page rendered (Chromium)", s.get("first_page_s"), 10.0))
        rows.append(("  the server's CPU seconds until then", s.get("server_cpu_s"), None))
        rows.append(("10-s clip chosen on the Upload page -> results shown", s.get("upload_page_s"), 5.0))
    model = load_checkpoint(model_dir).eval()
    search = BankSearch(Bank.load(bank_dir))
    text = bench_text(model, search)
    rows.append(("text query -> top-10 (median)", statistics.median(text), 0.5))
    rows.append(("text query -> top-10 (p90)", float(np.percentile(text, 90)), 0.5))
    cold, upload, upload_cpu = bench_upload(model, search, args.runs)
    rows.append(("10-s clip with sound -> results, first of the process", cold, 5.0))
    rows.append(("10-s clip with sound -> results (median of the next)", statistics.median(upload), 5.0))
    rows.append(("  the same, CPU seconds of this process (median)", statistics.median(upload_cpu), None))
    print(f"{'step':56s} {'seconds':>9s} {'target':>8s}")
    for name, value, target in rows:
        shown = "n/a" if value is None else f"{value:.3f}"
        goal = "" if target is None else f"<= {target:g}"
        print(f"{name:56s} {shown:>9s} {goal:>8s}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
