"""Faults a cluster brings, on a real multi-node Ray cluster on this machine: a worker node lost mid-trial, and
the key's secrecy across the cluster after a multi-node sweep.

The cluster is a head (no CPUs) and two worker nodes (1 CPU each, tagged with a custom resource), started with
`ray start` under one temp dir, token auth with a generated 0600 token file, as `ops/local/multinode.sh` does.
A node is "lost" by SIGKILLing its raylet (found by its `--node_manager_port` and our temp dir on its command
line) and everything under it. Teardown stops only the processes that name this test's temp dir (command line or
environment) and their descendants, never a bare `ray stop`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SCRIPT = HERE / "toy_node_loss_sweep.py"
RAY = str(Path(sys.executable).with_name("ray"))
MARKER_ENV = "RADIO_NODE_LOSS_TEST"  # set in every process this module starts: teardown finds them by it


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(condition: Callable[[], bool], timeout_s: float, poll_s: float = 0.5) -> bool:
    """Poll `condition()` until it holds or the timeout passes; True when it held."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(poll_s)
    return bool(condition())


def _mine(process: psutil.Process) -> bool:
    with contextlib.suppress(psutil.Error):
        return process.uids().real == os.getuid()
    return False


def _tree(root: psutil.Process) -> list[psutil.Process]:
    """`root` and its descendants (zombies included: killing them is harmless)."""
    with contextlib.suppress(psutil.NoSuchProcess):
        return [root, *root.children(recursive=True)]
    return []


def _kill(processes: list[psutil.Process], grace_s: float = 0.0) -> None:
    """SIGTERM (when `grace_s` > 0, then wait) and SIGKILL what is left."""
    if grace_s > 0:
        for process in processes:
            with contextlib.suppress(psutil.Error):
                process.terminate()
        _, processes = psutil.wait_procs(processes, timeout=grace_s)
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(processes, timeout=30)


