"""Loss names the native Network understands, with the aliases users type.

- ``sparse_categorical_crossentropy``: integer labels ``(B,)`` in ``[0, n_classes)``.
- ``categorical_crossentropy``: one-hot or soft targets ``(B, n_classes)``.
- ``mse``: float targets ``(B, n_out)`` (``(B,)`` is accepted when ``n_out == 1``).

With a crossentropy loss a final ``softmax`` is fused into the loss (numerically stable log-softmax);
``predict`` then returns probabilities. Without a final softmax the outputs are taken as logits.
"""
from __future__ import annotations

SPARSE_CE = "sparse_categorical_crossentropy"
CATEGORICAL_CE = "categorical_crossentropy"
MSE = "mse"

_ALIASES = {
    SPARSE_CE: SPARSE_CE, "sparse_ce": SPARSE_CE,
    CATEGORICAL_CE: CATEGORICAL_CE, "categorical_ce": CATEGORICAL_CE, "crossentropy": CATEGORICAL_CE,
    MSE: MSE, "mean_squared_error": MSE,
}


def get(name: str) -> str:
    """The canonical loss name for ``name`` (ValueError listing the choices otherwise)."""
    if not isinstance(name, str):
        raise TypeError(f"loss: expected a str, got {type(name).__name__}")
    key = name.lower()
    if key not in _ALIASES:
        raise ValueError(f"loss: expected one of {sorted(set(_ALIASES.values()))}, got {name!r}")
    return _ALIASES[key]


def is_classification(loss: str) -> bool:
    return loss in (SPARSE_CE, CATEGORICAL_CE)
