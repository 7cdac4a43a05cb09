"""Reading experiment files (YAML or JSON), applying ``--set`` overrides, writing them back.

Example:
    >>> config = load_experiment("examples/synthetic.yaml",
    ...                          overrides=["pretrain.epochs=1"])  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from transmri.data.preprocess import PreprocessConfig
from transmri.errors import ConfigError
from transmri.experiment.schema import (
    DataConfig,
    EvaluationConfig,
    ExperimentConfig,
    FinetuneConfig,
    ModelConfig,
    PretrainConfig,
    SourceConfig,
)
from transmri.raw.pipeline import RawScanConfig

__all__ = [
    "apply_overrides",
    "check_methods",
    "dump_experiment",
    "experiment_from_dict",
    "load_experiment",
    "parse_override",
]


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``"pretrain.epochs=1"`` into ``(["pretrain", "epochs"], 1)`` (value read as YAML).

    Raises:
        ConfigError: no ``=``, or an empty key.
    """
    key, sep, raw = str(text).partition("=")
    parts = key.strip().split(".")
    if not sep or not all(p.strip() for p in parts):
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE such as pretrain.epochs=1")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text!r}: the value is not valid YAML ({exc})") from None
    return [p.strip() for p in parts], value


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of ``data`` with each ``KEY=VALUE`` override set (sections created as needed).

    Unknown keys are not checked here: validation names them afterwards.
    """
    out: dict[str, Any] = _copy(data)
    for text in overrides:
        parts, value = parse_override(text)
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                where = ".".join(parts[: i + 1])
                raise ConfigError(f"--set {text!r}: '{where}' is not a section")
            node = child
        node[parts[-1]] = value
    return out


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def load_experiment(
    path: str | os.PathLike[str], *, overrides: Sequence[str] = ()
) -> ExperimentConfig:
    """Read and validate an experiment file; relative paths in it are relative to its folder.

    Args:
        path: a ``.yaml``/``.yml`` (or ``.json``, a subset of YAML) file.
        overrides: ``KEY=VALUE`` strings applied before validation
            (e.g. ``"pretrain.epochs=1"``).

    Raises:
        FileNotFoundError: the file does not exist.
        ConfigError: the file is not valid YAML or not a mapping, or a key is
            unknown, missing or has a bad value; the message starts with the
            file name and names the key path.
    """
    file = Path(path)
    if not file.exists():
        raise FileNotFoundError(f"{file}: experiment file not found")
    if file.is_dir():
        raise ConfigError(f"{file}: expected an experiment file, found a directory")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not a UTF-8 text file ({exc.reason})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{file}: malformed YAML{where}: {problem}") from None
    if data is None:
        raise ConfigError(f"{file}: the experiment file is empty")
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{file}: expected a mapping of sections (name, data, model, ...), "
            f"got {type(data).__name__}"
        )
    try:
        merged = apply_overrides(data, overrides)
        return experiment_from_dict(merged, base_dir=file.resolve().parent)
    except ConfigError as exc:
        raise ConfigError(f"{file.name}: {exc}") from None


def dump_experiment(config: ExperimentConfig) -> str:
    """The resolved config as YAML text (every key, defaults filled in)."""
    header = "# Resolved by transmri: every key with its value, defaults filled in.\n"
    return header + yaml.safe_dump(config.to_dict(), sort_keys=False, default_flow_style=None)


_NESTED: dict[tuple[type, str], type] = {
    (ExperimentConfig, "data"): DataConfig,
    (ExperimentConfig, "model"): ModelConfig,
    (ExperimentConfig, "pretrain"): PretrainConfig,
    (ExperimentConfig, "finetune"): FinetuneConfig,
    (ExperimentConfig, "evaluation"): EvaluationConfig,
    (DataConfig, "source"): SourceConfig,
    (DataConfig, "target"): SourceConfig,
    (DataConfig, "preprocessing"): PreprocessConfig,
    (DataConfig, "raw"): RawScanConfig,
}


def _build(cls: type, data: object, where: str) -> Any:
    """Build dataclass ``cls`` from a mapping, naming the key path of any problem."""
    prefix = f"{where}." if where else ""
    if not isinstance(data, Mapping):
        shown = where or "the experiment file"
        raise ConfigError(f"{shown}: expected a mapping of keys, got {type(data).__name__}")
    known = [f.name for f in fields(cls) if f.name != "base_dir"]
    for key in data:
        if key not in known:
            raise ConfigError(f"unknown key '{prefix}{key}'; expected one of {', '.join(known)}")
    if cls is PretrainConfig and data.get("encoder") is not None and len(data) > 1:
        others = [k for k in data if k != "encoder"]
        raise ConfigError(
            f"{prefix}encoder: starts from an existing encoder, so pretraining keys do not "
            f"apply; remove {', '.join(f'{prefix}{k}' for k in others)} (or remove "
            f"{prefix}encoder to pretrain)"
        )
    values: dict[str, Any] = {}
    for name, value in data.items():
        nested = _NESTED.get((cls, name))
        values[name] = _build(nested, value, f"{prefix}{name}") if nested else value
    required = [
        f.name
        for f in fields(cls)
        if f.name not in values
        and f.default is f.default_factory  # both MISSING: no default
        and f.name != "base_dir"
    ]
    if required:
        raise ConfigError(f"missing key '{prefix}{required[0]}'")
    try:
        return cls(**values)
    except ConfigError as exc:
        raise ConfigError(f"{prefix}{exc}") from None
    except TypeError as exc:  # a wrong type that a check did not catch first
        raise ConfigError(f"{where or 'experiment'}: {exc}") from None


def check_methods(methods: Sequence[str], *, where: str) -> None:
    """Raise naming ``where`` and the closest registered name for an unknown method.

    Raises:
        ConfigError: e.g. ``evaluation.methods: unknown method 'ridg' (did you
            mean 'ridge'?); expected some of finetune, scratch, ...``.
    """
    if not methods:
        return
    import difflib

    from transmri.transfer import available_methods  # the registry, recipes included

    known = available_methods()
    for name in methods:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"{where}: unknown method {name!r}{hint}; expected some of {', '.join(known)}"
            )
    if len(set(methods)) != len(methods):
        raise ConfigError(f"{where}: expected distinct names, got {list(methods)}")


def experiment_from_dict(
    data: Mapping[str, Any], *, base_dir: str | os.PathLike[str] = "."
) -> ExperimentConfig:
    """Validate a parsed experiment file and return its :class:`ExperimentConfig`.

    Args:
        data: the parsed YAML (a mapping).
        base_dir: folder that relative paths are relative to.

    Raises:
        ConfigError: an unknown or missing key, or a bad value (the key path is
            named); ``pretrain.encoder`` is neither a zoo name nor an encoder folder.
        ImportError: ``pretrain.encoder`` is a zoo encoder whose package is not
            installed (the message names the extra).
    """
    config: ExperimentConfig = _build(ExperimentConfig, data, "")
    object.__setattr__(config, "base_dir", os.fspath(Path(base_dir).absolute()))
    check_methods(config.evaluation.methods, where="evaluation.methods")
    if config.pretrain.encoder is not None:
        from transmri.experiment.sources import check_encoder_source

        check_encoder_source(config)
    return config
