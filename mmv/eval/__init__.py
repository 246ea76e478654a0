"""Evaluation: zero-shot retrieval, linear probes on frozen features, and the readers of evaluation datasets
(``shared/mmv_spec.md`` section 7; protocols in ``docs/evaluation.md``). Embedding clips is :mod:`mmv.embed`'s."""

from mmv.eval.features import extract_features
from mmv.eval.linear_probe import probe, probe_manifest, run_probe
from mmv.eval.ranking import retrieval_metrics
from mmv.eval.zero_shot import evaluate_zero_shot, zero_shot_retrieval

__all__ = [
    "evaluate_zero_shot",
    "extract_features",
    "probe",
    "probe_manifest",
    "retrieval_metrics",
    "run_probe",
    "zero_shot_retrieval",
]
