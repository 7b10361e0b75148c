"""Inside Ray Train V2: a TorchTrainer worker runs the DeepSpeed fine-tune; a rerun resumes from Ray's checkpoint."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from finetune_helpers import load_model, logits, tiny_cfg

from radio.train.result import METRICS_FILE

pytest.importorskip("ray")


@pytest.mark.slow
def test_finetune_in_ray_train_worker_resumes(ray_cluster, toy_base: Path, toy_data: Path, tmp_path: Path) -> None:
    from radio.train.ray_train import finetune_on_ray

    cfg = tiny_cfg(zero_stage=1, max_steps=6, save_every_steps=2)
    out = tmp_path / "model"
    kwargs = {"storage_path": tmp_path / "ray", "name": "ft"}
    stopped = finetune_on_ray(cfg, toy_base, toy_data, out, stop_after_steps=3, **kwargs)
    assert stopped is None and not (out / METRICS_FILE).exists()
    assert (out / "checkpoints" / "checkpoint-3").is_dir()
    assert any((tmp_path / "ray" / "ft").glob("checkpoint_*"))  # the Trainer checkpoint was reported to Ray
    shutil.rmtree(out / "checkpoints")  # e.g. a retry on another node: resume from the checkpoint Ray holds

    result = finetune_on_ray(cfg, toy_base, toy_data, out, **kwargs)
    assert result is not None and result.completed
    assert result.resumed_from_step == 3 and result.steps == 6
    assert not torch.allclose(logits(load_model(toy_base)), logits(load_model(out)), atol=1e-3)
