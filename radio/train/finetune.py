"""Fine-tune a causal LM on prompt/answer data with the HF Trainer, optionally via DeepSpeed, full or LoRA.

Two entry points, one output layout:

- `finetune(cfg, base_model_dir, train_dir, out_dir)` trains into a *stable* folder and is resumable: a rerun
  on the same `out_dir` resumes from the last complete Trainer checkpoint in `out_dir/checkpoints`, and
  returns at once when `out_dir` is already complete. Use it where the caller owns the folder (a Ray Tune
  trial that may be retried, `radio finetune --out`). Inside a Ray Train worker it also reports metrics and
  checkpoints to Ray.
- `finetune_stage(cfg, base_model_dir, train_dir, root)` is the cached stage: its folder under
  `root/finetune/` is named by the hash of the config and of the inputs, so an identical fine-tune is never
  redone. It trains in `root/finetune/.work-<hash>` (stable, so a crashed run resumes there on the next call)
  and moves the finished files into the stage folder through `radio.cache.run_stage`, which writes
  `manifest.json` last.

A finished `out_dir` holds a `from_pretrained`-loadable model with its tokenizer (LoRA merged into the base
weights; the adapter itself kept in `adapter/`), and `train_metrics.json` (loss curve, tokens/s, wall time),
written last: a folder without it is incomplete. The loss is on the answer tokens (and the appended EOS) only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import math
import os
import shutil
import socket
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from radio.cache import MANIFEST, StageOutput, config_hash, default_cache_root, find_complete, run_stage
from radio.train.config import FinetuneConfig

log = logging.getLogger(__name__)

STAGE = "finetune"
METRICS_FILE = "train_metrics.json"
RUN_FILE = "finetune_run.json"
CHECKPOINTS_DIR = "checkpoints"
ADAPTER_DIR = "adapter"
_STAGING_DIR = ".staging"
# Fields that change how a run is executed or logged, not the model it produces: left out of the stage hash.
_EXECUTION_FIELDS = ("log_every_steps", "save_every_steps", "keep_checkpoints")
_DIST_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
# accelerate sets ACCELERATE_USE_DEEPSPEED=true for good once a DeepSpeed plugin is used; it must not leak into
# a later run without DeepSpeed in the same process.
_RUN_ENV = (*_DIST_ENV, "ACCELERATE_USE_DEEPSPEED", "ACCELERATE_TORCH_DEVICE")


class FinetuneError(ValueError):
    """An input of the fine-tune (model folder, dataset, output folder) is unusable; the message names it."""


@dataclass(frozen=True)
class FinetuneResult:
    """Outcome of a fine-tune: where the checkpoint is, and what training measured.

    `completed` is False only when the run was stopped early on purpose (`stop_after_steps`): then the model
    in `checkpoint_dir` is not written yet and a later call resumes. `tokens_per_s` (non-padding tokens per
    second of the training loop, without model loading and DeepSpeed set-up) and `wall_time_s` (model loading
    to final save) cover the last session, after a resume only the resumed part; `train_tokens` counts
    non-padding tokens over the whole run.
    """

    checkpoint_dir: Path
    adapter_dir: Path | None
    metrics_path: Path | None
    completed: bool
    method: str
    steps: int
    max_steps: int
    resumed_from_step: int
    train_loss: float | None
    loss_curve: tuple[tuple[int, float], ...]
    train_tokens: int
    tokens_per_s: float
    wall_time_s: float
    trainable_params: int
    total_params: int
    n_examples: int
    n_dropped: int
    n_watermarked: int | None

    @property
    def final_loss(self) -> float | None:
        """Mean of the last (up to) 3 logged losses."""
        tail = [loss for _, loss in self.loss_curve[-3:]]
        return sum(tail) / len(tail) if tail else None

    def counts(self) -> dict[str, Any]:
        """Numbers for the stage manifest."""
        return {
            "steps": self.steps,
            "train_tokens": self.train_tokens,
            "tokens_per_s": round(self.tokens_per_s, 1),
            "final_loss": self.final_loss,
            "trainable_params": self.trainable_params,
            "total_params": self.total_params,
            "n_examples": self.n_examples,
            "n_dropped": self.n_dropped,
            "n_watermarked": self.n_watermarked,
        }

    def to_json(self) -> dict[str, Any]:
        """JSON view with paths relative to the checkpoint folder (the folder may be moved as a whole)."""
        data = asdict(self)
        data["checkpoint_dir"] = "."
        data["adapter_dir"] = ADAPTER_DIR if self.adapter_dir is not None else None
        data["metrics_path"] = METRICS_FILE
        data["loss_curve"] = [list(p) for p in self.loss_curve]
        data["final_loss"] = self.final_loss
        return data

    @classmethod
    def load(cls, folder: str | Path) -> FinetuneResult:
        """Read the result of a completed fine-tune from its folder."""
        folder = Path(folder).resolve()
        data = json.loads((folder / METRICS_FILE).read_text())
        result = data["result"]
        fields = {k: result[k] for k in cls.__dataclass_fields__ if k in result}
        fields["checkpoint_dir"] = folder
        fields["adapter_dir"] = folder / ADAPTER_DIR if result.get("adapter_dir") else None
        fields["metrics_path"] = folder / METRICS_FILE
        fields["loss_curve"] = tuple((int(s), float(v)) for s, v in result["loss_curve"])
        return cls(**fields)


# ------------------------------------------------------------------------------------------------------------
# DeepSpeed and the distributed environment
# ------------------------------------------------------------------------------------------------------------


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
    """`cpu` or `cuda`: the config's device, with `auto` meaning cuda when a GPU is visible."""
    import torch

    if cfg.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise FinetuneError("device: cuda requested but no CUDA device is visible")
    return cfg.device


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


