"""Environment ids of adapted agents, and action clipping outside the policy.

SB3 and CleanRL sample an unclipped Gaussian action, keep it (and its log-probability) for the
update, and send ``clip(action, low, high)`` to the environment. pgclaims' collector sends the
policy's sample to ``env.step`` unchanged and stores that same array for the gradient, so the
clip has to happen in the environment, not in the sampler: a sampler that returned clipped
actions would store them too, and ``log_prob`` of a clipped action is the density at the bound
of a distribution that actually has a point mass there, which biases every gradient estimate
(with a unit std and bounds +-1, a third of the actions are clipped). Not clipping at all is
not exact either: MuJoCo clamps the control to its ctrlrange, but the control cost of
Hopper/Walker2d/Humanoid is computed on the unclipped action.

Since ``make_env(env_id)`` is fixed, :func:`clipped_env_id` registers a gymnasium id
``pgclaims_clip/<Name>-v<k>`` whose environment is ``ClipAction(gym.make(<Name>-v<k>))`` (the
base's TimeLimit inside) and the adapted agent's config carries that id. The registration lives
in this process (and the forked measurement workers); call :func:`clipped_env_id` again after a
fresh start. One gap: the "continued" returns target of the corrected protocol steps
``env.unwrapped`` (past all wrappers), so its continuations send unclipped actions.
"""

from __future__ import annotations

import re
from functools import partial

import gymnasium as gym

from pgclaims.adapters.modules import AdapterError
from pgclaims.agents.envs import make_env

CLIP_NAMESPACE = "pgclaims_clip"
_ID = re.compile(r"^(?:(?P<ns>[\w.-]+)/)?(?P<name>[\w:.-]+?)-v(?P<version>\d+)$")


def check_env_id(env_id: str) -> str:
    """``env_id`` if gymnasium can make it; MuJoCo v2/v3 ids (mujoco-py, gone) are refused
    with the nearest id that works (v4 is accepted: same bindings, same observations)."""
    m = _ID.match(env_id)
    if m and m["ns"] is None and int(m["version"]) in (2, 3):
        newer = [f"{m['name']}-v{v}" for v in (4, 5) if f"{m['name']}-v{v}" in gym.registry]
        if newer:
            raise AdapterError(
                f"{env_id!r} is a mujoco-py environment that gymnasium no longer runs; use "
                f"{' or '.join(repr(n) for n in newer)} (the one your agent was trained on, "
                f"if it was one of them)")
    make_env(env_id).close()
    return env_id


def _clipped(base_id: str, **kwargs: object) -> gym.Env:
    return gym.wrappers.ClipAction(gym.make(base_id, disable_env_checker=True, **kwargs))


def clipped_env_id(env_id: str) -> str:
    """The id of ``env_id`` with actions clipped to its bounds (registered on first use)."""
    if env_id.startswith(CLIP_NAMESPACE + "/"):
        return env_id
    m = _ID.match(env_id)
    if m is None:
        raise AdapterError(f"cannot derive a clipped id from {env_id!r} (expected Name-vN)")
    ns = f"{m['ns']}." if m["ns"] else ""
    new_id = f"{CLIP_NAMESPACE}/{ns}{m['name']}-v{m['version']}"
    if new_id not in gym.registry:
        gym.register(new_id, entry_point=partial(_clipped, env_id), disable_env_checker=True)
    return new_id


def base_env_id(env_id: str) -> str:
    """The environment an id of :func:`clipped_env_id` wraps (any other id unchanged)."""
    if not env_id.startswith(CLIP_NAMESPACE + "/"):
        return env_id
    spec = gym.registry[env_id]
    return spec.entry_point.args[0]  # type: ignore[union-attr]


def max_episode_steps(env_id: str) -> int | None:
    """The time limit of the (base) environment, in steps."""
    spec = gym.registry.get(base_env_id(env_id))
    return spec.max_episode_steps if spec is not None else None
