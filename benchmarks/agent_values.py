"""The per-agent values of a claims run, in the form ``benchmarks/calibration.py --agents`` reads:
the shapes our statistics take on the committed agents.

    python benchmarks/agent_values.py reports/RUN/results.json --out agent_values_RUN.json

Every row decided over agents records each agent's value of its statistic (``agent_values`` in
results.json, docs/results-schema.md). A row is kept with ``mean_of_agents`` true when its
statistic is the mean of those values (to 1e-9 relative): only then is the row's interval an
interval for a mean of independent agent draws, the setting the calibration simulates.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path


def rows_of(results: dict) -> list[dict]:
    """One entry per row with agent values: claim id, params, the values, and whether the
    row's statistic is their mean."""
    out = []
    for row in results.get("results", []):
        values = [v["value"] for v in row.get("agent_values") or []]
        if len(values) < 2 or not all(isinstance(v, (int, float)) and math.isfinite(v)
                                      for v in values):
            continue
        stat = row.get("statistic")
        mean = sum(values) / len(values)
        is_mean = (isinstance(stat, (int, float)) and math.isfinite(stat)
                   and abs(stat - mean) <= 1e-9 * max(1.0, abs(mean)))
        out.append({"claim_id": row["claim_id"], "params": row.get("params", {}),
                    "agent_values": values, "mean_of_agents": is_mean})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path, nargs="+", help="results.json of claims runs")
    ap.add_argument("--out", type=Path, required=True, help="file to write")
    args = ap.parse_args(argv)
    rows = []
    for path in args.results:
        try:
            rows += rows_of(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"error: {path}: {exc}", file=sys.stderr)
            return 2
    args.out.write_text(json.dumps({"sources": [str(p) for p in args.results], "rows": rows},
                                   indent=1) + "\n")
    kept = sum(r["mean_of_agents"] for r in rows)
    print(f"{len(rows)} rows with agent values ({kept} whose statistic is their mean) "
          f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
