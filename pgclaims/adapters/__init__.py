"""Measure anyone's PyTorch agent: adapters from other libraries' saved agents to pgclaims.

:class:`ExternalAgent` is what an agent must provide; :func:`to_pgclaims_agent` builds the
:class:`~pgclaims.agents.agent.Agent` the measurements take. Loaders turn a file into an
ExternalAgent: ``sb3`` (:mod:`pgclaims.adapters.sb3`), ``cleanrl``
(:mod:`pgclaims.adapters.cleanrl`), or any ``module:function`` or entry point of the
``pgclaims.adapters`` group (:func:`load_adapter`).
"""

from __future__ import annotations

from pgclaims.adapters.interface import (
    ExternalAgent,
    ObsNorm,
    RewardNorm,
    to_pgclaims_agent,
)
from pgclaims.adapters.modules import AdapterError
from pgclaims.adapters.registry import BUILTIN, ENTRY_POINT_GROUP, Loader, adapt, load_adapter

__all__ = ["BUILTIN", "ENTRY_POINT_GROUP", "AdapterError", "ExternalAgent", "Loader", "ObsNorm",
           "RewardNorm", "adapt", "load_adapter", "to_pgclaims_agent"]
