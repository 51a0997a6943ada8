"""Peak memory of the paper-scale computations: a true gradient of eq. (1) and the true-value
fit. Both stream (chunks into sufficient statistics; usable rows into a disk-spilling row store,
:mod:`pgclaims.measure.truevalue`), so the peak should not grow with the number of pairs.

    python benchmarks/peak_memory.py --pairs 1e5
    python benchmarks/peak_memory.py --pairs 1e6          # ~5-10 min on 2 busy cores
    python benchmarks/peak_memory.py --pairs 1e7          # the paper's Humanoid size
    python benchmarks/peak_memory.py --pairs 0            # the floor: imports, agent, env
    python benchmarks/peak_memory.py --what fit --pairs 5e6               # the paper's true value
    python benchmarks/peak_memory.py --what fit --pairs 5e6 --synthetic   # the fit alone

``--what fit`` samples the chunks, computes their returns targets in the workers and fits the
true-value net as :func:`pgclaims.measure.gradients.gradient_study` does; ``--synthetic``
replaces the sampled rows by random ones of the environment's observation size (the fit's
memory does not depend on the values; it saves sampling 5e6 pairs). ``--epochs`` shortens the
fit (default 30, as measured): every epoch touches every row the same way.

Prints one JSON line: the peak resident set of this process and of the largest worker
(``getrusage``; both in MiB), their sum as the job's total (parent + ``workers`` x worker),
and the wall time. Measures the committed fixture of ``--env`` / ``--algo`` / ``--protocol``
(seed 0, ``--iteration``); a missing fixture is an error that names it, and ``--fresh`` asks for
an untrained agent of the same networks instead (the arrays, hence the memory, are the same).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time

import numpy as np
import torch

from pgclaims.agents.agent import TrainConfig, make_agent
from pgclaims.agents.envs import make_env
from pgclaims.agents.fixtures import FixtureError, load
from pgclaims.measure import truevalue
from pgclaims.measure.gradients import pooled_stats
from pgclaims.measure.parallel import resolve_workers
from pgclaims.measure.sampler import CHUNK


def peak_mib(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux reports KiB


def synthetic_parts(n: int, obs_dim: int, seed: int):
    """``ceil(n / CHUNK)`` chunks of random rows, generated one at a time."""
    rng = np.random.default_rng(seed)
    for _ in range(-(-n // CHUNK)):
        yield truevalue.UsableReturns(rng.standard_normal((CHUNK, obs_dim), np.float32),
                                      rng.standard_normal(CHUNK), 1, np.zeros(0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--what", choices=("gradient", "fit"), default="gradient",
                        help="a true gradient (default) or the true-value fit")
    parser.add_argument("--pairs", type=float, default=1e5,
                        help="state-action pairs (paper: 1e7 Humanoid gradient, 5e6 fit)")
    parser.add_argument("--synthetic", action="store_true",
                        help="--what fit: random rows instead of sampled ones")
    parser.add_argument("--epochs", type=int, default=truevalue.EPOCHS,
                        help="--what fit: passes over the rows (default 30)")
    parser.add_argument("--env", default="Humanoid-v5")
    parser.add_argument("--algo", default="ppo")
    parser.add_argument("--iteration", type=int, default=450)
    parser.add_argument("--protocol", default="authors",
                        help="protocol of the fixture measured (default: authors)")
    parser.add_argument("--fresh", action="store_true",
                        help="an untrained agent instead of the fixture")
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes (default: pgclaims' default, all cores)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.set_num_threads(1)
    if args.fresh:
        agent = make_agent(TrainConfig.create(args.env, args.algo, 0, protocol=args.protocol))
        source = f"fresh {args.protocol} {args.env} {args.algo} agent"
    else:
        try:
            agent = load(args.env, args.algo, 0, args.iteration, protocol=args.protocol)
        except FixtureError as exc:
            parser.error(f"{exc} (or --fresh for an untrained agent)")
        source = (f"fixture {args.protocol} {args.env} {args.algo} seed 0 iteration "
                  f"{args.iteration}")
    make_env(args.env).close()
    workers = resolve_workers(args.workers)
    n = int(args.pairs)
    t0 = time.perf_counter()
    fit: dict = {}
    stats = None
    if args.what == "gradient" and n:
        stats = pooled_stats(agent, n, (3,), args.seed, workers)
        pairs = int(stats.n)
    elif args.what == "fit" and args.synthetic:
        dim = int(agent.obs_norm.stats.mean.shape[0])
        _, fit, _, _ = truevalue.fit_parts(synthetic_parts(n, dim, args.seed),
                                           CHUNK * -(-n // CHUNK), args.seed, epochs=args.epochs)
        pairs, workers, source = fit["true_value_pairs"], 0, f"random {dim}-dim rows"
    elif args.what == "fit":
        _, fit, _, _ = truevalue.true_value_net(agent, n, args.seed, workers, epochs=args.epochs)
        pairs = CHUNK * -(-n // CHUNK)
    else:
        pairs = 0
    elapsed = time.perf_counter() - t0
    parent, worker = peak_mib(resource.RUSAGE_SELF), peak_mib(resource.RUSAGE_CHILDREN)
    if not n:
        workers = 0
    print(json.dumps({
        "what": args.what, "env": args.env, "agent": source, "pairs": pairs,
        "workers": workers, "n_params": int(stats.s_g.size) if stats else None,
        **({"fit_rows": fit["true_value_pairs"], "epochs": fit["epochs"],
            "store": fit["true_value_store"]} if fit else {}),
        "peak_parent_mib": round(parent, 1), "peak_worker_mib": round(worker, 1),
        "peak_total_mib": round(parent + workers * worker, 1),
        "seconds": round(elapsed, 1), "pairs_per_s": round(n / elapsed) if n else None,
        "load": os.getloadavg(), "platform": platform.platform(),
    }))


if __name__ == "__main__":
    main()
