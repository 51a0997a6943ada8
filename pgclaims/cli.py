"""The ``pgclaims`` command: train agents, manage fixtures, render reports."""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from pgclaims import options as opt
from pgclaims.agents.agent import ALGOS, TrainConfig
from pgclaims.agents.protocol import PROTOCOLS
from pgclaims.agents.runlock import RunLockedError
from pgclaims.measure_command import cmd_measure, measure_summary  # noqa: F401 - re-exported
from pgclaims.suite.scales import LR_GRID_WIDE

OTHER_ALGO = {"ppo": {"max_kl": ("--max-kl", "TRPO's KL bound",
                                 "PPO's step is set by --policy-lr and its clip range")},
              "trpo": {"policy_lr": ("--policy-lr", "PPO's policy learning rate",
                                     "TRPO's step is bounded by --max-kl instead")}}
"""Options that belong to one algorithm only: refused, naming both, for the other."""


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (``pgclaims train: error: ...``), exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def _add_train_args(p: argparse.ArgumentParser, table1_only: bool = False) -> None:
    p.add_argument("--env", required=True, help="gymnasium id, e.g. Hopper-v5, Walker2d-v5, "
                   "Humanoid-v5 (any Box-action env works with --policy-lr/--value-lr/--max-kl)")
    p.add_argument("--algo", required=True, choices=ALGOS)
    p.add_argument("--seed", type=opt.SEED, default=0,
                   help=f"training seed, 0..{opt.SEED_MAX} (default 0)")
    p.add_argument("--iterations", type=opt.COUNT, default=500,
                   help="training iterations of --steps state-action pairs each (default 500)")
    p.add_argument("--checkpoints", type=opt.int_list, default=None,
                   help="iterations to checkpoint at, e.g. 0,150,300,450 (default: 0, 0.3T, "
                   "0.6T, 0.9T and the final iteration T)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--protocol", choices=tuple(PROTOCOLS), default="authors",
                   help="training protocol, i.e. the code-level choices where Table 1 is "
                   "silent: authors (default), corrected or table1 (pgclaims.agents.protocol)")
    if table1_only:  # fixtures are keyed by their config: only protocol agents are stored
        return
    p.add_argument("--steps", type=opt.COUNT, default=None,
                   help="state-action pairs per iteration (Table 1: 2048)")
    p.add_argument("--policy-lr", type=opt.POSITIVE, default=None,
                   help="PPO Adam LR (Table 1 per env)")
    p.add_argument("--value-lr", type=opt.POSITIVE, default=None,
                   help="value net LR (Table 1 per env)")
    p.add_argument("--max-kl", type=opt.POSITIVE, default=None,
                   help="TRPO KL bound in nats (Table 1 per env)")
    p.add_argument("--baseline", choices=("valuenet", "zero"), default=None,
                   help="advantage baseline (default valuenet; zero = returns, for ablations)")


def _add_backend_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=("local", "ray"), default=None,
                   help="where the parallel work runs: local processes or Ray tasks (default: "
                   "$PGCLAIMS_BACKEND, else local); the numbers are the same")
    p.add_argument("--ray-address", default=None, metavar="ADDRESS",
                   help="with --backend ray: the cluster to connect to (default: $RAY_ADDRESS, "
                   "else a local Ray on every core)")


def _use_backend(args: argparse.Namespace) -> None:
    from pgclaims.agents import backend

    if getattr(args, "ray_address", None) and args.backend != "ray":
        raise ValueError("--ray-address needs --backend ray")
    if getattr(args, "backend", None):
        backend.set_backend(args.backend, args.ray_address)
        if args.backend == "ray":
            backend.import_ray()  # fail before any work when Ray is not installed
    if hasattr(args, "ray_address") and backend.backend() == "ray" and backend.ray_address():
        backend.check_ray_address(str(backend.ray_address()))  # or it would retry for ever


