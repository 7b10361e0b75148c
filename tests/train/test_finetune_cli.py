"""`radio finetune` and config validation: bad input gives one clear line naming the field or file, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import Dataset

import radio.cli
from radio.config import ConfigError
from radio.train import FinetuneConfig, deepspeed_config
from radio.train.result import METRICS_FILE


def run_cli(argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple:
    if "radio.cli.train" not in radio.cli._COMMAND_MODULES:  # until the dispatcher lists it
        monkeypatch.setattr(radio.cli, "_COMMAND_MODULES", (*radio.cli._COMMAND_MODULES, "radio.cli.train"))
    code = radio.cli.main(["finetune", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"learning_rate": float("nan")}, "learning_rate"),
        ({"epochs": 0}, "epochs"),
        ({"method": "qlora"}, "method"),
        ({"zero_stage": 4}, "zero_stage"),
        ({"lora_dropout": 1.0}, "lora_dropout"),
        ({"lora_target_modules": ()}, "lora_target_modules"),
        ({"warmup_ratio": 1.0}, "warmup_ratio"),
        ({"device": "cpu", "precision": "fp16"}, "precision"),
        ({"lr_schedule": "step"}, "lr_schedule"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_invalid_config_names_the_field(values: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}:"):
        FinetuneConfig(**values)


def test_from_dict_rejects_unknown_keys_and_wrong_types() -> None:
    with pytest.raises(ConfigError, match="learning_rat"):
        FinetuneConfig.from_dict({"learning_rat": 1e-4})
    with pytest.raises(ConfigError, match="epochs"):
        FinetuneConfig.from_dict({"epochs": "two"})
    cfg = FinetuneConfig.from_dict({"method": "lora", "lora_target_modules": ["q_proj"], "zero_stage": None})
    assert cfg.lora_target_modules == ("q_proj",) and cfg.zero_stage is None
    assert FinetuneConfig.from_dict(cfg.to_dict()) == cfg


def test_deepspeed_config_uses_a_torch_optimizer() -> None:
    assert deepspeed_config(FinetuneConfig(zero_stage=None)) is None
    ds = deepspeed_config(FinetuneConfig(zero_stage=3))
    assert ds["zero_optimization"]["stage"] == 3
    assert "optimizer" not in ds and "scheduler" not in ds
    assert ds["zero_allow_untested_optimizer"] is True
    assert ds["bf16"]["enabled"] is False and ds["fp16"]["enabled"] is False


def test_cli_errors_are_one_line_and_non_zero(
    toy_base: Path, toy_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    good = write_config(tmp_path / "good.yaml", "learning_rate: 1.0e-3\nmax_steps: 2\ndevice: cpu\n")
    data = ["--base", str(toy_base), "--train", str(toy_data)]
    cases = [
        (["--config", str(good), "--base", str(tmp_path / "nope"), "--train", str(toy_data)], "--base"),
        (["--config", str(good), "--base", str(toy_base), "--train", str(tmp_path / "nope")], "--train"),
        (["--config", str(tmp_path / "missing.yaml"), "--base", str(toy_base), "--train", str(toy_data)], "missing"),
        (
            ["--config", str(write_config(tmp_path / "typo.yaml", "learning_rat: 1.0e-3\n")), *data],
            "learning_rat",
        ),
        (
            ["--config", str(write_config(tmp_path / "lr.yaml", "learning_rate: -3\n")), *data],
            "learning_rate",
        ),
    ]
    for argv, needle in cases:
        code, out, err = run_cli([*argv, "--out", str(tmp_path / "out")], monkeypatch, capsys)
        assert code == 2, argv
        assert needle in err and len(err.strip().splitlines()) == 1, err
        assert out == ""
    assert not (tmp_path / "out").exists()


def test_cli_rejects_empty_and_out_of_vocab_data(
    toy_base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    config = write_config(tmp_path / "c.yaml", "finetune:\n  max_steps: 2\n  device: cpu\n  zero_stage: null\n")
    empty = tmp_path / "empty"
    Dataset.from_dict({"prompt_ids": [], "answer_ids": [], "watermarked": []}).save_to_disk(str(empty))
    big = tmp_path / "big"
    Dataset.from_dict({"prompt_ids": [[5, 6]], "answer_ids": [[7, 256]], "watermarked": [True]}).save_to_disk(str(big))
    capsys.readouterr()  # save_to_disk's progress bars
    for data, needle in ((empty, "empty"), (big, "vocab_size")):
        out_dir = tmp_path / f"out-{data.name}"
        argv = ["--config", str(config), "--base", str(toy_base), "--train", str(data), "--out", str(out_dir)]
        code, out, err = run_cli(argv, monkeypatch, capsys)
        errors = [line for line in err.splitlines() if "error" in line]
        assert code == 2 and len(errors) == 1 and out == "", err
        assert needle in errors[0] and str(data) in errors[0], err
        assert not out_dir.exists()


def test_cli_finetunes_and_prints_the_checkpoint(
    toy_base: Path, toy_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    config = write_config(tmp_path / "c.yaml", "max_steps: 2\ndevice: cpu\nzero_stage: 0\nlearning_rate: 1.0e-3\n")
    argv = ["--config", str(config), "--base", str(toy_base), "--train", str(toy_data)]
    code, out, err = run_cli([*argv, "--out", str(tmp_path / "model")], monkeypatch, capsys)
    assert code == 0, err
    printed = json.loads(out)
    assert Path(printed["checkpoint"]) == (tmp_path / "model").resolve()
    assert (Path(printed["checkpoint"]) / METRICS_FILE).is_file()

    code, out, err = run_cli([*argv, "--cache-root", str(tmp_path / "cache")], monkeypatch, capsys)
    assert code == 0, err
    staged = json.loads(out)
    assert staged["cached"] is False and Path(staged["checkpoint"]).parent == (tmp_path / "cache" / "finetune")


def test_radio_train_imports_without_ray_or_heavy_libraries() -> None:
    import subprocess
    import sys

    code = (
        "import sys, radio.train, radio.train.ray_train, radio.cli.train; "
        "print(sorted(m for m in ('ray', 'deepspeed', 'peft', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
