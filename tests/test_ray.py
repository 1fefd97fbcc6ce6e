"""The Ray executor against a real Ray cluster: the same numbers as the local executor, every run
stored exactly once when a node dies mid-sweep, and one-line errors for bad input.

One simulated cluster (``ray.cluster_utils.Cluster``: a head node and a worker node, one CPU
each) serves the whole module; it is shut down at the end.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
import torch  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

import initlab.results  # noqa: E402
from initlab._validation import InitlabError, ValidationError  # noqa: E402
from initlab.cli.main import main  # noqa: E402
from initlab.experiments import parse_spec, run_sweep  # noqa: E402
from initlab.experiments.executors import RayExecutor  # noqa: E402

SMALL = """
name = "ray-small"
[data]
name = "moons"
n_samples = 100
[grid]
init = ["zeros", "he_normal"]
activation = ["relu"]
depth = [1]
width = [4]
seed = [0, 1]
[train]
epochs = 5
"""
NODE = {"num_cpus": 1, "object_store_memory": 80 * 2**20}  # small nodes: a 2-core CI machine runs them all


@pytest.fixture()
def spec_file(tmp_path):
    path = tmp_path / "spec.toml"
    path.write_text(SMALL)
    return path


def _stored(store: Path) -> dict[str, tuple]:
    df = initlab.results.load(store, history=True)
    return {r.run_id: (r.status, r.epochs_run, r.train_loss, r.val_accuracy, r.history, r.trainer, r.init_seed, r.order_seed)
            for r in df.itertuples()}


# -------------------------------------------------------------------- bad input (no cluster needed)
def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_unknown_executor_is_one_line_with_did_you_mean(spec_file, tmp_path, capsys):
    store = tmp_path / "s.db"
    assert main(["sweep", str(spec_file), "--store", str(store), "--executor", "rya"]) == 2
    assert "unknown executor 'rya'; did you mean 'ray'? (allowed: local, ray)" in _one_line_error(capsys)
    assert main(["sweep", str(spec_file), "--store", str(store), "--address", "auto"]) == 2
    assert "--address needs --executor ray" in _one_line_error(capsys)
    assert not store.exists()


def test_missing_ray_names_the_extra(spec_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    store = tmp_path / "s.db"
    for address in ([], ["--address", "127.0.0.1:1"]):  # the missing package is named first
        assert main(["sweep", str(spec_file), "--store", str(store), "--executor", "ray", *address]) == 2
        assert "the ray executor needs Ray: pip install 'initlab[ray]'" in _one_line_error(capsys)
    assert not store.exists()


@pytest.mark.parametrize("address, message", [
    ("127.0.0.1:1", "no Ray cluster at --address '127.0.0.1:1' (Connection refused)"),
    ("127.0.0.1", "--address must be auto or HOST:PORT"),
    ("host:port", "--address must be auto or HOST:PORT"),
])
def test_unreachable_or_malformed_address_fails_fast_in_one_line(spec_file, tmp_path, capsys, address, message):
    store = tmp_path / "s.db"
    start = time.perf_counter()
    argv = ["sweep", str(spec_file), "--store", str(store), "--executor", "ray", "--address", address]
    assert main(argv) == 2
    assert time.perf_counter() - start < 30
    assert message in _one_line_error(capsys)
    assert not store.exists()


@pytest.mark.slow
def test_a_port_that_never_answers_times_out(tmp_path):
    """A listening socket that is not Ray: the connection gives up at the deadline (in a fresh process,
    since Ray's connection thread keeps trying in the background)."""
    code = (
        "import socket, sys, time\n"
        "from initlab.experiments.executors import RayExecutor\n"
        "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(1)\n"
        "t = time.perf_counter()\n"
        "try:\n"
        "    RayExecutor(address=f'127.0.0.1:{s.getsockname()[1]}', connect_timeout=3).start()\n"
        "except Exception as err:\n"
        "    print(type(err).__name__, round(time.perf_counter() - t, 1), err)\n"
    )
    src = Path(__file__).resolve().parents[1] / "src"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(src)}).stdout
    name, seconds, message = out.split(" ", 2)
    assert name == "ValidationError" and float(seconds) < 5
    assert "no Ray cluster answered at --address" in message and "within 3 s" in message


def test_settings_are_checked():
    with pytest.raises(ValidationError, match="threads must be an integer in \\[1, inf\\], got 0"):
        RayExecutor(threads=0).start()
    with pytest.raises(ValidationError, match="num_cpus sizes a local Ray instance"):
        RayExecutor(address="auto", num_cpus=2).start()


# -------------------------------------------------------------------- a local Ray instance
@pytest.mark.slow
def test_cli_on_a_local_ray_instance_stores_the_same_numbers_as_local(spec_file, tmp_path, capsys):
    """No --address: the sweep starts a private local Ray instance, and stops it afterwards."""
    assert not ray.is_initialized()
    local, remote = tmp_path / "local.db", tmp_path / "ray.db"
    threads = torch.get_num_threads()
    try:  # one torch thread in both, as in the Ray tasks, so that every sum adds in the same order
        assert main(["--threads", "1", "sweep", str(spec_file), "--store", str(local), "--max-batch", "2"]) == 0
        assert main(["sweep", str(spec_file), "--store", str(remote), "--executor", "ray", "--threads", "1",
                     "--max-batch", "2", "--json"]) == 0
    finally:
        torch.set_num_threads(threads)
    assert '"trained": 4' in capsys.readouterr().out
    assert not ray.is_initialized()  # the instance it started is gone
    want, got = _stored(local), _stored(remote)
    assert len(want) == 4 and got == want  # run ids, losses, accuracies, histories: identical


