"""NCE, MIL-NCE and the weighted MMV objective (``shared/mmv_spec.md`` section 4).

The per-sample objective of MMV is ``λ_va · NCE(v, a) + λ_vt · MIL-NCE(v, t)``: the video-audio pair lives in
the fine space S_va, the video and its bag of K candidate narrations in the coarse space S_vat.

Formulation. MMV's exact variant is not published, so we follow the spec: the MIL-NCE PyTorch reference
(Miech et al. 2020, ``loss.py``) with the L2 normalisation and temperature that MMV and VATT describe. With
``z`` the L2-normalised embeddings and ``S[i, j, k] = z_v[i] · z_t[j, k] / τ``, the loss of clip ``i`` is::

    loss_i = logsumexp(den_i) − logsumexp_k S[i, i, k]
    den_i  = {S[i, j, k] : all j, k}  ∪  {S[j, i, k] : all j, k}

i.e. the denominator holds every pair in clip i's row (its video against every bag of narrations) and in
its column (every video against its own bag). By default each pair counts once, so the positives
``S[i, i, :]``, which lie in both, appear once. The reference code instead concatenates row and column
(``cat((x, x.permute(1, 0, 2)), dim=1)``), counting the positives twice; ``duplicate_positives=True``
reproduces that exactly. The batch loss is the mean of ``loss_i`` over clips that have at least one valid
narration. NCE is the case K = 1, and since swapping the two modalities swaps rows with columns,
``NCE(a, b) == NCE(b, a)`` either way.

The analytic limit. For perfectly aligned, orthogonal unit embeddings (``S[i, i, :] = 1/τ``, everything
else 0) with ``K_j`` valid candidates in bag ``j``, the row holds ``K_i`` positives and ``Σ_{j≠i} K_j``
zeros, the column ``(B − 1) K_i`` more zeros (plus, with duplicated positives, ``K_i`` positives again)::

    loss_i = log(1 + e^{−1/τ} (Σ_{j≠i} K_j / K_i + B − 1))   ->  0       as τ -> 0   (default)
    loss_i = log(2 + e^{−1/τ} (Σ_{j≠i} K_j / K_i + B − 1))   ->  log 2   (duplicate_positives)

(``log(1 + 2 (B − 1) e^{−1/τ})`` for NCE). The two variants differ by how much weight the positives get
in the denominator; the gradients of the negatives have the same form.

Temperature. τ = 0.07 is the spec's value (MMV, and VATT "following MMV"); with unit vectors the logits lie
in ``[−1/τ, 1/τ] ≈ [−14.3, 14.3]``.

Masks. A masked narration (``text_mask`` False) is dropped everywhere: its scores are −inf, so it is neither
a positive nor a negative. A clip with no valid narration (an AudioSet clip, ``has_text`` False) contributes
no loss term and is dropped from every other clip's denominator, as if it were not in the batch; its
embeddings receive exactly zero gradient. (VATT pushes masked entries out with −1e9 and rescales; −inf plus
an explicit guard for empty rows gives the same values without the approximation.)

Across ranks: with ``gather=True`` the embeddings (and masks) of every rank are gathered with
:func:`mmv.distributed.all_gather_with_grad` before the loss, so negatives come from the global batch and
each rank computes the loss of the whole gathered batch. The value then equals the single-process loss on the
concatenated batch; the module docstring of :mod:`mmv.distributed` derives why the parameter gradients under
DDP equal the single-process ones.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmv.distributed import all_gather_no_grad, all_gather_with_grad

DEFAULT_TEMPERATURE = 0.07  # spec section 4 ([rev]; VATT A.2.3 "following MMV")


def _compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """The inputs' promoted float dtype, at least float32 (the softmax over B²K terms is too coarse in 16 bits)."""
    dtype = torch.float32
    for t in tensors:
        dtype = torch.promote_types(dtype, t.dtype)
    return dtype