@dataclass
class LocalCluster:
    """A head and worker nodes started with `ray start` under `root` (see the module doc)."""

    root: Path
    port: int = field(default_factory=_free_port)
    workers: dict[str, int] = field(default_factory=dict)  # worker name -> node manager port
    lost: list[str] = field(default_factory=list)

    @property
    def temp_dir(self) -> Path:
        return self.root / "ray"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """The environment of every process this cluster starts (nodes and drivers): token auth, our marker."""
        env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_TOKEN", "RAY_ADDRESS", "RAY_TMPDIR")}
        env.update(
            RAY_AUTH_MODE="token",
            RAY_AUTH_TOKEN_PATH=str(self.root / "ray_auth_token"),
            RAY_TMPDIR=str(self.temp_dir),
            RAY_USAGE_STATS_ENABLED="0",
            PYTHONUNBUFFERED="1",
            **{MARKER_ENV: str(self.root)},
        )
        return env

    def _ray_start(self, name: str, args: list[str]) -> None:
        log = self.root / f"{name}.log"
        with open(log, "w") as handle:
            done = subprocess.run(
                [RAY, "start", f"--temp-dir={self.temp_dir}", "--disable-usage-stats", *args],
                env=self.env, stdout=handle, stderr=subprocess.STDOUT, timeout=240, check=False,
            )  # fmt: skip
        assert done.returncode == 0, f"ray start ({name}) failed:\n{log.read_text()[-3000:]}"

    def start(self, workers: tuple[str, ...] = ("a", "b")) -> None:
        """The head (0 CPUs: trials run on worker nodes only), then the worker nodes; waits until all are up."""
        token = self.root / "ray_auth_token"
        fd = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
        self._ray_start("head", ["--head", f"--port={self.port}", "--num-cpus=0", "--include-dashboard=false"])
        for name in workers:
            self.add_worker(name)
        self.wait_for_nodes(1 + len(workers))

    def add_worker(self, name: str) -> None:
        """A worker node with 1 CPU, its own node manager and object manager ports, tagged `node_<name>`."""
        nm_port, om_port = _free_port(), _free_port()
        self._ray_start(
            f"worker-{name}",
            [
                f"--address={self.address}",
                "--num-cpus=1",
                f"--node-manager-port={nm_port}",
                f"--object-manager-port={om_port}",
                f"--resources={json.dumps({f'node_{name}': 1})}",
            ],
        )
        self.workers[name] = nm_port

    def alive_workers(self) -> list[str]:
        return [name for name in self.workers if name not in self.lost and self.raylet(name) is not None]

    def active_nodes(self) -> int:
        """Active nodes in `ray status` (head included); 0 when it cannot be read."""
        try:
            out = subprocess.run(
                [RAY, "status", "--address", self.address], env=self.env, capture_output=True, text=True, timeout=60
            ).stdout
        except subprocess.TimeoutExpired:
            return 0
        active, count = False, 0
        for line in out.splitlines():
            if line.startswith("Active:"):
                active = True
            elif line.startswith(("Pending", "Recent")):
                active = False
            elif active and " node_" in line:
                count += 1
        return count

    def wait_for_nodes(self, n: int, timeout_s: float = 180) -> None:
        assert _wait_for(lambda: self.active_nodes() == n, timeout_s, poll_s=2), (
            f"expected {n} active Ray nodes, ray status shows {self.active_nodes()}"
        )

    def raylet(self, name: str) -> psutil.Process | None:
        """The raylet of worker `name`: our temp dir and its node manager port on its command line."""
        port = self.workers[name]
        for process in psutil.process_iter(["name", "cmdline"]):
            cmdline = process.info["cmdline"] or []
            if not cmdline or "raylet" not in Path(cmdline[0]).name or not _mine(process):
                continue
            if f"--node_manager_port={port}" in cmdline and any(str(self.temp_dir) in arg for arg in cmdline):
                return process
        return None

    def node_of(self, pid: int) -> str | None:
        """The worker whose raylet has process `pid` among its descendants."""
        for name in self.alive_workers():
            raylet = self.raylet(name)
            if raylet is not None and pid in {p.pid for p in _tree(raylet)}:
                return name
        return None

    def kill_node(self, name: str) -> int:
        """Lose worker `name`: SIGKILL its raylet and every process under it (its Ray workers); returns how many."""
        raylet = self.raylet(name)
        assert raylet is not None, f"no raylet for worker {name}"
        processes = _tree(raylet)
        with contextlib.suppress(psutil.Error):
            raylet.suspend()  # no new workers while the tree is killed
        processes = list({p.pid: p for p in [*processes, *_tree(raylet)]}.values())
        _kill(processes)
        self.lost.append(name)
        return len(processes)

    def processes(self) -> list[psutil.Process]:
        """Every process of ours that names `root` (command line or environment), and their descendants."""
        roots = []
        for process in psutil.process_iter(["pid", "cmdline"]):
            if process.pid == os.getpid() or not _mine(process):
                continue
            with contextlib.suppress(psutil.Error):
                if any(str(self.root) in arg for arg in process.info["cmdline"] or []) or (
                    process.environ().get(MARKER_ENV) == str(self.root)
                ):
                    roots.append(process)
        found = {p.pid: p for root in roots for p in _tree(root)}
        found.pop(os.getpid(), None)
        return list(found.values())

    def teardown(self) -> None:
        """Stop every process of this cluster (SIGTERM, SIGKILL after 5 s), by temp dir and marker only."""
        for _ in range(3):  # a dying raylet may start a last worker: look again
            found = self.processes()
            if not found:
                break
            _kill(found, grace_s=5)  # the GCS server ignores SIGTERM while it waits for its raylets


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """A head and two 1-CPU worker nodes on this machine, stopped (by temp dir and PID) afterwards."""
    root = Path(tempfile.mkdtemp(prefix="rnl", dir="/tmp"))  # short: Ray's socket paths live under it
    local = LocalCluster(root)
    try:
        local.start()
        yield local
    finally:
        local.teardown()
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class Driver:
    """A sweep driver process (its own session, so its group can be killed), output in a file."""

    proc: subprocess.Popen
    output: Path

    def wait(self, timeout_s: float) -> int:
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
            raise AssertionError(f"the sweep did not finish in {timeout_s} s:\n{self.tail()}") from None

    def tail(self, n: int = 4000) -> str:
        return self.output.read_text(errors="replace")[-n:] if self.output.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)


