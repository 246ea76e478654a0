"""What a training run is built from before its first step (:class:`training.main.Trainer` calls these): the
resume decision, the model (vocabulary, narration word vectors, SyncBatchNorm, ``torch.compile``, DDP), the
CUDA backends and the periodic evaluation hook."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import pandas as pd
import torch
from torch import nn

from mmv.config import MMVConfig
from mmv.factory import create_model, get_config
from mmv.tokenizer import Vocabulary
from training import config as config_lib
from training import data as data_lib
from training import distributed
from training.checkpointing import CheckpointManager
from training.config import Config
from training.step import set_conv_memory_format

if TYPE_CHECKING:
    from mmv.models.mmv import MMV

logger = logging.getLogger("training.main")

EvaluateFn = Callable[["MMV", int], dict[str, float]]


def default_evaluate_fn(cfg: Config, vocab: Vocabulary | None, device: torch.device) -> EvaluateFn | None:
    """The zero-shot retrieval hook on ``data.val``, or None when there is nothing to evaluate.

    Clip- and (toy world) attribute-level retrieval as flat floats (:func:`training.evaluate.flat_retrieval`).
    """
    if not cfg.data.val or (cfg.eval.every == 0 and not cfg.eval.at_end):
        return None
    from training.evaluate import flat_retrieval

    e = cfg.eval
    kwargs = {"split": e.split, "batch_size": e.batch_size, "num_windows": e.num_windows, "max_clips": e.max_clips}
    if e.num_workers:
        kwargs["num_workers"] = e.num_workers

    def evaluate(model: MMV, step: int) -> dict[str, float]:
        return flat_retrieval(model, cfg.data.val, vocab=vocab, device=str(device), **kwargs)

    return evaluate


def configure_backends(device: torch.device) -> None:
    """TF32 matmuls/convs and cuDNN autotuning on CUDA (input shapes are fixed, except batches shortened by
    skipped samples)."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True


def resume_decision(cfg: Config, checkpoints: CheckpointManager) -> tuple[str | None, str | None]:
    """``(checkpoint to resume from, error)``: a fresh run never mixes with an old one's checkpoints."""
    run_dir = Path(cfg.run_dir)
    try:
        found = checkpoints.resolve(cfg.resume)
    except FileNotFoundError as err:
        return None, str(err)
    existing = checkpoints.checkpoints()
    if found is None and existing:  # (with --resume latest, `found` is the newest of `existing`)
        return None, (
            f"{run_dir} already holds checkpoints ({existing[-1].name}); pass --resume latest to continue "
            "that run, or choose another run_dir"
        )
    if found is not None:
        written = config_lib.load_run_config(run_dir)
        ignore = (*config_lib.RUN_KEYS, "train.steps")
        changed = [] if written is None else config_lib.recipe_differences(written, cfg.to_dict(), ignore=ignore)
        if changed:
            return None, (
                f"{run_dir} holds a run of another recipe (it differs in {', '.join(changed[:8])}); resuming "
                "would mix the two: delete that folder, or choose another run_dir"
            )
    if cfg.resume and found is None:
        logger.warning("resume %r: no checkpoint in %s yet, starting from scratch", cfg.resume, run_dir)
    return (None if found is None else str(found)), None


class BuiltModel(NamedTuple):
    """The model of a run, as :func:`build_model` leaves it."""

    model: nn.Module  # what the step runs: ``raw_model`` compiled and/or wrapped in DDP
    raw_model: MMV  # on the device, in train mode (SyncBatchNorm and channels-last as configured)
    vocab: Vocabulary | None  # None without a text tower
    model_cfg: MMVConfig  # the model's config (``vocab_size`` from the vocabulary)


def build_model(
    cfg: Config, env: distributed.DistEnv, frames: list[pd.DataFrame], state: dict[str, Any] | None
) -> BuiltModel:
    """The run's model: from the preset and overrides, with the checkpoint's weights and vocabulary when
    resuming, else a vocabulary (and optional word vectors) from the training narrations ``frames``."""
    try:
        model_cfg = get_config(cfg.model.name, **cfg.model.overrides)
    except ValueError as err:
        raise config_lib.ConfigError(f"config model: {err}") from err
    vocab = None
    if "text" in model_cfg.modalities:
        if state is not None and state.get("vocab"):
            vocab = Vocabulary(state["vocab"])
        elif not model_cfg.text.word_vectors:
            vocab = data_lib.build_vocabulary(frames, cfg, model_cfg.text.remove_stop_words)
        if vocab is not None:
            text = dataclasses.replace(model_cfg.text, vocab_size=len(vocab))
            model_cfg = dataclasses.replace(model_cfg, text=text)
    model = create_model(model_cfg)
    if vocab is not None:
        model.vocab = vocab
    if state is None and vocab is not None and cfg.data.narration_word_vectors:
        vectors = data_lib.narration_vectors(frames, vocab, model_cfg.text.word_dim, model_cfg.text.remove_stop_words)
        with torch.no_grad():
            model.text.embedding.weight.copy_(torch.from_numpy(vectors))
        logger.info("word vectors: %d x %d from the training narrations", *vectors.shape)
    if state is not None:
        model.load_state_dict(state["model"])
    vocab = model.vocab if "text" in model_cfg.modalities else None
    model_cfg = model.config
    model.to(env.device).train()
    if cfg.dist.sync_bn:
        model = distributed.convert_sync_batchnorm(model, env)
    if cfg.train.channels_last:
        set_conv_memory_format(model, channels_last=True)
    if cfg.train.audio_warmup_steps > 0 and cfg.train.audio_warmup_freeze and "audio" in model_cfg.modalities:
        model.audio.requires_grad_(False)  # fixed after its warm-up (which trains it regardless), before DDP
    raw_model = model
    configure_backends(env.device)
    if cfg.train.compile:
        model = torch.compile(model)
    return BuiltModel(distributed.wrap_ddp(model, env, cfg.dist.find_unused_parameters), raw_model, vocab, model_cfg)
