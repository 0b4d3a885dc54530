"""Training recipes, one module each, registered by name (``method: <name>`` in a study)."""

from robustmm.methods import baseline  # noqa: F401  (registers the methods)
from robustmm.methods.base import (
    Method,
    MethodContext,
    MethodOptions,
    available_methods,
    collect_predictions,
    create_method,
    register_method,
)

__all__ = ["Method", "MethodContext", "MethodOptions", "available_methods", "collect_predictions",
           "create_method", "register_method"]