def _config(args: argparse.Namespace) -> TrainConfig:
    for field, (flag, what, instead) in OTHER_ALGO[args.algo].items():
        if getattr(args, field, None) is not None:
            raise ValueError(f"{flag} is {what}, not an option of --algo {args.algo}: "
                             f"{instead}")
    overrides = {k: v for k, v in {
        "steps_per_iteration": getattr(args, "steps", None),
        "policy_lr": getattr(args, "policy_lr", None),
        "value_lr": getattr(args, "value_lr", None),
        "max_kl": getattr(args, "max_kl", None),
        "baseline": getattr(args, "baseline", None),
    }.items() if v is not None}
    return TrainConfig.create(args.env, args.algo, args.seed, args.iterations,
                              args.checkpoints, protocol=args.protocol, **overrides)


def cmd_train(args: argparse.Namespace) -> int:
    from pgclaims.agents.train import train

    config = _config(args)
    out = args.out or f"runs/{config.env_id}-{config.algo}-s{config.seed}-{config.key()[:8]}"
    agent = train(config, out, progress=not args.quiet, say=_say)
    print(f"{out}: {agent.iteration} iterations, {last_return(agent.curve)}")
    return 0


def last_return(curve: list[dict[str, Any]]) -> str:
    """The summary's return: the last iteration's mean, or, when no episode ended in it (its
    mean is NaN), the last there is and where, never a bare 'nan'."""
    finite = [row for row in curve if math.isfinite(row["mean_return"])]
    if curve and finite and finite[-1] is curve[-1]:
        return f"last mean return {curve[-1]['mean_return']:.1f}"
    if not finite:
        return "no episode ended yet, so no mean return"
    return (f"no episode ended in the last iteration (last mean return "
            f"{finite[-1]['mean_return']:.1f}, at iteration {finite[-1]['iteration']})")


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def cmd_fixtures(args: argparse.Namespace) -> int:
    from pgclaims.agents import fixtures

    if args.fixtures_cmd == "list":
        if args.ablations:
            from pgclaims.agents import ablations

            print(ablations.describe())
        else:
            print(fixtures.describe())
        return 0
    if args.fixtures_cmd == "train-ablations":
        return cmd_train_ablations(args)
    if args.fixtures_cmd == "verify":
        from pgclaims.agents import storeverify

        return 1 if storeverify.verify(write_missing=args.write_missing, say=print) else 0
    if args.fixtures_cmd == "train-set":
        configs = [TrainConfig.create(env, algo, seed, args.iterations, protocol=protocol)
                   for protocol in args.protocol for env in args.env for algo in args.algo
                   for seed in args.seeds]
        fixtures.train_set(configs, jobs=args.jobs, say=_say)
        return 0
    from pgclaims.agents import backend

    config = _config(args)
    done = fixtures.finished(config)
    if done is not None:  # verified, and said so: nothing to train
        _say(done)
        return 0
    if backend.backend() == "ray":  # one Ray task (no progress bar: it runs in a worker)
        [(_, entry)] = backend.run_each(fixtures.train_job, [(config, fixtures.root())])
    else:
        entry = fixtures.train_fixture(config, progress=not args.quiet, say=_say)
    print(f"fixture {entry['key']}: {entry['env_id']} {entry['algo']} seed {entry['seed']}, "
          f"{fixtures.final_return_text(entry)}")
    return 0


def regime_steps() -> tuple[int, int]:
    """regime.more_samples_lower_lr's two batch sizes (CLAIMS.md: 2048 and 20480)."""
    from pgclaims.suite.claims import get

    constants = get("regime.more_samples_lower_lr").constants
    return int(constants["n_low"]), int(constants["n_high"])


