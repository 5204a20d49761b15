"""Stop at the first NaN or infinite number: a diverged training run must fail its stage, not publish `nan` scores.

A training stage whose weights turned NaN (too high a learning rate, say) still trains to the end, saves,
and every later stage computes on: embeddings and reranker scores are NaN, run files hold `nan`, and the
metrics look like real (poor) numbers. These checks turn that into one error that names what is broken
(the stage, the model, the step) and the parameter most likely to blame.
"""

from __future__ import annotations

import math

import numpy as np


class NotFiniteError(FloatingPointError, ValueError):
    """Numbers that must be finite are NaN or infinite; the message names them and what to change."""


def count_not_finite(values) -> tuple[int, int]:
    """(how many of `values` are NaN or infinite, how many there are); a numpy array, a torch tensor or a list."""
    if hasattr(values, "detach"):  # a torch tensor, on any device and in any dtype
        import torch

        values = values.detach()
        return int((~torch.isfinite(values)).sum().item()), values.numel()
    array = np.asarray(values)
    if not np.issubdtype(array.dtype, np.number):
        array = array.astype(np.float64)
    return int((~np.isfinite(array)).sum()), array.size


def require_finite(values, what: str, hint: str):
    """`values` unchanged when every one is finite; otherwise NotFiniteError naming `what`, ending with `hint`."""
    bad, total = count_not_finite(values)
    if bad:
        raise NotFiniteError(f"{what}: {bad} of {total} values are NaN or infinite; {hint}")
    return values


def not_finite_logs(logs: dict, keys: tuple[str, ...]) -> dict[str, float]:
    """The entries of a Trainer's `logs` among `keys` that are NaN or infinite numbers."""
    return {key: logs[key] for key in keys if isinstance(logs.get(key), (int, float)) and not math.isfinite(logs[key])}


def not_finite_weights(model, whose: str) -> str | None:
    """None when every trainable weight of a torch module is finite; otherwise which tensors of `whose` are not."""
    import torch

    trainable = [(name, weight) for name, weight in model.named_parameters() if weight.requires_grad]
    with torch.no_grad():
        bad = [name for name, weight in trainable if not bool(torch.isfinite(weight).all())]
    if not bad:
        return None
    return (
        f"{len(bad)} of {len(trainable)} trainable weight tensors of {whose} hold NaN or infinite values "
        f"(the first: {bad[0]})"
    )


def model_name(model) -> str:
    """What a loaded sentence-transformers model was loaded from (its folder or Hub id), else its class name."""
    config = getattr(getattr(model, "transformers_model", None), "config", None)
    return getattr(config, "name_or_path", None) or type(model).__name__
