"""The `reproduction` tables: our numbers beside the paper's, test by test, and what differs in the set-up.

The paper is Sander, Fernandez, Durmus, Douze and Furon, "Watermarking Makes Language Models Radioactive",
NeurIPS 2024 (arXiv 2402.14904). Only figures the paper states are quoted: its headline (open model, unsupervised,
p < 1e-5 with 5% of the fine-tuning data watermarked), the closed supervised test below 1e-5 at 1% (Fig. 5), the
closed supervised p = 2.6e-24 from 248,200 scored tokens at 5%, and uniform p-values without watermarked data
(Fig. 5: the mean log10 p of a uniform p is -1/ln 10 = -0.43).

- `reproduction`: one row per (paper figure, our test of the same kind): the paper's number, ours (mean log10 p
  over seeds at the base recipe, and the deduplicated tokens scored), and a verdict. A rho the grid lacks is said
  so, with the nearest rho of the grid beside it.
- `reproduction_setup`: the paper's set-up beside this sweep's (models, vocabulary, window, data, tokens scored).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from sweeps.audits.radioactivity.config import AblationConfig

NOT_IN_SWEEP = "not in this sweep"
# radio's own reading tests, listed beside the paper's top-1 reading test ("open") of the same supervision
SAME_KIND = {"open-dist": "open", "open-ref": "open"}
UNIFORM_MEAN_LOG10P = -1.0 / math.log(10.0)  # E[log10 U] for U uniform on (0, 1)


@dataclass(frozen=True)
class PaperFigure:
    """One number of the paper: a test kind (setting, supervised) at a rho, as a bound or a value."""

    setting: str
    supervised: bool
    rho: float
    claim: str  # what the paper says, quoted with its place
    log10p: float  # the bound (`relation` "<") or the value ("=" or "~")
    relation: str
    tokens: int | None = None


PAPER = (
    PaperFigure("open", False, 0.05, "p < 1e-5 at rho = 5% (abstract, Fig. 5)", -5.0, "<"),
    PaperFigure("closed", True, 0.01, "p < 1e-5 at rho = 1% (Fig. 5)", -5.0, "<"),
    PaperFigure(
        "closed", True, 0.05, "p = 2.6e-24 from 248,200 scored tokens at rho = 5%", math.log10(2.6e-24), "=", 248_200
    ),
    PaperFigure("open", False, 0.0, "p uniform without watermarked data (Fig. 5)", UNIFORM_MEAN_LOG10P, "~"),
    PaperFigure("closed", True, 0.0, "p uniform without watermarked data (Fig. 5)", UNIFORM_MEAN_LOG10P, "~"),
)

PAPER_SETUP = {
    "model A (writes the watermarked data)": "Llama-2-7B-chat",
    "model B (fine-tuned by Bob)": "Llama-7B",
    "vocabulary": "32,000 (Llama tokenizer)",
    "watermark": "KGW and Aaronson; window k in {1, 2, 4, 8} (Fig. 6)",
    "fine-tuning data": "instruction / answer pairs written by A, a fraction rho watermarked",
    "tokens scored per test": "1e5 to 1e6 deduplicated (248,200 in the closed supervised test at rho = 5%)",
}


def _verdict(figure: PaperFigure, ours: float) -> str:
    if figure.relation == "~":  # a control: ours must look uniform too (not detected at 0.01)
        return "reproduced" if ours > -2.0 else "not reproduced (control detected)"
    if figure.relation == "<":
        return "reproduced" if ours < figure.log10p else "not reproduced"
    if ours <= figure.log10p:  # a value: at least as strong
        return "reproduced"
    return "detected, weaker than the paper (p < 1e-5)" if ours < -5.0 else "not reproduced"


def reproduction_table(kinds: pd.DataFrame, at_base_rho: pd.DataFrame) -> pd.DataFrame:
    """Our numbers beside the paper's, from the folded test rows at the base recipe (`at_base_rho`: every rho, the
    fine-tuned models only) and the test kinds (`kinds`: test, setting, supervised, phi)."""
    rows: list[dict[str, Any]] = []
    for figure in PAPER:
        kind_of = kinds["setting"].map(lambda setting: SAME_KIND.get(setting, setting))
        matching = kinds[(kind_of == figure.setting) & (kinds["supervised"] == figure.supervised)]
        kind = f"{figure.setting} {'supervised' if figure.supervised else 'unsupervised'}"
        if not len(matching):
            rows.append(_row(figure, kind, NOT_IN_SWEEP, None, None, NOT_IN_SWEEP))
            continue
        for test in matching["test"]:
            per_rho = at_base_rho[at_base_rho["test"] == test].groupby("rho")
            values = per_rho["log10_pvalue"].mean()
            tokens = per_rho["n_scored"].mean() if "n_scored" in at_base_rho.columns else pd.Series(dtype=float)
            if figure.rho in values.index:
                ours = float(values[figure.rho])
                scored = tokens.get(figure.rho)
                rows.append(_row(figure, test, f"rho={figure.rho:g}", ours, scored, _verdict(figure, ours)))
            elif len(neighbours := [r for r in values.index if (r > 0) == (figure.rho > 0)]):
                # the nearest rho on the same side: a control figure (rho = 0) is never read off a radioactive model
                nearest = min(neighbours, key=lambda r: (abs(r - figure.rho), r))
                note = f"rho={nearest:g} (no rho={figure.rho:g})"
                rows.append(_row(figure, test, note, float(values[nearest]), tokens.get(nearest), NOT_IN_SWEEP))
            else:
                rows.append(_row(figure, test, NOT_IN_SWEEP, None, None, NOT_IN_SWEEP))
    return pd.DataFrame(rows)


def _row(figure: PaperFigure, test: str, where: str, ours: float | None, tokens: Any, verdict: str) -> dict[str, Any]:
    return {
        "paper": figure.claim,
        "paper_log10p": round(figure.log10p, 2),
        "paper_tokens": figure.tokens,
        "test": test,
        "ours_at": where,
        "ours_log10p": None if ours is None else round(ours, 2),
        "ours_tokens": None if tokens is None or not _finite(tokens) else round(float(tokens)),
        "verdict": verdict,
    }


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def setup_table(setup: Mapping[str, str], tokens: pd.Series | None) -> pd.DataFrame:
    """The paper's set-up beside this sweep's (`setup`: the sweep's own description of each line; `tokens`: mean
    tokens scored per test over the fine-tuned models)."""
    ours = dict(setup)
    if tokens is not None and len(tokens):
        ours["tokens scored per test"] = ", ".join(f"{t} {v:,.0f}" for t, v in tokens.items())
    lines = list(PAPER_SETUP) + [k for k in ours if k not in PAPER_SETUP]
    return pd.DataFrame(
        [{"what": line, "paper": PAPER_SETUP.get(line, ""), "ours": ours.get(line, "")} for line in lines]
    )


def describe_setup(config: AblationConfig) -> dict[str, str]:
    """This sweep's side of `reproduction_setup`, from its preset (no secret: the key is not part of it)."""
    prepare, grid = config.prepare, config.grid
    sizes = sorted({str(grid.base["size"]), *map(str, grid.vary.get("size", []))})
    ks = sorted({int(grid.base["k"]), *map(int, grid.vary.get("k", []))})
    schemes = sorted({str(grid.base["scheme"]), *map(str, grid.vary.get("scheme", []))})
    if config.models or prepare.base_a is not None:
        model_a = f"local checkpoint {prepare.base_a}" if prepare.base_a is not None else "local checkpoint"
        model_b = ", ".join(f"{s}: {config.models.get(s, prepare.base_b)}" for s in sizes)
        vocabulary = "the local checkpoints' tokenizer"
    else:
        model_a = f"{prepare.preset} Llama, pre-trained here ({prepare.pretrain.steps} steps)"
        model_b = ", ".join(f"{s} Llama, pre-trained here on the other half of the corpus" for s in sizes)
        vocabulary = f"{prepare.tokenizer.vocab_size:,} (BPE trained here)"
    wm = config.watermark
    mix = config.mix
    return {
        "model A (writes the watermarked data)": model_a,
        "model B (fine-tuned by Bob)": model_b,
        "vocabulary": vocabulary,
        "watermark": f"{', '.join(schemes)}; gamma {wm.gamma}, delta {wm.delta}; window k in {ks}",
        "fine-tuning data": (
            f"{mix.train_size:,} answers of A (at most {config.generate.max_new_tokens} tokens each), a fraction rho "
            f"watermarked, the rest plain answers of A; replay of Bob's clean text "
            f"(ratio {config.finetune.get('replay_ratio', 0)})"
        ),
    }
