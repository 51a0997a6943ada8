"""Peak memory of a true gradient of eq. (1): chunks are streamed into sufficient statistics, so
the peak should not grow with the number of pairs.

    python benchmarks/peak_memory.py --pairs 1e5
    python benchmarks/peak_memory.py --pairs 1e6          # ~5-10 min on 2 busy cores
    python benchmarks/peak_memory.py --pairs 1e7          # the paper's Humanoid size
    python benchmarks/peak_memory.py --pairs 0            # the floor: imports, agent, env

Prints one JSON line: the peak resident set of this process and of the largest worker
(``getrusage``; both in MiB), their sum as the job's total (parent + ``workers`` x worker),
and the wall time. Uses the committed fixture of ``--env`` when it exists, else a fresh agent.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time

import torch

from pgclaims.agents.agent import TrainConfig, make_agent
from pgclaims.agents.envs import make_env
from pgclaims.agents.fixtures import FixtureError, load
from pgclaims.measure.gradients import pooled_stats
from pgclaims.measure.parallel import resolve_workers


def peak_mib(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=float, default=1e5, help="state-action pairs (1e7: paper)")
    parser.add_argument("--env", default="Humanoid-v5")
    parser.add_argument("--algo", default="ppo")
    parser.add_argument("--iteration", type=int, default=450)
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes (default: pgclaims' default, all cores)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.set_num_threads(1)
    try:
        agent = load(args.env, args.algo, 0, args.iteration)
        source = f"fixture {args.env} {args.algo} seed 0 iteration {args.iteration}"
    except FixtureError:
        agent = make_agent(TrainConfig.create(args.env, args.algo, 0))
        source = f"fresh {args.env} {args.algo} agent (no fixture)"
    make_env(args.env).close()
    workers = resolve_workers(args.workers)
    n = int(args.pairs)
    t0 = time.perf_counter()
    stats = pooled_stats(agent, n, (3,), args.seed, workers) if n else None
    elapsed = time.perf_counter() - t0
    parent, worker = peak_mib(resource.RUSAGE_SELF), peak_mib(resource.RUSAGE_CHILDREN)
    print(json.dumps({
        "env": args.env, "agent": source, "pairs": int(stats.n) if stats else 0,
        "workers": workers if n else 0, "n_params": int(stats.s_g.size) if stats else None,
        "peak_parent_mib": round(parent, 1), "peak_worker_mib": round(worker, 1),
        "peak_total_mib": round(parent + (workers if n else 0) * worker, 1),
        "seconds": round(elapsed, 1), "pairs_per_s": round(n / elapsed) if n else None,
        "load": os.getloadavg(), "platform": platform.platform(),
    }))


if __name__ == "__main__":
    main()
