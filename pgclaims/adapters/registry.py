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
import inspect
import json
import math
import re
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


def accepted_options(loader: Loader) -> tuple[str, ...] | None:
    """The keyword options ``loader`` takes after ``(path, env_id)``; None when it takes any
    (``**kwargs``) or its signature cannot be read."""
    try:
        params = list(inspect.signature(loader).parameters.values())
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    P = inspect.Parameter
    positional = [p.name for p in params if p.kind in (P.POSITIONAL_ONLY,
                                                        P.POSITIONAL_OR_KEYWORD)]
    keywords = [p.name for p in params if p.kind is P.KEYWORD_ONLY]
    return tuple(positional[2:] + keywords)


def check_options(adapter: str, options: dict[str, Any], loader: Loader | None = None) -> None:
    """Refuse an option the adapter's loader does not take, listing those it does."""
    accepted = accepted_options(loader or load_adapter(adapter))
    if accepted is None:
        return
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise AdapterError(f"adapter {adapter!r} has no option {', '.join(map(repr, unknown))}; "
                           f"it accepts {', '.join(accepted) if accepted else 'none'}")


def _kind(param: inspect.Parameter) -> str:
    """What a loader parameter takes, from its default or its annotation (a string under
    ``from __future__ import annotations``): float, int, bool, dict or str."""
    default, ann = param.default, str(param.annotation)
    for kind, cls in (("bool", bool), ("int", int), ("float", float), ("dict", dict)):
        if type(default) is cls or re.search(rf"\b{kind}\b", ann):
            return kind
    return "str"


def coerce_options(adapter: str, options: dict[str, Any], loader: Loader) -> dict[str, Any]:
    """Options given as text (``--adapter-option KEY=VALUE``) converted to what the loader's
    parameter takes; a value that does not convert is refused naming the option. Values that
    are not text (a manifest's JSON numbers) are passed as they are."""
    try:
        params = inspect.signature(loader).parameters
    except (TypeError, ValueError):
        return dict(options)
    out = {}
    for key, value in options.items():
        if not isinstance(value, str) or key not in params:
            out[key] = value
            continue
        kind = _kind(params[key])
        try:
            if kind == "bool":
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError
                out[key] = value.lower() in ("true", "1")
            elif kind == "int":
                out[key] = int(value)
            elif kind == "float":
                out[key] = float(value)
                if not math.isfinite(out[key]):
                    raise ValueError
            elif kind == "dict":
                out[key] = json.loads(value)
                if not isinstance(out[key], dict):
                    raise ValueError
            else:
                out[key] = value
        except ValueError:
            what = {"bool": "true or false", "int": "an integer", "float": "a finite number",
                    "dict": "a JSON object"}[kind]
            raise AdapterError(f"adapter {adapter!r} option {key}={value!r}: expected "
                               f"{what}") from None
    return out


def adapt(adapter: str, path: str, env_id: str, protocol: str = "corrected",
          **options: Any) -> Any:
    """``load_adapter(adapter)(path, env_id, **options)`` as a pgclaims Agent; an option the
    loader does not take is refused by name (:func:`check_options`)."""
    from pgclaims.adapters.interface import ExternalAgent, to_pgclaims_agent

    loader = load_adapter(adapter)
    check_options(adapter, options, loader)
    spec = loader(path, env_id, **coerce_options(adapter, options, loader))
    if not isinstance(spec, ExternalAgent):
        raise AdapterError(f"adapter {adapter!r} returned {type(spec).__name__}, not an "
                           "ExternalAgent")
    return to_pgclaims_agent(spec, env_id, protocol=protocol)
