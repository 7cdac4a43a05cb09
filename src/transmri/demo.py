"""``transmri demo``: the whole transfer pipeline on SYNTHETIC data, in minutes on a CPU.

The demo is an ordinary experiment (:mod:`transmri.experiment`) whose two
cohorts come from :func:`~transmri.datasets.make_synthetic_cohort`:

- source: ``source_subjects`` T1-like scans, Alzheimer-like atrophy vs controls;
- target: ``target_subjects`` T2-like scans of another, made-up atrophy pattern
  (``second``: HC vs PD-like) from another "site", with a stronger bias field,
  more noise and a wider intensity range: a shifted, small study.

It pretrains a multi-task autoencoder (reconstruction + source diagnosis,
weighted by ``alpha``), fine-tunes its encoder on the target, compares it
with the same classifier trained from scratch, a logistic-regression probe on
the frozen codes and a ridge classifier on voxels (the same held-out test
subjects for every method), and writes ``report.html``. ``run.json`` says
``"synthetic": true`` and the report shows a banner.

Example:
    >>> report = run_demo("demo-run", DemoConfig.from_options(quick=True))  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transmri._validation import check_positive_float, check_positive_int
from transmri.errors import ConfigError

__all__ = ["DemoConfig", "run_demo"]


@dataclass(frozen=True)
class DemoConfig:
    """Sizes and budget of the demo.

    Attributes:
        source_subjects: scans of the source cohort (one per subject).
        target_subjects: scans of the target cohort.
        resolution: isotropic voxel size of the synthetic scans, mm (4-16).
        epochs: pretraining epochs; fine-tuning trains ``max(1, epochs // 5)``
            epochs with the encoder frozen and ``max(1, epochs // 2)`` unfrozen
            (the from-scratch baseline gets the same total).
        repeats: random training draws of the comparison.
        seed: seeds the cohorts, splits and weights.
    """

    source_subjects: int = 300
    target_subjects: int = 60
    resolution: float = 6.0
    epochs: int = 20
    repeats: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        check_positive_int("source_subjects", self.source_subjects, minimum=20)
        check_positive_int("target_subjects", self.target_subjects, minimum=20)
        resolution = check_positive_float("resolution", self.resolution)
        if not 4.0 <= resolution <= 16.0:
            raise ConfigError(
                f"resolution: expected a voxel size in [4, 16] mm, got {resolution!r}"
            )
        object.__setattr__(self, "resolution", resolution)
        check_positive_int("epochs", self.epochs)
        check_positive_int("repeats", self.repeats)
        check_positive_int("seed", self.seed, minimum=0)

    @classmethod
    def from_options(
        cls,
        *,
        quick: bool = False,
        source_subjects: int | None = None,
        target_subjects: int | None = None,
        resolution: float | None = None,
        epochs: int | None = None,
        seed: int = 0,
    ) -> DemoConfig:
        """The default (or ``quick``) sizes, with the options given replacing them.

        ``quick``: 40 source and 40 target scans at 8 mm, 2 epochs, 1 repeat.
        """
        base = cls(40, 40, 8.0, 2, 1, seed) if quick else cls(seed=seed)
        given: dict[str, Any] = {
            "source_subjects": source_subjects,
            "target_subjects": target_subjects,
            "resolution": resolution,
            "epochs": epochs,
        }
        values = {k: getattr(base, k) if v is None else v for k, v in given.items()}
        return cls(**values, repeats=base.repeats, seed=seed)

    def experiment(self, out_dir: str | os.PathLike[str]) -> dict[str, Any]:
        """The demo as an experiment file's contents (see ``docs/USER_GUIDE.md``)."""
        voxel = self.resolution
        return {
            "name": "demo",
            "seed": self.seed,
            "output": os.fspath(Path(out_dir).absolute()),
            "synthetic": True,
            "data": {
                "source": {
                    "adapter": "synthetic",
                    "options": {
                        "n_subjects": self.source_subjects,
                        "condition": "alzheimer",
                        "contrast": "T1",
                        "voxel_size": voxel,
                        "site": "synthetic-site-A",
                        "seed": self.seed,
                    },
                },
                "target": {
                    "adapter": "synthetic",
                    "options": {
                        "n_subjects": self.target_subjects,
                        "condition": "second",
                        "contrast": "T2",
                        "voxel_size": voxel,
                        "effect_size": 0.5,
                        "bias_field": 0.25,
                        "noise_std": 0.05,
                        "intensity_scale": [0.7, 1.4],
                        "site": "synthetic-site-B",
                        "seed": self.seed + 1,
                    },
                },
                # The synthetic scans share one grid: keep it (no resampling).
                "preprocessing": {"target_shape": None, "scaling": "minmax"},
            },
            "model": {"arch": "cae", "head": "gap"},
            "pretrain": {"objective": "mixed", "alpha": 0.7, "epochs": self.epochs, "lr": 1e-3},
            "finetune": {
                "epochs_frozen": max(1, self.epochs // 5),
                "epochs_unfrozen": max(1, self.epochs // 2),
                # The head's rate (earlier layers: 1e-3, 1e-4); at 1e-3 a fresh head
                # barely moves in the few steps that 30-40 training scans give.
                "lr": 1e-2,
                "lr_mult": 0.1,
            },
            "evaluation": {
                "val_size": 0.2,
                "test_size": 0.3,
                "methods": [
                    "finetune",
                    "scratch",
                    "linear_probe",
                    "regional_probe",
                    "regional_random",
                    "ridge",
                ],
                "repeats": self.repeats,
            },
        }


def run_demo(
    out_dir: str | os.PathLike[str],
    config: DemoConfig | None = None,
    *,
    overwrite: bool = False,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    restart: bool = False,
    note: Callable[[str], None] | None = None,
) -> Path:
    """Run the demo into ``out_dir``; return the path of ``report.html``.

    Rerunning it into the same folder skips the finished steps and resumes an
    interrupted training step; ``restart`` trains from scratch (see
    :class:`~transmri.experiment.Experiment`).

    Raises:
        OutputExistsError: ``out_dir`` holds another run and not ``overwrite``.
    """
    from transmri.experiment import Experiment, experiment_from_dict

    config = DemoConfig() if config is None else config
    experiment = Experiment(
        experiment_from_dict(config.experiment(out_dir)),
        overwrite=overwrite,
        progress=progress,
        log=log,
        restart=restart,
        note=note,
    )
    return experiment.run() / "report.html"
