"""Save and load a trained encoder: ``encoder.safetensors`` + an ``encoder.json`` card.

The card says everything needed to reuse the encoder honestly elsewhere:

- ``format_version``: the card layout (this module reads 0 and 1; older cards
  are upgraded by :func:`migrate_card`);
- ``transmri_version``, ``created``;
- ``architecture``: the encoder's config (rebuilt with
  :func:`transmri.models.build_model`); ``model``: the whole model's config;
- ``input_shape`` and ``preprocessing``: what the target data must match;
- ``source``: a description of the pretraining dataset;
- ``training_subjects``: every subject the encoder saw (train and validation
  splits), for leakage checks against a target test set;
- ``metrics``: a summary of the pretraining run;
- ``weights_file`` and ``sha256`` of the weights, checked before loading;
  ``save_id`` (an id of the tensors' content), also stored in the weights'
  header, tells a card and weights from two different saves (an interrupted
  save) apart from a corrupt file.

The weights are written first, under a unique temporary name then renamed,
and the card last (atomically, with the digest of the bytes just written):
a crash never leaves a half-written file, and a card never points to
weights it does not describe without :func:`load_encoder` saying so.

Example:
    >>> encoder, card = load_encoder("runs/pretrain/encoder.json")  # doctest: +SKIP
    >>> card["input_shape"]  # doctest: +SKIP
    [32, 32, 32]
"""

from __future__ import annotations

import datetime as _dt
import os
import warnings
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from safetensors.torch import load_file
from torch import nn

from transmri._files import (
    atomic_save_tensors,
    atomic_write_json,
    read_json,
    tensors_id,
    verify_weights,
)
from transmri._version import __version__
from transmri.data.split import check_leakage
from transmri.errors import CheckpointError, ConfigError, DataFormatError

__all__ = [
    "CARD_FORMAT",
    "check_compatibility",
    "check_encoder_leakage",
    "load_encoder",
    "load_into",
    "migrate_card",
    "save_encoder",
]

CARD_FORMAT = 1
_IGNORED_PREPROCESSING = ("mask", "nan_policy")
"""Preprocessing fields that may differ between studies: a mask file is
per-dataset, and the NaN policy does not change valid volumes."""