# ------------------------------------------------------------------------------------------------------------
# Inputs
# ------------------------------------------------------------------------------------------------------------


def input_digest(path: str | Path) -> str:
    """Identity of an input folder for stage hashing.

    Its stage hash if it is a radio stage output (has a manifest), else a hash of its files (names, sizes, and
    contents; for files over 64 MiB the first and last 4 MiB).
    """
    path = Path(path)
    manifest = path / MANIFEST
    if manifest.is_file():
        data = json.loads(manifest.read_text())
        if data.get("hash"):
            return f"{data.get('stage', 'stage')}:{data['hash']}"
    if not path.exists():
        raise FinetuneError(f"{path}: not found")
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        rel = file.relative_to(path).as_posix() if file != path else file.name
        if any(part.startswith(".") for part in Path(rel).parts):
            continue
        size = file.stat().st_size
        digest.update(f"{rel}\0{size}\0".encode())
        with file.open("rb") as handle:
            if size <= 64 << 20:
                digest.update(handle.read())
            else:
                digest.update(handle.read(4 << 20))
                handle.seek(size - (4 << 20))
                digest.update(handle.read())
    return "files:" + digest.hexdigest()[:16]


@dataclass(frozen=True)
class _TrainData:
    dataset: Any  # datasets.Dataset with input_ids, labels
    n_examples: int
    n_dropped: int
    n_watermarked: int | None
    answer_tokens: int
    max_token_id: int


def _check_base_dir(base_model_dir: Path) -> None:
    if not base_model_dir.is_dir():
        raise FinetuneError(f"{base_model_dir}: base model folder not found")
    if not (base_model_dir / "config.json").is_file():
        raise FinetuneError(f"{base_model_dir}: no config.json (expected a save_pretrained model folder)")


