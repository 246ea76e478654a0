"""Rank helpers and a differentiable all-gather that work with or without a process group.

The library never starts a process group (``training/`` does, from torchrun's environment); every function
here answers for a single process when none exists: :func:`rank` is 0, :func:`world_size` is 1 and the
gathers return their input unchanged.

How gradients flow through :func:`all_gather_with_grad`
------------------------------------------------------
Let W ranks each hold ``b`` rows ``x_r = f_θ(input_r)`` of a global batch ``X = [x_0; ...; x_{W-1}]``
(``N = W b`` rows), and let ``L(X)`` be the loss a single process would compute on the whole of ``X``. The
single-process parameter gradient is a *sum* of per-slice contributions::

    dL/dθ = Σ_r (∂L/∂x_r) · (∂x_r/∂θ)

Forward: every rank receives the same ``X`` (slices concatenated in rank order) and computes the same
``L(X)``. Backward: rank r's graph yields ``G_r = ∂L/∂X`` (the same on every rank, ``[N, ...]``). The
gather's backward sums these over ranks (an all-reduce) and keeps rank r's rows::

    grad(x_r) on rank r = Σ_r' G_r'[rows of r] = W · ∂L/∂x_r

Rank r then back-propagates into θ and holds ``W · (∂L/∂x_r)(∂x_r/∂θ)``. DDP *averages* parameter gradients
over ranks, and the ``1/W`` of that average cancels the factor ``W``::

    (1/W) Σ_r W · (∂L/∂x_r)(∂x_r/∂θ) = dL/dθ

so **no extra factor is needed anywhere**: parameter gradients equal the single-process ones on the
concatenated batch. The factor W is visible only on tensors DDP does not average, i.e. the gradient that
reaches a rank's local activations or inputs is ``W`` times the matching slice of the single-process input
gradient (divide by :func:`world_size` to compare; ``tests/test_distributed.py`` checks both).

The convention the loss must follow: **every rank computes the loss of the full gathered batch**, the value
a single process would compute on ``X`` (mean over the global batch, not over the local slice). The losses in
:mod:`mmv.losses` do this when called with ``gather=True``, so their value is the same on every rank and the
same as without DDP. The other common convention gives the same gradients: rank r computes only its share
``ℓ_r`` (its own rows against all gathered columns) with ``L = (1/W) Σ_r ℓ_r``; then ``Σ_r' ∂ℓ_r'/∂X =
W · ∂L/∂X`` and everything above holds unchanged (this is why the backward sums rather than using its own
``G_r`` only). Normalising by the *local* batch size, or summing instead of averaging over the global batch,
scales every gradient accordingly.

Because the backward is a collective, every rank must call the gather the same number of times, in the same
order, with the same trailing shape, and must run backward through it (the usual DDP lock-step).
"""

from __future__ import annotations

import torch
import torch.distributed as dist

# Shape check: [ndim, size_0, ..., size_6] padded with -1, gathered before the data (one small collective).
_SHAPE_SLOTS = 8


def is_distributed() -> bool:
    """Whether a default process group exists (``False`` in a plain single process)."""
    return dist.is_available() and dist.is_initialized()


def rank(group: dist.ProcessGroup | None = None) -> int:
    """This process's rank in ``group`` (the default group when ``None``); 0 without a process group."""
    return dist.get_rank(group) if is_distributed() else 0


def world_size(group: dist.ProcessGroup | None = None) -> int:
    """The number of ranks in ``group`` (the default group when ``None``); 1 without a process group."""
    return dist.get_world_size(group) if is_distributed() else 1


def _check_same_shape(x: torch.Tensor, group: dist.ProcessGroup | None) -> None:
    """Raises ``ValueError`` on every rank unless all ranks hold tensors of the same shape."""
    if x.dim() >= _SHAPE_SLOTS:
        raise ValueError(f"all_gather: tensors of at most {_SHAPE_SLOTS - 1} dims supported, got {x.dim()}")
    code = [x.dim(), *x.shape] + [-1] * (_SHAPE_SLOTS - 1 - x.dim())
    mine = torch.tensor(code, dtype=torch.int64, device=x.device)
    shapes = [torch.empty_like(mine) for _ in range(world_size(group))]
    dist.all_gather(shapes, mine, group=group)
    if any(not torch.equal(s, mine) for s in shapes):
        found = [tuple(s[1 : 1 + int(s[0])].tolist()) for s in shapes]
        raise ValueError(
            f"all_gather: every rank must hold the same shape [b, ...] (same local batch size b); "
            f"shapes by rank: {found}"
        )