def cmd_train_ablations(args: argparse.Namespace) -> int:
    from pgclaims.agents import ablation_training, ablations

    runs = [run for study in args.study for protocol in args.protocol for env in args.env
            for algo in args.algo for seed in args.seeds
            for run in ablations.runs_for(study, protocol, env, algo, seed, args.multipliers,
                                          args.steps or regime_steps(), args.budget)]
    ablation_training.train_runs(runs, jobs=args.jobs,
                         say=lambda line: print(line, file=sys.stderr, flush=True))
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    import json

    from pgclaims.suite import costs, plan
    from pgclaims.suite.scales import get_scale

    scale = get_scale(args.scale)
    if args.protocol:
        names = ("authors", "corrected") if args.protocol == "all" else tuple(
            p.strip() for p in args.protocol.split(",") if p.strip())
        scale = scale.override(protocols=names)
    tasks = plan.build(scale)
    say = (lambda msg: print(msg, file=sys.stderr, flush=True)) if not args.json else None
    rates = costs.measure_rates(scale.envs, scale.algos, scale.protocols[0], say=say)
    est = costs.estimate(tasks, rates)
    eff = costs.EFFICIENCY if args.efficiency is None else args.efficiency
    print(json.dumps(costs.to_dict(est, args.cores, eff), indent=1) if args.json
          else costs.render(est, args.cores, eff))
    return 0


