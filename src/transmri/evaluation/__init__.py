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
