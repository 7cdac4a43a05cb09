"""The transfer benchmark's summary: per training size, what the paired differences say.

Private to :mod:`transmri.evaluation.report`. Per ``N`` the summary shows one
table of every method's mean and interval, and one sentence about the best
*transfer* method (any method but the baselines :data:`BASELINES`) against
each baseline that was run: training from scratch, ridge on voxels and the
random-weight control. The sentence is decided by the **paired** difference
(same training and test subjects within a repeat, see
:func:`~transmri.evaluation.comparison.paired_differences`), never by whether
two per-method intervals overlap: overlapping intervals say little when the
methods move together from draw to draw. When the best was picked among
several transfer methods, a note says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from transmri.evaluation._report_sections import absent, escape, read_csv
from transmri.evaluation.comparison import paired_differences
from transmri.evaluation.intervals import as_flags, clip_interval, difference_range
from transmri.evaluation.plots import summarize_comparison

__all__ = [
    "BASELINES",
    "METHOD_NAMES",
    "METRIC_NAMES",
    "SMALL_TEST_SET",
    "notes_html",
    "transfer_summary",
]

#: Below this many test scans the summary warns that intervals are wide.
SMALL_TEST_SET = 30
#: The metric the summary compares methods on, first one found in ``comparison.csv``.
_SUMMARY_METRICS = ("auc", "balanced_accuracy", "accuracy")
METRIC_NAMES = {
    "auc": "AUC",
    "balanced_accuracy": "balanced accuracy",
    "accuracy": "accuracy",
    "sensitivity": "sensitivity",
    "specificity": "specificity",
    "f1": "F1",
}
METHOD_NAMES = {
    "finetune": "fine-tuning the pretrained encoder",
    "scratch": "training from scratch",
    "linear_probe": "a linear probe on the frozen encoder",
    "regional_probe": "a regional linear probe on the frozen encoder",
    "regional_random": "a regional linear probe on a random encoder",
    "ridge": "a ridge classifier on voxels",
}
#: Methods that use no pretrained encoder, in the order the summary compares with them.
BASELINES = ("scratch", "ridge", "regional_random")
_BASELINE_NAMES = {
    "scratch": "scratch",
    "ridge": "ridge",
    "regional_random": "the random-weight control",
}


@dataclass(frozen=True)
class _Estimate:
    """One method's mean metric at one training size, with its interval over repeats."""

    method: str
    mean: float
    low: float
    high: float
    n_repeats: int

    @property
    def has_interval(self) -> bool:
        return not (math.isnan(self.low) or math.isnan(self.high))

    def text(self) -> str:
        if math.isnan(self.mean):
            return "n/a"
        if not self.has_interval:
            return f"{self.mean:.2f} (no interval)"
        return f"{self.mean:.2f} [{self.low:.2f}, {self.high:.2f}]"


def _method_name(method: str) -> str:
    return METHOD_NAMES.get(method, f"method '{method}'")


def _rank_key(estimate: _Estimate) -> float:
    return -estimate.mean if not math.isnan(estimate.mean) else math.inf


def _against(best: str, reference: str, metric: str, differences: pd.DataFrame) -> tuple[str, str]:
    """The paired difference of ``best`` against one baseline.

    Returns:
        ``(evidence, outcome)``; the outcome is a template whose ``{}`` takes
        the baseline's name, so that equal outcomes can be said once.
    """
    name = _BASELINE_NAMES[reference]
    found = differences[(differences["method"] == best) & (differences["reference"] == reference)]
    if found.empty or int(found.iloc[0]["n_pairs"]) == 0:
        return f"vs {name}: no paired repeats", "not compared with {} (no paired repeats)"
    row = found.iloc[0]
    diff = float(row[f"{metric}_diff"])
    low, high = clip_interval(
        float(row[f"{metric}_low"]), float(row[f"{metric}_high"]), difference_range(metric)
    )
    pairs = int(row["n_pairs"])
    if math.isnan(diff):
        return f"vs {name}: undefined", "no comparison with {} possible"
    if math.isnan(low) or math.isnan(high):
        return (
            f"vs {name} {diff:+.2f} (one paired repeat, no interval)",
            "no difference from {} can be claimed",
        )
    evidence = f"vs {name} {diff:+.2f} [{low:+.2f}, {high:+.2f}] over {pairs} paired repeats"
    if low > 0:
        return evidence, "better than {}"
    if high < 0:
        return evidence, "worse than {}"
    return evidence, "no clear difference from {} (the paired interval includes 0)"


