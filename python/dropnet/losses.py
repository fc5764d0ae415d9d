"""Loss names the native Network understands, with the aliases users type.

- ``sparse_categorical_crossentropy``: integer labels ``(B,)`` in ``[0, n_classes)``.
- ``categorical_crossentropy``: one-hot or soft targets ``(B, n_classes)``.
- ``binary_crossentropy``: targets in [0, 1] of the output's shape (``(B,)`` accepted for one
  output); the mean over outputs of ``-t log p - (1 - t) log(1 - p)``.
- ``mse``, ``mae``, ``huber`` (delta 1): float targets of the output's shape, the mean over
  outputs of ``d**2``, ``|d|``, and ``d**2 / 2`` for ``|d| <= 1`` else ``|d| - 1/2`` (d = output
  - target): ``torch.nn.functional``'s mse_loss / l1_loss / huber_loss per sample.

With a crossentropy loss a final ``softmax`` (binary: ``sigmoid``) is fused into the loss, which
is then computed stably from the logits; ``predict`` returns probabilities. Without that final
activation the outputs are taken as logits. Elementwise losses (mse, mae, huber,
binary_crossentropy) take outputs of any shape, e.g. images from a convolutional autoencoder.
"""
from __future__ import annotations

SPARSE_CE = "sparse_categorical_crossentropy"
CATEGORICAL_CE = "categorical_crossentropy"
MSE = "mse"
BINARY_CE = "binary_crossentropy"
MAE = "mae"
HUBER = "huber"

_ALIASES = {
    SPARSE_CE: SPARSE_CE, "sparse_ce": SPARSE_CE,
    CATEGORICAL_CE: CATEGORICAL_CE, "categorical_ce": CATEGORICAL_CE, "crossentropy": CATEGORICAL_CE,
    MSE: MSE, "mean_squared_error": MSE,
    BINARY_CE: BINARY_CE, "bce": BINARY_CE,
    MAE: MAE, "mean_absolute_error": MAE,
    HUBER: HUBER, "huber_loss": HUBER,
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
    """Losses whose outputs are classes: accuracy is defined for them."""
    return loss in (SPARSE_CE, CATEGORICAL_CE, BINARY_CE)


def is_elementwise(loss: str) -> bool:
    """Losses averaged over the outputs one by one: they take outputs of any shape."""
    return loss in (MSE, MAE, HUBER, BINARY_CE)
