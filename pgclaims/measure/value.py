"""Value prediction error (Figures 3, 11, 12): MRE of the value net against its targets.

MRE = mean |V(s) - y| / |y|, the target in the denominator. States with |y| below 1% of the
batch's mean |y| are excluded (a relative error is meaningless there) and counted. Targets are
in the units the net was trained on (after reward scaling and clipping):

- GAE target: V_old(s) + A_GAE(V_old), V_old the value net before its last fit (eq. 4);
  at iteration 0 there was no fit and V_old is the net itself.
- Returns target: discounted Monte Carlo returns; states whose trajectory was cut (time limit
  or batch end) less than H steps later are excluded (see :func:`mc_returns`).

Train pairs: the batch the net was last fit on (stored in the checkpoint). Held-out pairs:
fresh batches from the same policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from pgclaims.agents.agent import Agent, FitRecord, agent_advantages
from pgclaims.agents.networks import ValueNet
from pgclaims.agents.rollout import Batch
from pgclaims.measure.gradients import mc_returns
from pgclaims.measure.sampler import FrozenSampler, rng_for

REL_EPS = 0.01


def mre(pred: np.ndarray, target: np.ndarray, rel_eps: float = REL_EPS) -> tuple[float, int]:
    """Mean relative error and the number of states excluded for a near-zero target."""
    pred, target = np.asarray(pred, float), np.asarray(target, float)
    if len(target) == 0:
        return float("nan"), 0
    keep = (np.abs(target) >= rel_eps * np.abs(target).mean()) & (target != 0)
    if not keep.any():
        return float("nan"), int(len(target))
    return float(np.mean(np.abs(pred[keep] - target[keep]) / np.abs(target[keep]))), int(
        (~keep).sum())


def _values(net: ValueNet, obs: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return net(torch.from_numpy(obs)).double().numpy()


@dataclass
class ValueStudy:
    heldout_gae: np.ndarray
    heldout_returns: np.ndarray
    train_gae: np.ndarray
    train_returns: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)


def _errors(agent: Agent, v_old: ValueNet, batch: Batch | FitRecord,
            ) -> tuple[float, float, int, int, int]:
    hp = agent.hyper
    if isinstance(batch, FitRecord):
        v, gae_target = batch.values, batch.targets
    else:
        v = _values(agent.value, batch.obs)
        gae_target = agent_advantages(agent, batch, value=v_old, baseline="valuenet").targets
    e_gae, x_gae = mre(v, gae_target)
    ret, ok = mc_returns(batch, hp.gamma)
    e_ret, x_ret = mre(v[ok], ret[ok])
    return e_gae, e_ret, x_gae, x_ret, int((~ok).sum())


def value_error(agent: Agent, repeats: int, heldout_n: int, seed: int) -> ValueStudy:
    torch.set_num_threads(1)
    v_old = agent.value
    if agent.prev_value is not None:
        v_old = ValueNet(agent.obs_norm.stats.mean.shape[0])
        v_old.load_state_dict(agent.prev_value)
    sampler = FrozenSampler(agent)
    rows = [_errors(agent, v_old, sampler.batch(heldout_n, rng_for(seed, 30, r)))
            for r in range(repeats)]
    sampler.close()
    train = (float("nan"),) * 2 + (0, 0, 0)
    if agent.last_fit is not None:
        train = _errors(agent, v_old, agent.last_fit)
    return ValueStudy(
        heldout_gae=np.array([r[0] for r in rows]),
        heldout_returns=np.array([r[1] for r in rows]),
        train_gae=np.array([train[0]]),
        train_returns=np.array([train[1]]),
        meta={
            "v_old": "value net before its last fit" if agent.prev_value is not None
                     else "iteration 0: no fit yet, V_old is the net itself",
            "excluded_near_zero_target": {"heldout_gae": sum(r[2] for r in rows),
                                          "heldout_returns": sum(r[3] for r in rows),
                                          "train": train[2] + train[3]},
            "excluded_cut_tail_states": {"heldout": sum(r[4] for r in rows), "train": train[4]},
            "rel_eps": REL_EPS,
            "heldout_pairs": heldout_n * repeats,
        },
    )