def _mil_nce_core(
    video: torch.Tensor,
    text: torch.Tensor,
    valid: torch.Tensor,
    temperature: float,
    normalize: bool,
    duplicate_positives: bool = False,
) -> torch.Tensor:
    """The masked MIL-NCE on one (already gathered) batch; see the module docstring.

    Shape:
        - video: ``[B, D]``; text: ``[B, K, D]``; valid: ``[B, K]`` bool.
        - output: scalar.
    """
    has_text = valid.any(dim=1)  # [B]
    dtype = _compute_dtype(video, text)
    video, text = video.to(dtype), text.to(dtype)
    # Zero what is masked *before* anything else: the masked_fill backward then gives those inputs an exact
    # zero gradient whatever happens downstream (and garbage or NaN in padded narrations cannot leak in).
    video = video.masked_fill(~has_text[:, None], 0)
    text = text.masked_fill(~valid[..., None], 0)
    if normalize:
        video = F.normalize(video, dim=-1)  # a zero row stays zero (the norm is clamped)
        text = F.normalize(text, dim=-1)
    b, k = valid.shape
    # .to(dtype) again: under autocast the einsum itself may run in 16 bits.
    scores = torch.einsum("id,jkd->ijk", video, text).to(dtype) / temperature  # [B, B, K]
    # S[i, j, k] takes part only if narration (j, k) is valid and video i belongs to a clip with text.
    pair_valid = has_text[:, None, None] & valid[None, :, :]  # [B, B, K]
    scores = scores.masked_fill(~pair_valid, float("-inf"))
    # Rows of clips without text are all −inf: logsumexp would give −inf and a NaN gradient, so those rows
    # are swapped for zeros (finite, and cut from the graph by the where below).
    keep = has_text[:, None]
    row = torch.where(keep, scores.reshape(b, b * k), 0.0)  # [B, B*K]  S[i, :, :]
    col = scores.transpose(0, 1)  # [B, B, K]  col[i, j, k] = S[j, i, k]
    if not duplicate_positives:  # the positives S[i, i, :] are already in the row
        eye = torch.eye(b, dtype=torch.bool, device=scores.device)[:, :, None]
        col = col.masked_fill(eye, float("-inf"))
    col = torch.where(keep, col.reshape(b, b * k), 0.0)  # [B, B*K]
    pos = torch.where(keep, torch.diagonal(scores, dim1=0, dim2=1).T, 0.0)  # [B, K]  S[i, i, :]
    # One logsumexp over [row, col]: the row always holds the clip's positives, so no term is all −inf.
    den = torch.logsumexp(torch.cat([row, col], dim=1), dim=1)  # [B]
    per_clip = torch.where(has_text, den - torch.logsumexp(pos, dim=1), 0.0)  # [B]
    # With no valid clip at all this is 0 / 1: a zero still connected to the inputs, with zero gradient.
    return per_clip.sum() / has_text.sum().clamp_min(1)


