"""transmri.evaluation: metrics with subject-grouped intervals, figures, saliency, reports.

Metric, figure and report functions take plain arrays, tables, modules or a
run folder and never import :mod:`transmri.training` (the Learner calls them).
The transfer benchmark (``transfer_curve`` and its methods) trains models, so
it imports the training stage inside its method functions only.
"""

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
from transmri.evaluation.transfer import (
    COMPARISON_COLUMNS,
    TransferResult,
    paired_differences,
    transfer_curve,
)
from transmri.evaluation.transfer_methods import (
    MethodContext,
    MethodResult,
    available_methods,
    register_method,
)
from transmri.evaluation.transfer_plan import (
    TransferConfig,
    TransferSplit,
    held_out_subjects,
    plan_splits,
)

__all__ = [
    "COMPARISON_COLUMNS",
    "METRIC_NAMES",
    "MethodContext",
    "MethodResult",
    "MetricsReport",
    "TransferConfig",
    "TransferResult",
    "TransferSplit",
    "available_methods",
    "build_report",
    "classification_metrics",
    "encode_labels",
    "gradient_map",
    "held_out_subjects",
    "occlusion_map",
    "orthogonal_slices",
    "paired_differences",
    "plan_splits",
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
    "register_method",
    "show_sample",
    "summarize_comparison",
    "transfer_curve",
    "write_metrics",
]
