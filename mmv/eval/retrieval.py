"""The former home of zero-shot retrieval, kept as an import path only while code elsewhere still uses it.

Everything moved (issue 17, "one way to embed, one way to evaluate"):

- :mod:`mmv.embed`: ``embed_manifest``, ``eval_clips``, ``encode_images``, ``EMBEDDING_KEYS``, ``NARRATION_CAPTIONS``;
- :mod:`mmv.eval.ranking`: ``retrieval_metrics``, ``retrieval_ranks``, ``ground_truth_mask``, ``RECALL_AT``;
- :mod:`mmv.eval.zero_shot`: ``DIRECTIONS``, ``media_groups``, ``zero_shot_retrieval``, ``evaluate_zero_shot``,
  ``ranks_table``, ``format_results``, ``IMAGE_OPTIONS``.

Import from those; this module goes once ``app/metrics.py`` and ``mmv/deflation/`` do.
"""

from mmv.embed import EMBEDDING_KEYS, NARRATION_CAPTIONS, embed_manifest, encode_images, eval_clips
from mmv.eval.ranking import RECALL_AT, ground_truth_mask, retrieval_metrics, retrieval_ranks
from mmv.eval.zero_shot import (
    DIRECTIONS,
    IMAGE_OPTIONS,
    evaluate_zero_shot,
    format_results,
    media_groups,
    ranks_table,
    zero_shot_retrieval,
)

__all__ = [
    "DIRECTIONS",
    "EMBEDDING_KEYS",
    "IMAGE_OPTIONS",
    "NARRATION_CAPTIONS",
    "RECALL_AT",
    "embed_manifest",
    "encode_images",
    "eval_clips",
    "evaluate_zero_shot",
    "format_results",
    "ground_truth_mask",
    "media_groups",
    "ranks_table",
    "retrieval_metrics",
    "retrieval_ranks",
    "zero_shot_retrieval",
]