def mil_nce_loss(
    video: torch.Tensor,
    text: torch.Tensor,
    text_mask: torch.Tensor | None = None,
    temperature: float = DEFAULT_TEMPERATURE,
    normalize: bool = True,
    gather: bool = False,
    duplicate_positives: bool = False,
) -> torch.Tensor:
    """MIL-NCE between each clip and its bag of K candidate narrations.

    Clip i's positives are its own valid narrations ``S[i, i, :]``; its denominator is every pair in its row
    ``S[i, :, :]`` and its column ``S[:, i, :]``; the loss is the mean over clips with ≥ 1 valid narration of
    ``logsumexp(denominator) − logsumexp(positives)``. Perfectly aligned embeddings give a loss that falls to
    0 as τ -> 0 (module docstring).

    Args:
        video: clip embeddings.
        text: K candidate narration embeddings per clip.
        text_mask: which narrations are real (``None``: all). A clip whose row is all False (no text) adds no
            loss term, takes no part in any other clip's denominator and gets exactly zero gradient.
        temperature: τ > 0 dividing the similarities; 0.07 as in the spec.
        normalize: L2-normalise both embeddings first (MMV does); ``False`` uses raw dot products.
        gather: gather video, text and mask from all ranks first (negatives from the global batch); the
            value then equals the single-process loss on the concatenated batch.
        duplicate_positives: count the positives in both the row and the column, as the MIL-NCE reference
            code's concatenation does (its loss floor is log 2).

    Returns:
        The scalar loss, on the inputs' device, in their promoted dtype (at least float32). If no clip has
        text it is a zero connected to the inputs (so ``backward`` works and gives zero gradients).

    Shape:
        - video: ``[B, D]``
        - text: ``[B, K, D]``
        - text_mask: ``[B, K]`` (bool, or 0/1)
        - output: ``[]``
    """
    if video.dim() != 2 or text.dim() != 3:
        raise ValueError(f"mil_nce_loss: expected video [B, D] and text [B, K, D], got {video.shape}, {text.shape}")
    if text.shape[0] != video.shape[0] or text.shape[2] != video.shape[1]:
        raise ValueError(f"mil_nce_loss: video {tuple(video.shape)} and text {tuple(text.shape)} do not pair up")
    if temperature <= 0:
        raise ValueError(f"mil_nce_loss: temperature must be > 0, got {temperature}")
    if text_mask is None:
        valid = torch.ones(text.shape[:2], dtype=torch.bool, device=text.device)
    else:
        if tuple(text_mask.shape) != tuple(text.shape[:2]):
            raise ValueError(f"mil_nce_loss: text_mask {tuple(text_mask.shape)} != {tuple(text.shape[:2])}")
        valid = text_mask.to(device=text.device, dtype=torch.bool)
    if gather:
        # Always gather the (materialised) mask, so every rank runs the same collectives.
        video, text = all_gather_with_grad(video), all_gather_with_grad(text)
        valid = all_gather_no_grad(valid)
    return _mil_nce_core(video, text, valid, temperature, normalize, duplicate_positives)


def nce_loss(
    a: torch.Tensor,
    b: torch.Tensor,
    temperature: float = DEFAULT_TEMPERATURE,
    normalize: bool = True,
    mask: torch.Tensor | None = None,
    gather: bool = False,
    duplicate_positives: bool = False,
) -> torch.Tensor:
    """NCE between paired embeddings: :func:`mil_nce_loss` with one candidate (K = 1).

    Pair i's positive is ``S[i, i] = z_a[i] · z_b[i] / τ``; its denominator is row i (``a_i`` against every
    ``b_j``) and column i (every ``a_j`` against ``b_i``), the positive once. Swapping a and b swaps rows and
    columns, so the loss is symmetric. Aligned orthogonal embeddings give ``log(1 + 2 (B − 1) e^{−1/τ})``,
    which falls to 0 as τ -> 0.

    Args:
        a: first modality (e.g. video in S_va).
        b: second modality (e.g. audio in S_va).
        temperature: τ > 0; 0.07 as in the spec.
        normalize: L2-normalise both embeddings first.
        mask: which pairs take part (``None``: all); a masked pair is removed from the batch entirely.
        gather: gather a, b and mask from all ranks first.
        duplicate_positives: see :func:`mil_nce_loss`.

    Returns:
        The scalar loss (see :func:`mil_nce_loss`).

    Shape:
        - a, b: ``[B, D]``
        - mask: ``[B]``
        - output: ``[]``
    """
    if b.dim() != 2:
        raise ValueError(f"nce_loss: expected b [B, D], got {tuple(b.shape)}")
    return mil_nce_loss(
        a,
        b[:, None, :],
        None if mask is None else mask[:, None],
        temperature=temperature,
        normalize=normalize,
        gather=gather,
        duplicate_positives=duplicate_positives,
    )


