"""The pretraining config: a typed schema (:class:`Config` and its sections), its checks, and the comparison and
YAML dump of resolved configs.

Recipes (YAML files with ``extends:``) and dotted command-line overrides are turned into a :class:`Config` by
:mod:`training.recipe` (:func:`training.recipe.parse_args`, :func:`training.recipe.resolve`). The resolved
config is written to ``<run_dir>/config.yaml`` and stored in every training checkpoint.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PRECISIONS = ("fp32", "bf16", "fp16")


class ConfigError(ValueError):
    """A recipe or flag that does not fit the schema; the message names the key."""


@dataclass
class DataSource:
    """One training manifest and its share of every epoch (several sources are mixed by proportion)."""

    manifest: str = ""
    proportion: float = 1.0
    split: str | None = "train"  # rows of this split only; null: every row


@dataclass
class DataConfig:
    """Datasets, augmentation and the loader.

    ``batch_size`` is per process and per micro-step: the optimizer's batch is ``batch_size x processes x
    train.accum_steps``, while the contrastive negatives come from ``batch_size x processes`` (accumulation
    does not enlarge the softmax).
    """

    train: list[DataSource] = field(default_factory=list)
    val: str | None = None  # the manifest evaluated by the eval hook (its eval.split rows)
    batch_size: int = 32
    num_workers: int = 4
    prefetch_factor: int = 2
    num_captions: int = 4  # K, MIL-NCE's bag (spec: about 4-5, not found)
    epoch_length: int | None = None  # items per epoch of a mix of several sources (default: their total)
    flip_prob: float = 0.0  # 0 for the toy world, whose narrations say left/right
    color_prob: float = 0.8
    color_on_device: bool = False  # the loader only draws colour parameters; the step applies them
    jitter_prob: float = 0.0
    crop_scale: list[float] = field(default_factory=lambda: [0.3, 1.0])
    cache_dir: str | None = None  # FLAC cache of audio tracks inside video containers
    # Decode every training clip once into RAM (mmv.data.memory_cache): for small datasets on CPU, where
    # decoding H.264 costs as much as the model. Frames are kept at native size (items then equal the decoding
    # path's bit for bit) or with their short side at cache_frame_size; cache_max_gib bounds the cache.
    in_memory: bool = False
    cache_frame_size: int | None = None
    cache_max_gib: float = 8.0
    vocab_min_count: int = 1
    vocab_max_size: int | None = None
    # Without a word-vector file the vocabulary is built from the training captions; this also initialises the
    # word vectors from those narrations instead of N(0, 1) (mmv.narration_vectors: PPMI of co-occurrence within a
    # clip, then its top positive eigenvectors). Text only: no labels, video or audio are read.
    narration_word_vectors: bool = False


@dataclass
class ModelSection:
    """A preset of :func:`mmv.factory.list_models` and nested overrides of its ``MMVConfig`` fields."""

    name: str = "tiny_fac"
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    """Adam with decoupled weight decay (AdamW; equal to Adam at ``weight_decay = 0``) and its schedule.

    The paper: Adam, peak lr 0.002 at batch 4096, 5k linear warm-up steps then a half-period cosine decay to
    0 (spec section 5). Its weight decay is not found, hence 0 by default; when set, it applies to weights of
    dimension >= 2 only (no decay for biases and BatchNorm). ``clip_grad_norm`` 0 turns clipping off (the
    paper's value is not found either).
    """

    lr: float = 0.002
    warmup_steps: int = 5000
    final_lr_fraction: float = 0.0
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    clip_grad_norm: float = 0.0


@dataclass
class TrainConfig:
    """The loop: length, precision, speed options, checkpoints."""

    steps: int = 500_000  # optimizer steps (spec: not found; 500k is consistent with VATT)
    accum_steps: int = 1
    precision: str = "fp32"  # fp32 | bf16 | fp16 (autocast; a GradScaler only for fp16)
    compile: bool = False
    channels_last: bool = False
    device: str = "auto"  # auto | cpu | cuda (under torchrun: cuda:LOCAL_RANK)
    # torch's CPU threads: "auto" follows the cores other processes leave free (mmv.threads: spinning OpenMP
    # threads on a shared CPU made steps 3-9x slower), a number fixes them (a run then repeats bit for bit)
    cpu_threads: str | int = "auto"
    # a curriculum stage before step 1 of a fresh run: the audio tower learns by instance discrimination on
    # audio alone for this many steps (training.audio_warmup; 0: none)
    audio_warmup_steps: int = 0
    audio_warmup_freeze: bool = False  # keep the warmed-up audio network fixed afterwards (its heads still train)
    checkpoint_every: int = 1000
    keep: int = 3  # training checkpoints kept (the oldest are deleted)
    stop_after: int | None = None  # leave after this global step (a job time limit); the schedule keeps `steps`


@dataclass
class LossConfig:
    """:class:`mmv.losses.MMVLoss`: λ_va = λ_vt = 1 and τ = 0.07 for HowTo100M + AudioSet (spec section 4)."""

    temperature: float = 0.07
    lambda_va: float = 1.0
    lambda_vt: float = 1.0
    lambda_at: float = 0.0
    gather: bool = True  # negatives from every rank
    duplicate_positives: bool = False  # the MIL-NCE reference's denominator (positives counted twice)


@dataclass
class DistConfig:
    """Process-group options (the group itself comes from torchrun's environment)."""

    sync_bn: bool = False  # cross-replica BatchNorm as in the paper (CUDA only)
    backend: str = "auto"  # auto: nccl on CUDA, gloo on CPU
    timeout_minutes: float = 30.0
    find_unused_parameters: bool = False


@dataclass
class EvalConfig:
    """Zero-shot retrieval on ``data.val`` every ``every`` steps (0: never) and at the end, on rank 0."""

    every: int = 0
    at_end: bool = True
    split: str = "val"
    batch_size: int = 32
    num_windows: int = 1
    max_clips: int | None = None
    num_workers: int = 0


@dataclass
class LogConfig:
    """Progress bar, ``metrics.csv`` and TensorBoard (rank 0 only)."""

    every: int = 1  # steps between CSV/TensorBoard rows
    progress: bool = True
    tensorboard: bool = True


@dataclass
class Config:
    """The whole recipe."""

    run_dir: str = "runs/mmv"
    seed: int = 0
    resume: str | None = None  # 'latest' (the run's newest complete checkpoint) or a checkpoint path
    model: ModelSection = field(default_factory=ModelSection)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    dist: DistConfig = field(default_factory=DistConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def validate(self) -> Config:
        """Checks values the types cannot express; raises ``ValueError`` naming the key."""
        checks = [
            (self.train.precision in PRECISIONS, "train.precision", f"must be one of {PRECISIONS}"),
            (self.train.device in ("auto", "cpu", "cuda"), "train.device", "must be auto, cpu or cuda"),
            (
                self.train.cpu_threads == "auto" or _positive_int(self.train.cpu_threads),
                "train.cpu_threads",
                "must be auto or a positive number of threads",
            ),
            (self.dist.backend in ("auto", "nccl", "gloo"), "dist.backend", "must be auto, nccl or gloo"),
            (self.train.steps >= 1, "train.steps", "must be >= 1"),
            (self.train.audio_warmup_steps >= 0, "train.audio_warmup_steps", "must be >= 0 (0: none)"),
            (self.train.accum_steps >= 1, "train.accum_steps", "must be >= 1"),
            (self.train.checkpoint_every >= 0, "train.checkpoint_every", "must be >= 0 (0: only at the end)"),
            (self.train.keep >= 1, "train.keep", "must be >= 1"),
            (self.data.batch_size >= 1, "data.batch_size", "must be >= 1"),
            (self.data.num_workers >= 0, "data.num_workers", "must be >= 0"),
            (len(self.data.crop_scale) == 2, "data.crop_scale", "must be [min, max]"),
            (
                self.data.cache_frame_size is None or self.data.cache_frame_size >= 1,
                "data.cache_frame_size",
                "must be >= 1",
            ),
            (self.data.cache_max_gib > 0, "data.cache_max_gib", "must be > 0"),
            (len(self.optim.betas) == 2, "optim.betas", "must be [beta1, beta2]"),
            (self.optim.lr > 0, "optim.lr", "must be > 0"),
            (self.optim.warmup_steps >= 0, "optim.warmup_steps", "must be >= 0"),
            (self.optim.weight_decay >= 0, "optim.weight_decay", "must be >= 0"),
            (self.eval.every >= 0, "eval.every", "must be >= 0"),
            (self.log.every >= 1, "log.every", "must be >= 1"),
            (bool(self.run_dir), "run_dir", "must not be empty"),
        ]
        for ok, key, message in checks:
            if not ok:
                raise ConfigError(f"config {key}: {message}")
        for i, source in enumerate(self.data.train):
            if not source.manifest:
                raise ConfigError(f"config data.train.{i}.manifest: must name a manifest file")
            if not source.proportion >= 0:
                raise ConfigError(f"config data.train.{i}.proportion: must be >= 0")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------------------
# Helpers, and comparing and writing resolved configs
# ---------------------------------------------------------------------------------------------------


def _positive_int(value: Any) -> bool:
    """True for a positive int, or a string of one (a dotted flag's ``--train.cpu_threads 2``)."""
    if isinstance(value, str):
        return value.isdigit() and int(value) > 0
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def fixed_cpu_threads(train: TrainConfig) -> int | None:
    """``train.cpu_threads`` as a thread count, or ``None`` for ``auto`` (:class:`mmv.threads.ThreadGovernor`)."""
    return None if train.cpu_threads == "auto" else int(train.cpu_threads)


#: Keys that say how a run is carried out, not what it learns: a run resumed or reused under other values of
#: these is the same run (dotted prefixes).
RUN_KEYS: tuple[str, ...] = (
    "run_dir", "resume", "log.", "eval.", "train.checkpoint_every", "train.keep", "train.stop_after",
    "train.cpu_threads", "train.device", "data.num_workers", "data.val", "dist.timeout_minutes",
)  # fmt: skip


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out |= _flatten(value, f"{prefix}{key}.")
        return out
    return {prefix[:-1]: data}


def recipe_differences(old: dict[str, Any], new: dict[str, Any], ignore: tuple[str, ...] = RUN_KEYS) -> list[str]:
    """The dotted keys whose values differ between two resolved configs (``Config.to_dict()`` or a run's
    ``config.yaml``), leaving out ``ignore`` (:data:`RUN_KEYS`); a key only one side has counts as differing."""
    a, b = _flatten(old), _flatten(new)

    def ignored(key: str) -> bool:
        return any(key == k or (k.endswith(".") and key.startswith(k)) for k in ignore)

    return sorted(k for k in a.keys() | b.keys() if not ignored(k) and a.get(k, "<unset>") != b.get(k, "<unset>"))


def load_run_config(run_dir: str | Path) -> dict[str, Any] | None:
    """The resolved config a run wrote (``<run_dir>/config.yaml``), or ``None`` when it has none."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        return None
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def dump(cfg: Config) -> str:
    """The config as YAML, in schema order."""
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False, default_flow_style=None, width=120)


def describe() -> str:
    """Every key with its default, one per line (``--help``)."""
    lines: list[str] = []

    def walk(obj: Any, prefix: str) -> None:
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            key = f"{prefix}{f.name}"
            if dataclasses.is_dataclass(value):
                walk(value, key + ".")
            else:
                lines.append(f"  --{key} {yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...')}")

    walk(Config(), "")
    return "\n".join(line.rstrip() for line in lines)
