"""Field-by-field equality of two measurement results (studies, landscapes): arrays compared
exactly (NaN equal to NaN), dicts of arrays key by key, ``meta`` and other fields with ==."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


def assert_same_result(a: Any, b: Any, what: str = "") -> None:
    for field in dataclasses.fields(a):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if isinstance(x, dict) and field.name != "meta":
            assert x.keys() == y.keys(), (what, field.name)
            assert all(np.array_equal(x[k], y[k], equal_nan=True) for k in x), (what, field.name)
        elif isinstance(x, np.ndarray):
            assert np.array_equal(x, y, equal_nan=True), (what, field.name)
        else:
            assert x == y, (what, field.name)
