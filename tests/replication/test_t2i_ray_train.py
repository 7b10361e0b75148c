"""The tiny model trained in a Ray Train worker (`train_tiny_t2i_on_ray`): the same weights as in-process training,
checkpoints at the requested steps, and resume from `ray.train.get_checkpoint()` after an interruption whose local
resume state was lost (another node, a wiped disk)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from sweeps_testlib import ray_session  # noqa: F401  (a fixture: a local 2-CPU Ray with token auth)

from radio.progress import LineFile
from radio.replication.t2i import TinyT2I, TinyT2IConfig, checkpoint_dir, train_tiny_t2i
from radio.replication.t2i.ray_train import load_training_data, save_training_data, train_tiny_t2i_on_ray

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CAPTIONS = ["a bright sky over the sea", "a red square at night"]
CONFIG = TinyT2IConfig(
    train_steps=6, batch_size=2, block_out_channels=(8, 16), attention_levels=(1,), log_every_steps=2, threads=1
)
STEPS = [2, 4]


def _images() -> np.ndarray:
    images = np.zeros((2, 32, 32, 3), np.uint8)
    images[0, :16] = (240, 240, 250)
    images[1, 8:24, 8:24] = (220, 30, 30)
    return images


def _unet(folder: Path, step: int) -> dict[str, torch.Tensor]:
    return TinyT2I.load(checkpoint_dir(folder, step)).unet.state_dict()


def test_training_data_round_trip(tmp_path: Path) -> None:
    save_training_data(tmp_path, CAPTIONS, _images())
    captions, images = load_training_data(tmp_path)
    assert captions == CAPTIONS and np.array_equal(images, _images())
    with pytest.raises(FileNotFoundError, match=r"captions\.json"):
        load_training_data(tmp_path / "nowhere")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ray_worker_trains_and_resumes_from_its_checkpoint(tmp_path: Path, ray_session) -> None:  # noqa: F811
    data = save_training_data(tmp_path / "data", CAPTIONS, _images())
    local = train_tiny_t2i(CAPTIONS, _images(), tmp_path / "local", CONFIG, seed=3, checkpoint_steps=STEPS)

    whole = train_tiny_t2i_on_ray(data, tmp_path / "whole", CONFIG, 3, STEPS, storage_path=tmp_path / "ray", name="a")
    assert whole is not None and whole["completed"] and whole["losses"] == local["losses"]
    for step in (*STEPS, CONFIG.train_steps):
        a, b = _unet(tmp_path / "local", step), _unet(tmp_path / "whole", step)
        assert all(torch.equal(a[k], b[k]) for k in a), step  # the worker trains exactly as in-process

    cut = tmp_path / "cut"
    stopped = train_tiny_t2i_on_ray(
        data, cut, CONFIG, 3, STEPS, storage_path=tmp_path / "ray", name="b", stop_after_steps=4
    )
    assert stopped is None and checkpoint_dir(cut, 4).is_dir() and not checkpoint_dir(cut, 6).exists()
    # The local state is lost: only Ray Train's copy of the step-4 state can resume the run.
    shutil.rmtree(cut)
    lines = tmp_path / "progress.txt"
    resumed = train_tiny_t2i_on_ray(
        data, cut, CONFIG, 3, STEPS, storage_path=tmp_path / "ray", name="b", progress=LineFile(str(lines))
    )
    # Progress comes back from the worker: one line per logging window trained here (step 6 only), rate and ETA.
    reported = lines.read_text().splitlines()
    assert len(reported) == 1 and reported[0].startswith("tiny t2i: step 6/6 loss ")
    assert reported[0].endswith("steps/s ETA 0s")
    assert resumed is not None and resumed["completed"] and resumed["losses"] == local["losses"]
    assert not checkpoint_dir(cut, 2).exists()  # steps 1-4 were not trained again
    a, b = _unet(tmp_path / "local", 6), _unet(cut, 6)
    assert all(torch.equal(a[k], b[k]) for k in a)
