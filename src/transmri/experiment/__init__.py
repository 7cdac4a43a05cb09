"""Experiment files and the step runner behind ``transmri run``.

An experiment file (YAML) describes the source and target cohorts, the model,
pretraining, fine-tuning and evaluation; :func:`load_experiment` validates it
(naming the key path of any problem) and :class:`Experiment` runs its steps
into one run folder.

Example:
    >>> from transmri.experiment import Experiment, load_experiment
    >>> Experiment(load_experiment("examples/synthetic.yaml")).run()  # doctest: +SKIP
"""

from transmri.experiment.files import (
    apply_overrides,
    dump_experiment,
    experiment_from_dict,
    load_experiment,
)
from transmri.experiment.runner import STEPS, Experiment
from transmri.experiment.schema import (
    ADAPTER_OPTIONS,
    ADAPTERS,
    DataConfig,
    EvaluationConfig,
    ExperimentConfig,
    FinetuneConfig,
    ModelConfig,
    PretrainConfig,
    SourceConfig,
)

__all__ = [
    "ADAPTERS",
    "ADAPTER_OPTIONS",
    "STEPS",
    "DataConfig",
    "EvaluationConfig",
    "Experiment",
    "ExperimentConfig",
    "FinetuneConfig",
    "ModelConfig",
    "PretrainConfig",
    "SourceConfig",
    "apply_overrides",
    "dump_experiment",
    "experiment_from_dict",
    "load_experiment",
]
