"""The verdict engine: intervals over agents, their studentized pivots, one-sided verdicts and
censored crossings, error control over a run, power, and the simulations that calibrate them
(:mod:`pgclaims.stats.calibration`, random draws from a Generator it is given). Plain functions
of arrays: it never samples an environment, trains or reads files, and imports nothing else of
pgclaims."""

from pgclaims.stats.components import AgentValue, agent_values
from pgclaims.stats.intervals import (
    DEFAULT_METHOD,
    METHODS,
    T_METHODS,
    Interval,
    hierarchical_bootstrap,
)
from pgclaims.stats.multiplicity import (
    POLICIES,
    ErrorControl,
    benjamini_hochberg,
    family_adjusted,
    holm,
)
from pgclaims.stats.pivot import UNBOUNDED, Pivot, Support
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
    level_text,
    one_sided_p_value,
)

__all__ = [
    "AgentValue", "agent_values",
    "DEFAULT_METHOD", "DIRECTIONS", "METHODS", "POLICIES", "T_METHODS", "UNBOUNDED", "Crossing",
    "ErrorControl", "Interval", "Outcome", "Pivot", "Power", "Support", "Verdict",
    "agents_to_decide", "benjamini_hochberg", "censored_crossing", "crossing_band",
    "crossing_verdict", "decide", "family_adjusted", "hierarchical_bootstrap", "holm",
    "level_text", "one_sided_p_value",
]