def _start_sweep(cluster: LocalCluster, workdir: Path, *args: str) -> Driver:
    workdir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-u", str(SCRIPT), "--workdir", str(workdir),
        "--ray-address", cluster.address,
        "--storage-path", str(workdir / "storage"),
        "--cache-root", str(workdir / "cache"),
        "--tracking-uri", f"sqlite:///{workdir / 'mlflow.db'}",
        *args,
    ]  # fmt: skip
    output = workdir / "driver.out"
    with open(output, "wb") as handle:
        proc = subprocess.Popen(
            command, cwd=workdir, env=cluster.env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Driver(proc, output)


def _progress(workdir: Path) -> dict[str, list[tuple[str, int, int, int]]]:
    """Per trial id: its progress lines (node id, pid, start step, step), in order."""
    out: dict[str, list[tuple[str, int, int, int]]] = {}
    for path in sorted(workdir.glob("progress-*.txt")):
        rows = []
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 4:
                rows.append((parts[0], int(parts[1]), int(parts[2]), int(parts[3])))
        out[path.stem.removeprefix("progress-")] = rows
    return out


def _runs(workdir: Path, experiment: str) -> list[Any]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id]) if found else []


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_worker_node_lost_mid_trial_retried_on_the_other_node_from_its_checkpoint(cluster, tmp_path):
    assert len(cluster.alive_workers()) == 2
    steps = 10
    driver = _start_sweep(cluster, tmp_path, "--name", "node-loss", "--steps", str(steps), "--step-seconds", "1.5",
                          "--max-failures", "3")  # fmt: skip
    try:
        # Wait for two checkpointed steps, then lose the node that runs the trial.
        assert _wait_for(
            lambda: (
                any(row[3] >= 1 for rows in _progress(tmp_path).values() for row in rows)
                or driver.proc.poll() is not None
            ),
            300,
        )
        assert driver.proc.poll() is None, f"the sweep ended before the node loss:\n{driver.tail()}"
        (trial_id, rows), *_ = _progress(tmp_path).items()
        lost_node_id, pid = rows[-1][0], rows[-1][1]
        lost = cluster.node_of(pid)
        assert lost is not None, f"trial process {pid} is under no worker node's raylet"
        killed = cluster.kill_node(lost)
        steps_before = len(_progress(tmp_path)[trial_id])
        assert killed >= 2  # the raylet and the trial's worker at least
        assert steps_before < steps

        code = driver.wait(420)
        assert code == 0, driver.tail()
    finally:
        driver.stop()

    rows = _progress(tmp_path)[trial_id]
    after = rows[steps_before:]
    assert after, rows
    assert all(row[0] != lost_node_id for row in after), rows  # the rest ran on another node...
    assert len({row[0] for row in after}) == 1
    assert after[0][2] > 0 and after[0][2] == after[0][3], rows  # ...resumed from a checkpoint, not from step 0
    assert after[-1][3] == steps - 1  # ...to the end
    assert {row[3] for row in rows} == set(range(steps))  # no step skipped

    runs = _runs(tmp_path, "node-loss")
    children = [r for r in runs if "trial_id" in r.data.tags]
    assert len(runs) == 2 and len(children) == 1, [r.data.tags for r in runs]
    child = children[0]
    assert child.data.tags["trial_id"] == trial_id
    assert child.data.tags.get("trial_complete") == "1"
    assert all(r.info.status == "FINISHED" for r in runs)
    assert child.data.metrics["resumed_from"] == after[0][2]


def _secret_forms(key: bytes) -> dict[str, bytes]:
    return {
        "raw": key,
        "hex": key.hex().encode(),
        "HEX": key.hex().upper().encode(),
        "base64": base64.b64encode(key).rstrip(b"="),
    }


def _files_holding(folders: list[Path], forms: dict[str, bytes], skip: set[Path]) -> list[str]:
    hits = []
    for folder in folders:
        for path in [folder] if folder.is_file() else sorted(folder.rglob("*")):
            if not path.is_file() or path.is_symlink() or path.resolve() in skip:
                continue
            try:
                data = path.read_bytes()
            except OSError:  # a socket or a file removed meanwhile
                continue
            hits += [f"{path} ({name})" for name, form in forms.items() if form in data]
    return hits


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_key_secret_on_a_multi_node_sweep(cluster, tmp_path):
    while len(cluster.alive_workers()) < 2:  # the previous test lost a node: add a fresh one
        cluster.add_worker(f"n{len(cluster.workers)}")
    cluster.wait_for_nodes(3)

    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    key_file = keys / "watermark.key"
    key = secrets.token_bytes(32)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    workdir = tmp_path / "run"
    driver = _start_sweep(cluster, workdir, "--name", "key-secrecy", "--trials", "2", "--barrier", "2", "--steps", "3",
                          "--step-seconds", "1", "--max-concurrent-trials", "2", "--key-file", str(key_file),
                          "--verbose")  # fmt: skip
    try:
        code = driver.wait(420)
    finally:
        driver.stop()
    assert code == 0, driver.tail()

    progress = _progress(workdir)
    assert len(progress) == 2 and all(rows and rows[-1][3] == 2 for rows in progress.values()), progress
    nodes = {row[0] for rows in progress.values() for row in rows}
    assert len(nodes) == 2, progress  # the two trials ran on two worker nodes at once
    runs = _runs(workdir, "key-secrecy")
    assert len(runs) == 3 and all(r.info.status == "FINISHED" for r in runs)
    assert (workdir / "mlflow.db").is_file() and (workdir / "storage").is_dir()

    assert os.stat(key_file).st_mode & 0o077 == 0
    forms = _secret_forms(key)
    folders = [
        workdir / "storage",
        workdir / "cache",
        workdir / "mlflow.db",
        workdir / "mlartifacts",
        workdir,  # progress files, driver output (stdout and stderr), anything else the run wrote
        cluster.root,  # Ray's temp dir (session folders, logs, runtime env packages), the node logs
    ]
    assert (workdir / "mlartifacts").is_dir() and any(cluster.temp_dir.rglob("*.log"))
    assert _files_holding([keys], forms, skip=set()) == [f"{key_file} (raw)"]  # the scan does find the key
    hits = _files_holding(folders, forms, skip={key_file.resolve()})
    assert not hits, f"the key appears in: {hits}"
    assert all(form not in driver.output.read_bytes() for form in forms.values())
