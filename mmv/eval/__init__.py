"""Evaluation: zero-shot retrieval (:mod:`~mmv.eval.zero_shot`, the rank arithmetic in :mod:`~mmv.eval.ranking`) and
linear probes on frozen features (:mod:`~mmv.eval.linear_probe`, :mod:`~mmv.eval.features`); image datasets for them
(:mod:`~mmv.eval.datasets`). Protocols: ``shared/mmv_spec.md`` section 7 and ``docs/evaluation.md``. Embedding clips
is :mod:`mmv.embed`'s; reading dataset layouts is :mod:`mmv.data.readers`'s."""

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
