"""Figures and the HTML report of a trained Learner.

:class:`LearnerPlots` is the part of :class:`~transmri.training.Learner` that
draws: each method gathers what it needs from the model (eval mode, no
gradients, through :meth:`~LearnerOutputs.predict` or
:meth:`~LearnerOutputs.encode_data`) and hands plain arrays to a function of
:mod:`transmri.evaluation`. Every figure is saved as a PNG into
``RUN_DIR/figures/`` (by rank 0 only) and returned as a matplotlib Figure.

Example:
    >>> learner.fit(10)  # doctest: +SKIP
    >>> learner.plot_tsne("test", color_by="site")  # doctest: +SKIP
    >>> learner.report()  # doctest: +SKIP
    PosixPath('runs/clf/report.html')
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from transmri._files import atomic_write_json, atomic_write_text, read_json
from transmri._validation import check_choice, check_positive_int
from transmri.errors import ConfigError, NotFittedError
from transmri.training._core import SPLITS
from transmri.training.loop import collect
from transmri.training.outputs import LearnerOutputs

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["SALIENCY_METHODS", "LearnerPlots"]

SALIENCY_METHODS: tuple[str, ...] = ("occlusion", "gradient")
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def _is_synthetic(frame: Any) -> bool:
    """Whether a scan table's ``synthetic`` column is true for some scan."""
    if "synthetic" not in frame:
        return False
    return bool(frame["synthetic"].astype(str).str.lower().isin(["true", "1"]).any())


