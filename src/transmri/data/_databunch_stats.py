"""Summaries of a DataBunch for people: per-split counts, their text, a sample figure.

Private helpers behind :meth:`DataBunch.stats`, :meth:`DataBunch.print_stats`
and :meth:`DataBunch.show_sample`; they take the pieces they need, not the
DataBunch, so the import runs one way (``databunch`` imports this module).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from transmri.data.dataset import MRIDataset
from transmri.data.manifest import _write_atomic
from transmri.data.table import ScanTable

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["sample_figure", "split_stats", "stats_text"]


def split_stats(parts: Iterable[tuple[str, ScanTable]], classes: Sequence[str]) -> pd.DataFrame:
    """Per split: images, subjects and scans per label (one row per split).

    Args:
        parts: ``(split name, rows of that split)`` in display order.
        classes: the label names, one column each (none for an unlabelled task).
    """
    rows = []
    for name, part in parts:
        row: dict[str, Any] = {
            "split": name,
            "images": len(part),
            "subjects": part.frame["subject"].nunique(),
        }
        counts = part.label_counts()
        for c in classes:
            row[c] = counts.get(c, 0)
        rows.append(row)
    return pd.DataFrame(rows).set_index("split")


def stats_text(source: str, stats: pd.DataFrame, normalization: tuple[float, float] | None) -> str:
    """The text :meth:`DataBunch.print_stats` prints: source, counts, normalisation."""
    text = f"{source}\n{stats.to_string()}"
    if normalization is not None:
        mean, std = normalization
        text += f"\nnormalised with mean {mean:.4g}, std {std:.4g}"
    return text


def sample_figure(
    ds: MRIDataset,
    *,
    split: str,
    index: int,
    classes: Sequence[str],
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """Three orthogonal middle slices of item ``index`` of ``ds``, as the model sees it.

    Args:
        ds: the split's dataset (augmented for the training split).
        split: the split's name, for the title.
        index: position within the split.
        classes: label names, to title the figure with the item's label.
        path: if given, also save the figure there as PNG (temp file, then rename).
    """
    from matplotlib.figure import Figure

    item = ds[index]
    volume = item["image"][0].numpy()
    label = int(item["label"])
    label_text = classes[label] if label >= 0 else "unlabelled"
    row = ds.table.frame.iloc[int(item["index"])]
    fig = Figure(figsize=(9, 3.4))
    axes = fig.subplots(1, 3)
    centre = [s // 2 for s in volume.shape]
    slices = (
        volume[centre[0], :, :],
        volume[:, centre[1], :],
        volume[:, :, centre[2]],
    )
    for axis, (ax, image) in enumerate(zip(axes, slices)):
        ax.imshow(np.rot90(image), cmap="gray")
        ax.set_title(f"axis {axis} = {centre[axis]}")
        ax.axis("off")
    fig.suptitle(f"{split}[{index}]: subject {row['subject']}, label {label_text}")
    if path is not None:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100)
        _write_atomic(Path(path), buffer.getvalue(), "figure")
    return fig
