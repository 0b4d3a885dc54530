"""Training recipes, one module (or sub-package) each, registered by name: ``- name: <method>``
in a study's ``methods`` list. Every module of this package is imported here so that its
``@register_method`` and ``@register_task`` decorators run."""

import importlib as _importlib
import pkgutil as _pkgutil

from robustmm.methods.base import (
    Method,
    MethodContext,
    MethodOptions,
    available_methods,
    collect_predictions,
    create_method,
    register_method,
)

for _info in _pkgutil.iter_modules(__path__):
    _importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["Method", "MethodContext", "MethodOptions", "available_methods", "collect_predictions",
           "create_method", "register_method"]