class LearnerPlots(LearnerOutputs):
    """Plots and the HTML report of a Learner (used through :class:`~transmri.training.Learner`)."""

    # ------------------------------------------------------------- helpers
    def _figure(self, figure: Figure, name: str | None, default: str) -> Figure:
        """Save ``figure`` as ``figures/<name or default>`` on rank 0; return it."""
        chosen = default if name is None else name
        if not isinstance(chosen, str) or not _NAME.match(chosen):
            raise ConfigError(f"name: expected letters, digits, '_', '-', '.', got {name!r}")
        if not chosen.endswith(".png"):
            chosen += ".png"
        if self.is_global_zero:
            from transmri._files import save_figure

            save_figure(figure, self._prepare_run() / "figures" / chosen)
        return figure

    def _class_names(self, labels: np.ndarray) -> np.ndarray:
        names = list(self.data.classes)
        return np.array([names[i] if i >= 0 else "unlabelled" for i in labels], dtype=object)

    def _column(self, split: str, column: str | None) -> np.ndarray | None:
        if column is None:
            return None
        frame = self.data.split_table(split).frame
        if column not in frame.columns:
            raise ConfigError(
                f"color_by: expected a column of the {split} table "
                f"({', '.join(map(str, frame.columns))}), got {column!r}"
            )
        values = frame[column]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            return values.to_numpy()
        return values.fillna("missing").astype(str).to_numpy()

    def _sample(self, split: str, index: int) -> dict[str, Any]:
        dataset = self.data.dataset(split)
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(dataset):
            raise ConfigError(
                f"index: expected a position in 0..{len(dataset) - 1} of the {split} split, "
                f"got {index!r}"
            )
        item: dict[str, Any] = dataset[index]
        return item

    @torch.no_grad()
    def _outputs(self, images: Tensor) -> dict[str, Tensor]:
        """The model's outputs for a batch, in eval mode (the mode is restored)."""
        device = self._get_fabric().device
        was_training = self.model.training
        self.model.eval()
        try:
            outputs = self.model(images.to(device))
        finally:
            self.model.train(was_training)
        return {k: v.detach().float().cpu() for k, v in dict(outputs).items()}

    def _output_keys(self, split: str) -> set[str]:
        return set(self._outputs(self._sample(split, 0)["image"][None]))

    # -------------------------------------------------------------- curves
    def plot_history(self, *, name: str | None = None) -> Figure:
        """Training curves of every epoch trained (``history_``), saved as ``history.png``.

        Raises:
            NotFittedError: nothing was trained in this learner.
        """
        from transmri.evaluation import plot_history

        self._check_fitted("plot_history")
        if not self.history_:
            raise NotFittedError(
                "plot_history: this learner has no training history (the model was loaded, "
                f"not trained); read {self.path / 'history.csv'} instead"
            )
        return self._figure(plot_history(pd.DataFrame(self.history_)), name, "history")

    # --------------------------------------------------------- latent space
    def plot_tsne(
        self,
        split: str = "test",
        *,
        color_by: str | None = None,
        perplexity: float = 30.0,
        name: str | None = None,
    ) -> Figure:
        """t-SNE of the pooled codes of ``split``, coloured by label (and ``color_by``).

        Args:
            split: ``"train"``, ``"val"`` or ``"test"``.
            color_by: a column of the split's table (``"site"``, ``"sex"``...)
                for a second panel.
            perplexity: wanted t-SNE perplexity (lowered for few scans).
            name: file name in ``figures/`` (default ``tsne_<split>.png``).
        """
        from transmri.evaluation import plot_tsne

        codes, labels, _ = self.encode_data(split)
        extra = self._column(split, color_by)
        figure = plot_tsne(
            codes,
            self._class_names(labels),
            color_by=extra,
            perplexity=perplexity,
            seed=self.config.seed,
        )
        return self._figure(figure, name, f"tsne_{split}")

    def plot_pca(
        self, split: str = "test", *, color_by: str | None = None, name: str | None = None
    ) -> Figure:
        """First two principal components of the pooled codes of ``split``.

        Args:
            split: ``"train"``, ``"val"`` or ``"test"``.
            color_by: a column of the split's table for a second panel.
            name: file name in ``figures/`` (default ``pca_<split>.png``).
        """
        from transmri.evaluation import plot_pca

        codes, labels, _ = self.encode_data(split)
        figure = plot_pca(codes, self._class_names(labels), color_by=self._column(split, color_by))
        return self._figure(figure, name, f"pca_{split}")

    def plot_bottleneck_histogram(
        self,
        other: LearnerPlots | None = None,
        split: str = "test",
        *,
        names: tuple[str, str] | None = None,
        by_class: bool = False,
        name: str | None = None,
    ) -> Figure:
        """Histogram of the mean activation of each code unit (the paper's sparsity figure).

        Args:
            other: a second trained Learner (e.g. the same autoencoder trained
                with ``l1_reg``): its codes of the same split are drawn beside.
            split: ``"train"``, ``"val"`` or ``"test"``.
            names: panel titles (default: the two run folders' names).
            by_class: one histogram per class, overlaid (first panel).
            name: file name in ``figures/`` (default ``bottleneck_<split>.png``).

        Raises:
            NotFittedError: this learner or ``other`` is not trained.
        """
        from transmri.evaluation import plot_bottleneck_histogram

        codes, labels, _ = self.encode_data(split, pooled=False)
        other_codes = None
        if other is not None:
            if not isinstance(other, LearnerPlots):
                raise ConfigError(f"other: expected a Learner, got {type(other).__name__}")
            other_codes, _, _ = other.encode_data(split, pooled=False)
        titles = names or (self.path.name, other.path.name if other is not None else "")
        figure = plot_bottleneck_histogram(
            codes,
            labels=self._class_names(labels) if by_class else None,
            other=other_codes,
            names=titles,
        )
        return self._figure(figure, name, f"bottleneck_{split}")

    # ------------------------------------------------------ reconstructions
    def _reconstruct(self, images: Tensor) -> Tensor:
        outputs = self._outputs(images)
        if "reconstruction" not in outputs:
            raise ConfigError(
                f"plot_reconstructions: the model returns no 'reconstruction' (keys "
                f"{sorted(outputs)}); only autoencoder-like models (model_type 'autoencoder', "
                f"'vae', 'mixed') reconstruct, this learner's is {self.config.model_type!r}"
            )
        return outputs["reconstruction"]

    def reconstruction_scores(self, split: str = "test") -> dict[str, float]:
        """MSE, PSNR and SSIM of the model's reconstructions, averaged over the scans of ``split``.

        PSNR and SSIM use each scan's own intensity range as the data range.

        Raises:
            NotFittedError: before ``fit`` or ``load``.
            ConfigError: the model does not reconstruct its input.
        """
        from transmri.evaluation import reconstruction_metrics

        self._check_fitted("reconstruction_scores")
        self._reconstruct(self._sample(split, 0)["image"][None])
        loader, _ = self._loader(split, train=False)

        def extract(outputs: dict[str, Tensor], batch: dict[str, Tensor]) -> dict[str, Tensor]:
            rows = []
            for x, y in zip(batch["image"].float().cpu(), outputs["reconstruction"].float().cpu()):
                span = float(x.max() - x.min()) or 1.0
                values = reconstruction_metrics(x, y, data_range=span)
                rows.append([values["mse"], values["psnr"], values["ssim"]])
            return {"scores": torch.tensor(rows, dtype=torch.float64)}

        scores = collect(self._get_fabric(), self.model, loader, extract)["scores"]
        mean = scores.mean(axis=0)
        return {"mse": float(mean[0]), "psnr": float(mean[1]), "ssim": float(mean[2])}

    def plot_reconstructions(
        self, split: str = "test", n: int = 3, *, name: str | None = None
    ) -> Figure:
        """The first ``n`` scans of ``split`` next to their reconstructions.

        Raises:
            NotFittedError: before ``fit`` or ``load``.
            ConfigError: the model does not reconstruct its input (a classifier).
        """
        self._check_fitted("plot_reconstructions")
        figure = self._reconstruction_figure(split, check_positive_int("n", n))
        return self._figure(figure, name, f"reconstructions_{split}")

    def _reconstruction_figure(self, split: str, n: int) -> Figure:
        from transmri.evaluation import plot_reconstructions

        count = min(n, len(self.data.dataset(split)))
        images = torch.stack([self._sample(split, i)["image"] for i in range(count)])
        return plot_reconstructions(images, self._reconstruct(images), n=count)

    # ------------------------------------------------------------ classifiers
    def plot_confusion_matrix(self, split: str = "test", *, name: str | None = None) -> Figure:
        """Confusion matrix of ``split`` (also writes ``predictions_<split>.csv``)."""
        from transmri.evaluation import plot_confusion_matrix

        predictions = self.predict(split)
        figure = plot_confusion_matrix(predictions.confusion_matrix(), predictions.classes)
        return self._figure(figure, name, f"confusion_matrix_{split}")

    def plot_roc(self, split: str = "test", *, name: str | None = None) -> Figure:
        """ROC curve(s) of the labelled scans of ``split`` (also writes the predictions CSV)."""
        from transmri.evaluation import plot_roc

        predictions = self.predict(split)
        keep = predictions.labels >= 0
        figure = plot_roc(predictions.labels[keep], predictions.probs[keep], predictions.classes)
        return self._figure(figure, name, f"roc_{split}")

    def plot_saliency(
        self,
        index: int = 0,
        split: str = "test",
        *,
        method: str = "occlusion",
        target: int | None = None,
        patch: int | None = None,
        name: str | None = None,
    ) -> Figure:
        """Where the classifier looks on one scan: an occlusion or gradient map.

        Args:
            index: position of the scan within ``split``.
            split: ``"train"``, ``"val"`` or ``"test"``.
            method: ``"occlusion"`` (probability drop when a cube is hidden)
                or ``"gradient"`` (absolute input gradient).
            target: class index explained; the predicted class if ``None``.
            patch: occlusion cube edge (default: an eighth of the smallest side).
            name: file name (default ``saliency_<split>_<index>_<method>.png``).

        Raises:
            NotFittedError: before ``fit`` or ``load``.
            ConfigError: the model has no classification output.
        """
        from transmri.evaluation import gradient_map, occlusion_map, plot_saliency

        self._check_fitted("plot_saliency")
        check_choice("method", method, SALIENCY_METHODS)
        item = self._sample(split, index)
        image = item["image"]
        outputs = self._outputs(image[None])
        if "logits" not in outputs:
            raise ConfigError(
                f"plot_saliency: the model returns no 'logits' (keys {sorted(outputs)}); "
                f"saliency explains a classifier, this learner's model_type is "
                f"{self.config.model_type!r}"
            )
        probs = torch.softmax(outputs["logits"][0], dim=0)
        chosen = int(probs.argmax()) if target is None else target
        if method == "occlusion":
            edge = patch if patch is not None else max(1, min(image.shape[1:]) // 8)
            saliency = occlusion_map(self.model, image, target=chosen, patch=edge)
        else:
            saliency = gradient_map(self.model, image, target=chosen)
        classes = list(self.data.classes)
        label = int(item["label"])
        subject = self.data.split_table(split).subjects[index]
        title = (
            f"{method} saliency for {classes[chosen]!r}: {split}[{index}], subject {subject}, "
            f"label {classes[label] if label >= 0 else 'unlabelled'}, "
            f"p({classes[chosen]}) = {float(probs[chosen]):.2f}"
        )
        figure = plot_saliency(image[0].numpy(), saliency, title=title)
        return self._figure(figure, name, f"saliency_{split}_{index}_{method}")

    # ---------------------------------------------------------------- report
    def report(
        self,
        *,
        splits: Sequence[str] = ("val", "test"),
        path: str | os.PathLike[str] | None = None,
        n_boot: int = 1000,
    ) -> Path:
        """Write the run's files from the current model, then its HTML report.

        For each (non-empty) split of ``splits``: classifiers get
        ``predictions_<split>.csv`` and ``metrics_<split>.json``
        (:func:`~transmri.evaluation.classification_metrics` with
        subject-grouped bootstrap intervals); models that reconstruct get
        ``reconstruction_<split>.json`` and ``figures/reconstructions_<split>.png``
        (its title states MSE, PSNR and SSIM); every model gets
        ``embeddings_<split>.csv``. Also ``data_stats.csv``, and
        ``"synthetic": true`` in ``run.json`` when the scan table says so.
        These files are recomputed on every call, so the report never shows
        results of an earlier state of the model.

        Args:
            splits: the splits to evaluate.
            path: the HTML file (default ``RUN_DIR/report.html``).
            n_boot: bootstrap resamples of the metric intervals.

        Returns:
            The report's path.

        Raises:
            NotFittedError: before ``fit`` or ``load``.
        """
        from transmri.evaluation import build_report, classification_metrics, write_metrics

        self._check_fitted("report")
        n_boot = check_positive_int("n_boot", n_boot, minimum=0)
        chosen = [check_choice("splits", s, SPLITS) for s in splits]
        run_dir = self._prepare_run()
        writer = self.is_global_zero
        for split in chosen:
            if len(self.data.dataset(split)) == 0:
                continue
            keys = self._output_keys(split)
            if "logits" in keys:
                predictions = self.predict(split)
                keep = predictions.labels >= 0
                if writer and keep.any():
                    metrics = classification_metrics(
                        predictions.labels[keep],
                        predictions.probs[keep],
                        classes=predictions.classes,
                        groups=np.asarray(predictions.subjects)[keep],
                        n_boot=n_boot,
                        seed=self.config.seed,
                    )
                    write_metrics(metrics, run_dir / f"metrics_{split}.json")
            if "reconstruction" in keys:
                scores = self.reconstruction_scores(split)
                figure = self._reconstruction_figure(split, 3)
                figure.suptitle(
                    f"{split}: input (left) | reconstruction (right); mean over "
                    f"{len(self.data.dataset(split))} scans: MSE {scores['mse']:.3g}, "
                    f"PSNR {scores['psnr']:.3g} dB, SSIM {scores['ssim']:.3f}",
                    fontsize=9,
                )
                self._figure(figure, None, f"reconstructions_{split}")
                if writer:
                    atomic_write_json(
                        run_dir / f"reconstruction_{split}.json", {"split": split, **scores}
                    )
            self.encode_data(split, to_csv=True)
        if writer:
            stats = self.data.stats().reset_index()
            atomic_write_text(run_dir / "data_stats.csv", stats.to_csv(index=False))
            if _is_synthetic(self.data.table.frame):
                run = read_json(run_dir / "run.json", what="run manifest")
                atomic_write_json(run_dir / "run.json", {**run, "synthetic": True})
            out = build_report(run_dir, path=path)
        else:
            out = run_dir / "report.html" if path is None else Path(path)
        self._get_fabric().barrier()
        return out
