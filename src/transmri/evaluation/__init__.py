"""transmri.evaluation: metrics with subject-grouped intervals, figures, saliency, reports.

Metric, figure and report functions take plain arrays, tables, modules or a
run folder and never import :mod:`transmri.training` (the Learner calls them)
or :mod:`transmri.transfer` (the transfer benchmark, which trains Learners,
lives there and calls these).
"""

from transmri.evaluation.comparison import paired_differences
from transmri.evaluation.metrics import (
    METRIC_NAMES,
    MetricsReport,
    classification_metrics,
    encode_labels,
    read_metrics,
    reconstruction_metrics,
    write_metrics,
)
from transmri.evaluation.plots import (
    orthogonal_slices,
    plot_bottleneck_histogram,
    plot_confusion_matrix,
    plot_history,
    plot_learning_curve,
    plot_pca,
    plot_reconstructions,
    plot_roc,
    plot_tsne,
    show_sample,
    summarize_comparison,
)
from transmri.evaluation.report import build_report
from transmri.evaluation.saliency import gradient_map, occlusion_map, plot_saliency

__all__ = [
    "METRIC_NAMES",
    "MetricsReport",
    "build_report",
    "classification_metrics",
    "encode_labels",
    "gradient_map",
    "occlusion_map",
    "orthogonal_slices",
    "paired_differences",
    "plot_bottleneck_histogram",
    "plot_confusion_matrix",
    "plot_history",
    "plot_learning_curve",
    "plot_pca",
    "plot_reconstructions",
    "plot_roc",
    "plot_saliency",
    "plot_tsne",
    "read_metrics",
    "reconstruction_metrics",
    "show_sample",
    "summarize_comparison",
    "write_metrics",
]

# Names that moved to transmri.transfer (issue 18); importing them from here
# would make evaluation import the training stage again.
_MOVED_TO_TRANSFER = frozenset(
    {
        "COMPARISON_COLUMNS",
        "MethodContext",
        "MethodResult",
        "TransferConfig",
        "TransferResult",
        "TransferSplit",
        "available_methods",
        "held_out_subjects",
        "plan_splits",
        "register_method",
        "transfer_curve",
    }
)


def __getattr__(name: str) -> object:
    """Tell where a moved name lives now (an ImportError: ``from ... import`` keeps its text)."""
    if name in _MOVED_TO_TRANSFER:
        raise ImportError(
            f"transmri.evaluation.{name} moved to transmri.transfer.{name}: "
            f"use 'from transmri.transfer import {name}' (or transmri.{name} where the "
            "package exports it)"
        )
    raise AttributeError(f"module 'transmri.evaluation' has no attribute {name!r}")
