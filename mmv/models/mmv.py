"""The MMV model: one tower per modality, built from an :class:`~mmv.config.MMVConfig`.

This module owns the towers (video backbone, log-mel front end + audio ResNet, text tower) and their
encoders, which return dicts of named tensors so heads and graphs can add entries (``'va'``, ``'vat'``)
without changing callers. A model may hold only some modalities (``modalities=['video', 'audio']`` for
AudioSet-only training).

Inputs at the boundary (see ``shared/ARCHITECTURE.md``):
    video ``[B, T, H, W, 3]`` float in [0, 1]; audio waveform ``[B, S]`` in [-1, 1] at
    ``audio.sample_rate``; text ids ``[B, L]`` or ``[B, K, L]`` (0 = padding).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from mmv.audio import LogMelSpectrogram
from mmv.config import MMVConfig
from mmv.models.audio_resnet import AudioResNet
from mmv.models.base import Backbone
from mmv.models.s3d import S3DG
from mmv.models.text import TextTower
from mmv.models.tsm_resnet import TSMResNet
from mmv.text import Vocabulary
from mmv.word_vectors import load_word_vectors as read_word_vectors


def build_video_backbone(cfg: MMVConfig) -> Backbone:
    """The video tower named by ``cfg.video.backbone``."""
    builders = {"s3d": S3DG, "tsm_resnet": TSMResNet}
    return builders[cfg.video.backbone](cfg.video, cfg.norm)


class MMV(nn.Module):
    """Towers for the configured modalities; ``encode_*`` return ``{'repr': [B, d_m]}`` (text: ``[B(, K), d_t]``).

    Attributes:
        config: the validated config the model was built from (``text.vocab_size`` follows the
            loaded word vectors).
        vocab: the text vocabulary when one is known (loaded vectors or a checkpoint), else ``None``.
    """

    def __init__(self, config: MMVConfig, load_word_vectors: bool = True, vocab: Vocabulary | None = None) -> None:
        super().__init__()
        config.validate()
        self.vocab = vocab
        if "video" in config.modalities:
            self.video = build_video_backbone(config)
        if "audio" in config.modalities:
            self.audio_frontend = LogMelSpectrogram(config.audio)
            self.audio = AudioResNet(config.audio, config.norm)
        if "text" in config.modalities:
            vectors = None
            if config.text.word_vectors and load_word_vectors:
                self.vocab, vectors = read_word_vectors(config.text.word_vectors)
                config = dataclasses.replace(config, text=dataclasses.replace(config.text, vocab_size=len(self.vocab)))
            self.text = TextTower(config.text, vectors)
        self.config = config

    @property
    def modalities(self) -> list[str]:
        return list(self.config.modalities)

    def _need(self, modality: str) -> None:
        if modality not in self.config.modalities:
            raise ValueError(f"this model has no {modality} tower (modalities={self.config.modalities})")

    def encode_video(self, video: torch.Tensor) -> dict[str, torch.Tensor]:
        """``[B, T, H, W, 3]`` in [0, 1] -> ``{'repr': [B, d_v]}``."""
        self._need("video")
        return {"repr": self.video(video)}

    def encode_audio(self, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        """Waveform ``[B, S]`` -> ``{'repr': [B, d_a], 'logmel': [B, F, M]}``."""
        self._need("audio")
        logmel = self.audio_frontend(audio)
        return {"repr": self.audio(logmel), "logmel": logmel}

    def encode_text(self, text: torch.Tensor) -> dict[str, torch.Tensor]:
        """Token ids ``[B, L]`` or ``[B, K, L]`` -> ``{'repr': [B, d_t]}`` or ``[B, K, d_t]``."""
        self._need("text")
        return {"repr": self.text(text)}

    def tokenize(self, texts: list[str] | list[list[str]]) -> torch.Tensor:
        """Encodes captions with the model's vocabulary: ``[B, L]`` (or ``[B, K, L]`` for lists of lists)."""
        if self.vocab is None:
            raise ValueError("this model has no vocabulary: load word vectors or a checkpoint that has one")
        return self.vocab.encode_batch(
            texts, self.config.text.max_words, remove_stop_words=self.config.text.remove_stop_words
        )
