"""Fine-tuning model B: HF Trainer, optionally through DeepSpeed (ZeRO 0-3, CPU or GPU), full or LoRA (PEFT).

`finetune` (the recipe, `radio.train.finetune`) trains into a stable, resumable folder (also inside a Ray Train
worker); `finetune_stage` (`radio.train.stage`) is the cached stage under the cache root. Components: `config`,
`data`, `arguments`, `distributed`, `callbacks`, `checkpoint`, `result`; one file per method (`full`, `lora`);
`ray_train` runs the recipe in Ray Train workers. Heavy libraries (torch, transformers, deepspeed, peft, ray) load
on first use.
"""

from radio.train.config import FinetuneConfig
from radio.train.distributed import deepspeed_config
from radio.train.finetune import finetune
from radio.train.result import FinetuneError, FinetuneResult
from radio.train.stage import finetune_stage

__all__ = [
    "FinetuneConfig",
    "FinetuneError",
    "FinetuneResult",
    "deepspeed_config",
    "finetune",
    "finetune_stage",
]
