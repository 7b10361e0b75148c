"""The replication sweep's steps: the shared stages (corpus, dedup, model, analysis) and the evaluation actor.

Stage folders hold plain files (Parquet, PNG, NumPy, JSON); nothing crosses processes but paths. The analysis
stage writes `analysis.json` (clusters, thresholds under every rule, prompts, nearest-caption similarity, word
pull, detector agreement, the subject's training object rate) and `arrays.npz` (the target cluster's member
embeddings, and the reference set: the whole training corpus up to `analysis.reference_max` rows). An evaluation
task is a (prompt, seed block); its row holds per-rule replication counts and per-seed flags (bit strings, for
McNemar on paired seeds) against the target cluster, and the same against the whole reference set: each seed's
nearest training image (`nearest_values`: its cosine; `nearest_rows`: its corpus row) and per rule whether it
copies a training image (`copy_flags:{rule}`, nearest cosine >= the rule's threshold; counts `copied:{rule}`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from radio.replication.artifacts import flags_to_bits, image_grid, write_json
from radio.replication.audit import ANALYSIS_JSON, ARRAYS
from sweeps.audits.replication.config import ReplicationConfig
from sweeps.engine import Artifact, EvalContext, TrialOutcome

KEPT = "kept.npy"
SEED_STRIDE = 1_000_000  # generation seeds of replicate s: s * SEED_STRIDE + 0 .. samples - 1
OBJECT_ROLES = {"control-subject": "subject", "control-scene": "control"}


def _in_ray() -> bool:
    """Whether this process is a Ray worker or driver (the sweep), without importing Ray when it is not loaded."""
    import sys

    return "ray" in sys.modules and bool(sys.modules["ray"].is_initialized())


@dataclass(frozen=True)
class Steps:
    """The stage builds and evaluation functions of one sweep configuration (picklable: Ray ships it)."""

    config: ReplicationConfig

    # -- corpus and dedup --------------------------------------------------------------------------------------

    def corpus_dir(self, inputs: Mapping[str, Path]) -> Path:
        """The corpus of the analysis and of training: the corpus stage's folder or the preset's metadata table."""
        if self.config.corpus.source == "synthetic":
            return Path(inputs["corpus"])
        return Path(str(self.config.corpus.metadata)).expanduser()

    def build_corpus(self, out_dir: Path, config: Mapping[str, Any], inputs: Mapping[str, Path]) -> dict[str, Any]:
        """Draw the synthetic corpus with `duplicates` planted copies, seeded by the replicate seed."""
        from radio.replication.synthetic import SyntheticCorpusConfig, build_synthetic_corpus

        synthetic = SyntheticCorpusConfig(**self.config.corpus.synthetic, n_planted=int(config["duplicates"]))
        build_synthetic_corpus(out_dir, synthetic, seed=int(config["seed"]))
        return {"rows": synthetic.total_rows()}

    def build_dedup(self, out_dir: Path, config: Mapping[str, Any], inputs: Mapping[str, Path]) -> dict[str, Any]:
        """The training rows kept by the dedup option (`kept.npy`), with how many planted copies survive."""
        from radio.replication.corpus import load_corpus
        from radio.replication.dedup import deduplicate
        from radio.replication.embedders import get_embedder

        corpus = load_corpus(inputs["corpus"])
        mode = str(config["dedup"])
        images = corpus.load_images() if mode != "none" else None
        embeddings = get_embedder(self.config.dedup.embedder).embed(images) if mode == "near" else None
        rows = images if images is not None else np.zeros(len(corpus))
        kept = deduplicate(
            mode, images=rows if mode != "near" else None, embeddings=embeddings, threshold=self.config.dedup.threshold
        )
        np.save(out_dir / KEPT, kept)
        groups = corpus.frame["group"].to_numpy() if "group" in corpus.frame else np.array([""] * len(corpus))
        counts = {"rows": len(corpus), "kept": int(kept.size), "planted_kept": int((groups[kept] == "planted").sum())}
        write_json(out_dir / "dedup.json", {"mode": mode, **counts})
        return counts

    # -- model --------------------------------------------------------------------------------------------------

    def build_model(self, out_dir: Path, config: Mapping[str, Any], inputs: Mapping[str, Path]) -> dict[str, Any]:
        """Train the tiny model on the kept rows, with checkpoints `step-NNNNNN/` at every saved step.

        Under Ray (the sweep) it trains in one Ray Train worker (`train_tiny_t2i_on_ray`: a `TorchTrainer` whose
        worker holds `resources.model.cpu_per_worker` CPUs while this stage task holds about none), so every trial
        sharing the (corpus, dedup) pair reuses one training. Outside Ray (a local build) it trains in-process.

        Training writes into a work folder named by this build's config and inputs, beside the stage folders and
        stable across attempts (the stage store gives each attempt a fresh temporary folder): a build killed
        midway and started again continues from the last saved step, from the work folder's resume state or from
        Ray Train's latest checkpoint of the same run. The checkpoints move into the stage folder at the end.
        On Ray, each progress line (step, loss, steps/s, ETA) goes to the stage's progress file, which the sweep's
        live view shows.
        """
        import shutil

        from radio.cache import config_hash
        from radio.replication.corpus import load_corpus
        from radio.replication.t2i import TinyT2IConfig, train_tiny_t2i
        from radio.replication.t2i.train import RESULT_FILE

        res = self.config.resources.model
        threads = max(1, int(res.get("cpu_per_worker", res.get("cpu", 1)) or 1))
        t2i = replace(TinyT2IConfig.from_dict(dict(self.config.model.t2i)), threads=threads)
        key = config_hash(dict(config), {name: Path(path).name for name, path in inputs.items()})
        work = Path(out_dir).parent / f".train-{key}"
        trained = work / "out"
        seed = int(config["seed"])
        steps = list(self.config.model.checkpoint_steps)
        corpus = load_corpus(inputs["corpus"])
        kept = np.load(Path(inputs["dedup"]) / KEPT)
        if _in_ray():
            from radio.progress import build_progress
            from radio.replication.t2i.ray_train import save_training_data, train_tiny_t2i_on_ray

            data = work / "data"
            if not (data / "images.npy").is_file():
                images = corpus.load_images(kept, size=t2i.image_size)
                save_training_data(data, [corpus.captions[i] for i in kept], images)
            result = train_tiny_t2i_on_ray(
                data,
                trained,
                t2i,
                seed,
                steps,
                cpus_per_worker=float(res.get("cpu_per_worker", 1)),
                storage_path=work / "ray",
                name="train",
                max_failures=1,
                progress=build_progress(),
            )
            if result is None:
                raise RuntimeError(f"{trained}: training stopped before its last step")
        else:
            images = corpus.load_images(kept, size=t2i.image_size)
            captions = [corpus.captions[i] for i in kept]
            result = train_tiny_t2i(captions, images, trained, t2i, seed=seed, checkpoint_steps=steps)
        # Checkpoints and the training record move into the stage folder; paths in the record become relative.
        for folder in sorted(trained.glob("step-*")):
            shutil.move(str(folder), str(Path(out_dir) / folder.name))
        result["checkpoints"] = {s: Path(p).name for s, p in result["checkpoints"].items()}
        write_json(Path(out_dir) / RESULT_FILE, result)
        shutil.rmtree(work, ignore_errors=True)
        return {
            "train_rows": int(kept.size),
            "final_loss": result["final_loss"],
            "seconds": result["seconds"],
            "ray_train": _in_ray(),
        }

    def model_path(self, params: Mapping[str, Any], stages: Mapping[str, Path]) -> str:
        """The checkpoint a trial evaluates: the model stage's `step-NNNNNN` folder, or the preset's sd folder."""
        if self.config.model.kind != "tiny":
            return str(Path(str(self.config.model.path)).expanduser())
        from radio.replication.t2i import checkpoint_dir

        return str(checkpoint_dir(stages["model"], int(params["step"])))

    # -- analysis -----------------------------------------------------------------------------------------------

    def build_analysis(self, out_dir: Path, config: Mapping[str, Any], inputs: Mapping[str, Path]) -> dict[str, Any]:
        """Filter, embed, cluster, rank; thresholds under every rule; prompts; word pull; caption similarity;
        detector agreement; the subject's training object rate (see `radio.replication.audit.analyse_corpus`)."""
        from radio.replication.audit import analyse_corpus

        started = time.perf_counter()
        found = analyse_corpus(self.config.analysis, self.corpus_dir(inputs), out_dir, seed=int(config.get("seed", 0)))
        return {**found.summary(), "seconds": round(time.perf_counter() - started, 1)}

    # -- evaluation ---------------------------------------------------------------------------------------------

    def tasks(self, outcome: TrialOutcome) -> list[dict[str, Any]]:
        """One task per (prompt, seed block), every prompt on the same seeds (paired for McNemar)."""
        analysis = json.loads((Path(outcome.stages["analysis"]) / ANALYSIS_JSON).read_text())
        generate = self.config.generate
        first = int(outcome.params.get("seed", 0)) * SEED_STRIDE
        out = []
        for index, prompt in enumerate(analysis["prompts"]):
            for start in range(0, generate.samples, generate.block):
                out.append(
                    {
                        "prompt_index": index,
                        "kind": prompt["kind"],
                        "prompt": prompt["prompt"],
                        "seed_start": first + start,
                        "n": min(generate.block, generate.samples - start),
                        # The sampler settings travel with the task: trials that differ only in them share
                        # one loaded model (load_key), so the loading trial's params must not decide them.
                        "guidance": float(outcome.params["guidance"]),
                        "sampler_steps": int(outcome.params["sampler_steps"]),
                    }
                )
        return out

    def load(self, ctx: EvalContext) -> dict[str, Any]:
        """The actor's state for one checkpoint: generator, embedder, detector, target cluster and references."""
        from radio.replication.corpus import load_corpus
        from radio.replication.detectors import get_detector
        from radio.replication.embedders import get_embedder
        from radio.replication.generators import load_generator

        analysis_dir = Path(ctx.stages["analysis"])
        analysis = json.loads((analysis_dir / ANALYSIS_JSON).read_text())
        arrays = np.load(analysis_dir / ARRAYS)
        options = dict(self.config.model.options) if self.config.model.kind == "sd" else {}
        generator = load_generator(
            self.config.model.kind, str(ctx.checkpoint), device=self.config.generate.device, **options
        )
        corpus = load_corpus(self.corpus_dir({k: Path(v) for k, v in ctx.stages.items()}), check_images=False)
        cfg = self.config.analysis
        memorization = None
        if self.config.memorization.enabled:
            from radio.replication.memorization import noise_difference_model

            memorization = noise_difference_model(generator)
        return {
            "generator": generator,
            "memorization": memorization,
            "embedder": get_embedder(cfg.embedder, **cfg.embedder_args),
            "detector": get_detector(cfg.detector, **cfg.detector_args),
            "thresholds": {rule: t["value"] for rule, t in analysis["target"]["thresholds"].items()},
            "members": arrays["members"],
            "reference": arrays["reference"],
            "reference_rows": arrays["reference_rows"],
            "corpus": corpus,
            "params": ctx.params,
            "analysis_dir": str(analysis_dir),
        }

    def run(self, loaded: Mapping[str, Any], task: Mapping[str, Any]) -> dict[str, Any]:
        """Generate a seed block of one prompt, score it against the target cluster and against the whole reference
        set under every rule, run the detector on the object prompts, and on the first block of each prompt draw
        its image grid."""
        from radio.replication.thresholds import score_generations

        seeds = list(range(int(task["seed_start"]), int(task["seed_start"]) + int(task["n"])))
        started = time.perf_counter()
        images = loaded["generator"].generate(
            [task["prompt"]] * len(seeds),
            seeds,
            guidance_scale=float(task["guidance"]),
            num_inference_steps=int(task["sampler_steps"]),
            batch_size=self.config.generate.batch_size,
        )
        seconds = time.perf_counter() - started
        embedded = loaded["embedder"].embed(images)
        scores = score_generations(embedded, loaded["members"], loaded["thresholds"])
        row: dict[str, Any] = {
            "generated": len(seeds),
            "generate_s": round(seconds, 3),
            "score_mean": float(scores.scores.mean()),
            "score_max": float(scores.scores.max()),
            "analysis_dir": loaded["analysis_dir"],
        }
        for i, rule in enumerate(scores.rules):
            row[f"replicated:{rule}"] = int(scores.flags[i].sum())
            row[f"flags:{rule}"] = flags_to_bits(scores.flags[i])
        # The second ground truth: does the generation copy any training image (the whole reference set, not
        # only the planted artwork's members) as closely as a rule's threshold? Same rules, same values.
        copies = score_generations(embedded, loaded["reference"], loaded["thresholds"])
        nearest_index = copies.nearest
        row["nearest_values"] = ";".join(f"{v:.6g}" for v in copies.scores)
        row["nearest_rows"] = ";".join(str(int(r)) for r in loaded["reference_rows"][nearest_index])
        for i, rule in enumerate(copies.rules):
            row[f"copied:{rule}"] = int(copies.flags[i].sum())
            row[f"copy_flags:{rule}"] = flags_to_bits(copies.flags[i])
        first_block = int(task["seed_start"]) % SEED_STRIDE == 0
        if loaded.get("memorization") is not None:
            from radio.replication.memorization_eval import agreement_fields

            row.update(self._memorization_fields(loaded["memorization"], task, seeds, first_block))
            row.update(agreement_fields(embedded))
        role = OBJECT_ROLES.get(str(task["kind"]))
        if role is not None:
            found = np.asarray(loaded["detector"].detect(images), dtype=bool)
            row.update({"object_role": role, "objects": int(found.sum()), "object_flags": flags_to_bits(found)})
        k = min(self.config.generate.grid_images, len(images))
        if first_block and k:
            nearest_rows = loaded["reference_rows"][nearest_index[:k]]
            size = images.shape[1]
            nearest = loaded["corpus"].load_images(nearest_rows, size=size)
            row["grid"] = Artifact(
                f"grids/prompt-{int(task['prompt_index']):02d}-{task['kind']}.png", image_grid(images[:k], nearest)
            )
        return row

    def _memorization_fields(
        self, model: Any, task: Mapping[str, Any], seeds: list[int], first_block: bool
    ) -> dict[str, Any]:
        """The data-free detector on this task's seeds (their own trajectories) and, on the first block of a
        word-kind prompt, which of its words drive the score (`attribution`: "word=value;..." largest first)."""
        from radio.replication.memorization import token_attribution
        from radio.replication.memorization_eval import block_fields
        from radio.replication.prompts import WORD_KINDS

        cfg = self.config.memorization
        sampler_steps = int(task["sampler_steps"])
        settings = {
            "steps": min(cfg.steps, sampler_steps),
            "num_inference_steps": sampler_steps,
            "guidance_scale": float(task["guidance"]),
        }
        started = time.perf_counter()
        fields = block_fields(model, str(task["prompt"]), seeds, **settings)
        if cfg.attribution != "none" and first_block and task["kind"] in WORD_KINDS:
            found = token_attribution(
                model, str(task["prompt"]), seeds[: cfg.attribution_seeds], method=cfg.attribution, **settings
            )
            fields["attribution"] = ";".join(f"{w}={v:.4g}" for w, v in found.top(cfg.attribution_top))
        fields["memorization_s"] = round(time.perf_counter() - started, 3)
        return fields


def summarize(rows: list[dict[str, Any]]) -> dict[str, float]:
    """A trial's headline metrics: replication rate per kind under every rule, object rates per role."""
    out: dict[str, float] = {}
    by_kind: dict[tuple[str, str], list[int]] = {}
    objects: dict[str, list[int]] = {}
    for row in rows:
        for key, value in row.items():
            if key.startswith("replicated:"):
                rule = key.split(":", 1)[1]
                acc = by_kind.setdefault((str(row["kind"]), rule), [0, 0])
                acc[0] += int(value)
                acc[1] += int(row["generated"])
        if row.get("object_role"):
            acc = objects.setdefault(str(row["object_role"]), [0, 0])
            acc[0] += int(row["objects"])
            acc[1] += int(row["generated"])
    for (kind, rule), (hits, n) in by_kind.items():
        out[f"rate/{rule}/{kind}"] = hits / n if n else float("nan")
    for role, (hits, n) in objects.items():
        out[f"object_rate/{role}"] = hits / n if n else float("nan")
    out["generated"] = float(sum(int(r.get("generated", 0)) for r in rows))
    return out
