"""What :meth:`Learner.predict` returns, and the reconstruction snapshot figure."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from transmri._files import atomic_write_bytes, atomic_write_text

__all__ = ["Predictions", "save_reconstruction_figure"]


@dataclass(frozen=True)
class Predictions:
    """Class probabilities of one split, one row per scan, in the dataset's order.

    Attributes:
        probs: ``(n, C)`` softmax probabilities.
        preds: ``(n,)`` predicted class indices.
        labels: ``(n,)`` true class indices (``-1`` for an unlabelled scan).
        subjects: subject of each scan.
        paths: file of each scan.
        classes: class names; index ``i`` of ``probs`` is ``classes[i]``.
    """

    probs: np.ndarray
    preds: np.ndarray
    labels: np.ndarray
    subjects: tuple[str, ...]
    paths: tuple[str, ...]
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.preds.shape[0])

    def confusion_matrix(self) -> np.ndarray:
        """``(C, C)`` counts over the labelled scans: rows are true classes, columns predictions."""
        from sklearn.metrics import confusion_matrix

        keep = self.labels >= 0
        return np.asarray(
            confusion_matrix(
                self.labels[keep], self.preds[keep], labels=list(range(len(self.classes)))
            )
        )

    def to_frame(self) -> pd.DataFrame:
        """Columns ``subject, path, label, pred, prob_<class>...`` (labels as class names)."""
        names = np.asarray(self.classes, dtype=object)
        frame = pd.DataFrame(
            {
                "subject": list(self.subjects),
                "path": list(self.paths),
                "label": [names[i] if i >= 0 else "" for i in self.labels],
                "pred": names[self.preds],
            }
        )
        for j, name in enumerate(self.classes):
            frame[f"prob_{name}"] = self.probs[:, j]
        return frame

    def to_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_frame` as CSV (atomically)."""
        return atomic_write_text(path, self.to_frame().to_csv(index=False))


def save_reconstruction_figure(
    image: np.ndarray, reconstruction: np.ndarray, path: str | os.PathLike[str], *, title: str
) -> Path:
    """Save the middle slice along each axis of a volume and its reconstruction as PNG.

    Args:
        image: ``(D, H, W)`` input volume.
        reconstruction: ``(D, H, W)`` model output.
        path: the PNG to write.
        title: the figure's title (e.g. the epoch).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(7.5, 5))
    for row, (name, vol) in enumerate((("input", image), ("reconstruction", reconstruction))):
        for axis in range(3):
            mid = vol.shape[axis] // 2
            plane: Sequence[np.ndarray] = np.take(vol, mid, axis=axis)
            ax = axes[row, axis]
            ax.imshow(
                np.rot90(np.asarray(plane)),
                cmap="gray",
                vmin=0.0,
                vmax=max(float(image.max()), 1e-6),
            )
            ax.set_axis_off()
            if axis == 0:
                ax.set_title(name, loc="left", fontsize=9)
    fig.suptitle(title)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())
