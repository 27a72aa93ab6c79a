"""Lazy package exports: a public name is imported from its defining module on first access."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    namespace: dict[str, Any], exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Module-level ``__getattr__`` and ``__dir__`` (PEP 562) for the package whose ``globals()`` is
    ``namespace``.

    ``exports`` maps each lazily exported name to the module that defines it; that module is imported the
    first time the name is looked up, and the value is then kept in the package namespace.

    Usage, at the end of a package ``__init__``::

        __getattr__, __dir__ = lazy_exports(globals(), {"Name": "package.module"})
    """
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *exports})

    return __getattr__, __dir__
