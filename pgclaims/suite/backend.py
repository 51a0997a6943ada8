"""The claims suite's ``--backend local|ray`` and ``--ray-address``: where its chunks run.

The options set the process-wide backend of :mod:`pgclaims.agents.backend` (without them,
``PGCLAIMS_BACKEND`` decides, default local). Under ray the chunked measurements (the gradient
studies, :func:`pgclaims.measure.parallel.chunk_map`) run as Ray tasks; the value, step and
landscape measurements sample in the test process as before. The verdicts do not change: the
numbers are bit-identical.

Without xdist the process connects at its first chunked measurement (none when every one is
cached). Under ``-n`` the controller connects (starting a local Ray with every core unless
``--ray-address`` or ``RAY_ADDRESS`` names a cluster) when it starts its first worker and
hands every worker the cluster's address, so all workers share one Ray and its CPUs.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from pgclaims.agents import backend

AUTH_MODE = "RAY_AUTH_MODE"
"""Ray's switch for token authentication (its token is read from ``~/.ray/auth_token``)."""


def add_options(group: Any) -> None:
    """The two options, in the plugin's option group."""
    group.addoption("--backend", dest="pgclaims_backend", default=None,
                    choices=backend.BACKENDS, help="where measurement chunks run: local "
                    "processes or Ray tasks (default: $PGCLAIMS_BACKEND, else local); the "
                    "numbers are the same")
    group.addoption("--ray-address", dest="pgclaims_ray_address", default=None,
                    metavar="ADDRESS", help="with --backend ray: the Ray cluster to use "
                    "(default: $RAY_ADDRESS, else a local Ray started for the run)")


class _Controller:
    """Hands each xdist worker the backend, and under ray the address of one shared cluster."""

    def __init__(self, name: str, workers: int = 1) -> None:
        self.name = name
        self.workers = workers

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["pgclaims_backend"] = self.name
        if self.name == "ray":
            ray = backend.connect_ray(drivers=self.workers)
            node.workerinput["pgclaims_ray_address"] = (
                backend.ray_address() or ray.get_runtime_context().gcs_address)
            # A Ray started here enables token authentication in this process's environment
            # only, and a driver that connects by address never enables it by itself.
            node.workerinput["pgclaims_ray_auth_mode"] = os.environ.get(AUTH_MODE)


def _node(info: dict[str, Any]) -> dict[str, Any]:
    """One node of ``ray.nodes()`` as results.json records it."""
    return {"node_id": info.get("NodeID"), "address": info.get("NodeManagerAddress"),
            "cpus": float((info.get("Resources") or {}).get("CPU", 0.0)),
            "alive": bool(info.get("Alive"))}


def backend_record() -> dict[str, Any]:
    """The backend of this run for results.json's provenance: its name and, under ray, the
    cluster address given (None: a local Ray started for the run) and, when this process is
    connected, the cluster's CPUs and every node it has had (``nodes``: id, address, CPUs and
    whether it is still alive, so a node lost during the run shows as not alive)."""
    name = backend.backend()
    record: dict[str, Any] = {"name": name}
    if name == "ray":
        record["address"] = backend.ray_address()
        import ray

        if ray.is_initialized():
            record["cluster_cpus"] = float(ray.cluster_resources().get("CPU", 0.0))
            record["nodes"] = [_node(n) for n in ray.nodes()]
    return record


def configure(config: pytest.Config) -> None:
    """Set this process's backend from the options (an xdist worker: from its controller)."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and "pgclaims_backend" in workerinput:
        if workerinput.get("pgclaims_ray_auth_mode"):
            os.environ.setdefault(AUTH_MODE, workerinput["pgclaims_ray_auth_mode"])
        previous = backend.set_backend(workerinput["pgclaims_backend"],
                                       workerinput.get("pgclaims_ray_address"))
        config.add_cleanup(lambda: backend.restore_backend(previous))
        return
    given = config.getoption("pgclaims_backend")
    address = config.getoption("pgclaims_ray_address")
    try:
        name = given or backend.backend()
        if address and name != "ray":
            raise backend.BackendError("--ray-address needs --backend ray")
        if name == "ray":
            backend.import_ray()
            if address or backend.ray_address():  # before any work, not a retry for ever
                backend.check_ray_address(address or str(backend.ray_address()))
    except backend.BackendError as exc:
        raise pytest.UsageError(str(exc)) from None
    previous = backend.set_backend(name, address)
    config.add_cleanup(lambda: backend.restore_backend(previous))
    workers = getattr(config.option, "numprocesses", None)
    config.pluginmanager.register(_Controller(name, workers if isinstance(workers, int) else 1),
                                  "pgclaims-backend")