def load_train_data(
    train_dir: Path, cfg: FinetuneConfig, vocab_size: int, eos_id: int | None, where_vocab: str
) -> _TrainData:
    """Load and check the prompt/answer dataset and turn it into (input_ids, labels) rows.

    Rows are prompt + answer (+ EOS), cut to `max_seq_len`; labels are -100 on the prompt. Rows left without
    any answer token after the cut are dropped (and counted). Errors name the folder and the column.
    """
    import datasets
    import pyarrow.compute as pc

    if not train_dir.exists():
        raise FinetuneError(f"{train_dir}: training dataset folder not found")
    try:
        data = datasets.load_from_disk(str(train_dir))
    except Exception as err:  # datasets raises several types for a folder that is not a saved dataset
        if _saved_without_rows(train_dir):  # datasets cannot load back a dataset saved with zero rows
            raise FinetuneError(f"{train_dir}: the training dataset is empty") from err
        raise FinetuneError(f"{train_dir}: not a datasets.save_to_disk folder ({err})") from err
    if isinstance(data, datasets.DatasetDict):
        if "train" not in data:
            raise FinetuneError(f"{train_dir}: a DatasetDict without a 'train' split ({sorted(data)})")
        data = data["train"]
    missing = [c for c in ("prompt_ids", "answer_ids") if c not in data.column_names]
    if missing:
        raise FinetuneError(f"{train_dir}: missing column(s) {missing}; has {data.column_names}")
    if len(data) == 0:
        raise FinetuneError(f"{train_dir}: the training dataset is empty")
    data = data.flatten_indices(keep_in_memory=True) if data._indices is not None else data
    table = data.data.table
    for column in ("prompt_ids", "answer_ids"):
        values = pc.list_flatten(table.column(column))
        if len(values) == 0:
            continue
        low, high = pc.min_max(values).values()
        if low.as_py() < 0:
            raise FinetuneError(f"{train_dir}: column {column} holds a negative token id {low.as_py()}")
        if high.as_py() >= vocab_size:
            raise FinetuneError(
                f"{train_dir}: column {column} holds token id {high.as_py()} >= the model's vocab_size "
                f"{vocab_size} ({where_vocab}); was the data tokenized for another model?"
            )
    max_id = max(int(pc.max(pc.list_flatten(table.column(c))).as_py() or 0) for c in ("prompt_ids", "answer_ids"))
    n_watermarked = None
    if "watermarked" in data.column_names:
        n_watermarked = int(pc.sum(table.column("watermarked").cast("int64")).as_py() or 0)
    tail = [eos_id] if cfg.append_eos and eos_id is not None else []
    max_len = cfg.max_seq_len

    def build(batch: Mapping[str, Sequence[Sequence[int]]]) -> dict[str, list[list[int]]]:
        ids_out, labels_out = [], []
        for prompt, answer in zip(batch["prompt_ids"], batch["answer_ids"], strict=True):
            target = list(answer) + tail
            ids = (list(prompt) + target)[:max_len]
            labels = ([-100] * len(prompt) + target)[:max_len]
            if len(ids) < 2 or all(v == -100 for v in labels[1:]):
                continue  # no answer token left to learn from (the first position is never predicted)
            ids_out.append(ids)
            labels_out.append(labels)
        return {"input_ids": ids_out, "labels": labels_out}

    rows = data.map(
        build,
        batched=True,
        remove_columns=data.column_names,
        keep_in_memory=True,
        desc="tokens to training rows",
    )
    n_dropped = len(data) - len(rows)
    if n_dropped:
        log.warning("%d of %d examples dropped: no answer token within max_seq_len=%d", n_dropped, len(data), max_len)
    if len(rows) == 0:
        raise FinetuneError(f"{train_dir}: no example keeps an answer token within max_seq_len={max_len}")
    answer_tokens = sum(sum(1 for v in labels[1:] if v != -100) for labels in rows["labels"])
    return _TrainData(rows, len(rows), n_dropped, n_watermarked, answer_tokens, max_id)


@dataclass(frozen=True)
class _Inputs:
    tokenizer: Any
    eos_id: int | None
    pad_id: int
    vocab_size: int
    data: _TrainData


def load_inputs(cfg: FinetuneConfig, base_model_dir: Path, train_dir: Path) -> _Inputs:
    """Tokenizer, special ids and the checked training rows, read without loading the model weights."""
    from transformers import AutoConfig, AutoTokenizer

    _check_base_dir(base_model_dir)
    try:
        tokenizer = AutoTokenizer.from_pretrained(base_model_dir)
    except Exception as err:  # transformers raises OSError/ValueError/... for a folder without a tokenizer
        raise FinetuneError(f"{base_model_dir}: cannot load its tokenizer ({err})") from err
    try:
        config = AutoConfig.from_pretrained(base_model_dir)
    except Exception as err:
        raise FinetuneError(f"{base_model_dir}/config.json: cannot read it ({err})") from err
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    vocab_size = getattr(text_config, "vocab_size", None)
    if not isinstance(vocab_size, int) or vocab_size <= 0:
        raise FinetuneError(f"{base_model_dir}/config.json: no vocab_size")
    eos_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else text_config.eos_token_id
    if isinstance(eos_id, list):
        eos_id = eos_id[0] if eos_id else None
    if cfg.append_eos and eos_id is None:
        raise FinetuneError(f"{base_model_dir}: append_eos is set but neither tokenizer nor config has an EOS")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_id
    if len(tokenizer) > vocab_size:
        log.warning("tokenizer has %d entries but the model only %d rows", len(tokenizer), vocab_size)
    data = load_train_data(train_dir, cfg, vocab_size, eos_id, f"{base_model_dir / 'config.json'}")
    return _Inputs(tokenizer, eos_id, 0 if pad_id is None else pad_id, vocab_size, data)


