"""LoRA through PEFT: only the adapters train, the merged checkpoint reloads as a plain model and differs from base."""

from __future__ import annotations

from pathlib import Path

import torch
from finetune_helpers import load_model, logits, tiny_cfg
from safetensors.torch import load_file

from radio.train import finetune
from radio.train.result import loss_decreased

TARGETS = ("q_proj", "v_proj", "down_proj")


def test_lora_trains_adapters_only_and_merges(toy_base: Path, toy_data: Path, tmp_path: Path) -> None:
    cfg = tiny_cfg(method="lora", zero_stage=0, learning_rate=3e-2, epochs=2, lora_target_modules=TARGETS)
    result = finetune(cfg, toy_base, toy_data, tmp_path / "lora")
    assert result.completed and loss_decreased(result)
    assert 0 < result.trainable_params < result.total_params / 5

    adapter = load_file(str(result.adapter_dir / "adapter_model.safetensors"))
    assert adapter and all("lora_" in name for name in adapter)
    assert {name.split(".")[-3] for name in adapter} == set(TARGETS)

    base, merged = load_model(toy_base), load_model(result.checkpoint_dir)
    assert type(merged).__name__ == "LlamaForCausalLM"  # a plain model: the adapter is merged in
    base_weights, merged_weights = base.state_dict(), merged.state_dict()
    assert base_weights.keys() == merged_weights.keys()
    for name, weight in base_weights.items():
        changed = not torch.equal(weight, merged_weights[name])
        assert changed == any(f"{t}.weight" in name for t in TARGETS), name
    assert not torch.allclose(logits(base), logits(merged), atol=1e-4)
