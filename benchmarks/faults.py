"""The fault table (issue 20): faults and bad inputs tried as a user tries them, through the
real command line, each in a scratch folder of its own.

Each :class:`Case` is one command (``pgclaims ...`` or ``pytest claims ...``) after a setup
that makes the fault (a damaged file, a read-only or full file system, a lock held by another
process, a signal while it runs). :func:`run_case` runs it with a timeout, in a session of its
own marked by an environment variable, and checks what pgclaims guarantees:

- the exit status is the expected one, and an error is one line naming the file or option
  (the words of :attr:`Case.says`), never a traceback;
- no hang (the timeout) and no process of the command still running 5 s after it ended;
- every file that was there before is there after, byte for byte (except those the case
  expects to change), no temporary file is left, and a refused command writes nothing.

``python benchmarks/faults.py`` prints the table as markdown (docs/faults.md is its output);
``tests/test_faults_table.py`` runs the same cases as tests. Shared material (a 2-iteration
``pgclaims train`` run, a 2-iteration fixture store, an SB3 zip) is made once per process and
copied into each case's folder. Nothing here touches the repository's ``fixtures/`` or
``reports/``: every case points ``PGCLAIMS_FIXTURES`` and ``PGCLAIMS_CACHE`` into its folder.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # ``python benchmarks/faults.py`` from a fresh clone
    sys.path.insert(0, str(REPO))

from tests.procs import descendants, running, terminal_sigint, with_env  # noqa: E402

MARK = "PGCLAIMS_FAULT_CASE"
"""The environment variable that marks every process a case starts (strays are found by it)."""
GRACE_S = 5.0
"""How long after a command ends its children may take to end."""
RESULTS = REPO / "tests" / "data" / "results.json"
TRAIN = ("train", "--env", "Hopper-v5", "--algo", "ppo", "--iterations", "2", "--steps", "256",
         "--quiet")
"""The tiny run every ``train`` case starts from (the shared ``run`` is this with --out run)."""
FIXTURE = ("fixtures", "train", "--env", "Hopper-v5", "--algo", "trpo", "--iterations", "2",
           "--quiet")
"""The smallest fixture the store holds (the shared ``fx`` store is this)."""


# ---------------------------------------------------------------------------------------------
# Cases


@dataclass
class Scratch:
    """A case's folder and what its setup started (processes, mounts) to undo afterwards."""

    dir: Path
    port: int = 0
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    mounts: list[Path] = field(default_factory=list)
    skip: str | None = None

    def path(self, rel: str) -> Path:
        """``rel`` under the folder, ``{key}`` standing for the shared fixture's store key."""
        return self.dir / rel.format(key=_KEY.get("fx", ""))


Setup = Callable[[Scratch], None]


@dataclass(frozen=True)
class Case:
    """One fault: the command (words after ``pgclaims``, or starting with ``pytest``, with
    ``{s}`` the case folder and ``{port}`` a closed port), what it must do, how it is set up."""

    id: str
    fault: str
    argv: tuple[str, ...]
    rc: int
    says: tuple[str, ...] = ()
    """Words the error line (or, for rc 0 and 1, the output) must hold."""
    expected: str = ""
    """The expected outcome in words (the table's column)."""
    needs: tuple[str, ...] = ()
    """Shared material copied in first: ``run`` (to run/), ``fx`` (to fx/), ``sb3`` (model.zip)."""
    setup: Setup | None = None
    env: tuple[tuple[str, str], ...] = ()
    signal: int | None = None
    """Sent to the command once :attr:`ready` holds (SIGKILL: its children must die too)."""
    ready: Callable[[Scratch, int], bool] | None = None
    group: bool = False
    """Send :attr:`signal` to the command's process group (a scheduler's or systemd's stop),
    not to the command alone (``kill PID``)."""
    may_change: tuple[str, ...] = ()
    """Prefixes of files (relative to the folder) the command may rewrite or remove."""
    may_write: bool = False
    """A failing command may leave new files (a kill in the middle of training)."""
    lacks: tuple[str, ...] = ()
    """Words the output must not hold (a silent wrong result: 'nan', a left-out env)."""
    timeout: float = 120.0


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _mount(s: Scratch, name: str, opts: str) -> Path:
    where = s.path(name)
    where.mkdir(exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)],
                          capture_output=True, timeout=30, check=False)
    if done.returncode != 0:
        s.skip = f"cannot mount a tmpfs here ({done.stderr.decode().strip()[:60]})"
    else:
        s.mounts.append(where)
    return where


def read_only_fs(name: str = "ro") -> Setup:
    """A real read-only file system at ``name`` (a tmpfs mounted ro)."""
    return lambda s: (_mount(s, name, "ro,size=64k"), None)[1]


