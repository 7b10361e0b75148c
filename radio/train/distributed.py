"""The process a fine-tune runs in: device, DeepSpeed config, the distributed environment, barriers."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from typing import Any

from radio.train.config import FinetuneConfig
from radio.train.result import FinetuneError

_DIST_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
# accelerate sets ACCELERATE_USE_DEEPSPEED=true for good once a DeepSpeed plugin is used; it must not leak into
# a later run without DeepSpeed in the same process.
_RUN_ENV = (*_DIST_ENV, "ACCELERATE_USE_DEEPSPEED", "ACCELERATE_TORCH_DEVICE")


def deepspeed_config(cfg: FinetuneConfig) -> dict[str, Any] | None:
    """The DeepSpeed config for `TrainingArguments(deepspeed=...)`; None when `cfg.zero_stage` is None.

    It names no "optimizer" and no "scheduler": the HF Trainer then builds its torch AdamW and its LR schedule
    and hands them to DeepSpeed (`zero_allow_untested_optimizer`), so DeepSpeed never JIT-compiles its fused
    or CPU Adam ops. "auto" values are filled by the Trainer from the TrainingArguments.
    """
    if cfg.zero_stage is None:
        return None
    zero: dict[str, Any] = {"stage": cfg.zero_stage}
    if cfg.zero_stage >= 2:
        zero.update({"contiguous_gradients": True, "overlap_comm": False})
    if cfg.zero_stage == 3:
        zero.update(
            {
                "stage3_gather_16bit_weights_on_model_save": True,
                "stage3_param_persistence_threshold": "auto",
                "stage3_prefetch_bucket_size": "auto",
                "reduce_bucket_size": "auto",
            }
        )
    return {
        "train_micro_batch_size_per_gpu": "auto",
        "train_batch_size": "auto",
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "bf16": {"enabled": cfg.precision == "bf16"},
        "fp16": {"enabled": cfg.precision == "fp16"},
        "zero_optimization": zero,
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 2**31 - 1,
        "wall_clock_breakdown": False,
    }


def resolve_device(cfg: FinetuneConfig) -> str:
    """`cpu` or `cuda`: the config's device, with `auto` meaning cuda when a GPU is visible (`radio.device`)."""
    from radio.device import resolve_device as resolve

    return resolve(cfg.device, error=FinetuneError)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def run_env(use_deepspeed: bool, device: str) -> Iterator[None]:
    """The process environment of one fine-tune; whatever it changes is restored afterwards.

    With DeepSpeed, a lone process gets RANK=0, WORLD_SIZE=1, LOCAL_RANK=0, MASTER_ADDR=127.0.0.1 and a free
    MASTER_PORT: without them DeepSpeed falls into MPI discovery and fails. Under Ray Train, torchrun or the
    deepspeed launcher they are already set and are kept. On CPU, accelerate is pointed at the CPU device.
    Without DeepSpeed, a stale ACCELERATE_USE_DEEPSPEED from an earlier run in this process is removed.
    """
    saved = {k: os.environ.get(k) for k in _RUN_ENV}
    try:
        if use_deepspeed:
            if "RANK" not in os.environ and "WORLD_SIZE" not in os.environ:
                os.environ.update(
                    {
                        "RANK": "0",
                        "WORLD_SIZE": "1",
                        "LOCAL_RANK": "0",
                        "LOCAL_WORLD_SIZE": "1",
                        "MASTER_ADDR": os.environ.get("MASTER_ADDR", "127.0.0.1"),
                        "MASTER_PORT": os.environ.get("MASTER_PORT", str(_free_port())),
                    }
                )
            if device == "cpu":
                os.environ.setdefault("ACCELERATE_TORCH_DEVICE", "cpu")
        else:
            os.environ.pop("ACCELERATE_USE_DEEPSPEED", None)
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def prepare_deepspeed(device: str) -> None:
    """Make DeepSpeed usable on `device` in this process; on CPU: cpu accelerator, gloo, nothing JIT-compiled.

    DS_ACCELERATOR=cpu must be set before DeepSpeed first resolves its accelerator (it is cached per process);
    the CPU accelerator then picks gloo (no oneCCL installed). DeepSpeed's comm backend would JIT-compile its
    shared-memory all-reduce op on a CPU (about a minute, and useless for one process): marking that op
    incompatible makes it fall back to plain torch.distributed collectives.
    """
    if device == "cpu":
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    import deepspeed.ops
    from deepspeed.accelerator import get_accelerator

    name = get_accelerator().device_name()
    if device == "cpu":
        if name != "cpu":
            raise FinetuneError(
                f"device: cpu with DeepSpeed, but DeepSpeed already chose accelerator {name!r} in this "
                "process; start the process with DS_ACCELERATOR=cpu (or CUDA_VISIBLE_DEVICES=)"
            )
        compatible = deepspeed.ops.__compatible_ops__  # probed once per process; edits persist
        compatible["deepspeed_shm_comm"] = False
        compatible["deepspeed_ccl_comm"] = False


def init_deepspeed_comm() -> None:
    """Wrap the process group that the Trainer's arguments started in DeepSpeed's comm layer, once per process.

    On GPU accelerate calls `deepspeed.comm.init_distributed` itself. On CPU it starts a plain gloo group
    (`use_cpu`: accelerate's only multi-process CPU path) and DeepSpeed's comm layer stays unset; ZeRO-3's
    `zero.Init` (run by `from_pretrained`) then reads a world size of 1 and checks the batch sizes against it.
    Handing it the running group first (its own backend, no MPI discovery) makes both devices one path.
    """
    import torch.distributed as dist
    from deepspeed import comm

    if comm.is_initialized():
        return
    backend = dist.get_backend() if dist.is_available() and dist.is_initialized() else None
    comm.init_distributed(dist_backend=backend, auto_mpi_discovery=False)


def barrier() -> None:
    """Wait for every rank (a no-op for a single process)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()
