"""The paper's workflow in Python, on a SYNTHETIC cohort (no real subjects).

DataBunch -> create_autoencoder -> fit -> save_encoder ->
create_classifier_from_encoder -> fine_tune -> predict -> report.

Run it with ``python examples/python_api.py [OUT_DIR] [--tiny]``; ``--tiny``
(used by the tests) makes it finish in well under a minute.
"""

from __future__ import annotations

import sys
from pathlib import Path

from transmri.data import DataBunch, PreprocessConfig
from transmri.datasets import SyntheticCohortConfig, load_synthetic_cohort, make_synthetic_cohort
from transmri.training import create_autoencoder, create_classifier_from_encoder


def main(out: Path, *, tiny: bool) -> Path:
    """Pretrain on one synthetic cohort, fine-tune on another, write a report; return it."""
    voxel, n_source, n_target, epochs = (8.0, 30, 30, 1) if tiny else (6.0, 120, 48, 10)
    preprocessing = PreprocessConfig(target_shape=None, scaling="minmax")

    # 1. A source cohort (Alzheimer-like vs control, T1-like) and a target cohort
    #    (another atrophy pattern, T2-like): subjects named apart so they never collide.
    make_synthetic_cohort(
        out / "source",
        SyntheticCohortConfig(
            n_subjects=n_source, voxel_size=voxel, subject_prefix="source-sub-", seed=0
        ),
    )
    make_synthetic_cohort(
        out / "target",
        SyntheticCohortConfig(
            n_subjects=n_target,
            condition="second",
            contrast="T2",
            voxel_size=voxel,
            subject_prefix="target-sub-",
            seed=1,
        ),
    )
    source = load_synthetic_cohort(out / "source")
    target = load_synthetic_cohort(out / "target")

    # 2. Pretrain a convolutional autoencoder on the source and save its encoder.
    source_data = DataBunch(source, preprocessing, cache_dir=out / "cache", seed=0)
    pretrain = create_autoencoder(
        source_data, out / "pretrain", arch="cae", batch_size=8, progress=False
    )
    pretrain.fit(epochs, 1e-3)
    encoder = pretrain.save_encoder()

    # 3. Fine-tune it on the small target: head first, then every layer with
    #    discriminative learning rates.
    target_data = DataBunch(
        target, preprocessing, cache_dir=out / "cache", val_size=0.2, test_size=0.3, seed=0
    )
    learner = create_classifier_from_encoder(
        target_data, encoder, out / "finetune", head="gap", batch_size=8, progress=False
    )
    learner.fine_tune(1, max(1, epochs), 1e-3, lr_mult=0.1)

    # 4. Predictions on the held-out test scans (in the dataset's order).
    predictions = learner.predict("test")
    print(f"test confusion matrix (rows: true {predictions.classes}):")
    print(predictions.confusion_matrix())

    # 5. One HTML report: metrics with subject-bootstrap intervals, curves,
    #    embeddings, marked synthetic (the scan table says so).
    report = learner.report(n_boot=200)
    print(f"Report: {report}")
    return report


if __name__ == "__main__":
    arguments = [a for a in sys.argv[1:] if a != "--tiny"]
    main(Path(arguments[0] if arguments else "python-api-example"), tiny="--tiny" in sys.argv)
