"""What evaluation asks of a toy world: the clean description of an attribute combination, and what builds on it.

General code never imports :mod:`mmv.toyworld`; the jobs that know they run on a toy world (the toy-world bank,
its attribute-level retrieval, the deflation report) take these from here and hand them in.
"""

from __future__ import annotations

from mmv.toyworld.narration import clean_description

__all__ = ["clean_description"]
