"""Training mixes for Bob's model B, and the watermarked sets that Alice holds, from A's generated data.

For a fraction rho and a supervision degree d, `make_mix` writes three `datasets.save_to_disk` folders:

- `<mix>/train`: `train_size` records for fine-tuning B, exactly floor(rho * train_size + 0.5) watermarked (from A's
  watermarked set) and the rest plain (from A's plain set), shuffled together;
- `<mix>/known`: Alice's known set, `known_size` watermarked records, of which floor(d * known_size + 0.5) are really
  in `train` (column `member` True) and the rest are watermarked outputs of A that B never saw;
- `<mix>/heldout`: `heldout_size` watermarked records of A that B never sees (the unsupervised tests read them);
- `<mix>/phi`: `phi_size` further watermarked records of A that B never sees, kept apart from `heldout` so that the
  unsupervised filter phi (the most frequent k-grams of A's watermarked text) comes from OTHER text than the test
  text, as in the paper (empty when `phi_size` is 0);
- `<mix>/clean`: `clean_size` plain records of A that are not in `train` (Bob's clean data for purification: he
  continues fine-tuning B on them before Alice tests it; empty when `clean_size` is 0).

Columns: every column of the generated data (`id`, `prompt`, `answer`, `prompt_ids`, `answer_ids`,
`finish_reason`, `watermarked`, `scheme`, `k`, `key_fingerprint`, see `radio.data.generate`); `known` adds
`member` (bool). Fine-tuning reads `train` (`prompt_ids`, `answer_ids`, `watermarked`); detection reads `known`
and `heldout`.

The watermarked records are put in one seeded order and cut into fixed places: `train` takes a prefix, `heldout`
the last `heldout_size`, `phi` the `phi_size` records just before it, the known non-members the records just before
`phi`, and the known members a prefix of
the train part; `clean` is the last `clean_size` plain records. Hence `heldout`, `phi`, `clean` and the known
non-members are the same for every rho of a sweep, a mix at a smaller
rho trains on a subset of the watermarked records of a larger one, and disjointness holds by construction (and is
checked again on prompt texts before anything is saved). When rho * train_size watermarked training records are
fewer than d * known_size, the known set takes all of them as members and the rest as non-members; the manifest
records the effective d (`d_effective`) and a warning is logged.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass
from pathlib import Path

import datasets

from radio.cache import StageOutput, run_stage
from radio.config import require, to_dict
from radio.data.generate import EmptyDatasetError
from radio.inputs import input_digest

log = logging.getLogger(__name__)

SPLITS = ("train", "known", "heldout", "phi", "clean")


@dataclass(frozen=True)
class MixConfig:
    """Fraction rho of watermarked training data, supervision degree d, and the sizes of the three sets."""

    rho: float = 1.0
    d: float = 1.0
    train_size: int = 1000
    known_size: int = 50  # at train_size 1000, d = 1 holds down to rho = 5%
    heldout_size: int = 400
    phi_size: int = 0  # watermarked records kept only to build the unsupervised phi (0: no `phi` split)
    clean_size: int = 0  # plain records outside `train`, for purification (0: no `clean` split)
    seed: int = 0

    def __post_init__(self) -> None:
        require(0.0 <= self.rho <= 1.0, "mix.rho", f"must be in [0, 1], got {self.rho}")
        require(0.0 <= self.d <= 1.0, "mix.d", f"must be in [0, 1], got {self.d}")
        require(self.train_size >= 1, "mix.train_size", f"must be >= 1, got {self.train_size}")
        require(self.known_size >= 0, "mix.known_size", f"must be >= 0, got {self.known_size}")
        require(self.heldout_size >= 0, "mix.heldout_size", f"must be >= 0, got {self.heldout_size}")
        require(self.phi_size >= 0, "mix.phi_size", f"must be >= 0, got {self.phi_size}")
        require(self.clean_size >= 0, "mix.clean_size", f"must be >= 0, got {self.clean_size}")


def _dataset_dir(path: Path, what: str) -> Path:
    """`path` itself, or its `data` subfolder when `path` is a generate stage folder."""
    path = Path(path).expanduser().resolve()
    if (path / "data").is_dir():
        path = path / "data"
    if not (path / "dataset_info.json").is_file():
        raise FileNotFoundError(f"{what} {path}: not a datasets save_to_disk folder")
    return path


def _load(path: Path, what: str, watermarked: bool) -> datasets.Dataset:
    data = datasets.load_from_disk(str(_dataset_dir(path, what)))
    if len(data) == 0:
        raise EmptyDatasetError(f"{what} {path}: the dataset is empty")
    for column in ("prompt", "prompt_ids", "answer_ids", "watermarked"):
        if column not in data.column_names:
            raise ValueError(f"{what} {path}: missing column {column!r} ({data.column_names})")
    if set(data["watermarked"]) != {watermarked}:
        kind = "watermarked" if watermarked else "plain"
        raise ValueError(f"{what} {path}: expected only {kind} records")
    return data


def _round_half_up(x: float) -> int:
    # Python's round() rounds halves to even (round(2.5) == 2); counts should follow the usual convention.
    return math.floor(x + 0.5)


def plan_counts(cfg: MixConfig, n_wm: int, n_plain: int) -> dict[str, int]:
    """Exact record counts of the mix for `cfg`, given the sizes of the available sets (raises when too small)."""
    train_wm = _round_half_up(cfg.rho * cfg.train_size)
    train_plain = cfg.train_size - train_wm
    members = min(_round_half_up(cfg.d * cfg.known_size), train_wm)
    nonmembers = cfg.known_size - members
    needed = train_wm + nonmembers + cfg.phi_size + cfg.heldout_size
    if needed > n_wm:
        raise EmptyDatasetError(
            f"mix.train_size: needs {needed} watermarked records ({train_wm} train + {nonmembers} known non-members"
            f" + {cfg.phi_size} phi + {cfg.heldout_size} heldout) but the watermarked set has {n_wm}"
        )
    if train_plain + cfg.clean_size > n_plain:
        raise EmptyDatasetError(
            f"mix.train_size: needs {train_plain + cfg.clean_size} plain records ({train_plain} train + "
            f"{cfg.clean_size} clean) but the plain set has {n_plain}"
        )
    return {
        "train_size": cfg.train_size,
        "train_watermarked": train_wm,
        "train_plain": train_plain,
        "known_size": cfg.known_size,
        "known_members": members,
        "known_nonmembers": nonmembers,
        "heldout_size": cfg.heldout_size,
        "phi_size": cfg.phi_size,
        "clean_size": cfg.clean_size,
    }


def _norm(text: str) -> str:
    return " ".join(text.split())


def check_disjoint(
    train: datasets.Dataset,
    known: datasets.Dataset,
    heldout: datasets.Dataset,
    phi: datasets.Dataset | None = None,
    clean: datasets.Dataset | None = None,
) -> None:
    """Raise ValueError unless heldout, phi, clean and the known non-members share no prompt with train (or, for
    the watermarked ones, with each other), and every known member is in train."""
    train_prompts = {_norm(p) for p in train["prompt"]}
    held = {_norm(p) for p in heldout["prompt"]}
    phi_prompts = {_norm(p) for p in phi["prompt"]} if phi is not None and len(phi) else set()
    clean_prompts = {_norm(p) for p in clean["prompt"]} if clean is not None and len(clean) else set()
    if train_prompts & phi_prompts:
        raise ValueError(f"mix: {len(train_prompts & phi_prompts)} phi prompts are also in train")
    if held & phi_prompts:
        raise ValueError(f"mix: {len(held & phi_prompts)} phi prompts are also in heldout")
    if train_prompts & clean_prompts:
        raise ValueError(f"mix: {len(train_prompts & clean_prompts)} clean prompts are also in train")
    members = {_norm(p) for p, m in zip(known["prompt"], known["member"], strict=True) if m}
    outsiders = {_norm(p) for p, m in zip(known["prompt"], known["member"], strict=True) if not m}
    if train_prompts & held:
        raise ValueError(f"mix: {len(train_prompts & held)} heldout prompts are also in train")
    if train_prompts & outsiders:
        raise ValueError(f"mix: {len(train_prompts & outsiders)} known non-member prompts are in train")
    if held & outsiders:
        raise ValueError(f"mix: {len(held & outsiders)} known non-member prompts are also in heldout")
    if outsiders & phi_prompts:
        raise ValueError(f"mix: {len(outsiders & phi_prompts)} known non-member prompts are also in phi")
    if not members <= train_prompts:
        raise ValueError(f"mix: {len(members - train_prompts)} known members are not in train")


def make_mix(cfg: MixConfig, wm_dir: str | Path, plain_dir: str | Path, root: Path | None = None) -> StageOutput:
    """The cached mix stage for `cfg` from A's watermarked (`wm_dir`) and plain (`plain_dir`) generated sets."""
    inputs = {
        "watermarked": input_digest(wm_dir, "mix watermarked set"),
        "plain": input_digest(plain_dir, "mix plain set"),
    }

    def build(out: Path) -> dict[str, object]:
        wm = _load(Path(wm_dir), "watermarked set", watermarked=True)
        plain = _load(Path(plain_dir), "plain set", watermarked=False)
        counts = plan_counts(cfg, len(wm), len(plain))
        # One seeded order per set, independent of rho and d, so that splits are nested across a sweep.
        wm_order = list(range(len(wm)))
        random.Random(f"{cfg.seed}/watermarked").shuffle(wm_order)
        plain_order = list(range(len(plain)))
        random.Random(f"{cfg.seed}/plain").shuffle(plain_order)
        n_wm, n_members, n_out = counts["train_watermarked"], counts["known_members"], counts["known_nonmembers"]
        heldout_idx = wm_order[len(wm) - cfg.heldout_size :] if cfg.heldout_size else []
        phi_end = len(wm) - cfg.heldout_size
        phi_idx = wm_order[phi_end - cfg.phi_size : phi_end] if cfg.phi_size else []
        outsider_idx = wm_order[phi_end - cfg.phi_size - n_out : phi_end - cfg.phi_size]
        clean_idx = plain_order[len(plain) - cfg.clean_size :] if cfg.clean_size else []
        train_wm = wm.select(wm_order[:n_wm])
        train_plain = plain.select(plain_order[: counts["train_plain"]])
        parts = [p for p in (train_wm, train_plain) if len(p)]
        train = datasets.concatenate_datasets(parts).shuffle(seed=cfg.seed).flatten_indices()
        known = datasets.concatenate_datasets(
            [
                wm.select(wm_order[:n_members]).add_column("member", [True] * n_members),
                wm.select(outsider_idx).add_column("member", [False] * n_out),
            ]
        )
        known = known.shuffle(seed=cfg.seed).flatten_indices()
        heldout = wm.select(heldout_idx).flatten_indices()
        phi = wm.select(phi_idx).flatten_indices()
        clean = plain.select(clean_idx).flatten_indices()
        check_disjoint(train, known, heldout, phi, clean)
        if n_members < _round_half_up(cfg.d * cfg.known_size):
            log.warning(
                "mix: only %d watermarked training records (rho=%s), so %d of %d known records are members (d=%s)",
                n_wm,
                cfg.rho,
                n_members,
                cfg.known_size,
                cfg.d,
            )
        splits = [("train", train), ("known", known), ("heldout", heldout)]
        splits += [(name, data) for name, data in (("phi", phi), ("clean", clean)) if len(data)]
        for name, data in splits:
            data.save_to_disk(str(out / name))
        counts.update(
            {
                "rho_effective": n_wm / cfg.train_size,
                "d_effective": n_members / cfg.known_size if cfg.known_size else 0.0,
                "train_watermarked_tokens": sum(map(len, train_wm["answer_ids"])) if n_wm else 0,
                "watermarked_available": len(wm),
                "plain_available": len(plain),
            }
        )
        log.info("mix rho=%s d=%s: %s", cfg.rho, cfg.d, counts)
        return counts

    return run_stage("mix", to_dict(cfg), build, inputs, root)
