"""The tiny text-to-image model of the embedded default: a ~1M-parameter pixel-space diffusers UNet with a 2-layer
CLIP text encoder and a word-level tokenizer, trained jointly from scratch (`train_tiny_t2i`), runnable alone or in
a Ray Train worker (`radio.replication.t2i.ray_train`).
"""

from radio.replication.t2i.config import TinyT2IConfig
from radio.replication.t2i.model import CheckpointError, TinyT2I, read_checkpoint_meta
from radio.replication.t2i.train import TrainingDataError, checkpoint_dir, train_tiny_t2i

__all__ = [
    "CheckpointError",
    "TinyT2I",
    "TinyT2IConfig",
    "TrainingDataError",
    "checkpoint_dir",
    "read_checkpoint_meta",
    "train_tiny_t2i",
]