def cmd_report(argv: Sequence[str]) -> int:
    from pgclaims.report import main_report

    return main_report(list(argv))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="pgclaims",
        description="Check the claims of 'A Closer Look at Deep Policy Gradients' on your agents.",
    )
    sub = parser.add_subparsers(dest="cmd", required=True, parser_class=_Parser)
    p = sub.add_parser("train", help="train a PPO or TRPO agent with checkpoints",
                       description="Train with Table 1 hyperparameters. Re-running the same "
                       "command resumes from the run directory's latest checkpoint.")
    _add_train_args(p)
    p.add_argument("--out", default=None,
                   help="run directory (default runs/<env>-<algo>-s<seed>-<key>)")
    p.set_defaults(func=cmd_train)
    f = sub.add_parser("fixtures", help="list or train the committed fixture agents")
    fsub = f.add_subparsers(dest="fixtures_cmd", required=True, parser_class=_Parser)
    fl = fsub.add_parser("list", help="the agents in fixtures/manifest.json")
    fl.add_argument("--ablations", action="store_true",
                    help="the ablation runs in fixtures/ablations/manifest.json instead")
    fl.set_defaults(func=cmd_fixtures)
    fv = fsub.add_parser("verify", help="check every fixture file against its sha256 in the "
                         "manifest", description="Exit status 0 when every agent of the "
                         "manifest has all its files with the recorded digests, 1 otherwise "
                         "(one line per problem).")
    fv.add_argument("--write-missing", action="store_true", help="record the digests of "
                    "entries that have none (written before digests existed), after checking "
                    "that each checkpoint is the entry's and finite; never replaces a digest")
    fv.set_defaults(func=cmd_fixtures)
    ft = fsub.add_parser("train", help="train (or resume) a Table 1 agent into fixtures/store")
    _add_train_args(ft, table1_only=True)
    _add_backend_args(ft)
    ft.set_defaults(func=cmd_fixtures)
    fs = fsub.add_parser("train-set", help="train (or resume) many fixtures in parallel",
                         description="Every protocol x env x algo x seed, --jobs agents at a "
                         "time, skipping those already in the store; an interrupted run "
                         "resumes each agent where it stopped.")
    fs.add_argument("--protocol", nargs="+", choices=tuple(PROTOCOLS), default=["authors"])
    fs.add_argument("--env", nargs="+", required=True)
    fs.add_argument("--algo", nargs="+", choices=ALGOS, default=list(ALGOS))
    fs.add_argument("--seeds", type=opt.seed_list, default=tuple(range(10)),
                    help="comma-separated seeds (default 0-9, the committed fixtures' seeds)")
    fs.add_argument("--iterations", type=opt.COUNT, default=500)
    fs.add_argument("--jobs", type=opt.COUNT, default=1,
                    help="agents trained at once (default 1)")
    _add_backend_args(fs)
    fs.set_defaults(func=cmd_fixtures)
    fa = fsub.add_parser(
        "train-ablations", help="train (or resume) the ablation runs in parallel",
        description="Training runs with Table 1 changed, kept as curves in "
        "fixtures/ablations (pgclaims.agents.ablations): 'baseline' = zero-baseline agents, "
        "'regime' = the step-size grid (PPO's Adam LR, TRPO's KL bound) at 2048 and 20480 "
        "pairs per iteration. Every run gets the committed agents' budget of pairs (500 x "
        "2048; 50 iterations at 20480); the value-net run at Table 1's step size and 2048 is "
        "the committed fixture, read, not trained. --jobs runs at a time, skipping finished "
        "ones; an interrupted command resumes each run where it stopped.")
    fa.add_argument("--study", nargs="+", choices=("baseline", "regime"), required=True)
    fa.add_argument("--protocol", nargs="+", choices=tuple(PROTOCOLS), default=["authors"])
    fa.add_argument("--env", nargs="+", required=True)
    fa.add_argument("--algo", nargs="+", choices=ALGOS, default=list(ALGOS))
    fa.add_argument("--seeds", type=opt.seed_list, default=(0, 1, 2, 3, 4),
                    help="comma-separated seeds (default 0,1,2,3,4)")
    fa.add_argument("--multipliers", type=opt.positive_list, default=LR_GRID_WIDE,
                    help="regime: step sizes as multiples of Table 1's (default: the default "
                    "scale's grid, " + ",".join(f"{m:g}" for m in LR_GRID_WIDE) + ")")
    fa.add_argument("--steps", type=opt.count_list, default=None,
                    help="regime: pairs per iteration (default 2048,20480, the claim's)")
    fa.add_argument("--budget", type=opt.NON_NEGATIVE_INT, default=0,
                    help="pairs per run (default: the committed agents', 500 x 2048)")
    fa.add_argument("--jobs", type=opt.COUNT, default=1,
                    help="runs trained at once (default 1)")
    _add_backend_args(fa)
    fa.set_defaults(func=cmd_fixtures)
    m = sub.add_parser("measure", help="run the paper's measurements on one checkpoint",
                       description="Gradient estimates (Fig 1, 2, 4), value error (Fig 3), "
                       "computed steps (A.4) and landscapes (Fig 5-7) of one checkpoint, with "
                       "a scale's sample counts. Results are cached under .cache/pgclaims.")
    m.add_argument("checkpoint", nargs="?", help="a pgclaims .safetensors checkpoint, or with "
                   "--adapter the other library's file (an SB3 .zip, a .cleanrl_model)")
    m.add_argument("--adapter", default=None, metavar="NAME",
                   help="measure another library's agent: sb3, cleanrl, module:function or an "
                   "installed 'pgclaims.adapters' entry point (docs/adapters.md)")
    m.add_argument("--env", default=None, help="with --adapter: the gymnasium id it was "
                   "trained on (v4 and v5 ids)")
    m.add_argument("--vecnormalize", default=None, help="with --adapter sb3: the "
                   "VecNormalize.save file")
    m.add_argument("--stats", default=None, help="with --adapter cleanrl: the observation "
                   "statistics file (docs/adapters.md)")
    m.add_argument("--adapter-option", action="append", default=[], metavar="KEY=VALUE",
                   help="another keyword of the adapter's loader (repeatable)")
    m.add_argument("--fixture", nargs=4, metavar=("ENV", "ALGO", "SEED", "ITERATION"),
                   help="a committed fixture instead of a file")
    m.add_argument("--protocol", choices=tuple(PROTOCOLS), default=None,
                   help="with --fixture: the fixture's protocol (default authors); with "
                   "--adapter: the measurement definitions (default corrected, which "
                   "bootstraps time limits as SB3 and CleanRL do); a pgclaims checkpoint "
                   "carries its own")
    m.add_argument("--scale", default="smoke", help="sample counts of this scale (default smoke)")
    m.add_argument("--what", nargs="+", default=["gradients", "value"],
                   choices=("gradients", "value", "steps", "landscape"))
    m.add_argument("--seed", type=opt.SEED, default=0,
                   help=f"measurement seed, 0..{opt.SEED_MAX} (default 0)")
    m.add_argument("--out", help="write the full results as JSON here")
    m.add_argument("--quiet", action="store_true")
    _add_backend_args(m)
    m.set_defaults(func=cmd_measure)
    pl = sub.add_parser("plan", help="what a claims run will train, measure and cost, without "
                        "sampling", description="Agents to train, measurements, state-action "
                        "pairs per claim family and in total, and the expected wall time here and "
                        "on a cluster, from throughput measured on the spot (a few seconds per "
                        "environment).")
    pl.add_argument("--scale", default="default", help="scale profile (default: default)")
    pl.add_argument("--protocol", default=None, help="authors, corrected, table1, a "
                    "comma-separated list, or all (default: the scale's)")
    pl.add_argument("--cores", type=opt.COUNT, default=100,
                    help="cores of the cluster estimate (default 100)")
    pl.add_argument("--efficiency", type=opt.FRACTION, default=None,
                    help="fraction of the cores' time spent on tasks, in (0, 1] (default 0.8)")
    pl.add_argument("--json", action="store_true", help="machine-readable output")
    pl.set_defaults(func=cmd_plan)
    sub.add_parser("report", help="re-render reports/<run-id>/index.html from results.json",
                   add_help=False)
    return parser