def _said_once(outcomes: Sequence[tuple[str, str]]) -> list[str]:
    """``[(template, name), ...]`` as phrases, one per template: "better than scratch or ridge"."""
    grouped: dict[str, list[str]] = {}
    for template, name in outcomes:
        grouped.setdefault(template, []).append(name)
    phrases = []
    for template, names in grouped.items():
        joiner = " and " if template.startswith(("better", "worse")) else " or "
        listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + joiner + names[-1]
        phrases.append(template.format(listed))
    return phrases


def _verdict(
    n_train: object, metric: str, estimates: Sequence[_Estimate], differences: pd.DataFrame
) -> tuple[str, str]:
    """One sentence: the best transfer method against each baseline, by paired differences.

    Returns:
        The sentence as ``(evidence, conclusion)``, to be joined by ": ".
    """
    label = METRIC_NAMES.get(metric, metric)
    ranked = sorted(estimates, key=_rank_key)
    if len(ranked) == 1:
        only = ranked[0]
        return (
            f"At N={n_train}, only {_method_name(only.method)} was run: {label} {only.text()}",
            "nothing to compare it with.",
        )
    transfer = [e for e in ranked if e.method not in BASELINES]
    if not transfer:
        return (
            f"At N={n_train}, only baselines were run ({', '.join(e.method for e in ranked)})",
            "no transfer method to judge.",
        )
    best = transfer[0]
    head = (
        f"At N={n_train}, the best transfer method, {best.method} "
        f"({_method_name(best.method)}), {label} {best.text()}"
    )
    present = {e.method for e in ranked}
    references = [r for r in BASELINES if r in present]
    if not references:
        return (
            head + "; no scratch, ridge or random-weight row to compare it with",
            "no comparison with a baseline is possible.",
        )
    evidence, found = [], []
    for reference in references:
        text, template = _against(best.method, reference, metric, differences)
        evidence.append(text)
        found.append((template, _BASELINE_NAMES[reference]))
    outcomes = _said_once(found)
    if "scratch" not in present:
        outcomes.append("not compared with training from scratch: this run has no scratch row")
    return (
        head + "; paired difference " + "; ".join(evidence),
        f"{best.method}: " + "; ".join(outcomes) + ".",
    )


