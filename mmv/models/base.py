"""The contract every vision/audio backbone follows: ordered endpoints and an output width.

As in the original (and timm's ``forward_features``), a backbone is a chain of named stages. A subclass
implements :meth:`Backbone.iter_endpoints`, a generator yielding ``(name, tensor)`` in order; running
to an intermediate endpoint then costs only the stages before it, and :meth:`extract_endpoints` returns
every endpoint for inspection. Endpoint tensors are channels-last (``[B, T, H, W, C]`` for video,
``[B, F, M, C]`` for audio) like the original's, so the shape tables in the tests read the same.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn


class Backbone(nn.Module):
    """Base class: ``ENDPOINTS`` (ordered names, the last one the pooled representation) + ``output_dim``."""

    ENDPOINTS: tuple[str, ...] = ()
    output_dim: int

    def iter_endpoints(self, x: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        raise NotImplementedError

    def _check_endpoint(self, final_endpoint: str | None) -> str:
        name = final_endpoint or self.ENDPOINTS[-1]
        if name not in self.ENDPOINTS:
            raise ValueError(f"final_endpoint: {name!r} is not one of {self.ENDPOINTS}")
        return name

    def forward(self, x: torch.Tensor, final_endpoint: str | None = None) -> torch.Tensor:
        """Runs up to ``final_endpoint`` (default: the pooled representation ``[B, output_dim]``)."""
        name = self._check_endpoint(final_endpoint)
        for endpoint, value in self.iter_endpoints(x):
            if endpoint == name:
                return value
        raise AssertionError(f"{type(self).__name__} never produced endpoint {name!r}")

    def extract_endpoints(self, x: torch.Tensor, final_endpoint: str | None = None) -> dict[str, torch.Tensor]:
        """Every endpoint up to and including ``final_endpoint``, in order."""
        name = self._check_endpoint(final_endpoint)
        out: dict[str, torch.Tensor] = {}
        for endpoint, value in self.iter_endpoints(x):
            out[endpoint] = value
            if endpoint == name:
                break
        return out
