"""LoRA through PEFT: low-rank adapters on the named modules; the adapter is merged into a plain model at the end.

The finished folder holds a `from_pretrained`-loadable model with the LoRA merged into the base weights, and the
adapter itself in `adapter/`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from radio.train.config import FinetuneConfig
from radio.train.methods import METHODS
from radio.train.result import ADAPTER_DIR, FinetuneError


@METHODS.register("lora")
class LoRA:
    """The `lora` method: `get_peft_model` with the config's rank, alpha, dropout and target modules."""

    name = "lora"

    def wrap(self, model: Any, cfg: FinetuneConfig, base_model_dir: Path) -> Any:
        """The PEFT model to train; unknown target modules are refused, naming them."""
        from peft import LoraConfig, get_peft_model

        names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
        unknown = sorted(set(cfg.lora_target_modules) - names)
        if unknown:
            raise FinetuneError(f"lora_target_modules: {unknown} are not modules of {base_model_dir}")
        lora = LoraConfig(
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=list(cfg.lora_target_modules),
            bias="none",
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, lora)
        if cfg.gradient_checkpointing:
            model.enable_input_require_grads()
        return model

    def save(self, trainer: Any, staging: Path) -> None:
        """Save the adapter into `staging/adapter` (a collective call under ZeRO-3)."""
        trainer.save_model(str(staging / ADAPTER_DIR))

    def finalize(self, base_model_dir: Path, staging: Path) -> None:
        """Rank 0: merge the adapter into the base weights and save a plain model into `staging`."""
        merge_lora(base_model_dir, staging / ADAPTER_DIR, staging)

    def adapter_dir(self, out_dir: Path) -> Path | None:
        """Where the finished folder keeps the adapter."""
        return out_dir / ADAPTER_DIR


def merge_lora(base_model_dir: Path, adapter_dir: Path, out_dir: Path) -> None:
    """Load the base weights, merge the trained LoRA adapter into them, save a plain model to `out_dir`."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_model_dir, dtype="auto")
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(str(out_dir))