def _summary_table(n_train: object, metric: str, estimates: Sequence[_Estimate]) -> str:
    ranked = sorted(estimates, key=_rank_key)
    best = ranked[0].mean
    rows = []
    for e in ranked:
        is_best = not math.isnan(best) and e.mean == best
        method = escape(e.method)
        hint = METHOD_NAMES.get(e.method)
        if is_best:
            method, value = f"<strong>{method}</strong>", f"<strong>{escape(e.text())}</strong>"
        else:
            value = escape(e.text())
        if hint:
            method += f'<br><span class="hint">{escape(hint)}</span>'
        row_class = ' class="best"' if is_best else ""
        rows.append(
            f"<tr{row_class}><td>{method}</td>"
            f'<td class="num">{value}</td><td class="num">{e.n_repeats}</td></tr>'
        )
    label = escape(METRIC_NAMES.get(metric, metric))
    return (
        f'<table class="summary"><caption>N = {escape(n_train)} training scans</caption>'
        f"<thead><tr><th>method</th><th>{label} [95% interval]</th><th>repeats</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _comparison_notes(frame: pd.DataFrame) -> list[str]:
    notes = []
    if "n_test" in frame.columns:
        sizes = pd.to_numeric(frame["n_test"], errors="coerce").dropna()
        if len(sizes) and sizes.min() < SMALL_TEST_SET:
            n = int(sizes.min())
            notes.append(f"n={n} test scans: each score is noisy and intervals are wide.")
    if "test_subjects_hash" in frame.columns and frame["test_subjects_hash"].nunique() == 1:
        notes.append(
            "Every repeat is scored on the same test scans: the intervals show the "
            "variation of training, not of test-set sampling."
        )
    if "converged" in frame.columns:
        frame = frame.assign(_ok=as_flags(frame["converged"].tolist()))
        for (method, n_train), group in frame.groupby(["method", "n_train"], sort=True):
            failed = int((~group["_ok"]).sum())
            if failed:
                notes.append(
                    f"{method} did not converge in {failed} of {len(group)} repeat(s) at "
                    f"N={n_train} (see the notes column of comparison.csv)."
                )
    return notes


def _multiplicity_note(frame: pd.DataFrame) -> str | None:
    transfer = sorted(set(frame["method"].astype(str)) - set(BASELINES))
    if len(transfer) < 2:
        return None
    return (
        f"Multiplicity: at each N the best transfer method is picked among {len(transfer)} "
        f"({', '.join(transfer)}) by its mean on the same test scans, and its paired "
        "intervals are not corrected for that choice: an interval that barely excludes 0 "
        "is weaker evidence than it looks."
    )


def notes_html(notes: Sequence[str]) -> str:
    if not notes:
        return ""
    items = "".join(f'<li class="note">{escape(n)}</li>' for n in notes)
    return f'<ul class="notes">{items}</ul>'


def _differences(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    present = set(frame["method"].astype(str))
    parts = [
        paired_differences(frame, reference=r, metrics=[metric]) for r in BASELINES if r in present
    ]
    parts = [p for p in parts if not p.empty]
    if not parts:
        return pd.DataFrame(columns=["method", "reference", "n_train", "n_pairs"])
    return pd.concat(parts, ignore_index=True)


def transfer_summary(path: Path) -> str:
    """The summary of ``comparison.csv``: verdict sentences, per-N tables and notes."""
    frame = read_csv(path)
    metric = next((m for m in _SUMMARY_METRICS if m in frame.columns), None)
    if metric is None:
        return absent(
            f"{path.name} has none of the columns {list(_SUMMARY_METRICS)}: "
            "no comparison to summarise."
        )
    summary = summarize_comparison(frame, metrics=[metric])
    differences = _differences(frame, metric) if len(summary) else pd.DataFrame()
    tables, verdicts = [], []
    for n_train, group in summary.groupby("n_train", sort=True):
        estimates = [
            _Estimate(
                method=str(row["method"]),
                mean=float(row[f"{metric}_mean"]),
                low=float(row[f"{metric}_low"]),
                high=float(row[f"{metric}_high"]),
                n_repeats=int(row["n_repeats"]),
            )
            for row in group.to_dict(orient="records")
        ]
        at_n = differences[differences["n_train"] == n_train] if len(differences) else differences
        tables.append(_summary_table(n_train, metric, estimates))
        verdicts.append(_verdict(n_train, metric, estimates, at_n))
    notes = _comparison_notes(frame)
    multiplicity = _multiplicity_note(frame)
    if multiplicity:
        notes.insert(0, multiplicity)
    label = escape(METRIC_NAMES[metric])
    return (
        f"<p>Transfer benchmark ({escape(path.name)}). Each sentence compares the best "
        f"transfer method with the baselines by the <em>paired</em> difference in {label} "
        "(same training and test subjects within a repeat; 95% t-interval over repeats); "
        "the tables give each method's mean with a 95% t-interval of the mean, clipped to "
        "[0, 1]; best mean in bold.</p>"
        '<ul class="verdicts">'
        + "".join(f"<li>{escape(v)}: <strong>{escape(c)}</strong></li>" for v, c in verdicts)
        + "</ul>"
        + f'<div class="tables">{"".join(tables)}</div>'
        + notes_html(notes)
    )
