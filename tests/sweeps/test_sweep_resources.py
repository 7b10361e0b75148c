"""Resources: a trial's driver and all its Ray Train workers are counted together; a request that no cluster
state could place stops the sweep before it starts, naming the request and the resource."""

from __future__ import annotations

import pytest
import sweeps_testlib  # noqa: F401  (import paths)

from sweeps.engine import ConfigError, Resources
from sweeps.engine.resources import check_fits, local_resources, shortfalls, trials_that_fit

PAPER_TRIAL = Resources(cpu=1, workers=8, cpu_per_worker=8, gpu_per_worker=1)  # the paper preset's trial


def test_the_concurrency_line_counts_every_worker() -> None:
    two_workers = Resources(cpu=0.02, workers=2, cpu_per_worker=0.49)
    count, why = trials_that_fit(two_workers, {"CPU": 2.0})
    assert count == 2 and why == "2 CPU free / 1 CPU per trial (0.02 + 2 workers x 0.49)"
    count, why = trials_that_fit(PAPER_TRIAL, {"CPU": 200.0, "GPU": 16.0})
    assert count == 2 and "16 GPU free / 8 GPU per trial (0 + 8 workers x 1)" in why


def test_shortfalls_name_the_request_and_the_resource() -> None:
    laptop = {"CPU": 2.0, "GPU": 0.0}
    lines = shortfalls({"a trial": PAPER_TRIAL, "stage bob": Resources(cpu=8, gpu=1)}, laptop)
    assert lines == [
        "a trial needs 65 CPU (1 CPU; 8 Ray Train worker(s) x (8 CPU + 1 GPU)) but the cluster has 2 CPU",
        "a trial needs 8 GPU (1 CPU; 8 Ray Train worker(s) x (8 CPU + 1 GPU)) but the cluster has 0 GPU",
        "stage bob needs 8 CPU (8 CPU + 1 GPU) but the cluster has 2 CPU",
        "stage bob needs 1 GPU (8 CPU + 1 GPU) but the cluster has 0 GPU",
    ]
    assert shortfalls({"a trial": PAPER_TRIAL}, {"CPU": 65.0, "GPU": 8.0}) == []


def test_a_worker_larger_than_every_node_never_fits() -> None:
    # 4 nodes of 2 GPUs hold 8 GPUs in all, but a worker asking for 4 GPUs fits on none of them.
    trial = Resources(cpu=1, workers=2, cpu_per_worker=4, gpu_per_worker=4)
    nodes = [{"CPU": 16.0, "GPU": 2.0}] * 4
    assert shortfalls({"a trial": trial}, {"CPU": 64.0, "GPU": 8.0}, nodes) == [
        "a trial: a Ray Train worker needs 4 GPU but the largest node has 2 GPU"
    ]


def test_check_fits_raises_one_clear_error() -> None:
    with pytest.raises(ConfigError) as err:
        check_fits({"a trial": PAPER_TRIAL}, {"CPU": 2.0}, where="this machine")
    text = str(err.value)
    assert text.startswith("resources: the preset asks for more than this machine has (2 CPU, 0 GPU):")
    assert "but the cluster has 0 GPU" in text and "--ray-address" in text
    check_fits({"a trial": Resources(cpu=0.01, workers=2, cpu_per_worker=0.99)}, {"CPU": 2.0})  # fits: no error


def test_local_resources_counts_this_machine_or_takes_the_options() -> None:
    assert local_resources(num_cpus=3, num_gpus=2) == {"CPU": 3.0, "GPU": 2.0}
    counted = local_resources()
    assert counted["CPU"] >= 1 and counted["GPU"] >= 0
