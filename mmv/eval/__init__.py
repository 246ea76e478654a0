"""Evaluation: zero-shot retrieval metrics and multi-window embeddings (``shared/mmv_spec.md`` section 7.3)."""

from mmv.eval.retrieval import embed_manifest, retrieval_metrics

__all__ = ["embed_manifest", "retrieval_metrics"]
