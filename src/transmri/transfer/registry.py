"""The transfer methods by name: a plain table of the built-in ones, plus :func:`register_method`.

The built-in methods are listed in :data:`BUILT_IN` below (no import side
effects: importing a methods module registers nothing). Add your own with
:func:`register_method`; :func:`available_methods` lists them all.

Example:
    >>> @register_method("my_recipe")  # doctest: +SKIP
    ... def my_recipe(context: MethodContext) -> MethodResult:
    ...     ...
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from transmri.errors import ConfigError

if TYPE_CHECKING:
    from transmri.transfer.context import TransferMethod

__all__ = [
    "BUILT_IN",
    "MethodEntry",
    "available_methods",
    "check_method",
    "get_method",
    "method_needs_encoder",
    "register_method",
]


@dataclass(frozen=True)
class MethodEntry:
    """Where a method is and whether it needs the pretrained encoder.

    Attributes:
        needs_encoder: the method uses the pretrained encoder (refused without one).
        module: the module that defines a built-in method (the function has the
            method's name there); ``None`` for a registered function.
        function: a function given to :func:`register_method`.
    """

    needs_encoder: bool
    module: str | None = None
    function: TransferMethod | None = None


_CNN = "transmri.transfer.methods.cnn"
_LINEAR = "transmri.transfer.methods.linear"

#: The built-in methods, in the order :func:`available_methods` lists them. The
#: methods modules (torch, the Learner) are imported when a method is first
#: looked up, so that a :class:`~transmri.transfer.TransferConfig` is checked
#: (when an experiment file is read) without loading the training stage.
BUILT_IN = MappingProxyType(
    {
        "scratch": MethodEntry(needs_encoder=False, module=_CNN),
        "finetune": MethodEntry(needs_encoder=True, module=_CNN),
        "linear_probe": MethodEntry(needs_encoder=True, module=_LINEAR),
        "ridge": MethodEntry(needs_encoder=False, module=_LINEAR),
        "regional_probe": MethodEntry(needs_encoder=True, module=_LINEAR),
        "regional_random": MethodEntry(needs_encoder=True, module=_LINEAR),
        "lpft": MethodEntry(needs_encoder=True, module=_CNN),
        "l2sp": MethodEntry(needs_encoder=True, module=_CNN),
        "llrd": MethodEntry(needs_encoder=True, module=_CNN),
        "default": MethodEntry(needs_encoder=True, module=_CNN),
    }
)

# The built-in table and what users registered (a user method may replace a built-in one).
_REGISTRY: dict[str, MethodEntry] = dict(BUILT_IN)


def register_method(
    name: str, *, needs_encoder: bool = False, replace: bool = False
) -> Callable[[TransferMethod], TransferMethod]:
    """Register a transfer method under ``name`` (a decorator).

    Args:
        name: the name used in ``TransferConfig.methods`` and in ``comparison.csv``.
        needs_encoder: the method uses the pretrained encoder (it is refused
            when ``transfer_curve`` is given none).
        replace: allow replacing a method of the same name.

    Raises:
        ConfigError: a bad name, or a name already taken (without ``replace``).
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ConfigError(f"method name: expected an identifier such as 'ridge', got {name!r}")
    if name in _REGISTRY and not replace:
        raise ConfigError(f"method name: {name!r} is already registered; pass replace=True")

    def decorate(function: TransferMethod) -> TransferMethod:
        if not callable(function):
            raise TypeError(f"{name}: expected a callable (MethodContext) -> MethodResult")
        _REGISTRY[name] = MethodEntry(bool(needs_encoder), function=function)
        return function

    return decorate


def available_methods() -> tuple[str, ...]:
    """Names of the registered methods, in registration order."""
    return tuple(_REGISTRY)


def check_method(name: str) -> MethodEntry:
    """The entry of the method ``name``, without importing its module.

    Raises:
        ConfigError: an unknown name (the known ones are listed).
    """
    if name not in _REGISTRY:
        raise ConfigError(
            f"methods: unknown method {name!r}; expected some of {available_methods()}"
        )
    return _REGISTRY[name]


def get_method(name: str) -> TransferMethod:
    """The function registered as ``name``.

    Raises:
        ConfigError: an unknown name (the known ones are listed).
    """
    entry = check_method(name)
    if entry.function is not None:
        return entry.function
    function: TransferMethod = getattr(importlib.import_module(str(entry.module)), name)
    return function


def method_needs_encoder(name: str) -> bool:
    """Whether the method ``name`` uses the pretrained encoder."""
    return check_method(name).needs_encoder
