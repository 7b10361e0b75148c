"""Fine-tuning model B: HF Trainer, optionally through DeepSpeed (ZeRO 0-3, CPU or GPU), full or LoRA (PEFT).

`finetune` trains into a stable, resumable folder (also inside a Ray Train worker); `finetune_stage` is the
cached stage under the cache root. Heavy libraries (torch, transformers, deepspeed, peft, ray) load on first
use.
"""

from radio.train.config import FinetuneConfig
from radio.train.finetune import (
    FinetuneError,
    FinetuneResult,
    deepspeed_config,
    finetune,
    finetune_stage,
)

__all__ = [
    "FinetuneConfig",
    "FinetuneError",
    "FinetuneResult",
    "deepspeed_config",
    "finetune",
    "finetune_stage",
]