def _gather_raw(x: torch.Tensor, group: dist.ProcessGroup | None) -> torch.Tensor:
    """Plain all-gather along dim 0 in rank order (bool tensors travel as uint8; gloo has no bool)."""
    send = x.contiguous()
    if send.dtype == torch.bool:
        send = send.to(torch.uint8)
    parts = [torch.empty_like(send) for _ in range(world_size(group))]
    dist.all_gather(parts, send, group=group)
    return torch.cat(parts, dim=0).to(x.dtype)


class _AllGatherWithGrad(torch.autograd.Function):
    """Forward: concatenate all ranks' ``x``. Backward: sum the gradient over ranks, return our rows."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, group: dist.ProcessGroup | None) -> torch.Tensor:  # type: ignore[override]
        ctx.group = group
        ctx.rows = x.shape[0]
        ctx.rank = rank(group)
        return _gather_raw(x, group)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        # Sum, not mean: see the module docstring (DDP's average over ranks supplies the 1/W).
        grad = grad.contiguous().clone()  # all_reduce works in place; never write into autograd's buffer
        dist.all_reduce(grad, op=dist.ReduceOp.SUM, group=ctx.group)
        start = ctx.rank * ctx.rows
        return grad[start : start + ctx.rows], None


def all_gather_no_grad(
    x: torch.Tensor, group: dist.ProcessGroup | None = None, check_shape: bool = True
) -> torch.Tensor:
    """Concatenates ``x`` from all ranks along dim 0 in rank order, without a gradient (masks, labels).

    Args:
        x: this rank's tensor; any dtype, bool included.
        group: the process group (default group when ``None``).
        check_shape: gather the shapes first and raise a ``ValueError`` on every rank if they differ.

    Returns:
        ``x`` itself at world size 1, else a new tensor on ``x``'s device with ``x``'s dtype.

    Shape:
        - x: ``[b, ...]``, the same on every rank.
        - output: ``[world_size * b, ...]``.
    """
    if world_size(group) == 1:
        return x
    if check_shape:
        _check_same_shape(x, group)
    with torch.no_grad():
        return _gather_raw(x, group)


def all_gather_with_grad(
    x: torch.Tensor, group: dist.ProcessGroup | None = None, check_shape: bool = True
) -> torch.Tensor:
    """Concatenates ``x`` from all ranks along dim 0 in rank order, differentiably.

    The backward all-reduces (sums) the incoming gradient over ranks and returns this rank's rows; with every
    rank computing the full-batch loss and DDP averaging parameter gradients, the parameter gradients equal
    the single-process ones (derivation in the module docstring). A tensor that does not require a gradient
    (or a call under ``torch.no_grad``) takes the plain gather.

    Args:
        x: this rank's tensor (e.g. embeddings).
        group: the process group (default group when ``None``).
        check_shape: gather the shapes first and raise a ``ValueError`` on every rank if they differ (one
            small extra collective; leave it on unless the shapes are known to agree).

    Returns:
        ``x`` itself at world size 1, else the gathered tensor on ``x``'s device with ``x``'s dtype.

    Shape:
        - x: ``[b, ...]``, the same on every rank.
        - output: ``[world_size * b, ...]``; rows ``rank * b`` to ``(rank + 1) * b`` are ``x``.
    """
    if world_size(group) == 1:
        return x
    if check_shape:
        _check_same_shape(x, group)
    if not (torch.is_grad_enabled() and x.requires_grad):
        with torch.no_grad():
            return _gather_raw(x, group)
    return _AllGatherWithGrad.apply(x, group)


def gather_features(
    *tensors: torch.Tensor | None, group: dist.ProcessGroup | None = None
) -> tuple[torch.Tensor | None, ...]:
    """:func:`all_gather_with_grad` applied to each tensor in turn (``None`` passes through).

    Every rank must pass the same pattern of tensors and ``None``\\ s, since each gather is a collective.

    Shape:
        - each tensor: ``[b, ...]`` -> ``[world_size * b, ...]``.
    """
    return tuple(None if t is None else all_gather_with_grad(t, group=group) for t in tensors)
