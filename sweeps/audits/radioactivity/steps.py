"""The radio-specific steps of the ablation sweep: shared stages, the trial, the detection tasks, the tables.

Stages write a small `stage.json` pointer into their engine folder; the heavy outputs (bases, generated data,
mixes) live in radio's own stage cache under the same root, keyed by their configs, so the paths stay valid and
an identical stage of another sweep is a cache hit too. The key never travels: stages and actors read it from the
key file (or `RADIO_WATERMARK_KEY`) themselves.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sweeps.audits.radioactivity.config import AblationConfig

log = logging.getLogger(__name__)
POINTER = "stage.json"
# The numeric fields every detection row keeps; a setting adds its own (`Setting.metrics`).
COMMON_METRICS = ("n_seen", "n_eligible", "n_scored", "score_mean", "phi_size", "tokens_per_s", "statistic")
BASE_MODEL_EPOCHS = 0  # a grid point with epochs = 0 is the base-model control: Bob's base, not fine-tuned
# A test's `reference:` by name (the `open-ref` setting): the trial metric holding that model's folder
REFERENCE_MODELS = {"alice": "base_a", "bob-base": "base_b"}
# What a trial records of Bob's rewrite (as `paraphrase_<name>`): the shares that explain its detection result.
REWRITE_METRICS = (
    "rewritten_share",
    "changed_share",
    "pairs_k1_kept_in_place_share",
    "distinct_pairs_k1_surviving_share",
)


def read_pointer(folder: Path) -> dict[str, Any]:
    """The paths and numbers a stage recorded in its folder."""
    return json.loads((Path(folder) / POINTER).read_text())


def _write_pointer(out_dir: Path, record: Mapping[str, Any]) -> dict[str, Any]:
    (out_dir / POINTER).write_text(json.dumps(dict(record), indent=2, sort_keys=True, default=str))
    return {k: v for k, v in record.items() if isinstance(v, int | float)}


def _key(constants: Mapping[str, Any]) -> int | bytes:
    from radio.keys import load_key

    return load_key(constants.get("key_file"))


def _cache_root(out_dir: Path) -> Path:
    # The engine builds a stage in <cache root>/<stage>/<temporary folder>; radio's own stages share that root.
    return out_dir.parent.parent


class Steps:
    """Stage builders, trial function and evaluation callbacks bound to one `AblationConfig`."""

    def __init__(self, config: AblationConfig, key_file: str | None) -> None:
        self.config = config
        self.constants = {"key_file": key_file}

    # -- shared stages ----------------------------------------------------------------------------------------
    def build_alice(self, out_dir: Path, config: Mapping[str, Any], inputs: Mapping[str, Path]) -> dict[str, Any]:
        """Corpus, tokenizer and Alice's model A (and B at the base size), through radio's cached `prepare`."""
        from radio.data import prepare

        prepared = prepare(self.config.prepare, _cache_root(out_dir))
        return _write_pointer(
            out_dir,
            {
                "base_a": str(prepared.base_a_dir),
                "base_b": str(prepared.base_b_dir),
                "tokenizer": str(prepared.tokenizer_dir),
                "corpus": str(prepared.corpus_dir) if prepared.corpus_dir else None,
                "vocab_size": prepared.vocab_size,
            },
        )

    def build_bob(self, out_dir: Path, config: Mapping[str, Any], inputs: Mapping[str, Path]) -> dict[str, Any]:
        """Bob's base model B at the trial's size: a local checkpoint, or a tiny preset pre-trained here."""
        from radio.data import prepare

        size = config["size"]
        if self.config.models:
            return _write_pointer(out_dir, {"base_b": str(Path(self.config.models[size]).expanduser().resolve())})
        prepared = prepare(dataclasses.replace(self.config.prepare, preset=size), _cache_root(out_dir))
        return _write_pointer(out_dir, {"base_b": str(prepared.base_b_dir), "vocab_size": prepared.vocab_size})

    def build_data(self, out_dir: Path, config: Mapping[str, Any], inputs: Mapping[str, Path]) -> dict[str, Any]:
        """A's watermarked and plain answers for one (scheme, k): generated once, shared by every trial."""
        from radio.data import Prepared, generate_sets

        alice = read_pointer(inputs["alice"])
        prepared = Prepared(
            tokenizer_dir=Path(alice["tokenizer"]),
            base_a_dir=Path(alice["base_a"]),
            base_b_dir=Path(alice["base_b"]),
            corpus_dir=Path(alice["corpus"]) if alice["corpus"] else None,
            hashes={},
            vocab_size=alice["vocab_size"],
            cached=True,
        )
        watermark = self.config.watermark_config(config["scheme"], config["k"])
        cfg = dataclasses.replace(self.config.generate, watermark=watermark)
        marked, plain = generate_sets(cfg, prepared, _key(self.constants), _cache_root(out_dir))
        return _write_pointer(
            out_dir,
            {"watermarked": str(marked.path), "plain": str(plain.path), **marked.manifest.get("counts", {})},
        )

    def build_mix(self, out_dir: Path, config: Mapping[str, Any], inputs: Mapping[str, Path]) -> dict[str, Any]:
        """The training mix at one rho (and Alice's known and held-out sets) for one (scheme, k)."""
        from radio.data import make_mix

        data = read_pointer(inputs["data"])
        cfg = dataclasses.replace(self.config.mix, rho=float(config["rho"]))
        mix = make_mix(cfg, data["watermarked"], data["plain"], _cache_root(out_dir))
        return _write_pointer(out_dir, {"mix": str(mix.path), **mix.manifest.get("counts", {})})

    def build_rewrite(self, out_dir: Path, config: Mapping[str, Any], inputs: Mapping[str, Path]) -> dict[str, Any]:
        """Bob's training split: the mix's `train` itself (paraphrase = 0, no copy), or its answers rewritten by
        his base model B at strength `paraphrase` (`radio.data.paraphrase`). Alice's sets stay A's originals."""
        from radio.data import ParaphraseConfig, paraphrase

        train = Path(read_pointer(inputs["mix"])["mix"]) / "train"
        strength = float(config["paraphrase"])
        if strength == 0:
            return _write_pointer(out_dir, {"train": str(train), "paraphrase": 0.0})
        base_b = read_pointer(inputs["bob"])["base_b"]
        cfg = ParaphraseConfig.from_generate(strength, self.config.generate)  # A's sampler, no watermark
        out = paraphrase(cfg, train, base_b, _cache_root(out_dir))
        counts = {k: v for k, v in out.manifest.get("counts", {}).items() if isinstance(v, int | float)}
        return _write_pointer(out_dir, {"train": str(out.path / "train"), "paraphrase": strength, **counts})

    # -- the trial ----------------------------------------------------------------------------------------------
    def train(self, ctx: Any) -> dict[str, Any]:
        """Fine-tune Bob's base on the trial's mix with a Ray Train worker (DeepSpeed per the preset)."""
        from radio.train import FinetuneResult
        from radio.train.ray_train import train_loop_per_worker

        params = ctx.params
        base_b = read_pointer(ctx.stages["bob"])["base_b"]
        mix = read_pointer(ctx.stages["mix"])["mix"]
        alice = read_pointer(ctx.stages["alice"])
        common = {"mix_dir": mix, "base_a": alice["base_a"], "base_b": base_b, "corpus_dir": alice["corpus"]}
        if params["epochs"] == BASE_MODEL_EPOCHS:
            return {**common, "checkpoint_path": base_b, "role": "base-model"}
        # Bob's training split (his rewrite of it, paraphrase > 0); a sweep declared without the rewrite stage (one
        # started before it existed, whose workers import this code) trains on the mix's own split.
        stage = ctx.stages.get("rewrite")
        rewrite = read_pointer(stage) if stage is not None else {"train": str(Path(mix) / "train")}
        rewritten = (
            {f"paraphrase_{k}": rewrite[k] for k in REWRITE_METRICS if isinstance(rewrite.get(k), int | float)}
            if float(params.get("paraphrase", 0.0)) > 0
            else {}
        )
        overrides: dict[str, Any] = {
            "learning_rate": params["lr"],
            "epochs": params["epochs"],
            "method": params["method"],
        }
        if self.config.finetune.get("replay_ratio") and common["corpus_dir"]:
            overrides["replay_corpus"] = common["corpus_dir"]  # Bob's own clean pre-training text (split b)
        cfg = self.config.finetune_config(**overrides, seed=params["seed"])
        out_dir = Path(ctx.storage_path) / "checkpoints" / ctx.trial_id  # the sweep's own folder
        loop_config: dict[str, Any] = {
            "finetune": cfg.to_dict(),
            "base_model_dir": base_b,
            "train_dir": rewrite["train"],
            "out_dir": str(out_dir),
        }
        purify_steps = int(params.get("purify_steps", 0))
        if purify_steps > 0:  # Bob continues on clean data before Alice tests the model
            purify = self.config.purify_config(purify_steps, **overrides, seed=params["seed"])
            loop_config["then"] = {
                "finetune": purify.to_dict(),
                "train_dir": str(Path(mix) / "clean"),
                "out_dir": str(out_dir / "purified"),
            }
        ctx.torch_trainer(train_loop_per_worker, loop_config).fit()
        result = FinetuneResult.load(out_dir)
        final = FinetuneResult.load(out_dir / "purified") if purify_steps > 0 else result
        return {
            **common,
            "checkpoint_path": str(final.checkpoint_dir),
            "role": "model",
            "train_loss": result.final_loss,
            "train_tokens": result.train_tokens,
            "train_tokens_per_s": result.tokens_per_s,
            "train_wall_s": result.wall_time_s,
            "train_watermarked_examples": result.n_watermarked,
            **({"purify_loss": final.final_loss, "purify_steps_done": final.steps} if purify_steps > 0 else {}),
            **rewritten,
        }

    # -- evaluation (in Ray actors) -------------------------------------------------------------------------------
    def load_actor(self, checkpoint: str | None, params: Mapping[str, Any]) -> Any:
        """A detection actor holding the trial's checkpoint (loaded once for all of its tests)."""
        from radio.detect.actor import DetectionActor

        if checkpoint is None:
            raise ValueError("the trial returned no checkpoint")
        from radio.detect.spec import DetectionSpec

        detect = self.config.detect
        # One reading pass serves the top-1 and the distribution tests: it keeps the most any test asks for.
        top_m = [getattr(DetectionSpec.from_dict(t).options, "top_m", 0) for t in detect.tests]
        return DetectionActor(
            checkpoint,
            self.config.watermark_config(params["scheme"], params["k"]),
            key_file=self.constants["key_file"],
            role="base-model" if params["epochs"] == BASE_MODEL_EPOCHS else "model",
            device=detect.device,
            amp=detect.amp,
            batch_size=detect.batch_size,
            seq_len=detect.seq_len,
            # B answers (closed setting) with A's sampler, so that its answers are drawn like A's data.
            temperature=self.config.generate.temperature,
            top_p=self.config.generate.top_p,
            reading_top_m=max([0, *[m for m in top_m if isinstance(m, int)]]),
        )

    def tasks(self, outcome: Any) -> list[dict[str, Any]]:
        """Every configured test on the trial's mix, its wrong-key controls, and the utility check."""
        from radio.detect.settings import get_setting

        mix = outcome.metrics["mix_dir"]
        tasks: list[dict[str, Any]] = []
        for test in (self._resolve_reference(t, outcome.metrics) for t in self.config.detect.tests):
            tasks.append({**test, "data": mix, "seed": outcome.params["seed"]})
            if get_setting(test.get("setting", "open")).keyed:  # a keyless test (MIA) has no wrong-key control
                for index in range(self.config.detect.wrong_keys):
                    tasks.append(
                        {**test, "data": mix, "key": "wrong", "wrong_key_index": index, "seed": outcome.params["seed"]}
                    )
        detect = self.config.detect
        if (detect.utility_texts and outcome.metrics.get("corpus_dir")) or detect.utility_answers:
            tasks.append({"name": "utility", "corpus": outcome.metrics.get("corpus_dir"), "data": mix})
        return tasks

    @staticmethod
    def _resolve_reference(test: Mapping[str, Any], metrics: Mapping[str, Any]) -> dict[str, Any]:
        """A test's `reference: alice` / `bob-base` as the trial's model folder (A, or this trial's base of B)."""
        name = test.get("reference")
        if name not in REFERENCE_MODELS:
            return dict(test)
        folder = metrics.get(REFERENCE_MODELS[name])
        if not folder:
            raise ValueError(f"reference: {name!r} unknown to this trial (no {REFERENCE_MODELS[name]}; rerun it)")
        return {**test, "reference": folder}

    def run_task(self, actor: Any, task: Mapping[str, Any]) -> dict[str, Any]:
        """One test (or the perplexity check) on the loaded checkpoint, as a flat row of scalars."""
        if task["name"] == "utility":
            row: dict[str, Any] = {"task": "utility", "test": "utility", "control": "none"}
            if self.config.detect.utility_texts and task.get("corpus"):
                row["heldout_perplexity"] = self._perplexity(actor, Path(task["corpus"]))
            if self.config.detect.utility_answers and task.get("data"):
                row["answer_perplexity"] = self._answer_perplexity(actor, Path(task["data"]))
            return row
        from radio.detect.settings import get_setting

        row = actor.run(dict(task))
        control = row.get("control", "none")
        # The base model is a row of its own in the tables; a wrong key is a column beside the test it controls.
        label = task["name"] if control in ("none", "base-model") else f"{task['name']}/{control}"
        flat = {
            "task": label,  # the engine names this row's MLflow metrics `<task>.<metric>`
            "test": label,
            "control": control,
            "setting": row.get("setting"),
            "supervised": row.get("supervised"),
            "log10_pvalue": row.get("log10_pvalue"),
            "pvalue": row.get("pvalue"),
        }
        setting = get_setting(str(row.get("setting", task.get("setting", "open"))))
        for name in (*COMMON_METRICS, *setting.metrics):  # what the setting declares reaches the tables
            if isinstance(row.get(name), int | float):
                flat[name] = row[name]
        for name in ("curve", "curve_band"):  # power curve and its band over resamples, as JSON cells
            if row.get(name):
                flat[name] = json.dumps(row[name])
        return flat

    def _perplexity(self, actor: Any, corpus: Path) -> float:
        """Held-out perplexity of the checkpoint on corpus text that neither A nor B trained on (utility check)."""
        from radio.data import load_split
        from radio.models.pretrain import evaluate_loss, token_stream

        texts = load_split(corpus, "heldout")[-self.config.detect.utility_texts :]
        ids = [actor.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        stream = token_stream(ids).to(actor.device)
        return math.exp(evaluate_loss(actor.model, stream, block_size=min(128, self.config.detect.seq_len)))

    def _answer_perplexity(self, actor: Any, mix: Path) -> float:
        """Perplexity of the checkpoint on held-out answers of A given their prompts (how well B fits A's answers)."""
        from radio.detect.utility import answer_perplexity

        records = actor.records(mix, "heldout", self.config.detect.utility_answers)
        return answer_perplexity(actor.model, records.prompts, records.answers, batch_size=actor.batch_size)