def _saved_without_rows(folder: Path) -> bool:
    try:
        state = json.loads((folder / "state.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(state, dict) and state.get("_data_files") == []


class _Collator:
    """Right-pads a batch: pad id in input_ids, -100 in labels, 0 in attention_mask."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, features: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        width = max(len(f["input_ids"]) for f in features)
        n = len(features)
        input_ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        labels = torch.full((n, width), -100, dtype=torch.long)
        mask = torch.zeros((n, width), dtype=torch.long)
        for i, f in enumerate(features):
            length = len(f["input_ids"])
            input_ids[i, :length] = torch.tensor(f["input_ids"], dtype=torch.long)
            labels[i, :length] = torch.tensor(f["labels"], dtype=torch.long)
            mask[i, :length] = 1
        return {"input_ids": input_ids, "labels": labels, "attention_mask": mask}


# ------------------------------------------------------------------------------------------------------------
# Ray (optional, imported lazily)
# ------------------------------------------------------------------------------------------------------------


def in_ray_train_worker() -> bool:
    """True inside a Ray Train worker's train loop; never imports Ray when the process has not."""
    if "ray" not in sys.modules:
        return False
    try:
        import ray.train

        ray.train.get_context()
    except Exception:  # not a Ray Train worker (or an old/odd Ray): no reporting
        return False
    return True


def _ray_restore_checkpoint(ckpt_root: Path) -> Path | None:
    """Copy the latest checkpoint that Ray Train holds for this run into `ckpt_root`, if any."""
    import ray.train

    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        state = json.loads((Path(folder) / "trainer_state.json").read_text())
        target = ckpt_root / f"checkpoint-{int(state['global_step'])}"
        if not target.exists():
            shutil.copytree(folder, target)
    log.info("restored Ray Train checkpoint into %s", target)
    return target


# ------------------------------------------------------------------------------------------------------------
# Output folder state
# ------------------------------------------------------------------------------------------------------------


def last_checkpoint(ckpt_root: Path, clean: bool = False) -> Path | None:
    """The highest-step complete Trainer checkpoint (trainer_state.json is written last) in `ckpt_root`.

    With `clean`, incomplete checkpoint folders (a save cut short) are deleted."""
    if not ckpt_root.is_dir():
        return None
    found = []
    for entry in ckpt_root.iterdir():
        if entry.is_dir() and entry.name.startswith("checkpoint-") and entry.name[11:].isdigit():
            if (entry / "trainer_state.json").is_file():
                found.append((int(entry.name[11:]), entry))
            elif clean:
                log.warning("removing incomplete checkpoint %s", entry)
                shutil.rmtree(entry, ignore_errors=True)
    return max(found)[1] if found else None


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)


def _clean_incomplete_outputs(out_dir: Path) -> None:
    """Remove final-model files of an earlier unfinished attempt; keep checkpoints and the run file."""
    for entry in out_dir.iterdir():
        if entry.name in (CHECKPOINTS_DIR, RUN_FILE):
            continue
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _run_identity(cfg: FinetuneConfig, base_model_dir: Path, train_dir: Path) -> dict[str, Any]:
    return {
        "config": cfg.to_dict(),
        "base_model_dir": str(base_model_dir),
        "train_dir": str(train_dir),
        "inputs": {"base_model": input_digest(base_model_dir), "train_data": input_digest(train_dir)},
    }


def _same_run(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    def shaping(run: Mapping[str, Any]) -> dict[str, Any]:
        config = {k: v for k, v in run["config"].items() if k not in _EXECUTION_FIELDS}
        return {"config": config, "inputs": run["inputs"]}

    return shaping(a) == shaping(b)


# ------------------------------------------------------------------------------------------------------------
# Trainer callbacks
# ------------------------------------------------------------------------------------------------------------


def _callbacks(report_to_ray: bool, stop_after_steps: int | None) -> list[Any]:
    from tqdm.auto import tqdm
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        """tqdm bar over optimizer steps with tokens/s and ETA; loss lines through logging."""

        tokens_per_s = 0.0  # of the training loop (after model wrapping / DeepSpeed set-up), set at the end

        def on_train_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()
            self.tokens0 = state.num_input_tokens_seen
            self.step0 = state.global_step
            self.loss = float("nan")
            self.bar = tqdm(
                total=state.max_steps,
                initial=state.global_step,
                unit="step",
                desc="finetune",
                disable=not state.is_world_process_zero,
                mininterval=1.0,
                dynamic_ncols=True,
            )

        def _rate(self, state) -> float:
            elapsed = max(time.perf_counter() - self.start, 1e-9)
            return (state.num_input_tokens_seen - self.tokens0) / elapsed

        def on_step_end(self, args, state, control, **kwargs):
            self.bar.update(state.global_step - self.bar.n)
            self._postfix(state)

        def _postfix(self, state) -> None:
            postfix = {"loss": f"{self.loss:.4f}", "tok/s": f"{self._rate(state):.0f}"}
            self.bar.set_postfix(postfix, refresh=False)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or "loss" not in logs:
                return
            self.loss = float(logs["loss"])
            self._postfix(state)
            done = state.global_step - self.step0
            elapsed = time.perf_counter() - self.start
            eta = elapsed / done * (state.max_steps - state.global_step) if done else float("nan")
            if state.is_world_process_zero:
                log.info(
                    "step %d/%d loss %.4f lr %.3g %.0f tokens/s eta %.0fs",
                    state.global_step,
                    state.max_steps,
                    self.loss,
                    float(logs.get("learning_rate", float("nan"))),
                    self._rate(state),
                    eta,
                )
            if report_to_ray:
                import ray.train

                ray.train.report(
                    {
                        "step": state.global_step,
                        "loss": self.loss,
                        "learning_rate": float(logs.get("learning_rate", float("nan"))),
                        "epoch": float(state.epoch or 0.0),
                        "tokens_per_s": self._rate(state),
                    }
                )

        def on_train_end(self, args, state, control, **kwargs):
            self.bar.close()
            self.tokens_per_s = self._rate(state)

    class RaySave(TrainerCallback):
        """Hands every saved Trainer checkpoint to Ray Train (rank 0's copy)."""

        def on_save(self, args, state, control, **kwargs):
            import ray.train

            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            checkpoint = None
            if state.is_world_process_zero and folder.is_dir():
                checkpoint = ray.train.Checkpoint.from_directory(str(folder))
            metrics = {"step": state.global_step, "checkpoint_step": state.global_step}
            ray.train.report(metrics, checkpoint=checkpoint)

    class StopAfter(TrainerCallback):
        """Stops (with a checkpoint) after `stop_after_steps` optimizer steps: an interruption on purpose."""

        def on_step_end(self, args, state, control, **kwargs):
            if stop_after_steps is not None and state.global_step >= stop_after_steps:
                control.should_save = True
                control.should_training_stop = True

    callbacks: list[Any] = [Progress()]
    if report_to_ray:
        callbacks.append(RaySave())
    if stop_after_steps is not None:
        callbacks.append(StopAfter())
    return callbacks


# ------------------------------------------------------------------------------------------------------------
# The fine-tune
# ------------------------------------------------------------------------------------------------------------


def finetune(
    cfg: FinetuneConfig,
    base_model_dir: str | Path,
    train_dir: str | Path,
    out_dir: str | Path,
    *,
    stop_after_steps: int | None = None,
    report_to_ray: bool | None = None,
    callbacks: Sequence[Any] = (),
) -> FinetuneResult:
    """Fine-tune the model in `base_model_dir` on the dataset in `train_dir` into the stable folder `out_dir`.

    Resumable: a call on an `out_dir` that holds Trainer checkpoints of the same config and inputs resumes
    from the last complete one (inside Ray Train, from Ray's checkpoint when `out_dir` has none); a call on a
    completed `out_dir` returns its result without training; an `out_dir` of another config or input is
    refused. `stop_after_steps` stops after that many optimizer steps with a checkpoint saved (an interruption
    on purpose; the result has `completed=False`). `report_to_ray` None means: when running inside a Ray Train
    worker. `callbacks` are extra `transformers.TrainerCallback`s (timing, custom reporting).
    """
    base_model_dir = Path(base_model_dir).resolve()
    train_dir = Path(train_dir).resolve()
    out_dir = Path(out_dir).resolve()
    _check_base_dir(base_model_dir)
    if not train_dir.exists():
        raise FinetuneError(f"{train_dir}: training dataset folder not found")
    identity = _run_identity(cfg, base_model_dir, train_dir)

    if (out_dir / METRICS_FILE).is_file():
        previous = json.loads((out_dir / METRICS_FILE).read_text())
        if not _same_run(previous["run"], identity):
            raise FinetuneError(f"{out_dir}: holds a completed fine-tune of another config or input")
        log.info("fine-tune already complete in %s", out_dir)
        return FinetuneResult.load(out_dir)
    if (out_dir / RUN_FILE).is_file():
        previous = json.loads((out_dir / RUN_FILE).read_text())
        if not _same_run(previous, identity):
            raise FinetuneError(f"{out_dir}: holds checkpoints of another config or input; use a new folder")
    elif out_dir.is_dir() and any(out_dir.iterdir()):
        raise FinetuneError(f"{out_dir}: exists and is not a fine-tune folder; use an empty or new folder")

    if report_to_ray is None:
        report_to_ray = in_ray_train_worker()
    inputs = load_inputs(cfg, base_model_dir, train_dir)  # every input error before any training set-up
    device = resolve_device(cfg)
    ds_config = deepspeed_config(cfg)
    if ds_config is not None:
        prepare_deepspeed(device)
    # DeepSpeed needs a distributed environment even for one process; the plain Trainer runs without one.
    with run_env(ds_config is not None, device):
        return _train(
            cfg,
            base_model_dir,
            train_dir,
            out_dir,
            inputs,
            identity,
            device,
            ds_config,
            stop_after_steps,
            report_to_ray,
            callbacks,
        )


def _count_params(model: Any) -> tuple[int, int]:
    trainable = total = 0
    for p in model.parameters():
        n = int(getattr(p, "ds_numel", p.numel()))
        total += n
        trainable += n if p.requires_grad else 0
    return trainable, total


def _train(
    cfg: FinetuneConfig,
    base_model_dir: Path,
    train_dir: Path,
    out_dir: Path,
    inputs: _Inputs,
    identity: dict[str, Any],
    device: str,
    ds_config: dict[str, Any] | None,
    stop_after_steps: int | None,
    report_to_ray: bool,
    extra_callbacks: Sequence[Any],
) -> FinetuneResult:
    start = time.perf_counter()
    data = inputs.data
    import torch
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    ckpt_root = out_dir / CHECKPOINTS_DIR
    schedule = cfg.lr_schedule
    if schedule == "constant" and cfg.warmup_ratio > 0:
        schedule = "constant_with_warmup"
    # transformers 5 renamed gradient_checkpointing (still accepted, warns) to activation_checkpointing.
    fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    checkpointing = "activation_checkpointing"
    if checkpointing not in fields:
        checkpointing = "gradient_checkpointing"
    # TrainingArguments before from_pretrained: with ZeRO-3 the model is then partitioned while it loads.
    args = TrainingArguments(
        output_dir=str(ckpt_root),
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps if cfg.max_steps is not None else -1,
        lr_scheduler_type=schedule,
        warmup_steps=cfg.warmup_ratio if cfg.warmup_ratio > 0 else 0,
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        seed=cfg.seed,
        data_seed=cfg.seed,
        optim="adamw_torch" if device == "cpu" else "adamw_torch_fused",
        bf16=cfg.precision == "bf16",
        fp16=cfg.precision == "fp16",
        deepspeed=ds_config,
        use_cpu=device == "cpu" and ds_config is None,
        logging_strategy="steps",
        logging_steps=cfg.log_every_steps,
        logging_first_step=True,
        save_strategy="steps" if cfg.save_every_steps else "epoch",
        save_steps=cfg.save_every_steps or 500,
        save_total_limit=1,
        report_to=[],
        disable_tqdm=True,
        include_num_input_tokens_seen="non_padding",
        remove_unused_columns=False,
        ddp_find_unused_parameters=False,
        dataloader_pin_memory=device == "cuda",
        **{checkpointing: cfg.gradient_checkpointing},
    )
    rank0 = args.process_index == 0
    try:
        model = AutoModelForCausalLM.from_pretrained(base_model_dir, dtype=torch.float32)
    except Exception as err:
        raise FinetuneError(f"{base_model_dir}: cannot load the model ({err})") from err
    weight = model.get_input_embeddings().weight
    rows = int(getattr(weight, "ds_shape", weight.shape)[0])
    if data.max_token_id >= rows:
        raise FinetuneError(
            f"{train_dir}: token id {data.max_token_id} >= the {rows} embedding rows of {base_model_dir}"
        )

    if cfg.method == "lora":
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
    trainable, total = _count_params(model)
    log.info(
        "fine-tune %s: %d examples (%d dropped), %d/%d trainable params, device %s, %s",
        cfg.method,
        data.n_examples,
        data.n_dropped,
        trainable,
        total,
        device,
        f"DeepSpeed ZeRO-{cfg.zero_stage}" if ds_config else "no DeepSpeed",
    )

    if rank0:
        out_dir.mkdir(parents=True, exist_ok=True)
        _clean_incomplete_outputs(out_dir)
        ckpt_root.mkdir(exist_ok=True)
        _write_json(out_dir / RUN_FILE, identity)
        if last_checkpoint(ckpt_root, clean=True) is None and report_to_ray:
            _ray_restore_checkpoint(ckpt_root)
    _barrier()
    resume = last_checkpoint(ckpt_root)
    resumed_from = int(resume.name.split("-")[-1]) if resume is not None else 0
    if resume is not None:
        log.info("resuming from %s", resume)

    callbacks = _callbacks(report_to_ray, stop_after_steps)
    progress = callbacks[0]
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=data.dataset,
        data_collator=_Collator(inputs.pad_id),
        callbacks=[*callbacks, *extra_callbacks],
    )
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    output = trainer.train(resume_from_checkpoint=str(resume) if resume is not None else None)
    state = trainer.state
    completed = state.global_step >= state.max_steps
    loss_curve = tuple((int(h["step"]), float(h["loss"])) for h in state.log_history if "loss" in h)

    adapter_dir = out_dir / ADAPTER_DIR if cfg.method == "lora" and completed else None
    if completed:
        staging = out_dir / _STAGING_DIR
        if rank0:
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
        _barrier()
        if cfg.method == "lora":
            trainer.save_model(str(staging / ADAPTER_DIR))  # collective under ZeRO-3
        else:
            trainer.save_model(str(staging))
        _barrier()
        unset_hf_deepspeed_config()  # later from_pretrained calls here must not be ZeRO-3 partitioned
        if rank0:
            if cfg.method == "lora":
                _merge_lora(base_model_dir, staging / ADAPTER_DIR, staging)
            inputs.tokenizer.save_pretrained(str(staging))
            (staging / "training_args.bin").unlink(missing_ok=True)
            for entry in staging.iterdir():
                os.replace(entry, out_dir / entry.name)
            staging.rmdir()
    else:
        unset_hf_deepspeed_config()

    result = FinetuneResult(
        checkpoint_dir=out_dir,
        adapter_dir=adapter_dir,
        metrics_path=out_dir / METRICS_FILE if completed else None,
        completed=completed,
        method=cfg.method,
        steps=int(state.global_step),
        max_steps=int(state.max_steps),
        resumed_from_step=resumed_from,
        train_loss=float(output.training_loss) if output.training_loss is not None else None,
        loss_curve=loss_curve,
        train_tokens=int(state.num_input_tokens_seen),
        tokens_per_s=float(progress.tokens_per_s),
        wall_time_s=time.perf_counter() - start,
        trainable_params=trainable,
        total_params=total,
        n_examples=data.n_examples,
        n_dropped=data.n_dropped,
        n_watermarked=data.n_watermarked,
    )
    if completed and rank0:
        metrics = {
            "run": identity,
            "result": result.to_json(),
            "device": device,
            "deepspeed": ds_config,
            "world_size": args.world_size,
            "answer_tokens_per_epoch": data.answer_tokens,
            "log_history": state.log_history,
        }
        _write_json(out_dir / METRICS_FILE, metrics)  # last: marks the folder complete
        if not cfg.keep_checkpoints:
            shutil.rmtree(ckpt_root, ignore_errors=True)
        log.info("fine-tuned model saved to %s (%.0f tokens/s)", out_dir, result.tokens_per_s)
    _barrier()
    if report_to_ray:
        import ray.train

        ray.train.report(
            {
                "step": result.steps,
                "completed": int(completed),  # not "done": Tune reads that key as "stop this trial"
                "final_loss": result.final_loss if result.final_loss is not None else float("nan"),
                "tokens_per_s": result.tokens_per_s,
                "train_tokens": result.train_tokens,
                "checkpoint_dir": str(out_dir),
            }
        )
    del trainer
    return result


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def _merge_lora(base_model_dir: Path, adapter_dir: Path, out_dir: Path) -> None:
    """Load the base weights, merge the trained LoRA adapter into them, save a plain model to `out_dir`."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_model_dir, dtype="auto")
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(str(out_dir))


# ------------------------------------------------------------------------------------------------------------
# The cached stage
# ------------------------------------------------------------------------------------------------------------


def stage_config(cfg: FinetuneConfig) -> dict[str, Any]:
    """The part of the config that shapes the fine-tuned model: what the stage hash is computed from."""
    return {k: v for k, v in cfg.to_dict().items() if k not in _EXECUTION_FIELDS}


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def finetune_stage(
    cfg: FinetuneConfig,
    base_model_dir: str | Path,
    train_dir: str | Path,
    root: str | Path | None = None,
) -> StageOutput:
    """Cached fine-tune in `root/finetune/<hash of config and inputs>`: built once, resumable after a crash.

    Training runs in the stable `root/finetune/.work-<hash>` (through `finetune`, so a crashed or killed build
    resumes from its last checkpoint on the next call); the finished files are then moved into the stage
    folder and `run_stage` writes `manifest.json` last. Concurrent builders of the same hash wait on a file
    lock, and the later one finds the stage complete. For a single process (or rank): a multi-worker Ray run
    calls `finetune`.
    """
    root_path = Path(root).resolve() if root is not None else default_cache_root()
    base_model_dir = Path(base_model_dir).resolve()
    train_dir = Path(train_dir).resolve()
    _check_base_dir(base_model_dir)
    if not train_dir.exists():
        raise FinetuneError(f"{train_dir}: training dataset folder not found")
    config = stage_config(cfg)
    inputs = {"base_model": input_digest(base_model_dir), "train_data": input_digest(train_dir)}
    digest = config_hash(config, inputs)
    work = root_path / STAGE / f".work-{digest}"

    def build(tmp: Path) -> Mapping[str, Any]:
        with _file_lock(root_path / STAGE / f".work-{digest}.lock"):
            if find_complete(root_path, STAGE, digest) is not None:
                return {}  # another process finished it while we waited; run_stage returns that one
            result = finetune(cfg, base_model_dir, train_dir, work)
            for entry in work.iterdir():
                if entry.name != CHECKPOINTS_DIR:
                    os.replace(entry, tmp / entry.name)
            shutil.rmtree(work)
        return result.counts()

    return run_stage(STAGE, config, build, inputs=inputs, root=root_path)


def loss_decreased(result: FinetuneResult, window: int = 3) -> bool:
    """Whether the mean of the last `window` logged losses is below the mean of the first `window`."""
    losses = [loss for _, loss in result.loss_curve]
    if len(losses) < 2:
        return False
    k = max(1, min(window, len(losses) // 2))
    first, last = sum(losses[:k]) / k, sum(losses[-k:]) / k
    return math.isfinite(last) and last < first
