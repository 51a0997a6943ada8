"""A lost node costs a retry: a real two-node Ray on this machine loses a node mid-study.

A head (``ray start --head --num-cpus 1``, token authentication) and a second node
(``ray start --address ... --num-cpus 1`` on 127.0.0.2, so the driver attaches to the head)
run a gradient study. Each task notes where it runs; the first task the second node starts
after a few chunks waits, the test kills every process of that node (SIGKILL, by PID from a
PPID scan), and the study must finish with numbers bit-identical to the local backend's, the
waiting chunk re-run on the head, and the backend record listing both nodes, the lost one as
not alive. Every process of the cluster is killed at the end, also when the test fails.

The driver runs in its own process: a Ray driver cannot leave a cluster and join another, and
other tests of this process may hold a local Ray.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.procs import Proc, descendants, kill, running, with_env

pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]')")
pytestmark = pytest.mark.slow

RAY = Path(sys.executable).with_name("ray")
SRC = Path(__file__).resolve().parents[1]
MARKER = "PGCLAIMS_RAY_NODE_TEST"
"""Environment variable every process of the test's cluster carries (its value is unique)."""
SECOND_IP = "127.0.0.2"
START_S = 180.0
"""How long the two nodes may take to start and join (busy cores)."""

DRIVER = r'''
import dataclasses, json, os, sys, time
import numpy as np
from pgclaims.agents import backend
from pgclaims.agents.agent import TrainConfig, make_agent
from pgclaims.measure import ray_backend
from pgclaims.measure.gradients import gradient_study
from pgclaims.suite.backend import backend_record

address, out = sys.argv[1], sys.argv[2]
log, inflight = os.path.join(out, "tasks.log"), os.path.join(out, "inflight")
STUDY = dict(n_grid=(32, 2048, 4096), repeats=3, true_grad_n=6 * 4096, true_value_n=2048)
agent = make_agent(TrainConfig.create("Hopper-v5", "ppo", 0))


def spy(victim):
    def run(key, refs, group):
        import ray
        node = ray.get_runtime_context().get_node_id()
        with open(log, "a") as f:
            f.write(f"{node} {list(group[0][1])} {os.getpid()}\n")
        with open(log) as f:
            started = len(f.readlines())
        if node == victim and started >= 2 and not os.path.exists(inflight):
            with open(inflight, "w") as f:
                f.write(json.dumps(list(group[0][1])))
            time.sleep(600)  # until the test kills this node
        return ray_backend._run(key, refs, group)
    return run


t0 = time.monotonic()
with backend.using("local"):
    local = gradient_study(agent, **STUDY, seed=2020, workers=1)
local_s = time.monotonic() - t0
with backend.using("ray", address):
    ray = backend.connect_ray()
    victim = next(n["NodeID"] for n in ray.nodes() if n["NodeManagerAddress"] == "127.0.0.2")
    ray_backend._TASK["run"] = ray.remote(num_cpus=1, max_retries=backend.RETRIES)(spy(victim))
    t0 = time.monotonic()
    remote = gradient_study(agent, **STUDY, seed=2020)
    ray_s = time.monotonic() - t0
    end = time.monotonic() + 120  # the GCS marks a node dead after missed health checks
    while any(n["Alive"] for n in ray.nodes() if n["NodeID"] == victim) and time.monotonic() < end:
        time.sleep(1)
    record = backend_record()
    head = ray.get_runtime_context().get_node_id()

differ = []
for f in dataclasses.fields(local):
    a, b = getattr(local, f.name), getattr(remote, f.name)
    if isinstance(a, np.ndarray):
        same = np.array_equal(a, b, equal_nan=True)
    elif isinstance(a, dict) and a and isinstance(next(iter(a.values())), np.ndarray):
        same = a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    else:
        same = a == b
    if not same:
        differ.append(f.name)
with open(os.path.join(out, "result.json"), "w") as f:
    json.dump({"differ": differ, "fields": len(dataclasses.fields(local)), "victim": victim,
               "head": head, "record": record, "local_s": local_s, "ray_s": ray_s}, f)
'''