def full_fs(name: str = "full", keep: dict[str, str] | None = None) -> Setup:
    """A real 64 KiB file system at ``name``, holding ``keep`` then filled to the last byte."""

    def setup(s: Scratch) -> None:
        where = _mount(s, name, "size=64k")
        if s.skip:
            return
        for rel, text in (keep or {}).items():
            (where / rel).write_text(text)
        fd = os.open(where / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            while os.write(fd, b"\0" * 512):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
    return setup


def chain(*steps: Setup) -> Setup:
    def setup(s: Scratch) -> None:
        for step in steps:
            step(s)
    return setup


def write(rel: str, text: str) -> Setup:
    def setup(s: Scratch) -> None:
        s.path(rel).parent.mkdir(parents=True, exist_ok=True)
        s.path(rel).write_text(text)
    return setup


def edit_json(rel: str, edit: Callable[[Any], Any]) -> Setup:
    """Rewrite the JSON file ``rel`` with ``edit(doc)`` (its return value, or doc edited)."""

    def setup(s: Scratch) -> None:
        doc = json.loads(s.path(rel).read_text())
        out = edit(doc)
        s.path(rel).write_text(json.dumps(doc if out is None else out, indent=1))
    return setup


def results(edit: Callable[[Any], Any] | None = None) -> Setup:
    """A claims run folder rep/ with the test data's results.json, edited by ``edit``."""

    def setup(s: Scratch) -> None:
        s.path("rep").mkdir(exist_ok=True)
        shutil.copy(RESULTS, s.path("rep/results.json"))
        if edit is not None:
            edit_json("rep/results.json", edit)(s)
    return setup


def flip_bit(rel: str) -> Setup:
    """Flip the sign bit of the file's last float32 (a tensor value, not the header)."""

    def setup(s: Scratch) -> None:
        data = bytearray(s.path(rel).read_bytes())
        data[-1] ^= 0x80
        s.path(rel).write_bytes(bytes(data))
    return setup


def truncate(src: str, dst: str) -> Setup:
    def setup(s: Scratch) -> None:
        data = s.path(src).read_bytes()
        s.path(dst).write_bytes(data[: len(data) // 2])
    return setup


def nan_checkpoint(src: str, dst: str) -> Setup:
    """``dst``: ``src`` with a NaN in the policy's weights and an inf in its value net's, the
    header kept (a checkpoint written by something else than pgclaims' checked save)."""

    def setup(s: Scratch) -> None:
        from safetensors import safe_open
        from safetensors.torch import load_file, save_file

        tensors = load_file(str(s.path(src)))
        with safe_open(str(s.path(src)), "pt") as f:
            meta = f.metadata()
        name = next(k for k in tensors if k.startswith("policy/"))
        tensors[name] = tensors[name].clone()
        tensors[name].view(-1)[0] = math.nan
        value = next(k for k in tensors if k.startswith("value/"))
        tensors[value] = tensors[value].clone()
        tensors[value].view(-1)[0] = math.inf
        save_file(tensors, str(s.path(dst)), metadata=meta)
    return setup


def _python(code: str, *args: str, s: Scratch) -> subprocess.Popen[bytes]:
    """A helper process of the setup (killed after the case), once it printed a line."""
    proc = subprocess.Popen([sys.executable, "-c", code, *args], cwd=s.dir,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": _pythonpath()})
    s.procs.append(proc)
    assert proc.stdout is not None
    proc.stdout.readline()
    return proc


def hold_run_lock(rel: str) -> Setup:
    """Another process holds the training lock of the run folder ``rel``."""
    code = ("import sys, time; from pathlib import Path; from pgclaims.agents import runlock\n"
            "with runlock.hold(Path(sys.argv[1])):\n    print('held', flush=True); "
            "time.sleep(600)")

    def setup(s: Scratch) -> None:
        s.path(rel).mkdir(parents=True, exist_ok=True)
        _python(code, str(s.path(rel)), s=s)
    return setup


def edit_cache_entry(s: Scratch) -> None:
    """Measure once, then change one number of the cache entry to another valid one."""
    _cli(MEASURE_VALUE, s)
    [entry] = s.path("cache").rglob("*.json")
    doc = json.loads(entry.read_text())
    doc["result"]["meta"] = {"edited": True}
    entry.write_text(json.dumps(doc))


def hold_cache_lock(s: Scratch) -> None:
    """Measure once, remove the entry and hold its lock for 12 s, as a second identical
    ``measure`` computing it would."""
    _cli(MEASURE_VALUE, s)
    [entry] = s.path("cache").rglob("*.json")
    entry.unlink()
    code = ("import sys, time; from filelock import FileLock\n"
            "lock = FileLock(sys.argv[1], is_singleton=False); lock.acquire()\n"
            "print('held', flush=True); time.sleep(12); lock.release()")
    _python(code, f"{entry}.lock", s=s)


def sb3_without(field_name: str) -> Setup:
    """model.zip with ``data.FIELD`` removed (an SB3 zip of another version, or edited)."""

    def setup(s: Scratch) -> None:
        import zipfile

        with zipfile.ZipFile(s.path("model.zip")) as z:
            files = {n: z.read(n) for n in z.namelist()}
        data = json.loads(files["data"])
        data.pop(field_name)
        files["data"] = json.dumps(data).encode()
        with zipfile.ZipFile(s.path("m.zip"), "w") as z:
            for name, blob in files.items():
                z.writestr(name, blob)
    return setup


def agents_manifest(env_id: str) -> Setup:
    doc = {"source": "mine", "agents": [
        {"env": env_id, "algo": "ppo", "seed": s, "adapter": "sb3",
         "checkpoints": {"0": "model.zip"}} for s in (0, 1)]}
    return write("agents.json", json.dumps(doc))


def workers(n: int) -> Callable[[Scratch, int], bool]:
    """Ready once the command has ``n`` descendants (its pool or xdist workers)."""
    return lambda s, pid: len(descendants(pid)) >= n


def at_work(s: Scratch, pid: int) -> bool:
    """A claims run's workers are at work: 2 of them, and a 'training' progress line."""
    return len(descendants(pid)) >= 2 and any(
        "training" in p.read_text() for p in s.path("reports").glob("*/progress.log"))


def ray_workers(s: Scratch, pid: int) -> bool:
    """Ready once a Ray worker below the command runs a task: ``ray::<task>``, not one of Ray's
    agents and not IDLE (the raylet starts idle workers before ray.init has returned)."""
    for child, _ in descendants(pid):
        try:
            cmd = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if cmd.startswith(b"ray::") and not cmd.startswith(
                (b"ray::IDLE", b"ray::Dashboard", b"ray::Runtime")):
            return True
    return False


def exists(rel: str) -> Callable[[Scratch, int], bool]:
    return lambda s, pid: s.path(rel).exists()


MEASURE_VALUE = ("measure", "run/ckpt_0002.safetensors", "--what", "value", "--quiet")
CLAIMS = ("pytest", "claims", "--scale", "smoke", "-p", "no:cacheprovider", "-q",
          "--reports-dir", "{s}/reports")

CASES: list[Case] = [
    # -- nothing finished is destroyed ---------------------------------------------------------
    Case("rerun-finished-fixture", "rerun a finished `fixtures train`", FIXTURE, 0,
         ("already in", "sha256", "nothing trained"), "rc 0, verified, nothing written",
         needs=("fx",)),
    Case("rerun-finished-run", "rerun a finished `train`", (*TRAIN, "--out", "run"), 0,
         ("already finished", "sha256", "nothing to train"), "rc 0, verified, nothing written",
         needs=("run",)),
    Case("damaged-manifest", "`fixtures train` with a damaged manifest.json", FIXTURE, 2,
         ("fx/manifest.json",), "refused before training",
         needs=("fx",), setup=write("fx/manifest.json", '{"schema": 1, "agents": [')),
    Case("manifest-is-a-folder", "manifest.json is a folder", ("fixtures", "list"), 2,
         ("fx/manifest.json",), "one line naming it",
         setup=lambda s: s.path("fx/manifest.json").mkdir(parents=True)),
    Case("two-trains-one-folder", "a second `train --out` into a folder being trained",
         (*TRAIN, "--out", "run2"), 2, ("run2", "another process is training", "pid"),
         "refused, naming the holder", setup=hold_run_lock("run2")),
    Case("resume-other-config", "`train` into a finished run's folder with another config",
         ("train", "--env", "Hopper-v5", "--algo", "ppo", "--iterations", "3", "--steps", "256",
          "--quiet", "--out", "run"), 2, ("run", "different config"), "refused, run kept",
         needs=("run",)),
    Case("damaged-run-config", "`train` resuming a run whose config.json is damaged",
         (*TRAIN, "--out", "run"), 2, ("run/config.json",), "refused, naming the file",
         needs=("run",), setup=write("run/config.json", "{not json")),
    Case("sigint-train", "Ctrl-C during `train`",
         ("train", "--env", "Hopper-v5", "--algo", "ppo", "--iterations", "400", "--steps",
          "256", "--quiet", "--out", "run3"), 130, ("re-run the same command to resume",),
         "rc 130, resumable", signal=signal.SIGINT, ready=exists("run3/ckpt_0000.safetensors"),
         may_write=True),
    Case("sigterm-train", "SIGTERM (`kill`) during `train`",
         ("train", "--env", "Hopper-v5", "--algo", "ppo", "--iterations", "400", "--steps",
          "256", "--quiet", "--out", "run4"), -signal.SIGTERM,
         ("terminated", "re-run the same command to resume"), "killed by it, says how to resume",
         signal=signal.SIGTERM, ready=exists("run4/ckpt_0000.safetensors"), may_write=True),
    Case("sigterm-train-set", "SIGTERM (`kill`) of `fixtures train-set --jobs 2`",
         ("fixtures", "train-set", "--env", "Hopper-v5", "--algo", "ppo", "--seeds", "0,1",
          "--iterations", "200", "--jobs", "2"), -signal.SIGTERM,
         ("terminated", "re-run the same command to resume"),
         "says how to resume, no worker alive 5 s later", signal=signal.SIGTERM,
         ready=workers(2), may_write=True),
    # -- every number checked ------------------------------------------------------------------
    Case("value-lr-inf", "`--value-lr inf`", (*TRAIN, "--value-lr", "inf"), 2,
         ("--value-lr", "inf"), "refused, naming the option"),
    Case("max-kl-negative", "`--max-kl -1`",
         ("train", "--env", "Hopper-v5", "--algo", "trpo", "--iterations", "2", "--max-kl",
          "-1"), 2, ("--max-kl",), "refused, naming the option"),
    Case("checkpoints-empty", "`--checkpoints ''`", (*TRAIN, "--checkpoints", ""), 2,
         ("--checkpoints",), "refused, naming the option"),
    Case("steps-too-few", "`--steps 16` (fewer than the minibatches)",
         ("train", "--env", "Hopper-v5", "--algo", "ppo", "--iterations", "2", "--steps", "16"),
         2, ("steps",), "refused, naming the option"),
    Case("seed-too-large", "`train --seed 4294967296` (> 2**32-1)",
         (*TRAIN, "--seed", "4294967296"), 2, ("--seed", "4294967295"),
         "refused, naming the option and the range"),
    Case("seed-negative", "`train --seed -1`", (*TRAIN, "--seed", "-1"), 2, ("--seed",),
         "refused, naming the option"),
    Case("measure-seed-too-large", "`measure --seed 4294967296`",
         (*MEASURE_VALUE, "--seed", "4294967296"), 2, ("--seed", "4294967295"),
         "refused before loading", needs=("run",)),
    Case("other-algo-flag", "`--algo trpo --policy-lr 1e-3`",
         ("train", "--env", "Hopper-v5", "--algo", "trpo", "--iterations", "2", "--policy-lr",
          "1e-3"), 2, ("--policy-lr", "--algo trpo"), "refused, naming both"),
    Case("diverging-lr", "`--policy-lr 1e30` (training diverges)",
         ("train", "--env", "Hopper-v5", "--algo", "ppo", "--iterations", "3", "--steps", "256",
          "--policy-lr", "1e30", "--quiet", "--out", "div"), 2,
         ("div", "diverged at iteration 0"), "stops naming the iteration, no NaN checkpoint",
         may_write=True),
    Case("nan-return-summary", "`train` whose last iteration ends no episode (Pendulum, 64 "
         "pairs)", ("train", "--env", "Pendulum-v1", "--algo", "ppo", "--iterations", "1",
                    "--steps", "64", "--policy-lr", "3e-4", "--value-lr", "1e-3", "--quiet",
                    "--out", "pend"), 0, ("no episode ended",),
         "rc 0, says no episode ended (no 'nan')", lacks=("nan",), may_write=True),
    Case("plan-cores-negative", "`plan --cores -3`", ("plan", "--cores", "-3"), 2,
         ("--cores",), "refused, naming the option"),
    Case("plan-cores-zero", "`plan --cores 0`", ("plan", "--cores", "0"), 2, ("--cores",),
         "refused, naming the option"),
    Case("plan-efficiency-zero", "`plan --efficiency 0`", ("plan", "--efficiency", "0"), 2,
         ("--efficiency",), "refused, naming the option"),
    Case("plan-unknown-scale", "`plan --scale nosuch`", ("plan", "--scale", "nosuch"), 2,
         ("nosuch",), "refused, naming the scales"),
    Case("train-set-jobs-zero", "`fixtures train-set --jobs 0`",
         ("fixtures", "train-set", "--env", "Hopper-v5", "--jobs", "0"), 2, ("--jobs",),
         "refused, naming the option"),
    Case("ablations-multiplier-zero", "`fixtures train-ablations --multipliers 0`",
         ("fixtures", "train-ablations", "--study", "regime", "--env", "Hopper-v5",
          "--multipliers", "0"), 2, ("--multipliers",), "refused, naming the option"),
    # -- digests -------------------------------------------------------------------------------
    Case("flipped-run-checkpoint", "a `train` checkpoint with a flipped sign bit, measured",
         MEASURE_VALUE, 2, ("run/ckpt_0002.safetensors", "sha256"), "refused, naming the file",
         needs=("run",), setup=flip_bit("run/ckpt_0002.safetensors")),
    Case("flipped-fixture", "rerun `fixtures train` on a fixture with a flipped sign bit",
         FIXTURE, 2, ("ckpt_0002.safetensors", "sha256"), "refused, naming the file",
         needs=("fx",),
         setup=flip_bit("fx/store/{key}/ckpt_0002.safetensors")),
    Case("verify-flipped", "`fixtures verify` on a store with a flipped bit",
         ("fixtures", "verify"), 1, ("ckpt_0002.safetensors",), "rc 1, naming the file",
         needs=("fx",), setup=flip_bit("fx/store/{key}/ckpt_0002.safetensors")),
    Case("verify-missing-file", "`fixtures verify` on a store missing a checkpoint",
         ("fixtures", "verify"), 1, ("ckpt_0001.safetensors", "missing"),
         "rc 1, naming the file", needs=("fx",),
         setup=lambda s: s.path("fx/store/{key}/ckpt_0001.safetensors").unlink()),
    Case("verify-missing-store", "`fixtures verify` on a store folder that is missing",
         ("fixtures", "verify"), 2, ("nosuch",), "refused, naming the folder",
         env=(("PGCLAIMS_FIXTURES", "{s}/nosuch"),)),
    Case("edited-cache-entry", "a cache entry edited to another valid value",
         MEASURE_VALUE, 0, ("discarded, recomputing",), "rc 0, warned, recomputed",
         needs=("run",), setup=edit_cache_entry, may_change=("cache/",)),
    Case("nan-checkpoint", "a checkpoint holding NaN and inf, measured",
         ("measure", "nan.safetensors", "--what", "value", "--quiet"), 2,
         ("nan.safetensors", "not finite"), "refused, naming the file", needs=("run",),
         setup=nan_checkpoint("run/ckpt_0002.safetensors", "nan.safetensors")),
    Case("truncated-checkpoint", "a half-written checkpoint, measured",
         ("measure", "half.safetensors", "--what", "value", "--quiet"), 2,
         ("half.safetensors",), "refused, naming the file", needs=("run",),
         setup=truncate("run/ckpt_0002.safetensors", "half.safetensors")),
    Case("text-as-checkpoint", "a text file as checkpoint",
         ("measure", "notes.safetensors", "--quiet"), 2, ("notes.safetensors",),
         "refused, naming the file", setup=write("notes.safetensors", "my notes\n")),
    Case("missing-checkpoint", "a checkpoint that does not exist",
         ("measure", "nosuch.safetensors", "--quiet"), 2, ("nosuch.safetensors",),
         "refused, naming the file"),
    Case("folder-as-checkpoint", "a folder as checkpoint", ("measure", "run", "--quiet"), 2,
         ("run", "is a folder", "ckpt_0002.safetensors"), "refused, listing its checkpoints",
         needs=("run",)),
    # -- measure's arguments -------------------------------------------------------------------
    Case("checkpoint-and-fixture", "`measure CKPT --fixture Hopper-v5 trpo 3 2`",
         ("measure", "run/ckpt_0002.safetensors", "--fixture", "Hopper-v5", "trpo", "3", "2"),
         2, ("--fixture", "a checkpoint file"), "refused, naming both", needs=("run",)),
    Case("fixture-seed-word", "`measure --fixture Hopper-v5 ppo zero 2`",
         ("measure", "--fixture", "Hopper-v5", "ppo", "zero", "2"), 2,
         ("--fixture SEED", "zero"), "refused, naming the field"),
    Case("fixture-not-in-store", "`measure --fixture` of an agent the store lacks",
         ("measure", "--fixture", "Walker2d-v5", "ppo", "0", "2", "--quiet"), 2,
         ("Walker2d-v5", "pgclaims fixtures train"), "refused, with the command that trains it",
         needs=("fx",)),
    Case("measure-unknown-scale", "`measure --scale nosuch`",
         (*MEASURE_VALUE, "--scale", "nosuch"), 2, ("nosuch",), "refused, naming the scales",
         needs=("run",)),
    Case("corrected-non-mujoco", "the corrected protocol on a non-MuJoCo env (Pendulum)",
         ("measure", "pendc/ckpt_0001.safetensors", "--what", "value", "--quiet"), 2,
         ("protocol corrected", "Pendulum-v1 is not a MuJoCo environment"),
         "refused, saying why (not the format)", setup=lambda s: _cli(
             ("train", "--env", "Pendulum-v1", "--algo", "ppo", "--protocol", "corrected",
              "--iterations", "1", "--steps", "64", "--policy-lr", "3e-4", "--value-lr",
              "1e-3", "--quiet", "--out", "pendc"), s)),
    Case("cache-lock-wait", "a second identical `measure` while another computes it",
         MEASURE_VALUE, 0, ("waiting for", "another process is computing"),
         "waits, saying so, then reads the entry", needs=("run",), setup=hold_cache_lock,
         may_change=("cache/",)),
    # -- adapters ------------------------------------------------------------------------------
    Case("vecnormalize-missing", "`measure --adapter sb3 --vecnormalize missing.pkl`",
         ("measure", "model.zip", "--adapter", "sb3", "--env", "Hopper-v5", "--vecnormalize",
          "missing.pkl", "--quiet"), 2, ("missing.pkl",), "refused, naming the file",
         needs=("sb3",)),
    Case("adapter-option-unknown", "an unknown `--adapter-option` key",
         ("measure", "model.zip", "--adapter", "sb3", "--env", "Hopper-v5", "--adapter-option",
          "foo=1", "--quiet"), 2, ("'foo'", "it accepts"), "refused, listing the keys",
         needs=("sb3",)),
    Case("sb3-zip-without-n-steps", "an SB3 zip without `n_steps`",
         ("measure", "m.zip", "--adapter", "sb3", "--env", "Hopper-v5", "--quiet"), 2,
         ("m.zip", "data.n_steps: missing"), "refused, naming the field", needs=("sb3",),
         setup=sb3_without("n_steps")),
    # -- parsers -------------------------------------------------------------------------------
    Case("manifest-null-entry", "a null fixture-manifest entry", ("fixtures", "list"), 2,
         ("fx/manifest.json", "agents[0]"), "refused, naming the entry", needs=("fx",),
         setup=edit_json("fx/manifest.json", lambda d: d["agents"].__setitem__(0, None))),
    Case("manifest-number-entry", "a non-object fixture-manifest entry", ("fixtures", "list"),
         2, ("fx/manifest.json", "agents[0]"), "refused, naming the entry", needs=("fx",),
         setup=edit_json("fx/manifest.json", lambda d: d["agents"].__setitem__(0, 3))),
    Case("manifest-no-env-id", "a fixture-manifest entry without `env_id`",
         ("fixtures", "list"), 2, ("agents[0].env_id: missing",), "refused, naming the field",
         needs=("fx",), setup=edit_json("fx/manifest.json",
                                        lambda d: d["agents"][0].pop("env_id") and None)),
    Case("results-nan-duration", "NaN `duration_s` in a results.json", ("report", "rep"), 2,
         ("results[0].duration_s",), "refused, naming the field",
         setup=results(lambda d: d["results"][0].__setitem__("duration_s", math.nan))),
    Case("results-inf-wall-time", "Inf `wall_time_s` in a results.json", ("report", "rep"), 2,
         ("provenance.wall_time_s",), "refused, naming the field",
         setup=results(lambda d: d["provenance"].__setitem__("wall_time_s", math.inf))),
    Case("results-nan-threshold", "NaN `threshold` in a results.json", ("report", "rep"), 2,
         ("results[0].threshold",), "refused, naming the field",
         setup=results(lambda d: d["results"][0].__setitem__("threshold", math.nan))),
    Case("results-not-json", "a results.json that is not JSON", ("report", "rep"), 2,
         ("rep/results.json",), "refused, naming the file",
         setup=chain(results(), write("rep/results.json", '{"schema": 1, "res'))),
    Case("report-no-results", "`report` of a folder without results.json", ("report", "."), 2,
         ("results.json",), "refused, naming the file"),
    # -- OS errors -----------------------------------------------------------------------------
    Case("train-out-a-file", "`train --out` an existing file", (*TRAIN, "--out", "notes.txt"),
         2, ("notes.txt", "not a folder"), "refused, file kept", setup=write("notes.txt", "x")),
    Case("train-read-only", "`train --out` on a read-only file system",
         (*TRAIN, "--out", "ro/run"), 2, ("ro/run", "Read-only file system"),
         "one line naming the folder", setup=read_only_fs()),
    Case("train-full-disk", "`train --out` on a full disk (64 KiB tmpfs)",
         (*TRAIN, "--out", "full/run"), 2, ("full/run", "No space left on device"),
         "one line naming the file", setup=full_fs(), may_write=True),
    Case("fixtures-read-only-store", "`fixtures train` into a read-only store", FIXTURE, 2,
         ("ro/fx", "Read-only file system"), "one line naming the folder",
         setup=read_only_fs(), env=(("PGCLAIMS_FIXTURES", "{s}/ro/fx"),)),
    Case("measure-out-a-folder", "`measure --out` an existing folder",
         (*MEASURE_VALUE, "--out", "run"), 2, ("run", "is a folder"),
         "refused before measuring", needs=("run",)),
    Case("measure-out-read-only", "`measure --out` on a read-only file system",
         (*MEASURE_VALUE, "--out", "ro/m.json"), 2, ("ro", "Read-only file system"),
         "refused before measuring", needs=("run",), setup=read_only_fs()),
    Case("measure-out-full-disk", "`measure --out` on a full disk, a previous file there",
         (*MEASURE_VALUE, "--out", "full/m.json"), 2, ("full/m.json", "No space left"),
         "one line naming the file, previous file kept (the measurement stays cached)",
         needs=("run",), setup=full_fs(keep={"m.json": '{"previous": true}'}),
         may_change=("cache/",)),
    Case("measure-cache-read-only", "a read-only measurement cache",
         MEASURE_VALUE, 2, ("ro/cache", "Read-only file system"), "refused before measuring",
         needs=("run",), setup=read_only_fs(), env=(("PGCLAIMS_CACHE", "{s}/ro/cache"),)),
    Case("report-full-disk", "`report --out` on a full disk", ("report", "rep", "--out",
                                                               "full/index.html"), 2,
         ("full/index.html", "No space left on device"), "one line naming the file",
         setup=chain(results(), full_fs())),
    Case("report-read-only", "`report --out` on a read-only file system",
         ("report", "rep", "--out", "ro/index.html"), 2, ("ro", "Read-only file system"),
         "one line naming the folder", setup=chain(results(), read_only_fs())),
    Case("report-out-a-folder", "`report --out` an existing folder",
         ("report", "rep", "--out", "rep"), 0, ("rep/index.html",),
         "rc 0, the report written inside it, its path said", setup=results()),
    Case("report-out-results-json", "`report --out` the run's own results.json",
         ("report", "rep", "--out", "rep/results.json"), 2, ("--out", "rep/results.json"),
         "refused, results.json kept", setup=results()),
    # -- hangs and stray processes -------------------------------------------------------------
    Case("kill-9-measure", "`kill -9` of `measure` with 2 workers",
         ("measure", "run/ckpt_0002.safetensors", "--what", "gradients", "--quiet"), -9, (),
         "no worker alive 5 s later", needs=("run",),
         env=(("PGCLAIMS_WORKERS", "2"),), signal=signal.SIGKILL, ready=workers(2),
         may_write=True),
    Case("kill-9-train-set", "`kill -9` of `fixtures train-set --jobs 2`",
         ("fixtures", "train-set", "--env", "Hopper-v5", "--algo", "ppo", "--seeds", "0,1",
          "--iterations", "200", "--jobs", "2"), -9, (), "no worker alive 5 s later",
         signal=signal.SIGKILL, ready=workers(2), may_write=True),
    Case("kill-9-claims-run", "`kill -9` of a claims run under xdist (-n 2)",
         (*CLAIMS, "-n", "2", "--claim", "grad.*"), -9, (), "no xdist worker alive 5 s later",
         signal=signal.SIGKILL, ready=at_work, may_write=True, timeout=300),
    *(Case(f"sigterm{'-group' if group else ''}-measure-ray", fault,
           ("measure", "run/ckpt_0002.safetensors", "--what", "gradients", "--scale", "default",
            "--backend", "ray", "--quiet"), -signal.SIGTERM,
           ("terminated", "re-run the same command to resume"),
           "says how to resume, no Ray process alive 5 s later", needs=("run",),
           signal=signal.SIGTERM, group=group, ready=ray_workers, may_write=True, timeout=300)
      for group, fault in ((False, "SIGTERM (`kill`) of `measure --backend ray` (a local Ray)"),
                           (True, "SIGTERM to the process group of `measure --backend ray`"))),
    Case("ray-silent-measure", "`measure --backend ray --ray-address` with nothing listening",
         ("measure", "--fixture", "Hopper-v5", "trpo", "0", "2", "--backend", "ray",
          "--ray-address", "127.0.0.1:{port}"), 2,
         ("no Ray cluster answers at 127.0.0.1:{port} within 15 s",), "fails within 15 s",
         needs=("fx",), timeout=90),
    Case("ray-silent-claims", "a claims run with a silent `--ray-address`",
         (*CLAIMS, "--backend", "ray", "--ray-address", "127.0.0.1:{port}"), 4,
         ("no Ray cluster answers at 127.0.0.1:{port} within 15 s",),
         "usage error before any test", timeout=90),
    # -- fail before the work: the claims run --------------------------------------------------
    Case("reports-dir-a-file", "`--reports-dir` an existing file",
         (*CLAIMS[:-2], "--reports-dir", "{s}/taken"), 4, ("--reports-dir", "not a folder"),
         "usage error before any test", setup=write("taken", "mine")),
    Case("reports-dir-read-only", "`--reports-dir` on a read-only file system",
         (*CLAIMS[:-2], "--reports-dir", "{s}/ro/reports"), 4,
         ("--reports-dir", "Read-only file system"), "usage error before any test",
         setup=read_only_fs()),
    Case("reports-dir-full", "`--reports-dir` on a full disk",
         (*CLAIMS[:-2], "--reports-dir", "{s}/full/reports"), 4,
         ("--reports-dir", "cannot write in"), "usage error before any test",
         setup=full_fs()),
    Case("claim-unknown", "`--claim nosuch`", (*CLAIMS, "--claim", "nosuch"), 4,
         ("--claim", "nosuch"), "usage error naming the catalogue", lacks=("CLAIMS.md",)),
    Case("time-budget-garbage", "`--time-budget soon`", (*CLAIMS, "--time-budget", "soon"), 4,
         ("--time-budget",), "usage error naming the option"),
    Case("agents-unknown-env", "an `--agents` manifest with an unknown env id",
         (*CLAIMS, "--agents", "{s}/agents.json"), 4, ("NoSuch-v9",),
         "usage error before any test", setup=agents_manifest("NoSuch-v9")),
    Case("agents-missing", "an `--agents` manifest that does not exist",
         (*CLAIMS, "--agents", "{s}/nosuch.json"), 4, ("nosuch.json",),
         "usage error before any test"),
    Case("env-selection", "`--env Hopper-v5` collects no other env's test",
         ("pytest", "claims", "--collect-only", "-q", "--scale", "default", "--env",
          "Hopper-v5", "-p", "no:cacheprovider", "--reports-dir", "{s}/reports"), 0,
         ("Hopper-v5",), "rc 0, no Walker2d or Humanoid test", lacks=("Walker2d", "Humanoid")),
]
"""Every case of the table, in its order."""


# ---------------------------------------------------------------------------------------------
# Running


def _pythonpath() -> str:
    return os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)


def _command(case: Case, s: Scratch) -> list[str]:
    words = [w.format(s=s.dir, port=s.port, key=_KEY.get("fx", "")) for w in case.argv]
    if words[0] == "pytest":
        return [sys.executable, "-m", "pytest", *words[1:]]
    return [sys.executable, "-m", "pgclaims.cli", *words]


def _environment(case: Case, s: Scratch, marker: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": _pythonpath(), MARK: marker,
           "PGCLAIMS_FIXTURES": str(s.path("fx")), "PGCLAIMS_CACHE": str(s.path("cache")),
           "PGCLAIMS_WORKERS": "1"}
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("PYTEST_CURRENT_TEST", None)
    for name, value in case.env:
        env[name] = value.format(s=s.dir, port=s.port)
    return env


def _cli(argv: tuple[str, ...], s: Scratch) -> None:
    """A setup step through the CLI itself (it must succeed)."""
    env = {**os.environ, "PYTHONPATH": _pythonpath(), "PGCLAIMS_FIXTURES": str(s.path("fx")),
           "PGCLAIMS_CACHE": str(s.path("cache"))}
    done = subprocess.run([sys.executable, "-m", "pgclaims.cli", *argv], cwd=s.dir, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"setup `pgclaims {' '.join(argv)}` failed: {done.stderr[-500:]}")


def _cwd(case: Case, s: Scratch) -> Path:
    """pytest runs from the checkout (the claims and their conftest), pgclaims from the case's
    folder, as a user runs them."""
    return REPO if case.argv[0] == "pytest" else s.dir


_KEY: dict[str, str] = {}
"""The shared fixture's store key (``{key}`` in paths)."""


def make_shared(base: Path) -> dict[str, Path]:
    """The shared material, made in ``base`` through the CLI: ``run`` (a 2-iteration train
    run), ``fx`` (a store holding one 2-iteration fixture), ``sb3`` (an SB3 PPO zip)."""
    base.mkdir(parents=True, exist_ok=True)
    s = Scratch(base)
    _cli((*TRAIN, "--out", "run"), s)
    _cli(FIXTURE, s)
    _KEY["fx"] = json.loads(s.path("fx/manifest.json").read_text())["agents"][0]["key"]
    code = ("import stable_baselines3 as sb3, sys\n"
            "sb3.PPO('MlpPolicy', 'Hopper-v5', n_steps=64, batch_size=32, seed=0, device='cpu',"
            " policy_kwargs={'net_arch': [8]}).save(sys.argv[1])")
    done = subprocess.run([sys.executable, "-c", code, str(base / "model.zip")],
                          capture_output=True, text=True, timeout=300, check=False)
    shared = {"run": base / "run", "fx": base / "fx"}
    if done.returncode == 0:
        shared["sb3"] = base / "model.zip"
    shutil.rmtree(base / "cache", ignore_errors=True)
    return shared


def snapshot(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (mounts included), by relative path."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.is_symlink():
            try:
                out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
            except OSError:
                pass
    return out


@dataclass
class Outcome:
    case: Case
    rc: int | None
    out: str
    err: str
    seconds: float
    changed: list[str]
    written: list[str]
    strays: int
    problems: list[str]
    skipped: str | None = None

    @property
    def passed(self) -> bool:
        return not self.problems

    def line(self) -> str:
        """The error line (or the first line said), for the table."""
        lines = [x for x in self.err.splitlines() if x.strip()]
        errors = [x for x in lines if ": error: " in x or x.startswith("ERROR:")]
        if errors:
            return errors[0]
        ours = [x for x in lines if x.startswith("pgclaims")]  # not a library's warning first
        if ours:
            return ours[0]
        said = [x for x in lines if not x.startswith(("  warnings.warn", "  ", "Warning"))]
        if said:
            return said[0]
        return next((x for x in self.out.splitlines() if x.strip()), "")


def _prepare(case: Case, s: Scratch, shared: dict[str, Path]) -> None:
    for name in case.needs:
        if name not in shared:
            s.skip = f"no {name} (stable-baselines3 not installed?)"
            return
        src = shared[name]
        dst = s.path("model.zip" if name == "sb3" else name)
        if src.is_dir():
            shutil.copytree(src, dst)
        else:
            shutil.copy(src, dst)
    if case.setup is not None:
        case.setup(s)


def _cleanup(s: Scratch) -> None:
    for proc in s.procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    for where in reversed(s.mounts):
        subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=30,
                       check=False)


def _say_words(case: Case, s: Scratch) -> list[str]:
    return [w.format(s=s.dir, port=s.port, key=_KEY.get("fx", "")) for w in case.says]


def run_case(case: Case, shared: dict[str, Path], where: Path) -> Outcome:
    """Run ``case`` in a fresh folder under ``where``; its outcome, checked."""
    s = Scratch(Path(tempfile.mkdtemp(prefix=f"{case.id}.", dir=where)), port=_closed_port())
    try:
        _prepare(case, s, shared)
        if s.skip:
            return Outcome(case, None, "", "", 0.0, [], [], 0, [], skipped=s.skip)
        return _run(case, s)
    finally:
        _cleanup(s)


def _run(case: Case, s: Scratch) -> Outcome:
    before = snapshot(s.dir)
    marker = uuid.uuid4().hex
    problems: list[str] = []
    t0 = time.monotonic()
    proc = subprocess.Popen(_command(case, s), cwd=_cwd(case, s), env=_environment(case, s,
                            marker), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, preexec_fn=terminal_sigint)
    seen = set()
    try:
        if case.signal is not None and case.ready is not None:
            end = time.monotonic() + case.timeout
            while not case.ready(s, proc.pid) and proc.poll() is None:
                if time.monotonic() > end:
                    problems.append(f"not ready within {case.timeout:.0f} s")
                    break
                time.sleep(0.2)
            seen = descendants(proc.pid)
            if proc.poll() is None:  # the command leads its own group (start_new_session)
                (os.killpg if case.group else os.kill)(proc.pid, case.signal)
        out_b, err_b = proc.communicate(timeout=case.timeout)
    except subprocess.TimeoutExpired:
        seen |= descendants(proc.pid)
        os.killpg(proc.pid, signal.SIGKILL)
        out_b, err_b = proc.communicate()
        problems.append(f"hang: no exit within {case.timeout:.0f} s")
    seconds = time.monotonic() - t0
    out, err = out_b.decode(errors="replace"), err_b.decode(errors="replace")
    end = time.monotonic() + GRACE_S
    while (alive := running(seen) | with_env(MARK, marker)) and time.monotonic() < end:
        time.sleep(0.2)
    for pid, _ in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    after = snapshot(s.dir)
    changed = sorted(k for k, v in before.items() if after.get(k) != v
                     and not k.startswith(case.may_change))
    written = sorted(k for k in after if k not in before and not k.startswith(case.may_change))
    rc = proc.returncode
    _judge(case, s, rc, out, err, changed, written, len(alive), problems)
    return Outcome(case, rc, out, err, seconds, changed, written, len(alive), problems)


def _judge(case: Case, s: Scratch, rc: int, out: str, err: str, changed: list[str],
           written: list[str], strays: int, problems: list[str]) -> None:
    if rc != case.rc:
        problems.append(f"rc {rc}, expected {case.rc}")
    if "Traceback" in err or "Traceback" in out:
        problems.append("a traceback")
    lines = [x for x in err.splitlines() if x.strip()]
    errors = [x for x in lines if ": error: " in x or x.startswith("ERROR:")]
    text = out + err
    if case.rc in (2, 4):
        if len(errors) != 1:
            problems.append(f"{len(errors)} error lines, expected one")
        text = errors[0] if errors else ""
    for word in _say_words(case, s):
        if word not in text:
            problems.append(f"does not say {word!r}")
    for word in case.lacks:
        if word.lower() in (out + err).lower():
            problems.append(f"says {word!r}")
    if changed:
        problems.append(f"changed or lost: {', '.join(changed[:3])}")
    temporary = [w for w in written if w.endswith(".tmp")]
    if temporary:
        problems.append(f"temporary files left: {', '.join(temporary[:3])}")
    if case.rc != 0 and not case.may_write and written:
        problems.append(f"wrote {', '.join(written[:3])} though it failed")
    if strays:
        problems.append(f"{strays} processes still running {GRACE_S:.0f} s after")


# ---------------------------------------------------------------------------------------------
# The table


def _cell(text: str, width: int = 110) -> str:
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= width else text[: width - 3] + "..."


def table(outcomes: list[Outcome], where: Path) -> str:
    head = ("| # | fault | command | expected | observed (rc, first stderr line) | files intact "
            "| result |\n|---|---|---|---|---|---|---|")
    rows = [head]
    for i, o in enumerate(outcomes, 1):
        c = o.case
        cmd = " ".join(("pytest" if c.argv[0] == "pytest" else "pgclaims", *(
            repr(w) if w == "" else w for w in c.argv[1:]))) if c.argv[0] == "pytest" else \
            "pgclaims " + " ".join("''" if w == "" else w for w in c.argv)
        cmd = cmd.replace("{s}/", "").replace("{port}", "PORT")
        cmd = cmd.replace("{key}", "KEY")
        if c.signal is not None:
            cmd += f" (then {signal.Signals(c.signal).name})"
        if o.skipped:
            rows.append(f"| {i} | {_cell(c.fault)} | `{_cell(cmd)}` | {c.expected} | "
                        f"skipped: {o.skipped} | - | SKIP |")
            continue
        said = o.line()
        for prefix in sorted({str(p) for p in (where,)}, key=len, reverse=True):
            said = said.replace(prefix, "")
        said = _scrub(said)
        intact = "yes" if not o.changed and not any(w.endswith(".tmp") for w in o.written) \
            else "NO"
        verdict = "PASS" if o.passed else "FAIL: " + "; ".join(o.problems)
        rows.append(f"| {i} | {_cell(c.fault)} | `{_cell(cmd)}` | {c.expected} | rc {o.rc}: "
                    f"{_cell(said)} | {intact} | {_cell(verdict, 200)} |")
    return "\n".join(rows)


def _scrub(text: str) -> str:
    """Case folders shortened to ``.../`` (they differ from run to run)."""
    import re

    return re.sub(r"/\S*?/[a-z0-9-]+\.[a-z0-9_]{8}/", "", text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the fault table and print it (markdown).")
    parser.add_argument("ids", nargs="*", help="only these case ids (default: all)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folders")
    args = parser.parse_args(argv)
    chosen = [c for c in CASES if not args.ids or c.id in args.ids]
    where = Path(tempfile.mkdtemp(prefix="pgclaims-faults."))
    t0 = time.monotonic()
    try:
        shared = make_shared(where / "shared")
        outcomes = []
        for case in chosen:
            o = run_case(case, shared, where)
            outcomes.append(o)
            print(f"{case.id}: {'SKIP' if o.skipped else 'PASS' if o.passed else 'FAIL'} "
                  f"({o.seconds:.1f} s) {'; '.join(o.problems)}", file=sys.stderr, flush=True)
        print(table(outcomes, where))
        passed = sum(o.passed and not o.skipped for o in outcomes)
        skipped = sum(bool(o.skipped) for o in outcomes)
        print(f"\n{len(outcomes)} cases: {passed} PASS, {len(outcomes) - passed - skipped} FAIL,"
              f" {skipped} SKIP ({time.monotonic() - t0:.0f} s)")
        return 0 if passed + skipped == len(outcomes) else 1
    finally:
        if not args.keep:
            shutil.rmtree(where, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
