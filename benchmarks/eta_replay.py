"""Replay a claims run's ETA two ways (pairs as now, modelled core-seconds) from its logs.

usage: eta_replay.py LOG UNITS_FILE UNITS_TIMES RATES_JSON END_EPOCH DAY PROTOCOL

LOG: the run's stderr; UNITS_FILE: its .units-done, copied before the run ends; UNITS_TIMES:
"epoch line-count" of UNITS_FILE every 10 s; RATES_JSON: costs.Rates.to_dict(); DAY: YYYY-MM-DD.
Completion time of each unit (first occurrence in UNITS_FILE): gradient units from the log's
"gradient stream 10/10" lines; others from UNITS_TIMES (epoch, line count every 10 s); units
done before the first poll and not gradients: interpolated on progress.log's pairs."""
import datetime as dt
import json
import re
import sys

from pgclaims.suite import costs
from pgclaims.suite import plan as plan_mod
from pgclaims.suite.scales import get_scale

log, units_file, times_file, rates_file, end, day, protocol = sys.argv[1:8]
end = float(end)
scale = get_scale("default").override(protocols=(protocol,))
plan = plan_mod.build(scale)
rates = costs.Rates(**json.load(open(rates_file)))
lines = [l.strip() for l in open(units_file) if l.strip()]
order = [u for u in dict.fromkeys(lines) if not u.startswith(("ablation/", "training/"))]
day = dt.datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=dt.UTC)
def epoch(hms): h, m, s = map(int, hms.split(":")); return (day + dt.timedelta(hours=h, minutes=m, seconds=s)).timestamp()
grad = {}
prog = []
start = None
for l in open(log):
    m = re.match(r"\[gw\d (\d\d:\d\d:\d\d)\] gradients (\S+) (\w+) seed (\d+) it (\d+): gradient stream 10/10", l)
    if m:
        grad.setdefault(f"gradients/{protocol}/{m[2]}/{m[3]}/{m[4]}/{m[5]}", epoch(m[1]))
    m = re.search(r"\[main (\d\d:\d\d:\d\d)\] run: (\d+)/\d+ tests, ~([\d.e]+) of ~([\d.e]+) pairs done, elapsed ([\d.]+) (s|min)", l)
    if m:
        t = epoch(m[1]); el = float(m[5]) * (60 if m[6] == "min" else 1)
        start = t - el if start is None else start
        prog.append((t, float(m[3])))
polls = [tuple(map(float, l.split())) for l in open(times_file) if l.strip()]
first_line_index = {u: lines.index(u) for u in order}
done_at = {}
for u in order:
    if u in grad:
        done_at[u] = grad[u]; continue
    i = first_line_index[u]
    for t, n in polls:
        if n > i:
            done_at[u] = t; break
undated = [u for u in order if u not in done_at]
# interpolate undated units: the time progress.log's pairs first reach the pairs of units dated
# before plus the undated ones in order
tasks = plan.tasks
pairs = {u: tasks[u].pairs for u in order if u in tasks}
print(f"{len(order)} units, {len(grad)} gradient-dated, {len(undated)} undated, "
      f"{sum(1 for u in order if u not in tasks)} not in plan")
for u in undated:
    idx = order.index(u)
    cum = sum(pairs.get(v, 0) for v in order[:idx + 1])
    t = next((t for t, p in prog if p >= cum * 0.999), end)
    done_at[u] = t
sec = {u: costs.task_seconds(tasks[u], plan, rates)[0] for u in order if u in tasks}
ptot, stot = sum(pairs.values()), sum(sec.values())
print(f"total pairs {ptot:.3g} (log says {prog[0]}), modelled core-h {stot/3600:.2f}, wall {(end-start)/60:.1f} min")
by = {}
for u in order:
    if u in tasks:
        k = tasks[u].kind + "/" + tasks[u].env
        a = by.setdefault(k, [0, 0.0]); a[0] += pairs[u]; a[1] += sec[u]
for k, (p, s) in sorted(by.items()):
    print(f"  {k:28s} pairs {p/ptot:6.1%}  core-s {s/stot:6.1%}  s/Mpair {s/p*1e6:8.1f}")
total = end - start
print("elapsed  | actual left | ETA by pairs (log) | ETA by pairs (replay) | ETA by core-seconds")
for frac in (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
    t = start + frac * total
    dp = sum(pairs[u] for u in pairs if done_at[u] <= t) / ptot
    ds = sum(sec[u] for u in sec if done_at[u] <= t) / stot
    el = t - start
    eta = lambda f: el * (1 - f) / f if f > 0 else float("nan")
    print(f"{el/60:6.1f} min | {(end-t)/60:6.1f} | pairs {dp:5.1%} {eta(dp)/60:6.1f} | core-s {ds:5.1%} {eta(ds)/60:6.1f}")
