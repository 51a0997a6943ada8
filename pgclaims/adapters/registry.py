"""Finding a loader by name: a built-in, ``module:function``, or a ``pgclaims.adapters`` entry
point.

A loader is any callable ``loader(path, env_id, **options) -> ExternalAgent``. A package that
ships one declares it in its own ``pyproject.toml``::

    [project.entry-points."pgclaims.adapters"]
    mylib = "mylib.pgclaims_adapter:load"

and ``pgclaims measure --adapter mylib model.pt --env Hopper-v5`` finds it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable
from typing import Any

from pgclaims.adapters.modules import AdapterError

Loader = Callable[..., Any]
ENTRY_POINT_GROUP = "pgclaims.adapters"
BUILTIN = {"sb3": "pgclaims.adapters.sb3:load", "cleanrl": "pgclaims.adapters.cleanrl:load"}
"""The loaders pgclaims ships (an entry point of the same name does not override them)."""


def _resolve(target: str, what: str) -> Loader:
    module, _, attr = target.partition(":")
    if not module or not attr:
        raise AdapterError(f"{what}: expected 'module:function', got {target!r}")
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as exc:
        raise AdapterError(f"{what}: cannot import module {module!r} ({exc})") from exc
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise AdapterError(f"{what}: module {module!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise AdapterError(f"{what}: {target} is not callable")
    return obj


def entry_points() -> dict[str, str]:
    """Installed ``pgclaims.adapters`` entry points: name -> 'module:function'."""
    return {ep.name: ep.value for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def load_adapter(name: str) -> Loader:
    """The loader called ``name``: a built-in (sb3, cleanrl), ``module:function``, or an
    installed entry point of the ``pgclaims.adapters`` group, in that order."""
    if name in BUILTIN:
        return _resolve(BUILTIN[name], f"adapter {name!r}")
    if ":" in name:
        return _resolve(name, f"adapter {name!r}")
    eps = entry_points()
    if name in eps:
        return _resolve(eps[name], f"adapter {name!r} (entry point {eps[name]})")
    known = sorted({*BUILTIN, *eps})
    raise AdapterError(f"unknown adapter {name!r}: built-in or installed are "
                       f"{', '.join(known)}; or name a loader as 'module:function'")


def adapt(adapter: str, path: str, env_id: str, protocol: str = "corrected",
          **options: Any) -> Any:
    """``load_adapter(adapter)(path, env_id, **options)`` as a pgclaims Agent."""
    from pgclaims.adapters.interface import ExternalAgent, to_pgclaims_agent

    spec = load_adapter(adapter)(path, env_id, **options)
    if not isinstance(spec, ExternalAgent):
        raise AdapterError(f"adapter {adapter!r} returned {type(spec).__name__}, not an "
                           "ExternalAgent")
    return to_pgclaims_agent(spec, env_id, protocol=protocol)