@dataclass
class Cluster:
    address: str
    env: dict[str, str]
    head: subprocess.Popen[bytes]
    second: subprocess.Popen[bytes]
    logs: Path
    seen: set[Proc] = field(default_factory=set)

    def processes(self) -> set[Proc]:
        """Every process of the cluster now (by PPID and by the environment marker)."""
        found = descendants(self.head.pid) | descendants(self.second.pid)
        found |= with_env(MARKER, self.env[MARKER])
        self.seen |= found
        return found

    def tail(self) -> str:
        return "".join(p.read_text()[-1500:] for p in sorted(self.logs.glob("*.log")))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen([str(RAY), "start", *args, "--disable-usage-stats", "--block"],
                                env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _alive_nodes(address: str, env: dict[str, str]) -> int:
    probe = (f"import ray; ray.init(address={address!r}, logging_level='ERROR'); "
             "print(sum(n['Alive'] for n in ray.nodes()))")
    try:
        out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                             text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return 0
    lines = out.stdout.strip().splitlines()
    return int(lines[-1]) if out.returncode == 0 and lines and lines[-1].isdigit() else 0


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    if not RAY.exists():
        pytest.skip(f"no `ray` command beside {sys.executable}")
    port = _free_port()
    temp = Path(tempfile.mkdtemp(prefix="pgray", dir="/tmp"))  # Ray's socket paths are short
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": uuid.uuid4().hex,
           MARKER: uuid.uuid4().hex, "PYTHONPATH": os.pathsep.join(
               [str(SRC), os.environ.get("PYTHONPATH", "")])}
    env.pop("RAY_ADDRESS", None)
    head = _start(["--head", "--num-cpus", "1", "--port", str(port), "--temp-dir", str(temp),
                   "--include-dashboard", "false"], env, tmp_path / "head.log")
    second = None
    c = None
    try:
        address = f"127.0.0.1:{port}"
        second = _start(["--address", address, "--num-cpus", "1", "--node-ip-address",
                         SECOND_IP], env, tmp_path / "second.log")
        c = Cluster(address, env, head, second, tmp_path)
        deadline = time.monotonic() + START_S
        while _alive_nodes(address, env) < 2:
            c.processes()
            if time.monotonic() > deadline or head.poll() is not None:
                pytest.fail(f"the two-node cluster did not start:\n{c.tail()}")
            time.sleep(2)
        yield c
    finally:
        procs = (c.processes() | c.seen) if c is not None else descendants(head.pid)
        for p in (head, second):
            if p is not None and p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)  # `ray start --block` stops its node
        end = time.monotonic() + 20
        while running(procs) and time.monotonic() < end:
            time.sleep(0.5)
        kill(procs | (c.processes() if c is not None else set()))
        for p in (head, second):
            if p is not None:
                p.wait()
        shutil.rmtree(temp, ignore_errors=True)
        left = running(procs) | (with_env(MARKER, env[MARKER]))
        assert not left, f"Ray processes of the test still running: {left}"


def test_a_lost_node_costs_a_retry_not_the_study(cluster: Cluster, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "driver.py").write_text(DRIVER)
    t0 = time.monotonic()
    driver = subprocess.Popen([sys.executable, str(out / "driver.py"), cluster.address, str(out)],
                              env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while not (out / "inflight").exists():
            if driver.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the second node never ran a task: nothing to lose\n"
                            + driver.stdout.read().decode()[-3000:])  # type: ignore[union-attr]
            time.sleep(0.2)
        lost = descendants(cluster.second.pid)  # its raylet, workers, agents: the whole node
        os.kill(cluster.second.pid, signal.SIGKILL)
        kill(lost)
        killed_at = time.monotonic() - t0
        output = driver.communicate(timeout=600)[0].decode()
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    wall = time.monotonic() - t0
    assert driver.returncode == 0, output[-4000:]
    assert not running(lost), "the second node's processes survived SIGKILL"
    result = json.loads((out / "result.json").read_text())
    assert result["differ"] == [], f"fields differ from the local backend: {result['differ']}"
    tasks = [line.split(" ", 1) for line in (out / "tasks.log").read_text().splitlines()]
    waiting = json.loads((out / "inflight").read_text())
    ran_on = [node for node, rest in tasks if rest.rsplit(" ", 1)[0] == str(waiting)]
    assert ran_on[0] == result["victim"] and result["head"] in ran_on[1:], (waiting, tasks)
    record = result["record"]
    assert record["name"] == "ray" and record["address"] == cluster.address
    nodes = {n["node_id"]: n for n in record["nodes"]}
    assert nodes[result["victim"]]["alive"] is False
    assert nodes[result["victim"]]["address"] == SECOND_IP and nodes[result["head"]]["alive"]
    print(f"node-loss study: local {result['local_s']:.1f} s, ray {result['ray_s']:.1f} s "
          f"(second node killed {killed_at:.1f} s into the driver), test wall {wall:.1f} s")