RESUME_HINT = "re-run the same command to resume"
STOP_RAY_S = 20.0
"""Seconds a SIGTERM'd command gives Ray to stop before it dies of the signal anyway (measured:
1.8 s after `kill PID`, 8.6 s after a kill of its whole process group, whose Ray processes
are then gone before the driver asks them to stop)."""


def _say_terminated(owner: int) -> Any:
    """On SIGTERM (``kill``, a scheduler, a CI timeout), say how to resume, then die of it.

    The command dies by the signal as it would without this handler (exit status 143 in a
    shell), so its pool workers die with it (:mod:`pgclaims.agents.lifeline`) instead of being
    waited for, and every finished piece is already on disk; a local Ray it started is stopped
    first (:func:`pgclaims.agents.backend.stop_ray`, at most :data:`STOP_RAY_S`). Forked
    workers inherit the handler: only the command itself speaks. Returns the handler it
    replaced (None off the main thread, where none can be set)."""

    def handler(signum: int, frame: object) -> None:
        signal.signal(signum, signal.SIG_DFL)  # a second SIGTERM ends the process at once
        try:
            if os.getpid() == owner:
                try:
                    os.write(2, f"pgclaims: terminated; {RESUME_HINT}\n".encode())
                except OSError:  # stderr's reader is gone: say nothing, still stop
                    pass
                from pgclaims.agents.backend import ray_connected, stop_ray

                if ray_connected():
                    # Ray may wait on processes a group-wide kill ended at the same moment
                    watchdog = threading.Timer(STOP_RAY_S, os.kill, (os.getpid(), signum))
                    watchdog.daemon = True
                    watchdog.start()
                    stop_ray()
        finally:  # whatever happened above, die of the signal
            os.kill(os.getpid(), signum)

    if threading.current_thread() is not threading.main_thread():
        return None  # only the main thread may set a handler; keep the default there
    return signal.signal(signal.SIGTERM, handler)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["report"]:
        return cmd_report(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    previous = _say_terminated(os.getpid())
    try:
        return _run(args)
    finally:
        if previous is not None:  # main() called in-process (tests, notebooks) leaves no trace
            signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace) -> int:
    try:
        _use_backend(args)
        return args.func(args)
    except KeyboardInterrupt:
        print(f"pgclaims: interrupted; {RESUME_HINT}", file=sys.stderr)
        return 130
    except OSError as exc:  # a full disk, a read-only folder, a file where a folder goes
        from pgclaims.fsio import describe

        print(f"pgclaims {args.cmd}: error: {describe(exc)}", file=sys.stderr)
        return 2
    except (ValueError, LookupError, RunLockedError) as exc:
        print(f"pgclaims {args.cmd}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