def save_encoder(
    encoder: nn.Module,
    path: str | os.PathLike[str],
    *,
    architecture: Mapping[str, Any],
    model_config: Mapping[str, Any] | None = None,
    input_shape: Sequence[int],
    preprocessing: Mapping[str, Any],
    source: str,
    training_subjects: Collection[str],
    metrics: Mapping[str, float] | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``<path>.safetensors`` and its card ``<path>.json``; return the card's path.

    Args:
        encoder: the module whose ``state_dict`` is saved.
        path: the weights file (``.safetensors``) or a folder (``encoder.safetensors`` in it).
        architecture: the encoder's ``config`` (``build_model`` rebuilds it).
        model_config: the whole model's ``config``, for the record.
        input_shape: ``(D, H, W)`` of the volumes it was trained on.
        preprocessing: ``PreprocessConfig.to_dict()`` of that data.
        source: a description of the pretraining dataset.
        training_subjects: subjects the encoder saw during pretraining.
        metrics: a summary of the pretraining (e.g. best ``val_loss``).
        provenance: for an imported encoder (the zoo), JSON-able facts about
            its origin (source checkpoint and its sha256, licence, citation,
            expected input, layer groups); written as the card's
            ``provenance`` entry when given.
    """
    weights = _weights_path(Path(path))
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in encoder.state_dict().items()}
    save_id = tensors_id(tensors)
    digest = atomic_save_tensors(tensors, weights, save_id=save_id)
    card = {
        "format_version": CARD_FORMAT,
        "transmri_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "architecture": dict(architecture),
        "model": None if model_config is None else dict(model_config),
        "input_shape": [int(s) for s in input_shape],
        "preprocessing": dict(preprocessing),
        "source": str(source),
        "training_subjects": sorted(str(s) for s in training_subjects),
        "metrics": {k: float(v) for k, v in (metrics or {}).items()},
        "weights_file": weights.name,
        "sha256": digest,
        "save_id": save_id,
    }
    if provenance is not None:
        card["provenance"] = dict(provenance)
    return atomic_write_json(weights.with_suffix(".json"), card)


def _weights_path(path: Path) -> Path:
    if path.is_dir() or path.suffix == "":
        return path / "encoder.safetensors"
    return path.with_suffix(".safetensors")


def migrate_card(card: Mapping[str, Any], *, where: str = "encoder card") -> dict[str, Any]:
    """Upgrade an older card to :data:`CARD_FORMAT`, filling what it lacks.

    Format 0 (no ``format_version``) named the architecture ``config`` and had
    neither ``training_subjects`` nor ``metrics`` nor ``source``.

    Raises:
        ConfigError: a card newer than this transmri reads, or one without an
            architecture.
    """
    out = dict(card)
    version = int(out.get("format_version", 0))
    if version > CARD_FORMAT:
        raise ConfigError(
            f"{where}: format_version {version} is newer than this transmri reads "
            f"({CARD_FORMAT}); upgrade transmri"
        )
    if version == 0:
        out = _migrate_v0_to_v1(out, where)
    return out


def _migrate_v0_to_v1(card: dict[str, Any], where: str) -> dict[str, Any]:
    if "architecture" not in card:
        if "config" not in card:
            raise ConfigError(f"{where}: expected an 'architecture' (or format-0 'config') entry")
        card["architecture"] = card.pop("config")
    card.setdefault("model", None)
    card.setdefault("source", "unknown")
    card.setdefault("training_subjects", None)  # unknown: leakage cannot be checked
    card.setdefault("metrics", {})
    card.setdefault("transmri_version", "unknown")
    card.setdefault("weights_file", "encoder.safetensors")
    card["format_version"] = 1
    return card


def _card_path(path: Path) -> Path:
    if path.is_dir():
        return path / "encoder.json"
    return path.with_suffix(".json")


def load_encoder(path: str | os.PathLike[str]) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a saved encoder and load its verified weights.

    Args:
        path: the run folder, the card (``.json``) or the weights (``.safetensors``).

    Returns:
        ``(encoder, card)``; ``card["load_report"]`` lists missing and
        unexpected keys (a warning is also issued when there are any).

    Raises:
        FileNotFoundError: the card or the weights file is missing.
        IntegrityError: the weights' sha256 differs from the card's (names the file,
            and says when the two come from different saves).
        CheckpointError: the weights do not fit the architecture.
    """
    card_file = _card_path(Path(path))
    card = migrate_card(read_json(card_file, what="encoder card"), where=str(card_file))
    weights = card_file.parent / card["weights_file"]
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: encoder weights named by {card_file} not found")
    if "sha256" in card:
        verify_weights(weights, card, card_file=card_file)
    else:
        warnings.warn(f"{card_file}: no sha256 recorded; weights not verified", stacklevel=2)
    from transmri.models import build_model

    try:
        built = build_model(card["architecture"])
    except (ConfigError, TypeError, KeyError, ValueError) as exc:
        raise CheckpointError(f"{card_file}: cannot rebuild the architecture ({exc})") from exc
    # An autoencoder's config (format 0 cards) builds the whole model: take its encoder.
    encoder = getattr(built, "encoder", built)
    try:
        state = load_file(str(weights))
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"{weights}: unreadable safetensors file ({exc})") from exc
    card["load_report"] = load_into(encoder, state, where=str(weights))
    return encoder, card


