"""The MMV model: one tower per modality and the embedding graph joining them (spec section 3).

Towers: the video backbone, the log-mel front end + audio ResNet, the text tower. Heads project their
representations into shared spaces according to ``config.graph``:

============  =====================================  ==========================================
graph         spaces                                 heads
============  =====================================  ==========================================
shared        one space (``va`` and ``vat`` are the   one head per modality, reused for every
              same embedding)                        pairing (video_va, audio_va, text_vat)
disjoint      S_va (video, audio), S_vt (video, text  separate heads on each representation;
              as ``vat``), S_at (audio, text, as      audio and text meet only in S_at, built
              ``at``, only with use_audio_text)      only with ``use_audio_text``
fac, fac_*    fine S_va (video, audio) -> coarse      video_va on f_v; va_vat on act(z_v,va);
              S_vat (video, text, audio at eval)     audio_va on f_a; text_vat on f_t
============  =====================================  ==========================================

``encode_*`` return dicts of named, *not normalised* embeddings: ``{'repr', 'va', 'vat'}`` (and ``'at'``
for disjoint audio/text with use_audio_text). A model may hold only some modalities (``modalities=['video',
'audio']`` for AudioSet-only training). ``encode_image`` embeds still images with the deflated video tower and
the video heads (:mod:`mmv.deflation`; a recalibrated tower is attached outside the module tree).

Inputs at the boundary (see ``shared/ARCHITECTURE.md``):
    video ``[B, T, H, W, 3]`` float in [0, 1]; images ``[B, H, W, 3]``; audio waveform ``[B, S]`` in [-1, 1] at
    ``audio.sample_rate``; text ids ``[B, L]`` or ``[B, K, L]`` (0 = padding).
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import torch
from torch import nn

from mmv.audio import LogMelSpectrogram
from mmv.config import HeadConfig, MMVConfig
from mmv.models.audio_resnet import AudioResNet
from mmv.models.base import Backbone
from mmv.models.heads import FacActivation, ProjectionHead
from mmv.models.s3d import S3DG
from mmv.models.text import TextTower
from mmv.models.tsm_resnet import TSMResNet
from mmv.tokenizer import Vocabulary
from mmv.word_vectors import load_word_vectors as read_word_vectors


def build_video_backbone(cfg: MMVConfig) -> Backbone:
    """The video tower named by ``cfg.video.backbone``."""
    builders = {"s3d": S3DG, "tsm_resnet": TSMResNet}
    return builders[cfg.video.backbone](cfg.video, cfg.norm)


class MMV(nn.Module):
    """Towers + heads of the configured modalities and graph.

    Attributes:
        config: the validated config the model was built from (``text.vocab_size`` follows the
            loaded word vectors).
        vocab: the text vocabulary when one is known (loaded vectors or a checkpoint), else ``None``.
        heads: ``nn.ModuleDict`` of :class:`ProjectionHead` by role (``video_va``, ``va_vat``, ...).
    """

    def __init__(self, config: MMVConfig, load_word_vectors: bool = True, vocab: Vocabulary | None = None) -> None:
        super().__init__()
        config.validate()
        self.vocab = vocab
        dims: dict[str, int] = {}
        if "video" in config.modalities:
            self.video = build_video_backbone(config)
            dims["video"] = self.video.output_dim
        if "audio" in config.modalities:
            self.audio_frontend = LogMelSpectrogram(config.audio)
            self.audio = AudioResNet(config.audio, config.norm)
            dims["audio"] = self.audio.output_dim
        if "text" in config.modalities:
            vectors = None
            if config.text.word_vectors and load_word_vectors:
                self.vocab, vectors = read_word_vectors(config.text.word_vectors)
                config = dataclasses.replace(config, text=dataclasses.replace(config.text, vocab_size=len(self.vocab)))
            self.text = TextTower(config.text, vectors)
            dims["text"] = self.text.output_dim
        self.config = config
        self.graph = config.graph
        self.fac_kind = config.graph.split("_", 1)[1] if config.graph.startswith("fac_") else "none"
        self.heads = nn.ModuleDict()
        for role in config.required_heads():
            self.heads[role] = ProjectionHead(self._head_input_dim(role, dims), config.heads[role], config.norm)
        if self.graph == "disjoint" and "audio_text" in self.heads:
            text_audio = config.heads.get("text_audio", HeadConfig("linear", config.heads["audio_text"].dim))
            self.heads["text_audio"] = ProjectionHead(dims["text"], text_audio, config.norm)
        if self.graph.startswith("fac") and "va_vat" in self.heads:
            self.fac_activation = FacActivation(self.fac_kind, config.heads["video_va"].dim, config.norm)

    def _head_input_dim(self, role: str, dims: dict[str, int]) -> int:
        if role == "va_vat" and self.graph.startswith("fac"):
            return self.config.heads["video_va"].dim  # the FAC coarse head reads the fine space
        source = {"video_va": "video", "va_vat": "video", "audio_va": "audio", "audio_text": "audio"}
        return dims[source.get(role, "text")]

    @property
    def modalities(self) -> list[str]:
        return list(self.config.modalities)

    def _need(self, modality: str) -> None:
        if modality not in self.config.modalities:
            raise ValueError(f"this model has no {modality} tower (modalities={self.config.modalities})")

    def _head(self, role: str, x: torch.Tensor) -> torch.Tensor | None:
        return self.heads[role](x) if role in self.heads else None

    def encode_video(self, video: torch.Tensor) -> dict[str, torch.Tensor]:
        """Clip ``[B, T, H, W, 3]`` (uint8, or float in [0, 1]) -> ``{'repr': [B, d_v], 'va', 'vat'}``."""
        self._need("video")
        if video.dtype == torch.uint8:
            video = video.float().div_(255.0)
        return self._video_heads(self.video(video))

    def _video_heads(self, representation: torch.Tensor) -> dict[str, torch.Tensor]:
        """The video heads on a video (or deflated image) representation ``[B, d_v]``."""
        out = {"repr": representation}
        if self.graph == "shared":
            out["va"] = out["vat"] = self.heads["video_va"](out["repr"])
        elif self.graph == "disjoint":
            out |= {"va": self._head("video_va", out["repr"]), "vat": self._head("va_vat", out["repr"])}
        elif "video_va" in self.heads:
            out["va"] = self.heads["video_va"](out["repr"])
            if "va_vat" in self.heads:
                out["vat"] = self.heads["va_vat"](self.fac_activation(out["va"]))
        return {k: v for k, v in out.items() if v is not None}

    def encode_image(self, images: torch.Tensor, mode: str = "auto") -> dict[str, torch.Tensor]:
        """Images ``[B, H, W, 3]`` (uint8, or float in [0, 1]) -> ``{'repr', 'va', 'vat'}`` like :meth:`encode_video`.

        The image goes through the *deflated* video tower (spec section 6, :mod:`mmv.deflation`) and then the
        video heads, so it lands in S_va and S_vat like a video.

        Args:
            images: ``[B, H, W, 3]``.
            mode: ``'auto'`` (the calibrated tower if one is attached, e.g. loaded with the checkpoint, else naive
                deflation with a one-time warning), ``'calibrated'`` (error if none), ``'naive'`` (the video
                network's own BN gamma/beta), or ``'inflated'`` (the reference: the image repeated
                ``config.video.num_frames`` times as a static video through :meth:`encode_video`).
        """
        self._need("video")
        if images.dim() != 4 or images.shape[-1] != 3:
            raise ValueError(f"encode_image: expected [B, H, W, 3] images, got shape {tuple(images.shape)}")
        if images.dtype == torch.uint8:
            images = images.float().div_(255.0)
        if mode == "inflated":
            t = self.config.video.num_frames
            return self.encode_video(images[:, None].expand(-1, t, -1, -1, -1))
        return self._video_heads(self.image_backbone(mode)(images))

    def image_backbone(self, mode: str = "auto") -> Backbone:
        """The deflated video tower :meth:`encode_image` uses in ``mode`` (``'auto'``, ``'calibrated'``, ``'naive'``).

        Neither tower is a submodule: the model's ``state_dict``, parameters and optimiser stay the video
        model's, and the towers read the video weights at each call (see :mod:`mmv.deflation.networks`).
        """
        from mmv.deflation.networks import deflate

        self._need("video")
        if mode not in ("auto", "calibrated", "naive"):
            raise ValueError(f"encode_image: mode must be 'auto', 'calibrated', 'naive' or 'inflated', got {mode!r}")
        tower = self.__dict__.get("_calibrated_image") if mode != "naive" else None
        if tower is None:
            if mode == "calibrated":
                raise ValueError(
                    "encode_image: this model has no calibrated deflation; run `python -m training.deflate "
                    "--checkpoint DIR ...` (it stores deflation.safetensors with the checkpoint)"
                )
            if mode == "auto" and not self.__dict__.get("_warned_naive", False):
                self.__dict__["_warned_naive"] = True
                warnings.warn(
                    "MMV.encode_image: no calibrated deflation for this model; using naive deflation (the video "
                    "network's BatchNorm gamma/beta). Run `python -m training.deflate --checkpoint DIR ...` to "
                    "recalibrate them and store the result with the checkpoint.",
                    stacklevel=3,
                )
            tower = self.__dict__.get("_naive_image")
            if tower is None:
                tower = self.__dict__["_naive_image"] = deflate(self.video, own_bn=False)
            return tower
        reference = next(self.video.parameters())
        param = next(tower.parameters(), None)
        if param is not None and (param.device != reference.device or param.dtype != reference.dtype):
            tower.to(device=reference.device, dtype=reference.dtype)
        return tower

    def set_calibrated_deflation(self, tower: Backbone | None, info: dict[str, Any] | None = None) -> None:
        """Attaches (or, with ``None``, removes) a recalibrated deflated tower for :meth:`encode_image`.

        Args:
            tower: from :func:`mmv.deflation.deflate` on ``self.video`` with learnt BN gamma/beta
                (:func:`mmv.deflation.recalibrate` calls this). Kept outside the module tree on purpose:
                saved by :func:`mmv.checkpoint.save_checkpoint` as ``deflation.safetensors``, never in
                ``model.safetensors``.
            info: how it was learnt (steps, data, cosines, the video weights' fingerprint), stored with it.
        """
        if tower is not None and getattr(tower, "video", None) is not self.video:
            raise ValueError("set_calibrated_deflation: the tower was not deflated from this model's video tower")
        self.__dict__["_calibrated_image"] = tower
        self.__dict__["_deflation_info"] = dict(info or {}) if tower is not None else {}

    @property
    def calibrated_deflation(self) -> Backbone | None:
        """The attached recalibrated image tower, or ``None`` (then :meth:`encode_image` deflates naively)."""
        return self.__dict__.get("_calibrated_image")

    @property
    def deflation_info(self) -> dict[str, Any]:
        """What :meth:`set_calibrated_deflation` was given with the tower (``{}`` when none is attached)."""
        return self.__dict__.get("_deflation_info", {})

    def encode_audio(self, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        """Waveform ``[B, S]`` -> ``{'repr': [B, d_a], 'logmel': [B, F, M], 'va': [B, d_va], 'vat' | 'at': ...}``.

        With FAC, audio reaches S_vat through the *video's* va->vat head, and only in eval mode unless
        ``use_audio_text``: in training the losses never pair audio with text, and running audio through
        that head would mix audio features into its BatchNorm statistics (the original does the same).
        """
        self._need("audio")
        logmel = self.audio_frontend(audio)
        out = {"repr": self.audio(logmel), "logmel": logmel}
        if self.graph == "shared":
            out["va"] = out["vat"] = self.heads["audio_va"](out["repr"])
        elif "audio_va" in self.heads:
            out["va"] = self.heads["audio_va"](out["repr"])
            if self.graph == "disjoint":
                if "audio_text" in self.heads:
                    out["at"] = self.heads["audio_text"](out["repr"])
            elif "va_vat" in self.heads and (not self.training or self.config.use_audio_text):
                out["vat"] = self.heads["va_vat"](self.fac_activation(out["va"]))
        return out

    def encode_text(self, text: torch.Tensor) -> dict[str, torch.Tensor]:
        """Token ids ``[B, L]`` or ``[B, K, L]`` -> ``{'repr': [B(, K), d_t], 'vat': [B(, K), d_vat]}``."""
        self._need("text")
        out = {"repr": self.text(text)}
        if self.graph == "shared":
            out["va"] = out["vat"] = self.heads["text_vat"](out["repr"])
        elif "text_vat" in self.heads:
            out["vat"] = self.heads["text_vat"](out["repr"])
        if "text_audio" in self.heads:
            out["at"] = self.heads["text_audio"](out["repr"])
        return out

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Embeds a training batch into the inputs :class:`mmv.losses.MMVLoss` takes.

        Args:
            batch: any of ``video`` ``[B, T, H, W, 3]``, ``audio`` ``[B, S]``, ``text`` ``[B, K, L]`` with
                ``text_mask`` ``[B, K]`` and ``has_text`` ``[B]`` (missing masks mean "all valid").

        Returns:
            ``video_va``, ``audio_va`` (the video-audio space), ``video_vat``, ``text_vat`` ``[B, K, D]``
            (the video-text space), ``audio_vat`` when audio reaches the text space in this mode (FAC in eval
            or with use_audio_text; shared), ``audio_at``/``text_at`` (disjoint with use_audio_text),
            ``text_mask``, ``has_text``, and the ``*_repr`` representations.
        """
        out: dict[str, torch.Tensor] = {}
        if "video" in batch and "video" in self.config.modalities:
            v = self.encode_video(batch["video"])
            out |= {f"video_{k}": t for k, t in v.items()}
        if "audio" in batch and "audio" in self.config.modalities:
            a = self.encode_audio(batch["audio"])
            out |= {f"audio_{k}": t for k, t in a.items() if k != "logmel"}
        if "text" in batch and "text" in self.config.modalities:
            text = batch["text"]
            if text.dim() == 2:
                text = text[:, None]  # one candidate narration per clip
            t = self.encode_text(text)
            out |= {f"text_{k}": x for k, x in t.items()}
            b, k = text.shape[:2]
            mask = batch.get("text_mask")
            mask = torch.ones(b, k, dtype=torch.bool, device=text.device) if mask is None else mask.bool()
            has_text = batch.get("has_text")
            out["text_mask"] = mask if has_text is None else mask & has_text.bool()[:, None]
            out["has_text"] = out["text_mask"].any(dim=1)
        return out

    def tokenize(self, texts: list[str] | list[list[str]]) -> torch.Tensor:
        """Encodes captions with the model's vocabulary: ``[B, L]`` (or ``[B, K, L]`` for lists of lists)."""
        if self.vocab is None:
            raise ValueError("this model has no vocabulary: load word vectors or a checkpoint that has one")
        return self.vocab.encode_batch(
            texts, self.config.text.max_words, remove_stop_words=self.config.text.remove_stop_words
        )
