"""Value prediction and baselines (CLAIMS.md section 2.2; Figures 3, 4, 11, 12).

The value claims pool the late checkpoints: at iteration 0 the value net has not been fit, so
its error against its own targets is 1 by construction and says nothing about fitting.
"""

from __future__ import annotations

import numpy as np
import pytest

from claims.conftest import diff_of_means, mean_of_means

TWO_K = 2048


def _value(study, env, algo, field):
    return study.per_agent(lambda s: study.over(
        study.late, lambda it: getattr(study.value(env, algo, s, it), field)))


@pytest.mark.claim("value.fits_gae_target")
def test_fits_gae_target(study, verdict, env, algo):
    verdict.check(_value(study, env, algo, "heldout_gae"), mean_of_means)


@pytest.mark.claim("value.misses_true_returns")
def test_misses_true_returns(study, verdict, env, algo):
    verdict.check(_value(study, env, algo, "heldout_returns"), mean_of_means)


@pytest.mark.claim("value.returns_gap")
def test_returns_gap(study, verdict, env, algo):
    ret = _value(study, env, algo, "heldout_returns")
    gae = _value(study, env, algo, "heldout_gae")
    units = [{"returns": r, "gae": g} for r, g in zip(ret, gae, strict=True)]
    verdict.check(units, diff_of_means("returns", "gae"), paired=True)


@pytest.mark.claim("value.train_vs_heldout")
def test_train_vs_heldout(study, verdict, env, algo):
    held = _value(study, env, algo, "heldout_returns")
    train = _value(study, env, algo, "train_returns")
    units = [{"heldout": h, "train": t} for h, t in zip(held, train, strict=True)]
    verdict.check(units, diff_of_means("heldout", "train"))


def _baselines(study, env, algo, n):
    def unit(seed):
        out = {}
        for name in ("valuenet", "true", "zero"):
            out[name] = study.over(
                study.late, lambda it, name=name: _row(study, env, algo, seed, it, name, n))
        return out

    return study.per_agent(unit)


def _row(study, env, algo, seed, it, name, n):
    g = study.gradients(env, algo, seed, it)
    return g.pairwise[name][g.at(n) if n else -1]


@pytest.mark.claim("baseline.true_beats_valuenet")
def test_true_beats_valuenet(study, verdict, env, algo):
    verdict.check(_baselines(study, env, algo, TWO_K), diff_of_means("true", "valuenet"),
                  paired=True)


@pytest.mark.claim("baseline.valuenet_beats_zero")
def test_valuenet_beats_zero(study, verdict, env, algo):
    verdict.check(_baselines(study, env, algo, None), diff_of_means("valuenet", "zero"),
                  paired=True, extra={"n": int(study.cfg.n_grid[-1])})


def _means(units, *keys):
    return (np.mean([np.mean(u[k]) for u in units]) for k in keys)


@pytest.mark.claim("baseline.valuenet_marginal")
def test_valuenet_marginal(study, verdict, env, algo):
    def ratio(units):
        cv, ct, cz = _means(units, "valuenet", "true", "zero")
        return float((cv - cz) / (ct - cz))

    def achievable(units):  # what the true value achieves over no baseline
        ct, cz = _means(units, "true", "zero")
        return float(ct - cz)

    verdict.check_ratio(_baselines(study, env, algo, TWO_K), ratio, achievable, paired=True,
                        what="c_true - c_zero, pairwise cosine at 2K")