def load_into(module: nn.Module, state: Mapping[str, Any], *, where: str) -> dict[str, list[str]]:
    """Load ``state`` into ``module`` non-strictly and report missing/unexpected keys.

    Raises:
        CheckpointError: a tensor's shape differs, or no key matches at all.
    """
    own = module.state_dict()
    bad = [
        f"{k}: file {tuple(v.shape)}, model {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    if bad:
        raise CheckpointError(
            f"{where}: weights do not fit the architecture: " + "; ".join(bad[:5])
        )
    if own and not set(own) & set(state):
        raise CheckpointError(
            f"{where}: none of the {len(state)} saved tensors matches the model "
            f"(model keys start with {sorted(own)[:3]})"
        )
    result = module.load_state_dict(dict(state), strict=False)
    report = {"missing": list(result.missing_keys), "unexpected": list(result.unexpected_keys)}
    if report["missing"] or report["unexpected"]:
        warnings.warn(
            f"{where}: missing keys {report['missing']}, unexpected keys {report['unexpected']}",
            stacklevel=3,
        )
    return report


def check_compatibility(
    card: Mapping[str, Any],
    *,
    input_shape: Sequence[int],
    preprocessing: Mapping[str, Any],
    where: str = "encoder",
    voxel_size: Sequence[float] | None = None,
) -> None:
    """Raise ``ConfigError`` naming every field where the target data differs from the card.

    Compares the input shape and every preprocessing field except the
    dataset-specific mask file and NaN policy. An encoder imported from the
    zoo (a card with ``provenance``) was not trained through transmri's
    preprocessing: its card states the input it expects in words, so a
    difference is a ``UserWarning`` naming that expected input and the
    data's, not an error. When such a card states a voxel size
    (``provenance.expected_input.voxel_size_mm``, e.g. SFCN's 1 mm) and
    ``voxel_size`` (the target volumes', see
    :func:`transmri.data.voxel_size.output_voxel_size`) differs from it by
    more than 10 % along an axis, a ``UserWarning`` names both.

    Raises:
        ConfigError: e.g. ``"target_shape: encoder (64, 64, 48), data (32, 32, 32)"``.
    """
    diffs: list[str] = []
    enc_shape, data_shape = _plain(card.get("input_shape")), _plain(list(input_shape))
    if enc_shape != data_shape:
        diffs.append(f"input_shape: encoder {enc_shape}, data {data_shape}")
    enc_pre = dict(card.get("preprocessing") or {})
    for key in sorted(set(enc_pre) | set(preprocessing)):
        if key in _IGNORED_PREPROCESSING:
            continue
        a, b = _plain(enc_pre.get(key)), _plain(preprocessing.get(key))
        if a != b:
            diffs.append(f"{key}: encoder {a}, data {b}")
    provenance = card.get("provenance")
    if isinstance(provenance, Mapping) and voxel_size is not None:
        _check_voxel_size(provenance, voxel_size, where)
    if diffs and isinstance(provenance, Mapping):
        warnings.warn(
            f"{where}: {provenance.get('zoo_name', 'imported encoder')} expects input "
            f"{provenance.get('expected_input')}; the target data has input_shape "
            f"{data_shape} and preprocessing {dict(preprocessing)}",
            UserWarning,
            stacklevel=2,
        )
        return
    if diffs:
        raise ConfigError(
            f"{where}: the target data is not prepared like the encoder's training data; "
            + "; ".join(diffs)
        )


def _check_voxel_size(
    provenance: Mapping[str, Any], voxel_size: Sequence[float], where: str
) -> None:
    expected_input = provenance.get("expected_input")
    expected = expected_input.get("voxel_size_mm") if isinstance(expected_input, Mapping) else None
    if not isinstance(expected, list | tuple) or len(expected) != len(voxel_size):
        return
    if all(abs(float(g) - float(e)) <= 0.1 * float(e) for g, e in zip(voxel_size, expected)):
        return
    shown = "x".join(f"{float(v):g}" for v in voxel_size)
    wanted = "x".join(f"{float(v):g}" for v in expected)
    warnings.warn(
        f"{where}: {provenance.get('zoo_name', 'imported encoder')} expects {wanted} mm "
        f"voxels; the target volumes have {shown} mm voxels (after resizing to the "
        "target shape). Its features were learnt at the other scale: resample the scans "
        "(e.g. register them to MNI152 at the encoder's voxel size) or expect weaker features",
        UserWarning,
        stacklevel=3,
    )


def _plain(value: object) -> object:
    if isinstance(value, list | tuple):
        return tuple(_plain(v) for v in value)
    return value


def check_encoder_leakage(
    card: Mapping[str, Any], test_subjects: Collection[str], *, where: str
) -> None:
    """Raise ``DataLeakageError`` if a target test subject was in the pretraining set.

    A card without ``training_subjects`` (format 0) cannot be checked: a
    warning says so.
    """
    seen = card.get("training_subjects")
    if seen is None:
        warnings.warn(
            f"{where}: the card lists no training subjects; leakage not checked", stacklevel=2
        )
        return
    if not isinstance(seen, list):
        raise DataFormatError(
            f"{where}: 'training_subjects' must be a list, got {type(seen).__name__}"
        )
    check_leakage(
        seen, list(test_subjects), names=(f"the pretraining set of {where}", "the target test set")
    )
