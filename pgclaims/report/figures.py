"""Redrawn paper figures from ``results["figures"]`` (Figures 1-12 of Ilyas et al., 2020).

Each function draws the series the claims suite measured as given: means and interval bounds
come from results.json; nothing is averaged or bootstrapped here. A key that is absent means
the scale did not measure it, and the page says so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from .plotting import TWO_K, figure_svg

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")
ALGO_COLORS = {"ppo": "#1f77b4", "trpo": "#d62728"}
BASELINE_COLORS = {"valuenet": "#1f77b4", "true": "#2ca02c", "zero": "#d62728"}
BASELINE_LABELS = {"valuenet": "value network", "true": "true value", "zero": "no baseline"}
SPLIT_COLORS = {"train": "#1f77b4", "heldout": "#ff7f0e"}
REGIME_ORDER = ("2k", "20k", "100k", "1e6", "ref")
# 16 levels: a colorbar of 50 or more colours is rasterised into an embedded PNG, and a vector
# one of 256 slices would weigh ~50 kB per landscape panel.
HEAT_CMAP = colormaps["viridis"].resampled(16)
PANEL_W, PANEL_H = 2.35, 1.95  # inches per subplot


@dataclass(frozen=True)
class Drawing:
    """One SVG of a paper figure (or why it could not be drawn)."""

    caption: str
    svg: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class PaperFigure:
    """A redrawn paper figure; no drawings means "not measured at this scale"."""

    anchor: str
    title: str
    description: str
    drawings: list[Drawing] = field(default_factory=list)


def _arr(values: Iterable[Any]) -> np.ndarray:
    return np.array(list(values), dtype=float)  # JSON null -> nan, drawn as a gap


def _group(rows: list[dict[str, Any]], *keys: str) -> dict[tuple[Any, ...], list[dict[str, Any]]]:
    """Rows grouped by ``keys`` in order of first appearance (the suite's order)."""
    out: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(tuple(row[k] for k in keys), []).append(row)
    return out


def _seed_color(seeds: list[Any], seed: Any) -> str:
    return PALETTE[sorted(set(seeds)).index(seed) % len(PALETTE)]


def _safe(caption: str, draw: Callable[[Figure], None], **svg_args: Any) -> Drawing:
    """Draw one SVG; a malformed series must not cost the whole report, so say what failed."""
    try:
        return Drawing(caption, svg=figure_svg(draw, **svg_args))
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        return Drawing(caption, error=f"could not be drawn: {type(exc).__name__}: {exc}")


def _training(rows: list[dict[str, Any]], uid: str) -> list[Drawing]:
    envs = _group(rows, "env")

    def draw(fig: Figure) -> None:
        axes = fig.subplots(1, len(envs), squeeze=False)[0]
        for ax, ((env,), env_rows) in zip(axes, envs.items(), strict=True):
            seen: set[str] = set()
            for r in env_rows:
                algo = r["algo"]
                ax.plot(_arr(r["iteration"]), _arr(r["mean_return"]), lw=1.1, alpha=0.85,
                        color=ALGO_COLORS.get(algo, "#555555"),
                        label=None if algo in seen else algo.upper())
                seen.add(algo)
            ax.set_title(env)
            ax.set_xlabel("iteration")
            ax.legend()
        axes[0].set_ylabel("mean episode return (raw)")

    caption = "One line per agent (training seed), coloured by algorithm."
    return [_safe(caption, draw, width=PANEL_W * 1.4 * len(envs) + 0.4, height=PANEL_H + 0.4,
                  uid=uid, title="Fig 8 training curves")]


def _ablations(rows: list[dict[str, Any]], uid: str) -> list[Drawing]:
    """Return vs pairs of the training ablations, one drawing per env and algorithm: the
    baseline study, then the step-size grid at each batch size; one thin line per seed."""
    drawings = []
    for k, ((env, algo), group) in enumerate(_group(rows, "env", "algo").items()):
        panels = _group(sorted(group, key=lambda r: (r["study"] != "baseline", r["steps"])),
                        "study", "steps")
        grid = sorted({r["multiplier"] for r in group if r["study"] == "regime"})

        def draw(fig: Figure, panels: dict = panels, grid: list[float] = grid) -> None:
            axes = fig.subplots(1, len(panels), squeeze=False, sharex=True, sharey=True)[0]
            for ax, ((study, steps), rows_) in zip(axes, panels.items(), strict=True):
                labelled: set[str] = set()
                for r in rows_:
                    if study == "baseline":
                        color = BASELINE_COLORS[r["baseline"]]
                        name = BASELINE_LABELS[r["baseline"]]
                    else:
                        color = _multiplier_color(grid, r["multiplier"])
                        name = f"step x{r['multiplier']:g}"
                    few = len(r["pairs"]) < 3  # a run of one or two iterations: show points
                    ax.plot(_arr(r["pairs"]), _arr(r["mean_return"]), color=color, lw=0.8,
                            alpha=0.75, marker="." if few else None,
                            label=None if name in labelled else name)
                    labelled.add(name)
                ax.set_title("baseline, 2048/it" if study == "baseline"
                             else f"step size, {steps}/it")
                ax.set_xlabel("state-action pairs")
                ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
                ax.legend(loc="best", fontsize="small")
            axes[0].set_ylabel("mean episode return (raw)")

        knob = ("Adam LR, annealed over each run's own iterations" if algo == "ppo"
                else "KL bound" if algo == "trpo" else "step size")
        caption = (f"{env} · {algo.upper()}: one thin line per training seed; every run the "
                   f"same budget of pairs; step sizes as multiples of Table 1's ({knob}).")
        drawings.append(_safe(caption, draw, width=PANEL_W * 1.25 * len(panels) + 0.5,
                              height=PANEL_H + 0.45, uid=f"{uid}-{k}",
                              title=f"training ablations, {env} {algo}"))
    return drawings


def _multiplier_color(grid: list[float], m: float) -> str:
    """Step sizes from small (light) to large (dark) on one hue scale."""
    cmap = colormaps["viridis"]
    at = grid.index(m) / max(len(grid) - 1, 1) if m in grid else 0.5
    r, g, b, _ = cmap(0.85 - 0.75 * at)
    return f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"


def _curves(rows: list[dict[str, Any]], uid: str, ylabel: str, series: str | None) -> list[Drawing]:
    """Figures 1, 2, 4, 9, 10: a quantity vs N (log), one panel per checkpoint iteration."""
    drawings = []
    for k, ((env, algo), group) in enumerate(_group(rows, "env", "algo").items()):
        iterations = sorted({r["iteration"] for r in group})
        seeds = [r["seed"] for r in group]

        def draw(fig: Figure, group: list[dict[str, Any]] = group,
                 iterations: list[int] = iterations, seeds: list[Any] = seeds) -> None:
            axes = fig.subplots(1, len(iterations), squeeze=False, sharey=True)[0]
            for ax, it in zip(axes, iterations, strict=True):
                labelled: set[Any] = set()
                for r in (r for r in group if r["iteration"] == it):
                    n = _arr(r["n"])
                    ok = n > 0  # log axis
                    if series is None:
                        color, name = _seed_color(seeds, r["seed"]), f"agent {r['seed']}"
                    else:
                        color = BASELINE_COLORS.get(r[series], "#555555")
                        name = BASELINE_LABELS.get(r[series], r[series])
                    ax.plot(n[ok], _arr(r["mean"])[ok], color=color, lw=1.2, marker=".", ms=3,
                            label=None if name in labelled else name)
                    ax.fill_between(n[ok], _arr(r["lo"])[ok], _arr(r["hi"])[ok], color=color,
                                    alpha=0.18, lw=0)
                    labelled.add(name)
                ax.axvline(TWO_K, color="#444444", ls=":", lw=1)
                ax.set_xscale("log")
                ax.set_title(f"iteration {it}")
                ax.set_xlabel("state-action pairs N")
            axes[0].set_ylabel(ylabel)
            axes[-1].legend(loc="best")

        caption = (f"{env} · {algo.upper()}: shaded bands are the 95% intervals written by the "
                   "claims suite; dotted line at N = 2048 (one iteration's samples).")
        drawings.append(_safe(caption, draw, width=PANEL_W * len(iterations) + 0.5,
                              height=PANEL_H + 0.35, uid=f"{uid}-{k}",
                              title=f"{ylabel} vs N, {env} {algo}"))
    return drawings


def _value_mre(rows: list[dict[str, Any]], uid: str) -> list[Drawing]:
    drawings = []
    targets = (("gae", "GAE target V_old + A_GAE"), ("returns", "Monte Carlo returns"))
    for k, ((env, algo), group) in enumerate(_group(rows, "env", "algo").items()):

        def draw(fig: Figure, group: list[dict[str, Any]] = group) -> None:
            axes = fig.subplots(1, 2, squeeze=False, sharey=True)[0]
            for ax, (target, title) in zip(axes, targets, strict=True):
                labelled: set[str] = set()
                lines = _group([r for r in group if r["target"] == target], "split", "seed")
                for (split, _seed), pts in lines.items():
                    pts = sorted(pts, key=lambda r: r["iteration"])
                    ax.plot([r["iteration"] for r in pts], _arr(r["mre"] for r in pts),
                            marker="o", ms=3, lw=1, ls="-" if split == "train" else "--",
                            color=SPLIT_COLORS[split],
                            label=None if split in labelled else split.replace("heldout",
                                                                               "held-out"))
                    labelled.add(split)
                ax.set_title(f"against {title}")
                ax.set_xlabel("iteration")
                if labelled:
                    ax.legend()
            axes[0].set_ylabel("mean relative error")

        caption = (f"{env} · {algo.upper()}: value prediction error on the batch the value "
                   "network was fit on (train) and on a fresh batch (held-out); one line per "
                   "agent.")
        drawings.append(_safe(caption, draw, width=PANEL_W * 2.6, height=PANEL_H + 0.35,
                              uid=f"{uid}-{k}", title=f"value MRE, {env} {algo}"))
    return drawings


def _heatmap(fig: Figure, ax: Any, row: dict[str, Any]) -> None:
    a, b, z = _arr(row["a"]), _arr(row["b"]), np.array(row["z"], dtype=float)
    mesh = ax.pcolormesh(a, b, z.T, shading="nearest", cmap=HEAT_CMAP)
    if len(a) > 2 and len(b) > 2 and np.isfinite(z).all() and np.ptp(z) > 0:
        ax.contour(a, b, z.T, levels=5, colors="white", linewidths=0.6, alpha=0.8)
    fig.colorbar(mesh, ax=ax, shrink=0.85, pad=0.02)
    ax.set_xlabel("a (along the step)")
    ax.set_ylabel("b (random direction)")


def _ordered_regimes(regimes: Iterable[str]) -> list[str]:
    known = [r for r in REGIME_ORDER if r in regimes]
    return known + sorted(set(regimes) - set(known))


def _landscapes(rows: list[dict[str, Any]], uid: str, surrogate: bool) -> list[Drawing]:
    """Fig 5 (reward at each sample regime) or Fig 6/7 (surrogate next to true reward)."""
    drawings = []
    for k, ((env, algo), group) in enumerate(_group(rows, "env", "algo").items()):
        seed = min(r["seed"] for r in group)
        mine = {(r["iteration"], r["kind"], r["regime"]): r for r in group if r["seed"] == seed}
        iterations = sorted({it for it, _, _ in mine})
        reward = _ordered_regimes({g for _, kind, g in mine if kind == "reward"})
        if surrogate:
            sur = _ordered_regimes({g for _, kind, g in mine if kind == "surrogate"})
            if not sur:
                continue
            # The true reward shown beside the surrogate is the highest-sample estimate.
            columns = [("surrogate", g) for g in sur] + [("reward", g) for g in reward[-1:]]
        else:
            columns = [("reward", g) for g in reward]
        if not columns:
            continue

        def draw(fig: Figure, mine: dict = mine, iterations: list[int] = iterations,
                 columns: list[tuple[str, str]] = columns) -> None:
            axes = fig.subplots(len(iterations), len(columns), squeeze=False)
            for i, it in enumerate(iterations):
                for j, (kind, regime) in enumerate(columns):
                    ax = axes[i][j]
                    row = mine.get((it, kind, regime))
                    if row is None:
                        ax.set_axis_off()
                        continue
                    _heatmap(fig, ax, row)
                    ax.set_title(f"it {it} · {kind} · {regime} pairs", fontsize=8)

        ratios = "; ".join(f"it {it} {kind} {g}: {r['step_norm_ratio']:.3g}"
                           for (it, kind, g), r in sorted(mine.items(), key=lambda kv: kv[0])
                           if (kind, g) in columns and r.get("step_norm_ratio") is not None)
        what = "surrogate objective and true reward" if surrogate else "true reward"
        caption = (f"{env} · {algo.upper()}, agent {seed}: {what} over theta0 + a·step + b·d "
                   f"(rows: checkpoint iteration). step_norm_ratio |step|/|d|: {ratios or 'n/a'}.")
        drawings.append(_safe(caption, draw, width=2.55 * len(columns) + 0.3,
                              height=2.05 * len(iterations) + 0.2, uid=f"{uid}-{k}",
                              title=f"{what} landscapes, {env} {algo}"))
    return drawings


def paper_figures(figures: dict[str, Any]) -> list[PaperFigure]:
    """All redrawn figures, in paper order; a figure without data has no drawings."""

    def get(key: str) -> list[dict[str, Any]]:
        return figures.get(key) or []

    land = get("landscape")
    return [
        PaperFigure("fig-8", "Fig 8 — mean episode return during training",
                    "Agents improve throughout training.",
                    _training(get("training_curve"), "fig8") if get("training_curve") else []),
        PaperFigure("fig-8-ablations", "Fig 8 style — training ablations",
                    "Mean episode return vs state-action pairs of agents trained without a "
                    "baseline (Sec 2.2: baseline.needed_for_reward) and with the step size "
                    "scaled at 2048 and 20480 pairs per iteration (Sec 1, 5: "
                    "regime.more_samples_lower_lr).",
                    _ablations(get("ablation_curve"), "fig8a")),
        PaperFigure("fig-1-9", "Fig 1, 9 — pairwise cosine similarity of gradient estimates",
                    "Mean pairwise cosine of independent gradient estimates vs N.",
                    _curves(get("grad_pairwise"), "fig1", "pairwise cosine", None)),
        PaperFigure("fig-2-10", "Fig 2, 10 — cosine similarity with the true gradient",
                    "Mean cosine between an N-sample estimate and the true gradient.",
                    _curves(get("grad_true"), "fig2", "cosine with true gradient", None)),
        PaperFigure("fig-3-11-12", "Fig 3, 11, 12 — value prediction error",
                    "Mean relative error of the value network against its GAE target and "
                    "against Monte Carlo returns, on train and held-out pairs.",
                    _value_mre(get("value_mre"), "fig3")),
        PaperFigure("fig-4", "Fig 4 — gradient agreement with three baselines",
                    "Pairwise cosine vs N with the value network, a true value function and "
                    "no baseline.",
                    _curves(get("baselines"), "fig4", "pairwise cosine", "baseline")),
        PaperFigure("fig-5", "Fig 5 — true reward landscape at different sample counts",
                    "True reward over a grid around the checkpoint, estimated from "
                    "different numbers of state-action pairs.",
                    _landscapes(land, "fig5", surrogate=False)),
        PaperFigure("fig-6-7", "Fig 6, 7 — surrogate objective vs true reward landscape",
                    "The algorithm's surrogate next to the true reward on the same grid.",
                    _landscapes(land, "fig6", surrogate=True)),
    ]