# -------------------------------------------------------------------- a real cluster
@pytest.fixture(scope="module")
def cluster():
    """A head node and one worker node, each with one CPU; this process is connected to it."""
    if ray.is_initialized():
        ray.shutdown()
    c = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
    c.add_node(**NODE)
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False)
    yield c
    ray.shutdown()
    c.shutdown()


@pytest.mark.slow
def test_cli_runs_on_the_cluster_it_is_connected_to(cluster, spec_file, tmp_path, capsys):
    store = tmp_path / "cli.db"
    assert main(["sweep", str(spec_file), "--store", str(store), "--executor", "ray", "--max-batch", "2", "--json"]) == 0
    assert '"trained": 4' in capsys.readouterr().out
    assert len(initlab.results.load(store)) == 4


@pytest.mark.slow
def test_cli_joins_a_cluster_by_address_and_stores_the_same_numbers_as_local(cluster, spec_file, tmp_path):
    """What the README shows: `ray start --head` somewhere, then `initlab sweep ... --address HOST:PORT`;
    the batches run on the cluster's two nodes, the numbers are the local executor's."""
    local, joined = tmp_path / "local.db", tmp_path / "joined.db"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the Ray tasks' setting, so that every sum adds in the same order
    try:
        run_sweep(spec_file, local, device="cpu", max_batch=1)
    finally:
        torch.set_num_threads(threads)
    argv = [sys.executable, "-m", "initlab", "sweep", str(spec_file), "--store", str(joined), "--max-batch", "1",
            "--executor", "ray", "--address", cluster.address, "--json"]
    src = Path(__file__).resolve().parents[1] / "src"
    done = subprocess.run(argv, capture_output=True, text=True, timeout=240, env={**os.environ, "PYTHONPATH": str(src)})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["trained"] == 4
    want, got = _stored(local), _stored(joined)
    assert len(want) == 4 and got == want


class _Traced:
    """Wraps an executor: each attempt of a batch logs the node it starts on (all nodes share this
    machine's disk). An attempt on ``doomed`` sleeps until that node dies; an attempt elsewhere
    waits for the file ``released``, so that the other nodes stay busy and the doomed node gets work."""

    def __init__(self, inner, log: Path, doomed: str, released: Path):
        self.inner, self.yielded = inner, []
        self.log, self.doomed, self.released = str(log), doomed, str(released)

    def map(self, fn, batches):
        log, doomed, released = self.log, self.doomed, self.released

        def traced(batch):  # a closure: Ray ships it by value, the workers need not import this test
            import os

            node = ray.get_runtime_context().get_node_id()
            with open(log, "a") as f:  # by batch id: a pickle's bytes differ between processes (set order)
                f.write(f"{node} {batch.batch_id}\n")
            if node == doomed:
                time.sleep(120)  # in flight until the node is removed
            deadline = time.monotonic() + 90
            while not os.path.exists(released) and time.monotonic() < deadline:
                time.sleep(0.05)
            return fn(batch)

        for batch, rows in self.inner.map(traced, batches):
            self.yielded += [record.run_id for record in rows]
            yield batch, rows


@pytest.mark.slow
def test_a_node_dying_mid_sweep_loses_and_doubles_nothing(cluster, tmp_path):
    """A third node is removed while it runs a batch (the other nodes are kept busy until then):
    Ray re-runs the batch on another node, and every run lands in the store exactly once."""
    spec = parse_spec({"data": {"name": "moons", "n_samples": 100},
                       "grid": {"init": ["zeros", "he_normal"], "activation": ["relu", "tanh"], "depth": [1],
                                "width": [4], "seed": [0, 1, 2]},
                       "train": {"epochs": 5}})
    doomed = cluster.add_node(**NODE)
    cluster.wait_for_nodes()
    log, released = tmp_path / "attempts.log", tmp_path / "released"
    log.touch()

    def remove_when_busy() -> None:
        deadline = time.monotonic() + 90
        while doomed.node_id not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        cluster.remove_node(doomed, allow_graceful=False)
        released.touch()

    remover = threading.Thread(target=remove_when_busy)
    remover.start()
    store = tmp_path / "s.db"
    executor = _Traced(RayExecutor(threads=1, max_retries=3), log, doomed.node_id, released)
    try:
        report = run_sweep(spec, store, device="cpu", executor=executor, max_batch=1)
    finally:
        remover.join()
    attempts = [line.split() for line in log.read_text().splitlines()]
    killed = {batch for node, batch in attempts if node == doomed.node_id}
    assert killed  # a batch was in flight on the node that died ...
    assert all(any(b == batch and n != doomed.node_id for n, b in attempts) for batch in killed)  # ... and ran again
    grid = {r.run_id for r in spec.runs()}
    assert report.trained == len(grid) == 12
    assert sorted(executor.yielded) == sorted(grid)  # each batch handed back exactly once
    con = sqlite3.connect(store)
    ids = [r for (r,) in con.execute("SELECT run_id FROM runs")]
    assert len(ids) == len(set(ids)) == len(grid) and set(ids) == grid


@pytest.mark.slow
def test_a_library_error_in_a_task_keeps_its_one_line_message(cluster):
    def bad(batch):
        raise ValidationError(f"batch {batch} is bad")

    with pytest.raises(InitlabError, match="^batch 1 is bad$"):
        list(RayExecutor().map(bad, [1]))
