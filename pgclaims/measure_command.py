"""``pgclaims measure``: the paper's measurements of one agent, its arguments checked first.

Every refusal comes before the agent is sampled: a checkpoint and ``--fixture`` both given, a
malformed ``--fixture``, adapter flags without ``--adapter``, a ``--protocol`` other than the
checkpoint's, the corrected protocol on an environment without MuJoCo state, an ``--out`` that
is a folder or cannot be written, a cache folder that cannot be written.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pgclaims.agents.agent import ALGOS


def measure_summary(out: dict[str, Any]) -> dict[str, Any]:
    """The stdout view of ``pgclaims measure``: each array averaged over its last axis (the
    repeats, or the pairs' episodes), nested records too, the N grid ``n`` kept as it is;
    ``meta`` left to the ``--out`` file."""
    import numpy as np

    def brief(field: str, v: Any) -> Any:
        if isinstance(v, dict) and "__nd__" in v:
            a = np.asarray(v["__nd__"])
            return a.tolist() if field == "n" else a.mean(axis=-1).round(4).tolist()
        if isinstance(v, dict):
            return {k: brief(k, x) for k, x in v.items()}
        return v

    return {kind: {f: brief(f, v) for f, v in rec.items() if f != "meta"}
            for kind, rec in out.items()}


def _measure_args(args: argparse.Namespace) -> None:
    """Refuse contradictory or malformed ``measure`` arguments before anything is loaded."""
    sources = [name for name, given in (("a checkpoint file", args.checkpoint and
                                          not args.adapter),
                                         ("--adapter", args.adapter),
                                         ("--fixture", args.fixture)) if given]
    if len(sources) > 1:
        raise ValueError(f"give one agent: {' and '.join(sources)} were both given")
    if not args.adapter:
        stray = [flag for flag, v in (("--env", args.env), ("--vecnormalize", args.vecnormalize),
                                      ("--stats", args.stats),
                                      ("--adapter-option", args.adapter_option)) if v]
        if stray:
            raise ValueError(f"{', '.join(stray)} only apply with --adapter NAME")
    if args.fixture:
        env, algo, seed, it = args.fixture
        if algo not in ALGOS:
            raise ValueError(f"--fixture ALGO: expected one of {', '.join(ALGOS)}, got {algo!r}")
        for name, text in (("SEED", seed), ("ITERATION", it)):
            if not text.isdigit():
                raise ValueError(f"--fixture {name}: expected an integer >= 0, got {text!r} "
                                 "(--fixture ENV ALGO SEED ITERATION, e.g. Hopper-v5 ppo 0 500)")


def _check_protocol(agent: Any, what: list[str]) -> None:
    """Continued returns (the corrected protocol) need a MuJoCo environment: say so up front."""
    from pgclaims.agents.protocol import get_protocol
    from pgclaims.measure.returns import has_mujoco_state, not_mujoco

    proto = get_protocol(agent.config.protocol)
    if proto.returns_target == "continued" and {"gradients", "value"} & set(what) and (
            not has_mujoco_state(agent.config.env_id)):
        raise ValueError(f"protocol {proto.name}: {not_mujoco(agent.config.env_id)}")


def _adapter_options(args: argparse.Namespace) -> dict[str, Any]:
    options = {}
    for item in args.adapter_option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--adapter-option {item!r}: expected KEY=VALUE")
        options[key.replace("-", "_")] = value
    if args.vecnormalize:
        options["vecnormalize"] = args.vecnormalize
    if args.stats:
        options["stats"] = args.stats
    return options


def cmd_measure(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from pgclaims import fsio, measure
    from pgclaims.agents import checkpoint, fixtures
    from pgclaims.measure.cache import cache_dir, to_json
    from pgclaims.suite.scales import get_scale

    _measure_args(args)
    scale = get_scale(args.scale)
    out_path = Path(args.out) if args.out else None
    if out_path is not None:  # fail before the work, not after it
        if out_path.is_dir():
            raise IsADirectoryError(21, "is a folder; --out takes a file name", str(out_path))
        fsio.check_writable_dir(out_path.parent)
    fsio.check_writable_dir(cache_dir())
    env_id = None
    if args.adapter:
        from pgclaims.adapters import envs as adapter_envs
        from pgclaims.adapters.registry import adapt

        if not args.checkpoint or not args.env:
            raise ValueError("--adapter needs the agent's file and --env ENV_ID")
        agent = adapt(args.adapter, args.checkpoint, args.env,
                      protocol=args.protocol or "corrected", **_adapter_options(args))
        env_id = adapter_envs.base_env_id(agent.config.env_id)
    elif args.checkpoint:
        agent = checkpoint.load(args.checkpoint)
        if args.protocol and args.protocol != agent.config.protocol:
            raise ValueError(f"--protocol {args.protocol}: {args.checkpoint} was trained under "
                             f"{agent.config.protocol}, and a pgclaims checkpoint is measured "
                             "under its own protocol (leave --protocol out)")
    elif args.fixture:
        env, algo, seed, it = args.fixture
        agent = fixtures.load(env, algo, int(seed), int(it),
                              protocol=args.protocol or "authors")
    else:
        raise ValueError("give a checkpoint file or --fixture ENV ALGO SEED ITERATION")
    _check_protocol(agent, args.what)
    cfg = measure.MeasureConfig(**scale.measure_fields(env_id or agent.config.env_id))
    say = (lambda msg: print(msg, file=sys.stderr)) if not args.quiet else None
    run = {"gradients": lambda: measure.gradients(agent, cfg, args.seed, progress=say),
           "value": lambda: measure.value(agent, cfg, args.seed),
           "steps": lambda: measure.steps(agent, cfg, args.seed),
           "landscape": lambda: measure.landscapes(agent, cfg, args.seed, progress=say)}
    out = {}
    for kind in args.what:
        out[kind] = to_json(run[kind]())
    print(json.dumps(measure_summary(out), indent=1, default=str))
    if out_path is not None:
        fsio.write_json(out_path, out)
    return 0
