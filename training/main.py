"""MMV pretraining: one process on a CPU, or DDP over GPUs and nodes under torchrun.

Usage::

    # one process (CPU, or the first GPU); the recipe gives defaults, dotted flags override them
    python -m training.main --config training/configs/demo_cpu.yaml
    mmv-train --config training/configs/demo_cpu.yaml --optim.lr 0.001 --data.batch_size 8

    # one GPU
    torchrun --standalone --nproc_per_node 1 -m training.main --config training/configs/s3d_howto_audioset.yaml

    # 8 GPUs on one machine
    torchrun --standalone --nproc_per_node 8 -m training.main --config training/configs/s3d_howto_audioset.yaml

    # 2 nodes x 8 GPUs: run on each node, NODE_RANK 0 on the node at MASTER_ADDR, 1 on the other
    torchrun --nnodes 2 --node_rank $NODE_RANK --nproc_per_node 8 \\
        --master_addr $MASTER_ADDR --master_port 29500 \\
        -m training.main --config training/configs/s3d_howto_audioset.yaml

    # continue a killed or time-limited run where it stopped (same command plus --resume)
    torchrun --standalone --nproc_per_node 8 -m training.main --config ... --resume latest

Everything a run writes is under ``run_dir`` (rank 0 only; on several nodes it must be a shared file system)::

    config.yaml            the resolved config
    metrics.csv            one row per logged step (training.logs)
    tensorboard/           event files, if the tensorboard package is installed
    checkpoints/           step_<N>.pt training states and the `latest` pointer (training.checkpointing)
    skips/                 one line per sample skipped for unreadable media
    model/                 the final model: mmv.checkpoint format (safetensors + config.json + vocab.txt)
    summary.json           the end-of-run summary :func:`main` returns

One step: each process loads ``data.batch_size`` clips (uint8 video, waveform, K narrations), moves them to
its device, runs the model under the precision's autocast, and computes :class:`mmv.losses.MMVLoss` with the
embeddings gathered from every rank (negatives from the global batch); DDP averages the gradients. With
``train.accum_steps`` N, N such micro-batches make one optimizer update (an optimizer batch of
``batch_size x processes x N``). The config and recipes are described in :mod:`training.config` and
:mod:`training.recipe`, what a run is built from in :mod:`training.build`, checkpoints and logs in
:mod:`training.checkpointing` and :mod:`training.logs`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm import tqdm

from mmv.checkpoint import save_checkpoint
from mmv.fileio import atomic_file
from mmv.losses import MMVLoss
from mmv.threads import ThreadGovernor
from training import checkpointing, distributed
from training import config as config_lib
from training import data as data_lib
from training import recipe as recipe_lib
from training.build import EvaluateFn, build_model, default_evaluate_fn, resume_decision
from training.checkpointing import CheckpointManager, read_state, rng_state, set_rng_state, step_of
from training.config import Config
from training.logs import METRICS_FILE, CsvLog, Progress, TensorBoard, skip_summary
from training.step import (
    TrainStep,
    build_optimizer,
    build_scheduler,
    grad_scaler,
    model_inputs,
    set_conv_memory_format,
)

if TYPE_CHECKING:
    from mmv.models.mmv import MMV

logger = logging.getLogger("training.main")


def weights_digest(model: MMV) -> str:
    """A short SHA-256 of the parameters: equal on every rank of a healthy DDP run.

    Buffers are left out: BatchNorm running statistics are updated from each rank's own batch (DDP copies rank
    0's before every forward; the checkpoint holds rank 0's), unless SyncBatchNorm averages them.
    """
    h = hashlib.sha256()
    for name, p in model.named_parameters():
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


class Trainer:
    """One run: builds everything from the config (resuming if asked), then :meth:`run` trains.

    Args:
        cfg: the resolved config.
        env: this process's place in the process group.
        evaluate_fn: ``(model, step) -> metrics``; default :func:`default_evaluate_fn`. Called on rank 0 with the
            plain model in eval mode under ``torch.no_grad``.
    """

    def __init__(self, cfg: Config, env: distributed.DistEnv, evaluate_fn: EvaluateFn | None = None) -> None:
        self.cfg, self.env = cfg, env
        self.run_dir = Path(cfg.run_dir)
        self.checkpoints = CheckpointManager(self.run_dir, cfg.train.keep)
        self.start_time = time.perf_counter()
        if env.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            for leftover in self.checkpoints.remove_temporaries():
                logger.warning("removed %s, left by an interrupted checkpoint write", leftover.name)
        # Rank 0 decides (the others may not see the files yet) and tells every rank, errors included.
        decision = resume_decision(cfg, self.checkpoints) if env.is_main else None
        resume_path, error = distributed.broadcast_object(env, decision)
        if error:
            raise config_lib.ConfigError(error)
        state = read_state(resume_path) if resume_path else None
        self.resumed_from = resume_path
        if env.is_main and state is not None:
            for path in self.checkpoints.checkpoints():
                if step_of(path) > int(state["step"]):
                    logger.warning("removing %s: it is newer than the checkpoint this run resumes from", path)
                    path.unlink()

        torch.manual_seed(cfg.seed)  # the same initial weights on every rank (DDP broadcasts rank 0's anyway)
        random.seed(cfg.seed + env.rank)
        np.random.seed(cfg.seed + env.rank)  # noqa: NPY002 - the legacy global generator, for third-party code
        self.frames = data_lib.load_sources(cfg.data.train)
        self._build_model(state)
        self.governor = self._cpu_threads()
        self._build_optimization(state)
        self._build_data(state)
        self._build_logs(state)
        self.evaluate_fn = evaluate_fn
        if evaluate_fn is None and env.is_main:
            self.evaluate_fn = default_evaluate_fn(cfg, self.vocab, env.device)
        if state is not None:
            if env.is_main:
                set_rng_state(state["rng"])
            else:
                torch.manual_seed(cfg.seed * 1_000_003 + env.rank + self.step)
        self.last_metrics: dict[str, float] = dict(state["metrics"]) if state else {}
        self.eval_metrics: dict[str, float] = {}
        self.saved_step = self.step if state is not None else -1
        self.last_out: dict[str, Any] = {}
        self.audio_warmup: dict[str, float] = {}

    # -- construction ---------------------------------------------------------------------------------

    def _build_model(self, state: dict[str, Any] | None) -> None:
        built = build_model(self.cfg, self.env, self.frames, state)
        self.model, self.raw_model, self.vocab, self.model_cfg = built

    def _cpu_threads(self) -> ThreadGovernor | None:
        """Fixes torch's CPU threads (``train.cpu_threads: N``) or returns the governor that follows the free cores
        (``auto``, on a CPU device; :mod:`mmv.threads`)."""
        fixed = config_lib.fixed_cpu_threads(self.cfg.train)
        if fixed is not None:
            torch.set_num_threads(fixed)
            return None
        return ThreadGovernor() if self.env.device.type == "cpu" else None

    def _build_optimization(self, state: dict[str, Any] | None) -> None:
        cfg, device = self.cfg, self.env.device
        self.optimizer = build_optimizer(self.raw_model, cfg, device)
        self.scheduler = build_scheduler(self.optimizer, cfg)
        self.scaler = grad_scaler(cfg.train.precision, device)
        self.step, self.batches = 0, 0
        if state is not None:
            self.optimizer.load_state_dict(state["optimizer"])
            scheduler_state = dict(state["scheduler"])
            scheduler_state["lr_lambdas"] = [None]  # the schedule's shape comes from this run's config
            self.scheduler.load_state_dict(scheduler_state)
            if state["scaler"]:  # empty when the checkpoint's precision was not fp16
                self.scaler.load_state_dict(state["scaler"])
            self.step, self.batches = int(state["step"]), int(state["batches"])
            self._apply_optim_config()
        criterion = MMVLoss(**dataclasses.asdict(cfg.loss))
        self.train_step = TrainStep(
            self.model,
            self.raw_model,
            criterion,
            self.optimizer,
            self.scheduler,
            self.scaler,
            cfg.train.precision,
            device,
            cfg.optim.clip_grad_norm,
        )

    def _apply_optim_config(self) -> None:
        """After a resume, this run's hyper-parameters replace the checkpoint's (the moments are kept).

        With an unchanged config this changes nothing; with a new ``optim.lr`` or ``train.steps`` (extending a
        finished run) the schedule continues from the restored step on the new curve.
        """
        o = self.cfg.optim
        fn = self.scheduler.lr_lambdas[0]
        for group, decay in zip(self.optimizer.param_groups, (o.weight_decay, 0.0)):
            group.update(initial_lr=o.lr, betas=(o.betas[0], o.betas[1]), eps=o.eps, weight_decay=decay)
            group["lr"] = o.lr * fn(self.scheduler.last_epoch)
        self.scheduler.base_lrs = [o.lr for _ in self.optimizer.param_groups]

    def _build_data(self, state: dict[str, Any] | None) -> None:
        cfg, env = self.cfg, self.env
        if state is None and env.is_main:
            data_lib.RunSkips.clear(self.run_dir)  # a fresh run in an old directory starts counting again
        distributed.barrier(env)
        self.skips = data_lib.RunSkips(self.run_dir, env.rank)
        self.dataset = data_lib.build_train_dataset(self.frames, cfg, self.model_cfg, self.vocab, self.skips.counter)
        pin = env.device.type == "cuda"
        self.loader = data_lib.build_loader(self.dataset, cfg, env.rank, env.world_size, pin_memory=pin)
        self.batches_per_epoch = data_lib.batches_per_epoch(self.loader)

    def _build_logs(self, state: dict[str, Any] | None) -> None:
        cfg = self.cfg
        self.csv = self.tensorboard = self.progress = None
        if not self.env.is_main:
            return
        with atomic_file(self.run_dir / "config.yaml") as tmp:
            tmp.write_text(config_lib.dump(cfg), encoding="utf-8")
        resume_step = self.step if state is not None else None
        self.csv = CsvLog(self.run_dir / METRICS_FILE, resume_step=resume_step)
        purge = None if resume_step is None else resume_step + 1
        self.tensorboard = TensorBoard(self.run_dir / "tensorboard", cfg.log.tensorboard, purge_step=purge)
        self.progress = Progress(self.stop_step, self.step, enabled=cfg.log.progress)
        params = sum(p.numel() for p in self.raw_model.parameters() if p.requires_grad)
        world, bs, accum = self.env.world_size, cfg.data.batch_size, cfg.train.accum_steps
        self.progress.write(
            f"{cfg.model.name}: {params:,} trainable parameters; {world} process(es) on {self.env.device}; "
            f"batch {bs} x {world} x {accum} = {bs * world * accum}; {self.batches_per_epoch} batches per epoch; "
            f"{cfg.train.precision}; steps {self.step} -> {self.stop_step} of {cfg.train.steps}"
            + (f"; resumed from {self.resumed_from}" if self.resumed_from else "")
        )

    @property
    def stop_step(self) -> int:
        stop = self.cfg.train.stop_after
        return self.cfg.train.steps if stop is None else min(stop, self.cfg.train.steps)

    # -- the loop -------------------------------------------------------------------------------------

    def _batches(self) -> Iterator[dict[str, Any]]:
        """Batches forever, epoch after epoch, starting where ``self.batches`` says (skipping what was done)."""
        bs = self.cfg.data.batch_size
        while True:
            epoch, position = divmod(self.batches, self.batches_per_epoch)
            self.loader.sampler.set_epoch(epoch, skip=position * bs)
            data_lib.set_dataset_epoch(self.dataset, epoch)
            for batch in self.loader:
                self.batches += 1
                yield batch

    def _micro_batches(self, stream: Iterator[dict[str, Any]]) -> tuple[list[dict[str, torch.Tensor]], int]:
        """``accum_steps`` batches of model inputs on the device, and the clips they hold (this rank).

        Collate drops unreadable samples, so ranks may hold different counts; every rank keeps the smallest
        (the gathered loss needs equal shapes), and a batch left empty on some rank is passed over by all.
        """
        out, clips, empty = [], 0, 0
        while len(out) < self.cfg.train.accum_steps:
            batch = next(stream)
            local = len(batch["clip_id"])
            n = distributed.all_reduce_min(self.env, local)
            if n == 0:
                empty += 1
                if empty > self.batches_per_epoch:
                    raise RuntimeError("no readable sample in a whole epoch of batches: check the manifests")
                continue
            out.append(model_inputs(batch, self.env.device, keep=n if n < local else None))
            clips += n
        return out, clips

    def _evaluate(self) -> dict[str, float]:
        metrics: dict[str, float] = {}
        if self.env.is_main and self.evaluate_fn is not None:
            start = time.perf_counter()
            self.raw_model.eval()
            try:
                with torch.no_grad():
                    result = self.evaluate_fn(self.raw_model, self.step)
            finally:
                self.raw_model.train()
            metrics = {f"eval/{k}": float(v) for k, v in (result or {}).items()}
            self.progress.write(
                f"step {self.step} eval ({time.perf_counter() - start:.1f} s): "
                + ", ".join(f"{k[5:]} {v:.3g}" for k, v in metrics.items() if k.endswith("_r1"))
            )
            self.eval_metrics = metrics
        distributed.barrier(self.env)
        return metrics

    def _state(self) -> dict[str, Any]:
        return {
            "format": checkpointing.FORMAT,
            "format_version": checkpointing.FORMAT_VERSION,
            "step": self.step,
            "batches": self.batches,
            "epoch": self.batches // self.batches_per_epoch,
            "model": self.raw_model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_state(),
            "config": self.cfg.to_dict(),
            "vocab": None if self.vocab is None else list(self.vocab.words),
            "metrics": dict(self.last_metrics),
        }

    def _save(self) -> None:
        if self.env.is_main and self.saved_step != self.step:
            path = self.checkpoints.save(self._state())
            self.progress.write(f"step {self.step}: saved {path}")
        self.saved_step = self.step

    def _audio_warmup(self, stream: Iterator[dict[str, Any]]) -> None:
        """The audio curriculum stage (:mod:`training.audio_warmup`) on a fresh run; rank 0's result is kept."""
        steps, cfg = self.cfg.train.audio_warmup_steps, self.cfg
        if steps <= 0 or self.step > 0 or "audio" not in self.raw_model.modalities:
            return
        from training.audio_warmup import warm_up_audio

        started = time.perf_counter()
        bar = tqdm(total=steps, desc="audio warm-up", disable=not (self.env.is_main and cfg.log.progress))

        def on_step(step: int, loss: float) -> None:
            bar.update()
            if step % 50 == 0 or step == steps:
                bar.set_postfix(loss=f"{loss:.3f}")

        losses = warm_up_audio(
            self.raw_model, stream, steps, lr=cfg.optim.lr, warmup_steps=cfg.optim.warmup_steps,
            seed=cfg.seed, device=self.env.device, on_step=on_step,
        )  # fmt: skip
        bar.close()
        if self.env.world_size > 1:  # every rank saw other batches: keep rank 0's audio tower
            state = distributed.broadcast_object(
                self.env, self.raw_model.audio.state_dict() if self.env.is_main else None
            )
            self.raw_model.audio.load_state_dict(state)
        self.audio_warmup = {"steps": steps, "first_loss": losses[0], "last_loss": losses[-1],
                             "seconds": time.perf_counter() - started}  # fmt: skip
        if self.env.is_main:
            logger.info("audio warm-up: %d steps, NT-Xent %.3f -> %.3f in %.1f s", steps, losses[0], losses[-1],
                        self.audio_warmup["seconds"])  # fmt: skip

    def run(self) -> dict[str, Any]:
        """Trains from the current step to ``stop_step``; returns the summary of :meth:`finish`."""
        cfg = self.cfg
        stop = self.stop_step
        stream = self._batches()
        self._audio_warmup(stream)
        window_clips, window_time = 0, 0.0  # clips/s counts loading and training, not evaluation or saving
        while self.step < stop:
            if self.governor is not None:
                self.governor.update()
            start = time.perf_counter()
            micro, clips = self._micro_batches(stream)
            out = self.train_step(micro)
            self.last_out = out
            self.step += 1
            window_clips += clips * self.env.world_size
            window_time += time.perf_counter() - start
            last = self.step == stop
            evaluate = (cfg.eval.every and self.step % cfg.eval.every == 0) or (
                last and cfg.eval.at_end and self.step == cfg.train.steps
            )
            metrics = self._evaluate() if evaluate else {}
            if self.env.is_main and (self.step % cfg.log.every == 0 or last or metrics):
                row = {"step": self.step, "time": round(time.perf_counter() - self.start_time, 3), "lr": out["lr"]}
                row |= {k: float(v) for k, v in out.items() if k != "lr"}  # .item(): syncs the device here only
                row["clips_per_s"] = window_clips / window_time if window_time > 0 else 0.0
                row["skipped"] = self.skips.count
                row["cpu_threads"] = torch.get_num_threads() if self.env.device.type == "cpu" else 0
                self.last_metrics = {k: v for k, v in row.items() if k not in ("step", "time")}
                self.csv.write(row | metrics)
                self.tensorboard.write(self.step, row | metrics)
                self.progress.update(row)
                window_clips, window_time = 0, 0.0
            elif self.env.is_main:
                self.progress.update()
            if last or (cfg.train.checkpoint_every and self.step % cfg.train.checkpoint_every == 0):
                self._save()
        return self.finish()

    def finish(self) -> dict[str, Any]:
        """Exports the model when the run is complete, writes the summary, closes the logs (rank 0)."""
        completed = self.step >= self.cfg.train.steps
        latest = self.checkpoints.latest()
        summary: dict[str, Any] = {
            "run_dir": str(self.run_dir),
            "rank": self.env.rank,
            "world_size": self.env.world_size,
            "step": self.step,
            "batches": self.batches,
            "epoch": self.batches // self.batches_per_epoch,
            "completed": completed,
            "resumed_from": self.resumed_from,
            "losses": {k: float(v) for k, v in (self.last_out or self.last_metrics).items() if k.endswith("loss")},
            "metrics": dict(self.eval_metrics),
            "skipped": self.skips.count,
            "bad_samples": self.skips.bad_samples(),
            "checkpoint": None if latest is None else str(latest),
            "model_dir": None,
            "weights_digest": weights_digest(self.raw_model),
            "audio_warmup": dict(self.audio_warmup),
        }
        if self.env.is_main:
            if completed:
                set_conv_memory_format(self.raw_model, channels_last=False)  # safetensors wants contiguous
                metadata = {
                    "steps": self.step,
                    "data": [dataclasses.asdict(s) for s in self.cfg.data.train],
                    "final_metrics": {**self.last_metrics, **self.eval_metrics},
                    "run_config": self.cfg.to_dict(),
                }
                summary["model_dir"] = str(save_checkpoint(self.raw_model, self.run_dir / "model", metadata))
            with atomic_file(self.run_dir / "summary.json") as tmp:
                tmp.write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
            self.progress.close()
            self.tensorboard.close()
            self.progress.write(skip_summary(summary["bad_samples"], summary["skipped"]))
            if summary["model_dir"]:
                self.progress.write(f"model exported to {summary['model_dir']}")
        # One line per rank, so a desynchronised DDP run shows (equal lines on every rank when healthy).
        loss = summary["losses"].get("loss", float("nan"))
        print(f"[rank {self.env.rank}] step {self.step} loss {loss!r} weights {summary['weights_digest']}", flush=True)
        return summary


def main(argv: list[str] | None = None, evaluate_fn: EvaluateFn | None = None) -> dict[str, Any]:
    """Trains as the recipe and flags say; returns the run summary (also in ``<run_dir>/summary.json``).

    Args:
        argv: ``['--config', PATH, '--key', 'value', ...]`` (default ``sys.argv[1:]``).
        evaluate_fn: replaces the default evaluation hook (tests).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if "-h" in argv or "--help" in argv:
        print(__doc__.split("\n\n")[0] + "\n\nusage: python -m training.main --config RECIPE.yaml [--key value ...]")
        print("\nkeys (defaults):\n" + config_lib.describe())
        return {}
    cfg = recipe_lib.parse_args(argv)
    env = distributed.setup(cfg.train.device, cfg.dist.backend, cfg.dist.timeout_minutes)
    try:
        return Trainer(cfg, env, evaluate_fn).run()
    finally:
        distributed.cleanup(env)


def cli() -> None:
    """Console entry point ``mmv-train``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        main()
    except config_lib.ConfigError as err:  # a usage error: the message says it all (anything else: traceback)
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    cli()
