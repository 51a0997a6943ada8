"""The verdict engine: intervals over agents, one-sided verdicts and censored crossings, and
multiple comparisons. Plain functions of arrays: it never samples, trains or reads files, and
imports nothing else of pgclaims."""

from pgclaims.stats.components import AgentValue, agent_values
from pgclaims.stats.intervals import (
    DEFAULT_METHOD,
    METHODS,
    Interval,
    hierarchical_bootstrap,
)
from pgclaims.stats.multiplicity import benjamini_hochberg, holm
from pgclaims.stats.power import Power, agents_to_decide
from pgclaims.stats.verdicts import (
    DIRECTIONS,
    Crossing,
    Outcome,
    Verdict,
    censored_crossing,
    crossing_band,
    crossing_verdict,
    decide,
    one_sided_p_value,
)

__all__ = [
    "AgentValue", "agent_values",
    "DEFAULT_METHOD", "DIRECTIONS", "METHODS", "Crossing", "Interval", "Outcome", "Power",
    "Verdict", "agents_to_decide", "benjamini_hochberg", "censored_crossing", "crossing_band",
    "crossing_verdict", "decide", "hierarchical_bootstrap", "holm", "one_sided_p_value",
]
