"""`paper-mini` is the `paper` preset at miniature scale: the same sections and keys except paths, sizes and
resources; `paper` on a machine without its GPUs stops at --dry-run, naming what it needs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import sweeps_testlib  # noqa: F401  (import paths)

from sweeps.engine.presets import read_yaml

REPO = Path(__file__).resolve().parents[2]
PRESETS = REPO / "sweeps" / "audits" / "radioactivity" / "presets"

# Keys (section.key) only one of the two has, each for a stated reason.
ONLY_PAPER = {
    "models.7b",  # paths: Bob's local checkpoints per size
    "models.13b",
    "prepare.base_a",  # paths: A and B as local HF folders
    "prepare.base_b",
    "generate.prompts",  # paths: the local instruction file (paper-mini's is made from its held-out split)
    "detect.amp",  # GPU autocast
}
ONLY_MINI = {
    "prepare.preset",  # sizes: A and B built from a config and saved as HF folders by the base stage
    "prepare.corpus",
    "prepare.tokenizer",
    "prepare.pretrain",
    "finetune.warmup_ratio",  # sizes: a model trained from scratch a few hundred steps needs warm-up and replay
    "finetune.replay_ratio",  # of clean text to keep its held-out perplexity; a 7B chat model is fine-tuned as is
    "finetune.lora_dropout",  # 0, so that LoRA on 2 workers is the 1-worker run (no per-rank dropout masks)
    "detect.utility_answers",  # sizes: fewer held-out answers than the default
}


def _keys(data: dict) -> set[str]:
    """`section.key` for every key of a mapping section, the bare name of any other top-level entry."""
    keys = set()
    for section, value in data.items():
        keys |= {f"{section}.{key}" for key in value} if isinstance(value, dict) else {section}
    return keys


def test_paper_mini_has_the_papers_keys() -> None:
    paper, mini = read_yaml(PRESETS / "paper.yaml"), read_yaml(PRESETS / "paper-mini.yaml")
    paper_keys, mini_keys = _keys(paper), _keys(mini)
    assert paper_keys - mini_keys == ONLY_PAPER
    assert mini_keys - paper_keys == ONLY_MINI
    assert set(paper["grid"]["base"]) == set(mini["grid"]["base"])
    assert [t["name"] for t in paper["detect"]["tests"]] == [t["name"] for t in mini["detect"]["tests"]]
    assert mini["grid"]["base"]["k"] == paper["grid"]["base"]["k"] == 2
    assert mini["finetune"]["precision"] == paper["finetune"]["precision"] == "bf16"
    assert mini["finetune"]["zero_stage"] == 3 and mini["resources"]["trial"]["workers"] == 2
    assert set(mini["grid"]["vary"]["method"]) == {"full", "lora"}
    assert mini["prepare"]["tokenizer"]["vocab_size"] == 32000
    assert mini["generate"]["prompt_style"] == paper["generate"]["prompt_style"] == "chat"
    assert mini["generate"]["prompt_field"] == paper["generate"]["prompt_field"]


def test_paper_dry_run_on_a_cpu_machine_names_the_resources() -> None:
    env = {**os.environ, "RADIO_WATERMARK_KEY": "00" * 32, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, str(REPO / "sweeps" / "ablation.py"), "--preset", "paper", "--dry-run", "--num-gpus", "0"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert "a trial holds 65 CPU, 8 GPU while it trains" in done.stdout  # the explanation
    assert "a trial needs 8 GPU" in done.stderr and "but the cluster has 0 GPU" in done.stderr
    assert "Traceback" not in done.stderr
