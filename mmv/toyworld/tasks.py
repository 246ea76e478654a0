"""What evaluation asks of a toy world: the clean description of an attribute combination, and what builds on it.

General code never imports :mod:`mmv.toyworld`; the jobs that know they run on a toy world (the toy-world bank,
its attribute-level retrieval, the deflation report) take these from here and hand them in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mmv.embed import embed_sentences
from mmv.eval.ranking import rank_candidates
from mmv.eval.zero_shot import DIRECTIONS, direction_space, has_modality
from mmv.toyworld.narration import clean_description

if TYPE_CHECKING:
    from mmv.models.mmv import MMV
    from mmv.tokenizer import Vocabulary

__all__ = ["ATTRIBUTES", "AttributeRetrieval", "clean_description"]

# ---------------------------------------------------------------------------------------------------
# Attribute-level retrieval: "a text query of attributes retrieves clips with those attributes"
# ---------------------------------------------------------------------------------------------------

#: The labels that define an attribute-level match (and a clip's clean description).
ATTRIBUTES = ("shape", "colour", "motion")


@dataclass(frozen=True)
class AttributeRetrieval:
    """Attribute-level zero-shot retrieval, a :class:`mmv.eval.zero_shot.RetrievalTask` for toy-world manifests.

    Toy-world narration is noisy on purpose (off-topic and wrong captions, fillers, 20 % of clips without any),
    so this task asks whether a model knows *what* is in a clip. Each clip's **description** is the clean
    sentence :func:`clean_description` builds from its primary object's ``(shape, colour, motion)`` labels
    (``"a red circle moves to the right"``; size is not part of it). A retrieved item is correct when it has the
    **same (shape, colour, motion)** as the query's clip, so a query usually has one or two correct items.

    Each direction of :data:`~mmv.eval.zero_shot.DIRECTIONS` in ``directions`` is reported as
    ``<direction>_attr``, in the table's space, over the clips that have every non-text modality of the
    direction (audio directions: the clips with sound). Text is the descriptions: a text *query* is each such
    clip's own description, the text *candidates* are the split's **distinct** descriptions (identical
    sentences would only take several places in the ranking), so ``v2t_attr`` / ``a2t_attr`` R@1 is the accuracy
    of a zero-shot classification into the triples present in the split (about 120 for the 200 test clips).

    Directions in ``top1_directions`` also get ``top1_<attribute>``: how often the top-ranked candidate (ties
    pessimistic, :func:`mmv.eval.ranking.top1`) has the query's shape, colour or motion, showing which attribute
    a model has learnt. Adds ``num_descriptions`` to ``emb["counts"]``. Nothing is reported when the manifest
    lacks one of the labels or text is not read (no vocabulary).
    """

    directions: tuple[str, ...] = ("t2v", "v2t", "a2t", "t2a", "v2a", "a2v")
    top1_directions: tuple[str, ...] = ("t2v", "v2t", "a2t")

    def __call__(self, model: MMV, emb: dict[str, Any], vocab: Vocabulary | None) -> dict[str, dict[str, Any]]:
        """``<direction>_attr -> metrics`` (keys as :func:`mmv.eval.zero_shot.zero_shot_retrieval`'s, with
        ``candidate_names``, the sentences, where the candidates are descriptions)."""
        labels = emb["labels"]
        if vocab is None or not all(a in labels and all(v is not None for v in labels[a]) for a in ATTRIBUTES):
            return {}
        triples = list(zip(*(labels[a] for a in ATTRIBUTES)))
        distinct = list(dict.fromkeys(triples))
        ids = {t: i for i, t in enumerate(distinct)}
        sentences = [clean_description(shape=s, colour=c, motion=m) for s, c, m in distinct]
        spaces = [s for s in ("vat", "at") if f"text_{s}" in emb] or ["vat"]
        described = _Described(
            text={s: embed_sentences(model, sentences, vocab, s) for s in spaces},  # [U, D] each
            sentences=sentences,
            cls=np.array([ids[t] for t in triples]),
            values=np.array(distinct, dtype=object),
        )
        emb.setdefault("counts", {})["num_descriptions"] = len(distinct)
        out: dict[str, dict[str, Any]] = {}
        for name in self.directions:
            metrics = _direction(name, emb, described, top1_attributes=name in self.top1_directions)
            if metrics is not None:
                out[f"{name}_attr"] = metrics
        return out


@dataclass(frozen=True)
class _Described:
    """The split's distinct descriptions: ``text[space]`` ``[U, D]`` (unit vectors), ``sentences`` (``U``),
    ``cls`` (int ``[M]``, each embedded clip's description) and ``values`` (object ``[U, 3]``, the triples)."""

    text: dict[str, torch.Tensor]
    sentences: list[str]
    cls: np.ndarray
    values: np.ndarray


def _side(
    modality: str, space: str, clips: np.ndarray, emb: dict[str, Any], d: _Described, query: bool
) -> tuple[torch.Tensor, np.ndarray]:
    """``(vectors [n, D], description id of each [n])`` of one side of a direction: the clips' own vectors, or
    for text the clips' descriptions (queries) or every distinct description (candidates)."""
    if modality != "text":
        return torch.as_tensor(emb[f"{modality}_{space}"])[clips], d.cls[clips]
    if query:
        return d.text[space][d.cls[clips]], d.cls[clips]
    return d.text[space], np.arange(len(d.sentences))


def _direction(name: str, emb: dict[str, Any], d: _Described, top1_attributes: bool) -> dict[str, Any] | None:
    """One attribute-level direction (:class:`AttributeRetrieval`), or None when the embeddings lack a side."""
    q_mod, c_mod, _ = DIRECTIONS[name]
    space = direction_space(name, {*emb, *(f"text_{s}" for s in d.text)})
    if space is None:
        return None
    clips = np.arange(len(d.cls))
    for mod in {q_mod, c_mod} - {"text"}:
        clips = clips[has_modality(emb, mod)[clips]]
    if len(clips) == 0:
        return None
    queries, q_cls = _side(q_mod, space, clips, emb, d, query=True)
    candidates, c_cls = _side(c_mod, space, clips, emb, d, query=False)
    metrics = rank_candidates(queries, candidates, q_cls[:, None] == c_cls[None, :])
    top = metrics["top1"]
    if top1_attributes:
        for i, attribute in enumerate(ATTRIBUTES):
            metrics[f"top1_{attribute}"] = float(np.mean(d.values[q_cls, i] == d.values[c_cls[top], i]))
    text_candidates = c_mod == "text"
    metrics.update(space=space, query_rows=clips, candidate_rows=np.arange(len(c_cls)) if text_candidates else clips)
    metrics["top1"] = top if text_candidates else clips[top]
    if text_candidates:
        metrics["candidate_names"] = d.sentences
    return metrics
