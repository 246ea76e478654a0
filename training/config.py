"""The pretraining recipe: a typed schema, YAML files with ``extends:``, and dotted command-line overrides.

A recipe is a YAML file whose keys are the fields below (every section is optional; missing keys take the
defaults). ``extends: base.yaml`` (a path relative to the extending file, or a list of them) merges the file
over its base(s): mappings merge key by key, lists and scalars replace. Command-line flags then override any
key with a dotted path, parsed as YAML::

    python -m training.main --config training/configs/demo_cpu.yaml \\
        --optim.lr 0.001 --data.batch_size 8 --model.name tiny_fac \\
        --model.overrides.video.num_frames 4 --train.compile true --resume latest

``--key=value`` works too, a bare ``--flag`` means ``true``, hyphens in keys read as underscores and a list
item is addressed by its index (``--data.train.0.proportion 0.7``). A key outside the schema is an error that
names it; so is a value of the wrong type. ``model.overrides`` is free-form: it is passed to
:func:`mmv.factory.create_model`, whose config validation names a bad field.

Relative paths in a recipe (manifests, ``run_dir``) are relative to the working directory, i.e. recipes in
``training/configs/`` assume the repository root. The resolved config is written to ``<run_dir>/config.yaml``
and stored in every training checkpoint.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
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
# Building a Config from plain data, with type checks
# ---------------------------------------------------------------------------------------------------


def _positive_int(value: Any) -> bool:
    """True for a positive int, or a string of one (a dotted flag's ``--train.cpu_threads 2``)."""
    if isinstance(value, str):
        return value.isdigit() and int(value) > 0
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def fixed_cpu_threads(train: TrainConfig) -> int | None:
    """``train.cpu_threads`` as a thread count, or ``None`` for ``auto`` (:class:`mmv.threads.ThreadGovernor`)."""
    return None if train.cpu_threads == "auto" else int(train.cpu_threads)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """``value`` checked (and, for numbers given as strings like ``1e-3``, converted) against ``tp``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _coerce(value, option, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if len(errors) == 1 else f"config {key}: expected {_type_name(tp)}, got {value!r}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return from_dict(tp, value, key)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config {key}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_coerce(v, item, f"{key}.{i}") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config {key}: expected a mapping, got {value!r}")
        return copy.deepcopy(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML 1.1 reads "1e-3" as a string
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is Any:
        return value
    raise ConfigError(f"config {key}: expected {_type_name(tp)}, got {value!r}")


def from_dict(cls: type, data: Any, prefix: str = "") -> Any:
    """Builds the dataclass ``cls`` from a mapping; unknown keys and wrong types raise ``ValueError``."""
    where = prefix or "<root>"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config {where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            raise ConfigError(f"config {dotted}: unknown key (known in {where}: {', '.join(names)})")
        kwargs[key] = _coerce(value, hints[key], dotted)
    return cls(**kwargs)


# ---------------------------------------------------------------------------------------------------
# Files, extends, overrides
# ---------------------------------------------------------------------------------------------------


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``update`` over ``base``: mappings merge recursively, everything else replaces. Returns a new dict."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_recipe(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Reads a YAML recipe and resolves its ``extends:`` chain (bases first); returns plain data."""
    path = Path(path).resolve()
    if path in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, path))
        raise ConfigError(f"config extends: cycle {chain}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"config file {path}: cannot read ({err.strerror})") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path}: not valid YAML ({err})") from err
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping at the top level")
    bases = data.pop("extends", None)
    if bases is None:
        return data
    merged: dict[str, Any] = {}
    for base in [bases] if isinstance(bases, str) else list(bases):
        merged = deep_merge(merged, load_recipe(path.parent / base, (*_seen, path)))
    return deep_merge(merged, data)


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """Sets ``data[a][b][c] = value`` for ``key = 'a.b.c'``, creating mappings; digits index lists."""
    parts = key.split(".")
    node: Any = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"config {'.'.join(parts[: i + 1])}: no such list item (length {len(node)})")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
            continue
        if not isinstance(node, dict):
            raise ConfigError(f"config {'.'.join(parts[:i])}: is not a mapping, cannot set {part!r}")
        if last:
            node[part] = value
        else:
            if node.get(part) is None:
                if parts[i + 1].isdigit():
                    raise ConfigError(f"config {'.'.join(parts[: i + 2])}: no such list item ({part} is not set)")
                node[part] = {}
            node = node[part]


def parse_overrides(args: list[str]) -> list[tuple[str, Any]]:
    """``['--a.b', '1', '--c=x', '--flag']`` -> ``[('a.b', 1), ('c', 'x'), ('flag', True)]`` (YAML values)."""
    out: list[tuple[str, Any]] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or len(arg) == 2:
            raise ConfigError(f"expected --key value, got {arg!r}")
        key, eq, text = arg[2:].partition("=")
        if not eq:
            if i + 1 < len(args) and not args[i + 1].startswith("--"):
                text = args[i + 1]
                i += 1
            else:
                text = "true"
        try:
            value = yaml.safe_load(text) if text != "" else ""
        except yaml.YAMLError as err:
            raise ConfigError(f"config {key}: cannot parse {text!r} as YAML ({err})") from err
        out.append((key.replace("-", "_"), value))
        i += 1
    return out


def resolve(config_path: str | Path | None, overrides: list[tuple[str, Any]] = ()) -> Config:
    """The validated :class:`Config` of a recipe file (or the defaults) plus overrides."""
    data = load_recipe(config_path) if config_path else {}
    for key, value in overrides:
        set_dotted(data, key, value)
    return from_dict(Config, data).validate()


def parse_args(argv: list[str]) -> Config:
    """``--config PATH`` plus dotted overrides, in any order (``--config=PATH`` too)."""
    rest: list[str] = []
    config_path = None
    i = 0
    while i < len(argv):
        if argv[i] == "--config":
            if i + 1 >= len(argv):
                raise ConfigError("--config needs a path")
            config_path, i = argv[i + 1], i + 2
        elif argv[i].startswith("--config="):
            config_path, i = argv[i].split("=", 1)[1], i + 1
        else:
            rest.append(argv[i])
            i += 1
    return resolve(config_path, parse_overrides(rest))


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
