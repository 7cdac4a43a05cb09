"""The experiment file: one YAML file describing data, model, pretraining, fine-tuning, evaluation.

Every section is a frozen dataclass validated in ``__post_init__``; the
loader names the full key path of any problem, e.g.
``experiment.yaml: finetune.lr: expected a finite number > 0, got -1`` or
``experiment.yaml: unknown key 'model.hed'; expected one of arch, channels, ...``.
``docs/USER_GUIDE.md`` documents every key; this module is the source of truth.

Example:
    >>> from transmri.experiment import experiment_from_dict
    >>> config = experiment_from_dict({"name": "demo", "data": {
    ...     "source": {"adapter": "synthetic"}, "target": {"adapter": "synthetic",
    ...     "options": {"condition": "second", "contrast": "T2"}}}})
    >>> config.finetune.lr_mult
    0.1
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from transmri._validation import (
    check_choice,
    check_fraction,
    check_positive_float,
    check_positive_int,
)
from transmri.data.preprocess import PreprocessConfig
from transmri.errors import ConfigError
from transmri.raw.pipeline import RawScanConfig

__all__ = [
    "ADAPTERS",
    "ADAPTER_OPTIONS",
    "DataConfig",
    "EvaluationConfig",
    "ExperimentConfig",
    "FinetuneConfig",
    "ModelConfig",
    "PretrainConfig",
    "SourceConfig",
]

#: Option names each adapter accepts in ``options`` (its keyword arguments; the
#: first positional argument is ``path``). ``synthetic`` takes the fields of
#: :class:`~transmri.datasets.SyntheticCohortConfig`.
ADAPTER_OPTIONS: Mapping[str, tuple[str, ...]] = {
    "csv": ("path_col", "subject_col", "label_col", "mask_col", "root", "label_map",
            "keep_labels", "check_files", "sep"),
    "bids": ("label_col", "suffix", "sessions", "runs", "participants_col", "mask_pattern",
             "label_map", "keep_labels"),
    "adni": ("collection_csv", "labels", "label_map", "mask", "description", "image_id_col",
             "subject_col", "label_col"),
    "ppmi": ("mri_type", "collection_csv", "labels", "label_map", "mask", "image_id_col",
             "subject_col", "label_col"),
    "idss": ("path_col", "subject_col", "label_col", "labels", "label_map", "mask_col", "root"),
    "ixi": ("task", "demographics", "mask_dir", "young_max", "old_min"),
    "synthetic": ("n_subjects", "disease_fraction", "condition", "effect_size", "contrast",
                  "voxel_size", "bias_field", "noise_std", "intensity_scale", "deformation",
                  "head_scale", "age_range", "site", "subject_prefix", "seed"),
}  # fmt: skip
ADAPTERS: tuple[str, ...] = tuple(ADAPTER_OPTIONS)
_OBJECTIVES = ("mixed", "autoencoder", "vae", "contrastive")
_ARCHS = ("cae", "srcae", "vae")
_HEADS = ("gap", "flatten", "regional")
_AUGMENTS = ("none", "light", "standard")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _check_bool(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{name}: expected true or false, got {value!r}")


def _check_optional_int(name: str, value: object, *, minimum: int = 1) -> None:
    if value is not None:
        check_positive_int(name, value, minimum=minimum)


def _check_names(name: str, value: object, *, allow_empty: bool = True) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ConfigError(f"{name}: expected a list of names, got {value!r}")
    out = tuple(value)
    if any(not isinstance(v, str) or not v.strip() for v in out) or (not out and not allow_empty):
        raise ConfigError(f"{name}: expected a list of non-empty names, got {list(value)!r}")
    return out


def _check_mapping(name: str, value: object) -> dict[str, Any]:
    if not isinstance(value, Mapping) or any(not isinstance(k, str) for k in value):
        raise ConfigError(f"{name}: expected a mapping of names, got {value!r}")
    return dict(value)


@dataclass(frozen=True)
class SourceConfig:
    """Where one cohort's scans come from (``data.source`` or ``data.target``).

    Attributes:
        adapter: ``csv``, ``bids``, ``adni``, ``ppmi``, ``idss``, ``ixi`` or ``synthetic``.
        path: the CSV (csv, idss), the dataset folder (bids, adni, ppmi, ixi)
            or the folder a synthetic cohort is written to (default: inside
            the run folder). Relative paths are relative to the experiment file.
        options: the adapter's keyword arguments (see :data:`ADAPTER_OPTIONS`).
        label_map: renames labels after the adapter ran.
        labels: the classes (after ``label_map``), in class order. A row with
            another label (a typo such as ``X`` or ``f``) or none is an error
            naming it, unless ``drop_other_labels`` is true.
        drop_other_labels: drop the rows whose label is not in ``labels``
            (e.g. ``MCI`` when ``labels: [AD, CN]``); the drop is reported
            with counts and written to ``skipped.csv``. A label that differs
            from one in ``labels`` only in case or spaces is still an error.
        filter: keep rows whose column holds one of the values, e.g. ``{site: [HH]}``.
        exclude: drop rows whose column holds one of the values, e.g. single
            images ``{image_id: [I123456]}`` (after ``filter``; recorded in
            ``skipped.csv``).
        targets: extra columns predicted during pretraining (e.g. ``[age]``).
        max_scans: keep at most this many scans (a seeded, label-balanced
            draw when labelled), for quick trials.
    """

    adapter: str
    path: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    label_map: Mapping[str, str] | None = None
    labels: tuple[str, ...] | None = None
    drop_other_labels: bool = False
    filter: Mapping[str, tuple[str, ...]] | None = None
    exclude: Mapping[str, tuple[str, ...]] | None = None
    targets: tuple[str, ...] = ()
    max_scans: int | None = None

    def __post_init__(self) -> None:
        check_choice("adapter", self.adapter, ADAPTERS)
        _check_optional_int("max_scans", self.max_scans, minimum=2)
        if self.path is not None and (not isinstance(self.path, str) or not self.path.strip()):
            raise ConfigError(f"path: expected a file or folder path, got {self.path!r}")
        if self.path is None and self.adapter != "synthetic":
            raise ConfigError(f"path: required for adapter {self.adapter!r} (the data's location)")
        options = _check_mapping("options", self.options)
        allowed = ADAPTER_OPTIONS[self.adapter]
        unknown = [k for k in options if k not in allowed]
        if unknown:
            raise ConfigError(
                f"options: unknown option '{unknown[0]}' for adapter {self.adapter!r}; "
                f"expected one of {', '.join(allowed)}"
            )
        if self.adapter == "synthetic":
            from transmri.datasets.synthetic import SyntheticCohortConfig

            try:
                SyntheticCohortConfig(**options)
            except ConfigError as exc:
                raise ConfigError(f"options.{exc}") from None
        object.__setattr__(self, "options", options)
        if self.label_map is not None:
            mapping = _check_mapping("label_map", self.label_map)
            if any(not isinstance(v, str) for v in mapping.values()):
                raise ConfigError(f"label_map: expected label names as values, got {mapping!r}")
            object.__setattr__(self, "label_map", mapping)
        if self.labels is not None:
            object.__setattr__(self, "labels", _check_names("labels", self.labels))
        _check_bool("drop_other_labels", self.drop_other_labels)
        if self.drop_other_labels and self.labels is None:
            raise ConfigError("drop_other_labels: needs labels (the classes to keep)")
        for key in ("filter", "exclude"):
            if getattr(self, key) is not None:
                rows = _check_mapping(key, getattr(self, key))
                object.__setattr__(
                    self,
                    key,
                    {
                        k: tuple(str(v) for v in _check_names(f"{key}.{k}", vs))
                        for k, vs in rows.items()
                    },
                )
        object.__setattr__(self, "targets", _check_names("targets", self.targets))


@dataclass(frozen=True)
class DataConfig:
    """The ``data`` section: source (pretraining) and target (fine-tuning) cohorts.

    Attributes:
        target: the small cohort it is fine-tuned on (labelled).
        source: the large cohort the encoder is pretrained on (required
            unless ``pretrain.encoder`` names an existing encoder; then unused).
        preprocessing: one :class:`~transmri.data.PreprocessConfig` for both
            cohorts (a pretrained encoder only fits data prepared the same way).
        cache_dir: the volume cache folder (default: ``cache`` in the run folder).
        raw: raw-scan steps run once per scan before ``preprocessing``
            (:class:`~transmri.raw.RawScanConfig`: ``skull_strip``
            ``mask``/``deepbet``/``none``, ``register``
            ``torchreg``/``ants``/``none``, ``bias_correct``, ``min_ncc``,
            ``fail_on_diverged``), for both cohorts; outputs (BIDS
            derivatives, ``qc.html``) go to ``<cache_dir>/raw/<cohort>``.
            ``null`` (default): the scans are used as given.
        exclude_target: which target subjects are dropped from the source
            before pretraining: ``all`` (every subject also in the target),
            ``test`` (only the held-out test subjects: the source may then
            share the target's training subjects, e.g. one study pretrained
            on age and fine-tuned on sex) or ``none`` (the leakage check
            still refuses a target test subject seen in pretraining).
    """

    target: SourceConfig
    source: SourceConfig | None = None
    preprocessing: PreprocessConfig = field(default_factory=PreprocessConfig)
    cache_dir: str | None = None
    exclude_target: str = "all"
    raw: RawScanConfig | None = None

    def __post_init__(self) -> None:
        if self.cache_dir is not None and (
            not isinstance(self.cache_dir, str) or not self.cache_dir.strip()
        ):
            raise ConfigError(f"cache_dir: expected a folder path, got {self.cache_dir!r}")
        check_choice("exclude_target", self.exclude_target, ("all", "test", "none"))


@dataclass(frozen=True)
class ModelConfig:
    """The ``model`` section: the autoencoder whose encoder is transferred.

    Attributes:
        arch: ``cae`` (the paper's), ``srcae`` (strided residual) or ``vae``.
        channels: encoder channels per level (``null``: the architecture's default).
        activation: activation name (``null``: default).
        norm: normalisation (``null``: default; ``srcae`` has none).
        head: classifier head, ``gap`` (global average pooling), ``flatten`` or
            ``regional`` (every layer pooled to 2 x 2 x 2 boxes).
        dropout: dropout before the head's linear layer.
    """

    arch: str = "cae"
    channels: tuple[int, ...] | None = None
    activation: str | None = None
    norm: str | None = None
    head: str = "gap"
    dropout: float = 0.0

    def __post_init__(self) -> None:
        check_choice("arch", self.arch, _ARCHS)
        if self.channels is not None:
            if isinstance(self.channels, str) or not isinstance(self.channels, Sequence):
                raise ConfigError(f"channels: expected a list of integers, got {self.channels!r}")
            object.__setattr__(
                self,
                "channels",
                tuple(check_positive_int(f"channels[{i}]", c) for i, c in enumerate(self.channels)),
            )
        for name in ("activation", "norm"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(f"{name}: expected a name or null, got {value!r}")
        check_choice("head", self.head, _HEADS)
        check_fraction("dropout", self.dropout, inclusive=True)


def _check_training(config: Any, *, lr_cap: float = 10.0) -> None:
    check_positive_float("lr", config.lr)
    if config.lr > lr_cap:
        raise ConfigError(f"lr: expected a learning rate <= {lr_cap}, got {config.lr!r}")
    check_positive_int("batch_size", config.batch_size)
    check_positive_float("weight_decay", config.weight_decay, allow_zero=True)
    _check_optional_int("early_stop", config.early_stop)
    check_choice("augment", config.augment, _AUGMENTS)


@dataclass(frozen=True)
class PretrainConfig:
    """The ``pretrain`` section: training the autoencoder on the source cohort.

    Attributes:
        objective: ``mixed`` (reconstruction + source labels, weighted by
            ``alpha``), ``autoencoder`` (reconstruction only), ``vae`` or
            ``contrastive`` (two augmented views of each scan: SimCLR's
            NT-Xent, or the y-aware InfoNCE with ``contrastive_target``).
        pretext: corrupt the training input and reconstruct the clean scan:
            ``denoise`` (Gaussian noise) or ``inpaint`` (random cubes zeroed);
            ``null``: plain reconstruction. Validation scans are never corrupted.
        contrastive_target: ``contrastive``: a continuous column of
            ``data.source.targets`` (e.g. ``age``) for the y-aware loss of
            Dufumier et al. (2021); ``null``: SimCLR.
        sigma: bandwidth of the y-aware kernel, in the target's units.
        temperature: softmax temperature of the contrastive loss.
        epochs: training epochs.
        lr: learning rate (Adam).
        alpha: ``mixed``: weight of the reconstruction term (``1 - alpha`` on
            the classification term).
        batch_size: scans per step.
        weight_decay: Adam weight decay.
        early_stop: stop after this many epochs without a better validation loss.
        val_size: fraction of source scans for validation.
        test_size: fraction of source scans held out for testing.
        augment: augmentation preset of the training split.
        encoder: skip pretraining and start from this encoder: a zoo name
            (``deepbet``, ``deepbet-bbox``; see ``transmri encoder list``),
            converted on first use into the transmri cache, or a folder
            holding ``encoder.safetensors`` + ``encoder.json`` (relative to
            the experiment file). No other ``pretrain`` key may be given with
            it, and ``data.source`` is then optional (and not used).
    """

    objective: str = "mixed"
    pretext: str | None = None
    contrastive_target: str | None = None
    sigma: float = 5.0
    temperature: float = 0.1
    epochs: int = 30
    lr: float = 1e-3
    alpha: float = 0.7
    batch_size: int = 8
    weight_decay: float = 0.0
    early_stop: int | None = None
    val_size: float = 0.1
    test_size: float = 0.1
    augment: str = "none"
    encoder: str | None = None

    def __post_init__(self) -> None:
        if self.encoder is not None:
            if not isinstance(self.encoder, str) or not self.encoder.strip():
                raise ConfigError(
                    f"encoder: expected a zoo name (e.g. deepbet) or an encoder folder, "
                    f"got {self.encoder!r}"
                )
            given = [
                f.name
                for f in fields(self)
                if f.name != "encoder" and getattr(self, f.name) != f.default
            ]
            if given:
                raise ConfigError(
                    f"encoder: starts from an existing encoder, so pretraining keys do not "
                    f"apply; remove {', '.join(given)} (or remove encoder to pretrain)"
                )
        check_choice("objective", self.objective, _OBJECTIVES)
        if self.pretext is not None:
            check_choice("pretext", self.pretext, ("denoise", "inpaint"))
            if self.objective == "contrastive":
                raise ConfigError(
                    "pretext: the contrastive objective trains on two augmented views; "
                    "leave pretext null"
                )
        if self.contrastive_target is not None:
            if self.objective != "contrastive":
                raise ConfigError(
                    f"contrastive_target: only for objective 'contrastive', got "
                    f"objective {self.objective!r}"
                )
            if not isinstance(self.contrastive_target, str) or not self.contrastive_target:
                raise ConfigError(
                    f"contrastive_target: expected a column name such as 'age', got "
                    f"{self.contrastive_target!r}"
                )
        check_positive_float("sigma", self.sigma)
        check_positive_float("temperature", self.temperature)
        check_positive_int("epochs", self.epochs)
        check_fraction("alpha", self.alpha, inclusive=True)
        _check_training(self)
        check_fraction("val_size", self.val_size)
        check_fraction("test_size", self.test_size)
        if self.val_size + self.test_size >= 1:
            raise ConfigError(
                f"test_size: val_size + test_size must be < 1, got "
                f"{self.val_size} + {self.test_size}"
            )


@dataclass(frozen=True)
class FinetuneConfig:
    """The ``finetune`` section: fitting the pretrained encoder + a head on the target.

    Attributes:
        epochs_frozen: epochs training only the head (encoder frozen).
        epochs_unfrozen: epochs training every layer.
        lr: the head's learning rate.
        lr_mult: each earlier layer group learns ``lr_mult`` times slower.
        batch_size, weight_decay, early_stop, augment: as in ``pretrain``.
        scratch_epochs: epochs of the from-scratch baseline (``null``:
            ``epochs_frozen + epochs_unfrozen``, the same budget).
    """

    epochs_frozen: int = 3
    epochs_unfrozen: int = 10
    lr: float = 1e-3
    lr_mult: float = 0.1
    batch_size: int = 8
    weight_decay: float = 0.0
    early_stop: int | None = None
    augment: str = "none"
    scratch_epochs: int | None = None

    def __post_init__(self) -> None:
        check_positive_int("epochs_frozen", self.epochs_frozen, minimum=0)
        check_positive_int("epochs_unfrozen", self.epochs_unfrozen, minimum=0)
        if self.epochs_frozen + self.epochs_unfrozen == 0:
            raise ConfigError(
                "epochs_unfrozen: expected epochs_frozen + epochs_unfrozen >= 1, got 0"
            )
        _check_training(self)
        check_positive_float("lr_mult", self.lr_mult)
        if self.lr_mult > 1:
            raise ConfigError(f"lr_mult: expected a ratio in (0, 1], got {self.lr_mult!r}")
        _check_optional_int("scratch_epochs", self.scratch_epochs)

    @property
    def total_epochs(self) -> int:
        """Epochs of the from-scratch baseline (the same budget by default)."""
        return self.scratch_epochs or self.epochs_frozen + self.epochs_unfrozen


@dataclass(frozen=True)
class EvaluationConfig:
    """The ``evaluation`` section: how the target is split and what is compared.

    Attributes:
        val_size: fraction of target scans for validation (early stopping).
        test_size: fraction of target scans for testing.
        methods: compared by ``transmri compare`` (``finetune``, ``scratch``,
            ``linear_probe``, ``regional_probe``, ``regional_random``, ``ridge``,
            or registered ones); ``[]`` skips it.
        n_train: training-set sizes of the learning curve (``[]``: all
            available training scans).
        repeats: random splits per size.
        embeddings: export the target's codes (``embeddings_<split>.csv``).
        report: write ``report.html`` at the end of ``transmri run``.
        n_boot: bootstrap resamples (of subjects) for the metrics' intervals.
    """

    val_size: float = 0.15
    test_size: float = 0.25
    methods: tuple[str, ...] = (
        "finetune",
        "scratch",
        "linear_probe",
        "regional_probe",
        "regional_random",
        "ridge",
    )
    n_train: tuple[int, ...] = ()
    repeats: int = 1
    embeddings: bool = True
    report: bool = True
    n_boot: int = 1000

    def __post_init__(self) -> None:
        check_fraction("val_size", self.val_size)
        check_fraction("test_size", self.test_size)
        if self.val_size + self.test_size >= 1:
            raise ConfigError(
                f"test_size: val_size + test_size must be < 1, got "
                f"{self.val_size} + {self.test_size}"
            )
        object.__setattr__(self, "methods", _check_names("methods", self.methods))
        if isinstance(self.n_train, int | str) or not isinstance(self.n_train, Sequence):
            raise ConfigError(f"n_train: expected a list of integers, got {self.n_train!r}")
        object.__setattr__(
            self,
            "n_train",
            tuple(
                check_positive_int(f"n_train[{i}]", n, minimum=2)
                for i, n in enumerate(self.n_train)
            ),
        )
        check_positive_int("repeats", self.repeats)
        _check_bool("embeddings", self.embeddings)
        _check_bool("report", self.report)
        check_positive_int("n_boot", self.n_boot, minimum=0)


@dataclass(frozen=True)
class ExperimentConfig:
    """A whole experiment file.

    Attributes:
        name: the experiment's name (letters, digits, ``_ . -``).
        data, model, pretrain, finetune, evaluation: the sections.
        output: the run folder (default ``runs/<name>`` beside the experiment
            file); ``transmri run --out`` overrides it.
        seed: seeds splits, weights and shuffling.
        synthetic: the data are generated (set automatically when both
            cohorts use the ``synthetic`` adapter); shown in the report.
        base_dir: folder that relative paths are relative to (the experiment
            file's folder; not a key of the file).
    """

    name: str
    data: DataConfig
    model: ModelConfig = field(default_factory=ModelConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    output: str | None = None
    seed: int = 42
    synthetic: bool = False
    base_dir: str = "."

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ConfigError(
                f"name: expected letters, digits, '_', '.', '-' (starting with a letter or "
                f"digit), got {self.name!r}"
            )
        if self.output is not None and (not isinstance(self.output, str) or not self.output):
            raise ConfigError(f"output: expected a folder path, got {self.output!r}")
        check_positive_int("seed", self.seed, minimum=0)
        _check_bool("synthetic", self.synthetic)
        if self.pretrain.encoder is None and self.data.source is None:
            raise ConfigError(
                "missing key 'data.source' (the cohort to pretrain on; or give "
                "pretrain.encoder to start from an existing encoder)"
            )
        source_adapter = "synthetic" if self.data.source is None else self.data.source.adapter
        if source_adapter == self.data.target.adapter == "synthetic":
            object.__setattr__(self, "synthetic", True)
        if self.pretrain.encoder is not None:
            return
        if self.pretrain.objective == "vae" and self.model.arch != "vae":
            raise ConfigError(
                f"pretrain.objective: 'vae' needs model.arch 'vae', got {self.model.arch!r}"
            )
        target = self.pretrain.contrastive_target
        source_targets = () if self.data.source is None else self.data.source.targets
        if target is not None and target not in source_targets:
            raise ConfigError(
                f"pretrain.contrastive_target: {target!r} must be one of "
                f"data.source.targets {list(source_targets)}"
            )
        if self.pretrain.objective == "mixed" and self.model.head == "regional":
            raise ConfigError(
                "model.head: 'regional' is a fine-tuning head; pretrain.objective 'mixed' "
                "needs 'gap' or 'flatten' for its source head (or use objective "
                "'autoencoder')"
            )

    def resolve(self, path: str | None) -> Path | None:
        """``path`` made absolute against :attr:`base_dir` (``None`` stays ``None``)."""
        if path is None:
            return None
        p = Path(os.path.expanduser(path))
        return p if p.is_absolute() else Path(self.base_dir) / p

    @property
    def run_dir(self) -> Path:
        """The run folder."""
        return self.resolve(self.output) or Path(self.base_dir) / "runs" / self.name

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-able dict of every key, defaults filled in (without ``base_dir``).

        With ``pretrain.encoder``, ``pretrain`` holds only that key.
        """
        out = _plain(asdict(self))
        out.pop("base_dir")
        # Keys of the given-encoder mode appear only when used, so that other
        # experiments keep their resolved files (and run-folder identities).
        if self.pretrain.encoder is None:
            out["pretrain"].pop("encoder")
        else:
            out["pretrain"] = {"encoder": self.pretrain.encoder}
        if self.data.source is None:
            out["data"].pop("source")
        if self.data.raw is None:  # no raw steps: identities of older runs unchanged
            out["data"].pop("raw")
        for role in ("source", "target"):  # a default-only key leaves identities unchanged
            section = out["data"].get(role)
            if section is not None and not section["drop_other_labels"]:
                section.pop("drop_other_labels")
            if section is not None and section["exclude"] is None:
                section.pop("exclude")
        out["data"]["preprocessing"] = self.data.preprocessing.to_dict()
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
