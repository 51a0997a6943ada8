"""Read SB3 ``VecNormalize`` statistics from its pickle without running anyone's code.

A pickle is a program: every global it names is imported and may be called, so
``pickle.load`` on a downloaded ``vecnormalize.pkl`` can run anything. :class:`StatsUnpickler`
resolves only

- numpy's own array-pickling helpers (``numpy.dtype``, ``ndarray``, ``_reconstruct``,
  ``scalar``), which rebuild arrays from bytes and call nothing else;
- ``VecNormalize`` and SB3's ``RunningMeanStd``, resolved to inert :class:`Record` stand-ins
  that only store their pickled attributes (SB3 itself is never imported);
- a few globals a VecNormalize pickle carries that are not needed (its gymnasium spaces and
  their numpy random generators), resolved to :class:`Ignored` stand-ins;

and refuses every other global with :class:`UnsafePickleError` naming it, before anything is
called. Read :func:`read_vecnormalize`'s result, never the stand-ins' attributes blindly.
"""

from __future__ import annotations

import io
import os
import pickle
from dataclasses import dataclass
from typing import Any

import numpy as np

from pgclaims.adapters.modules import AdapterError


class UnsafePickleError(AdapterError):
    """A pickle that names a global outside the allowed list."""


class Record:
    """An inert stand-in: construction and unpickling only store state."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state: Any) -> None:
        if (isinstance(state, tuple) and len(state) == 2  # (dict state, slots state)
                and all(isinstance(s, dict | None) for s in state)):
            state = {**(state[0] or {}), **(state[1] or {})}
        self.state = state if isinstance(state, dict) else {"state": state}


class Ignored(Record):
    """A stand-in for a global whose value the statistics do not need."""


NUMPY = {
    ("numpy", "dtype"), ("numpy", "ndarray"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"), ("numpy.core.numeric", "_frombuffer"),
}
RECORDS = {
    ("stable_baselines3.common.vec_env.vec_normalize", "VecNormalize"),
    ("stable_baselines3.common.running_mean_std", "RunningMeanStd"),
}
IGNORED_MODULES = ("gymnasium.spaces.", "gym.spaces.", "numpy.random.")
IGNORED_NAMES = {"__generator_ctor", "__bit_generator_ctor", "__randomstate_ctor", "PCG64",
                 "MT19937", "Philox", "SFC64", "SeedSequence", "__pyx_unpickle_SeedSequence",
                 "Box", "Discrete", "MultiDiscrete", "MultiBinary", "Dict", "Tuple"}


class StatsUnpickler(pickle.Unpickler):
    """A pickle.Unpickler that resolves only the globals listed in the module docstring."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in NUMPY:
            try:
                import numpy._core.multiarray as ma
                import numpy._core.numeric as nm
            except ImportError:  # numpy 1.x
                import numpy.core.multiarray as ma  # type: ignore[no-redef]
                import numpy.core.numeric as nm  # type: ignore[no-redef]

            return {"dtype": np.dtype, "ndarray": np.ndarray, "_reconstruct": ma._reconstruct,
                    "scalar": ma.scalar, "_frombuffer": nm._frombuffer}[name]
        if (module, name) in RECORDS:
            return type(name, (Record,), {})
        if module.startswith(IGNORED_MODULES) and name in IGNORED_NAMES:
            return Ignored
        raise UnsafePickleError(
            f"refusing to unpickle global {module}.{name}: a VecNormalize statistics file "
            "needs only numpy arrays, VecNormalize and RunningMeanStd (is this file what you "
            "think it is?)")


@dataclass(frozen=True)
class VecNormalizeStats:
    """What the adapter uses of a VecNormalize: statistics and settings, nothing callable."""

    obs_mean: np.ndarray
    obs_var: np.ndarray
    obs_count: float
    ret_var: float
    ret_count: float
    clip_obs: float
    clip_reward: float
    epsilon: float
    gamma: float
    norm_obs: bool
    norm_reward: bool


def _rms(obj: Any, what: str) -> dict[str, Any]:
    if not isinstance(obj, Record) or not isinstance(getattr(obj, "state", None), dict):
        raise AdapterError(f"VecNormalize {what} is not a RunningMeanStd")
    return obj.state


def read_vecnormalize(path: str | os.PathLike[str]) -> VecNormalizeStats:
    """The statistics of an SB3 ``VecNormalize.save`` file, through :class:`StatsUnpickler`."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise AdapterError(f"{path}: cannot read the VecNormalize statistics "
                           f"({exc.strerror or exc})") from None
    try:
        obj = StatsUnpickler(io.BytesIO(data)).load()
    except UnsafePickleError:
        raise
    except Exception as exc:
        raise AdapterError(f"{path}: not a readable VecNormalize pickle ({exc})") from exc
    if type(obj).__name__ != "VecNormalize" or not isinstance(getattr(obj, "state", None), dict):
        raise AdapterError(f"{path}: the pickle holds a {type(obj).__name__}, not VecNormalize")
    st = obj.state
    if st.get("norm_obs_keys"):
        raise AdapterError(f"{path}: dict observations (norm_obs_keys) are not supported")
    obs, ret = _rms(st.get("obs_rms"), "obs_rms"), _rms(st.get("ret_rms"), "ret_rms")
    try:
        return VecNormalizeStats(
            obs_mean=np.asarray(obs["mean"], np.float64), obs_var=np.asarray(obs["var"],
                                                                            np.float64),
            obs_count=float(obs["count"]), ret_var=float(np.asarray(ret["var"]).reshape(())),
            ret_count=float(ret["count"]), clip_obs=float(st["clip_obs"]),
            clip_reward=float(st["clip_reward"]), epsilon=float(st["epsilon"]),
            gamma=float(st["gamma"]), norm_obs=bool(st["norm_obs"]),
            norm_reward=bool(st["norm_reward"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise AdapterError(f"{path}: VecNormalize pickle lacks a field ({exc})") from exc