class MMVLoss(nn.Module):
    """The weighted MMV objective ``λ_va · NCE(v, a) + λ_vt · MIL-NCE(v, t) [+ λ_at · MIL-NCE(a, t)]``.

    Each term is computed only when its inputs are present and its weight is non-zero, so an AudioSet-only
    batch (no text keys) yields only ``va_loss``. Within a mixed batch, clips without text take part in the
    video-audio term and drop out of the video-text one through ``has_text`` / ``text_mask``.

    With ``gather=True`` (the default; a no-op without a process group) every term gathers its inputs from all
    ranks, so each gather is a collective: all ranks must present the same keys. Give text-less clips zero
    text and ``has_text = False`` rather than dropping the text keys on some ranks only.

    Args:
        temperature: τ for every term (0.07, spec section 4).
        lambda_va: weight of the video-audio NCE in S_va.
        lambda_vt: weight of the video-text MIL-NCE in S_vat.
        lambda_at: weight of an audio-text MIL-NCE; 0 (off) as in MMV's FAC training.
        gather: take negatives from every rank (see :mod:`mmv.distributed`).
        duplicate_positives: count positives twice in the denominator, as the MIL-NCE reference code does.
    """

    def __init__(
        self,
        temperature: float = DEFAULT_TEMPERATURE,
        lambda_va: float = 1.0,
        lambda_vt: float = 1.0,
        lambda_at: float = 0.0,
        gather: bool = True,
        duplicate_positives: bool = False,
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"MMVLoss: temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.lambda_va = lambda_va
        self.lambda_vt = lambda_vt
        self.lambda_at = lambda_at
        self.gather = gather
        self.duplicate_positives = duplicate_positives

    def extra_repr(self) -> str:
        return (
            f"temperature={self.temperature}, lambda_va={self.lambda_va}, lambda_vt={self.lambda_vt}, "
            f"lambda_at={self.lambda_at}, gather={self.gather}, duplicate_positives={self.duplicate_positives}"
        )

    @staticmethod
    def _text_mask(emb: dict[str, torch.Tensor], text: torch.Tensor) -> torch.Tensor:
        """``text_mask & has_text[:, None]``, each defaulting to all-True."""
        mask = emb.get("text_mask")
        mask = torch.ones(text.shape[:2], dtype=torch.bool, device=text.device) if mask is None else mask.bool()
        has_text = emb.get("has_text")
        return mask if has_text is None else mask & has_text.bool()[:, None]

    def forward(self, emb: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Computes the available loss terms.

        Args:
            emb: any of ``video_va``, ``audio_va`` (S_va); ``video_vat``, ``text_vat`` with optional
                ``text_mask`` and ``has_text`` (S_vat); for ``lambda_at``: ``audio_at`` and ``text_at`` (the
                disjoint graph's audio-text space) or else ``audio_vat`` and ``text_vat``. Extra keys are
                ignored, so the model's output dict can be passed as is.

        Returns:
            ``va_loss``, ``vt_loss``, ``at_loss`` (each already weighted; only those computed) and ``loss``,
            their sum.

        Shape:
            - video_va, audio_va: ``[B, D]``
            - video_vat, audio_vat: ``[B, D']``; text_vat: ``[B, K, D']``
            - text_mask: ``[B, K]``; has_text: ``[B]``
            - every output: ``[]``
        """
        kw = {"temperature": self.temperature, "gather": self.gather, "duplicate_positives": self.duplicate_positives}
        out: dict[str, torch.Tensor] = {}
        if self.lambda_va != 0 and "video_va" in emb and "audio_va" in emb:
            out["va_loss"] = self.lambda_va * nce_loss(emb["video_va"], emb["audio_va"], **kw)
        if self.lambda_vt != 0 and "video_vat" in emb and "text_vat" in emb:
            text = emb["text_vat"]
            out["vt_loss"] = self.lambda_vt * mil_nce_loss(emb["video_vat"], text, self._text_mask(emb, text), **kw)
        if self.lambda_at != 0:
            pairs = (("audio_at", "text_at"), ("audio_vat", "text_vat"))
            pair = next((p for p in pairs if p[0] in emb and p[1] in emb), None)
            if pair is not None:
                text = emb[pair[1]]
                out["at_loss"] = self.lambda_at * mil_nce_loss(emb[pair[0]], text, self._text_mask(emb, text), **kw)
        if not out:
            raise ValueError(
                "MMVLoss: no loss term could be computed; expected video_va+audio_va and/or video_vat+text_vat "
                f"(with non-zero weights), got keys {sorted(emb)}"
            )
        out["loss"] = sum(out.values())  # type: ignore[assignment]
        return out
