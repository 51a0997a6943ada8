"""Moved to :mod:`pgclaims.agents.sims` (training collects through it too); this name stays so
that existing imports keep working."""

from pgclaims.agents.sims import *  # noqa: F403
from pgclaims.agents.sims import __all__  # noqa: F401
