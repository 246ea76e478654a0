"""Dataclass configs for every tower of an MMV model and for the whole model.

A model is fully described by an :class:`MMVConfig`; presets in ``mmv/presets/*.json`` are such configs
written as JSON, and :func:`mmv.factory.create_model` builds a model from one. Each config checks its own
fields in :meth:`validate` and raises ``ValueError`` naming the field (``"VideoConfig.backbone: ..."``), so a
typo in a preset or an override fails before any tensor is allocated.

Defaults are the paper's released settings (see ``shared/mmv_spec.md``); the tiny CPU presets override
widths and input sizes, never the code path.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

VIDEO_BACKBONES = ("s3d", "tsm_resnet")
AUDIO_BACKBONES = ("resnet",)
RESNET_DEPTHS = (18, 34, 50, 101)
TSM_DEPTHS = (50, 101)
SPATIAL_POOLS = ("mean", "max")  # VideoConfig.spatial_pool: how Embeddings reduces space
S3D_STAGES = (
    "Conv2d_1a_7x7",
    "MaxPool_2a_3x3",
    "Conv2d_2b_1x1",
    "Conv2d_2c_3x3",
    "MaxPool_3a_3x3",
    "Mixed_3b",
    "Mixed_3c",
    "MaxPool_4a_3x3",
    "Mixed_4b",
    "Mixed_4c",
    "Mixed_4d",
    "Mixed_4e",
    "Mixed_4f",
    "MaxPool_5a_2x2",
    "Mixed_5b",
    "Mixed_5c",
)
GRAPHS = ("shared", "disjoint", "fac", "fac_relu", "fac_bnrelu")
MODALITIES = ("video", "audio", "text")
HEAD_ROLES = ("video_va", "audio_va", "va_vat", "text_vat", "audio_text", "text_audio")


def _fail(cls: str, name: str, message: str) -> None:
    raise ValueError(f"{cls}.{name}: {message}")


def _check_choice(cls: str, name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        _fail(cls, name, f"must be one of {choices}, got {value!r}")


def _check_positive(cls: str, name: str, value: Any, kind: type = int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int) or value <= 0:
        _fail(cls, name, f"must be a positive {kind.__name__}, got {value!r}")


@dataclass
class NormConfig:
    """BatchNorm settings shared by every tower and head.

    Haiku's decay 0.9 is PyTorch's momentum 0.1; the paper used cross-replica statistics, which
    ``training/`` gets by converting the model with ``nn.SyncBatchNorm.convert_sync_batchnorm``.
    """

    momentum: float = 0.1
    eps: float = 1e-5

    def validate(self) -> None:
        if not 0.0 < self.momentum <= 1.0:
            _fail("NormConfig", "momentum", f"must be in (0, 1], got {self.momentum!r}")
        _check_positive("NormConfig", "eps", self.eps, float)


@dataclass
class VideoConfig:
    """The video tower and the clip it expects.

    Attributes:
        backbone: ``'s3d'`` (S3D-G) or ``'tsm_resnet'`` (TSM-ResNet-V2).
        num_frames: T of the ``[B, T, H, W, 3]`` clip (32 at 10 fps in the paper's final runs).
        frame_size: H = W of the training crop (200 in the paper).
        fps: frame rate the clip is sampled at.
        width_mult: channel multiplier. S3D-G accepts any positive float (tiny presets use 1/8);
            TSM-ResNet accepts 1 or 2 as in the paper, or a float < 1 for small CPU models.
        s3d_first_temporal_kernel: temporal size of S3D-G's first 7x7 conv (1, 3, 5 or 7).
        s3d_temporal_conv_startat / s3d_gating_startat: first S3D-G layer with a temporal conv /
            self-gating (``None`` = none at all).
        s3d_final_endpoint: the last S3D-G stage built (the original's ``final_endpoint``); ``Embeddings`` is
            the mean of that stage's output over T, H and W. ``'Mixed_5c'`` (the default) is the whole network;
            small CPU models stop earlier (e.g. ``'Mixed_3c'``) so they keep a finer spatial grid, train in
            fewer steps and cost less per clip.
        space_to_depth: S3D-G only: the input is folded 2x2x2 into 24 channels before the first conv,
            as the released TPU checkpoint expects (``[B, T/2, H/2, W/2, 24]``).
        depth: TSM-ResNet depth (50 or 101).
        shift_fraction: fraction of channels shifted in each temporal direction (TSM).
        input_centering: subtract each clip's mean colour (per channel over T, H and W; over H and W for a
            deflated image) before the first conv. Off in the paper (inputs in [0, 1]); on for the toy world.
        spatial_pool: how ``Embeddings`` reduces the last feature map: the mean over T, H and W (``'mean'``, the
            paper's) or the mean over T and then the max over H and W (``'max'``).
    """

    backbone: str = "s3d"
    num_frames: int = 32
    frame_size: int = 200
    fps: float = 10.0
    width_mult: float = 1.0
    s3d_first_temporal_kernel: int = 7
    s3d_temporal_conv_startat: str | None = "Conv2d_2c_3x3"
    s3d_gating_startat: str | None = "Conv2d_2c_3x3"
    s3d_final_endpoint: str = "Mixed_5c"
    space_to_depth: bool = False
    depth: int = 50
    shift_fraction: float = 0.125
    input_centering: bool = False
    spatial_pool: str = "mean"

    def validate(self) -> None:
        c = "VideoConfig"
        _check_choice(c, "backbone", self.backbone, VIDEO_BACKBONES)
        _check_positive(c, "num_frames", self.num_frames)
        _check_positive(c, "frame_size", self.frame_size)
        _check_positive(c, "fps", self.fps, float)
        _check_positive(c, "width_mult", self.width_mult, float)
        _check_choice(c, "s3d_first_temporal_kernel", self.s3d_first_temporal_kernel, (1, 3, 5, 7))
        _check_choice(c, "s3d_temporal_conv_startat", self.s3d_temporal_conv_startat, (None, *S3D_STAGES))
        _check_choice(c, "s3d_gating_startat", self.s3d_gating_startat, (None, *S3D_STAGES))
        _check_choice(c, "s3d_final_endpoint", self.s3d_final_endpoint, S3D_STAGES)
        _check_choice(c, "depth", self.depth, TSM_DEPTHS)
        _check_choice(c, "spatial_pool", self.spatial_pool, SPATIAL_POOLS)
        if not 0.0 <= self.shift_fraction <= 0.5:
            _fail(c, "shift_fraction", f"must be in [0, 0.5], got {self.shift_fraction!r}")
        if self.space_to_depth:
            if self.backbone != "s3d":
                _fail(c, "space_to_depth", "only S3D-G takes a space-to-depth input")
            if self.num_frames % 2 or self.frame_size % 2:
                _fail(c, "space_to_depth", "needs an even num_frames and frame_size")


@dataclass
class AudioConfig:
    """The log-mel front end and the audio ResNet.

    The paper's front end is 48 kHz mono, STFT window 2048 / hop 1024 (42.67 / 21.34 ms), magnitude,
    80 mel bins over 80-7600 Hz, ``log(mel + 1e-6)`` -> a ``[B, 150, 80]`` spectrogram for 3.2 s.

    Attributes:
        mel_scale: ``'htk'`` (the formula TensorFlow's ``linear_to_mel_weight_matrix`` uses, closest to
            the original's DMVR front end) or ``'slaney'`` (librosa's default).
        mel_norm: ``None`` (peak 1 triangles) or ``'slaney'`` (area-normalised triangles).
        depth: ResNet-V2 depth: 50 for the paper's models, 18 for small presets.
        width_mult: channel multiplier of the ResNet (1 in the paper; < 1 for tiny presets).
    """

    backbone: str = "resnet"
    sample_rate: int = 48000
    duration: float = 3.2
    n_fft: int = 2048
    hop_length: int = 1024
    n_mels: int = 80
    fmin: float = 80.0
    fmax: float = 7600.0
    log_offset: float = 1e-6
    mel_scale: str = "htk"
    mel_norm: str | None = None
    depth: int = 50
    width_mult: float = 1.0

    @property
    def num_samples(self) -> int:
        """Waveform length S of one clip: ``round(duration * sample_rate)``."""
        return int(round(self.duration * self.sample_rate))

    def validate(self) -> None:
        c = "AudioConfig"
        _check_choice(c, "backbone", self.backbone, AUDIO_BACKBONES)
        _check_positive(c, "sample_rate", self.sample_rate)
        _check_positive(c, "duration", self.duration, float)
        _check_positive(c, "n_fft", self.n_fft)
        _check_positive(c, "hop_length", self.hop_length)
        _check_positive(c, "n_mels", self.n_mels)
        _check_positive(c, "log_offset", self.log_offset, float)
        if not 0.0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            _fail(c, "fmax", f"need 0 <= fmin < fmax <= sample_rate/2, got fmin={self.fmin}, fmax={self.fmax}")
        _check_choice(c, "mel_scale", self.mel_scale, ("htk", "slaney"))
        _check_choice(c, "mel_norm", self.mel_norm, (None, "slaney"))
        _check_choice(c, "depth", self.depth, RESNET_DEPTHS)
        _check_positive(c, "width_mult", self.width_mult, float)


@dataclass
class TextConfig:
    """The text tower: frozen word vectors -> Linear -> ReLU -> max over words.

    Attributes:
        vocab_size: rows of the word-vector table (2^16 in the paper); replaced by the size of the
            vocabulary when vectors or a vocabulary are loaded.
        word_dim: width of a word vector (300 for word2vec).
        sentence_dim: output width d_t (2048 in the paper).
        max_words: L, words kept per sentence (16 in the paper).
        freeze_word_vectors: the paper stops the gradient at the word vectors; set ``False`` to train
            the table (the toy world has no pretrained vectors).
        word_vectors: optional path to pretrained vectors (word2vec ``.bin``, GloVe/word2vec ``.txt``,
            or ``.npy`` with a ``.vocab.txt`` beside it). Informational: weights live in the checkpoint.
        remove_stop_words: drop English stop words before truncating to ``max_words`` (the paper does).
        pool_padding: take the max over every word position, padding included, as the released checkpoints do
            (each padded position then contributes ``ReLU(W e_0 + b)``, ``e_0`` = row 0 of the table). ``False``
            (the default for models trained here) masks padding so that it can never win the max.
    """

    vocab_size: int = 65536
    word_dim: int = 300
    sentence_dim: int = 2048
    max_words: int = 16
    freeze_word_vectors: bool = True
    word_vectors: str | None = None
    remove_stop_words: bool = True
    pool_padding: bool = False

    def validate(self) -> None:
        c = "TextConfig"
        _check_positive(c, "vocab_size", self.vocab_size)
        if self.vocab_size < 2:
            _fail(c, "vocab_size", "needs at least <pad> and <unk>")
        _check_positive(c, "word_dim", self.word_dim)
        _check_positive(c, "sentence_dim", self.sentence_dim)
        _check_positive(c, "max_words", self.max_words)


@dataclass
class HeadConfig:
    """One projection head: ``linear`` or ``mlp@h1[@h2...]`` to ``dim``, optional BN on the output."""

    mode: str = "linear"
    dim: int = 512
    bn_after: bool = False

    def validate(self, name: str = "HeadConfig") -> None:
        _check_positive(name, "dim", self.dim)
        parts = self.mode.split("@")
        if parts[0] not in ("linear", "mlp", "mlp_nobn") or (parts[0] == "linear") != (len(parts) == 1):
            _fail(name, "mode", f"must be 'linear' or 'mlp@H[@H2...]', got {self.mode!r}")
        for p in parts[1:]:
            if not p.isdigit() or int(p) <= 0:
                _fail(name, "mode", f"hidden widths must be positive integers, got {self.mode!r}")


def _released_heads() -> dict[str, HeadConfig]:
    # The released checkpoints' heads (spec section 3.3), not the original module defaults.
    return {
        "video_va": HeadConfig("mlp@512", 512, True),
        "audio_va": HeadConfig("linear", 512, False),
        "va_vat": HeadConfig("linear", 256, True),
        "text_vat": HeadConfig("linear", 256, False),
        "audio_text": HeadConfig("linear", 512, False),
    }


@dataclass
class MMVConfig:
    """The whole model: towers, heads and embedding graph.

    Attributes:
        name: preset name (informational; building never dispatches on it).
        modalities: the towers to build, a subset of ``('video', 'audio', 'text')``.
        graph: embedding graph: ``shared``, ``disjoint``, ``fac``, ``fac_relu`` (released models) or
            ``fac_bnrelu``.
        heads: projection heads by role (spec section 3.3): ``video_va`` (f_v -> S_va), ``audio_va``
            (f_a -> S_va), ``va_vat`` (FAC: S_va -> S_vat; disjoint: f_v -> S_vt), ``text_vat`` (f_t -> S_vat),
            and for an audio-text space of its own (``disjoint`` with ``use_audio_text``) ``audio_text`` and
            ``text_audio`` (defaults to a linear head of ``audio_text``'s width).
        use_audio_text: FAC: also route audio through the va->vat head in training (the original keeps it
            to evaluation so audio never enters that head's BN statistics); disjoint: build the S_at heads.
    """

    name: str = "custom"
    modalities: list[str] = field(default_factory=lambda: list(MODALITIES))
    graph: str = "fac_relu"
    video: VideoConfig = field(default_factory=VideoConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    text: TextConfig = field(default_factory=TextConfig)
    heads: dict[str, HeadConfig] = field(default_factory=_released_heads)
    norm: NormConfig = field(default_factory=NormConfig)
    use_audio_text: bool = False

    def validate(self) -> MMVConfig:
        if not self.modalities or any(m not in MODALITIES for m in self.modalities):
            _fail("MMVConfig", "modalities", f"must be a non-empty subset of {MODALITIES}, got {self.modalities!r}")
        if len(set(self.modalities)) != len(self.modalities):
            _fail("MMVConfig", "modalities", f"has duplicates: {self.modalities!r}")
        _check_choice("MMVConfig", "graph", self.graph, GRAPHS)
        self.video.validate()
        self.audio.validate()
        self.text.validate()
        self.norm.validate()
        for role, head in self.heads.items():
            if role not in HEAD_ROLES:
                _fail("MMVConfig", f"heads[{role!r}]", f"unknown head role (known: {HEAD_ROLES})")
            head.validate(f"MMVConfig.heads[{role!r}]")
        for role in self.required_heads():
            if role not in self.heads:
                _fail("MMVConfig", "heads", f"graph {self.graph!r} with {self.modalities} needs a {role!r} head")
        if self.graph == "shared":
            dims = {r: self.heads[r].dim for r in self.required_heads()}
            if len(set(dims.values())) > 1:
                _fail("MMVConfig", "heads", f"the shared graph embeds every modality in one space: dims differ {dims}")
        return self

    def required_heads(self) -> list[str]:
        """The head roles this graph and set of modalities builds."""
        m = set(self.modalities)
        if self.graph == "shared":
            table = {"video": "video_va", "audio": "audio_va", "text": "text_vat"}
            return [table[x] for x in MODALITIES if x in m]
        roles = []
        if "video" in m and "audio" in m:
            roles += ["video_va", "audio_va"]
        if "video" in m and "text" in m:
            roles += ["video_va", "va_vat"] if self.graph != "disjoint" else ["va_vat"]
            roles += ["text_vat"]
        if "audio" in m and "text" in m and self.graph != "disjoint":
            roles += ["audio_va", "video_va", "va_vat"] if "video" in m else []
        if self.graph == "disjoint" and self.use_audio_text and "audio" in m and "text" in m:
            roles += ["audio_text"]
        return list(dict.fromkeys(roles))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MMVConfig:
        """Builds and validates a config; unknown keys raise ``ValueError`` naming them."""
        data = dict(data)
        kwargs: dict[str, Any] = {}
        sub = {"video": VideoConfig, "audio": AudioConfig, "text": TextConfig, "norm": NormConfig}
        for key, value in data.items():
            if key in sub:
                kwargs[key] = _build(sub[key], value, f"MMVConfig.{key}")
            elif key == "heads":
                if not isinstance(value, Mapping):
                    _fail("MMVConfig", "heads", f"must be a mapping, got {type(value).__name__}")
                kwargs[key] = {r: _build(HeadConfig, h, f"MMVConfig.heads[{r!r}]") for r, h in value.items()}
            elif key in ("name", "modalities", "graph", "use_audio_text"):
                kwargs[key] = list(value) if key == "modalities" else value
            else:
                _fail("MMVConfig", key, "unknown field")
        return cls(**kwargs).validate()


def _build(cls: type, value: Any, where: str) -> Any:
    if isinstance(value, cls):
        return value
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: must be a mapping, got {type(value).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    for key in value:
        if key not in names:
            raise ValueError(f"{where}.{key}: unknown field (known: {sorted(names)})")
    return cls(**value)
