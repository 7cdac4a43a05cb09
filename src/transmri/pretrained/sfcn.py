"""SFCN's UK Biobank networks (Peng et al. 2021) as transmri encoders.

ha-ha-ha-han/UKBiobank_deep_pretrain (MIT licence) publishes two
``DataParallel`` state dicts of SFCN trained on the UK Biobank 14,503-subject
release: brain age (``brain_age/run_20190719_00_epoch_best_mae.p``; 12,949
training subjects, test MAE 2.14 years; 40 one-year age bins from 42 to 82)
and sex (``sex_prediction/run_20191008_00_epoch_last.p``; channels 28, 58,
128, 256, 256, 64; 2 classes). Nothing is downloaded: the user gives the
file. :func:`import_sfcn` reads it with ``torch.load(weights_only=True)``,
strips the ``module.`` prefixes, checks every key and shape (the
classifier's ``conv_6`` included), and writes the feature extractor as
``encoder.safetensors`` + ``encoder.json`` and the classifier's weights as
``head.safetensors`` (named, with its sha256, in the card).

Example:
    >>> import_sfcn("run_20190719_00_epoch_best_mae.p", "encoders/sfcn-age")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from torch import Tensor, nn

from transmri._files import atomic_save_tensors, sha256_file, tensors_id
from transmri._validation import check_choice
from transmri.models.sfcn import SFCN_AGE_CHANNELS, SFCN_SEX_CHANNELS, SFCNEncoder
from transmri.pretrained._checkpoint import match_state, read_state_dict, strip_prefix
from transmri.training.encoder_io import save_encoder

__all__ = ["SFCN_AGE_BINS", "SFCN_CITATION", "SFCN_TASKS", "import_sfcn"]

SfcnTask = Literal["age", "sex"]
#: Output channels and block channels of the two published networks.
SFCN_TASKS: dict[str, tuple[int, tuple[int, ...]]] = {
    "age": (40, SFCN_AGE_CHANNELS),
    "sex": (2, SFCN_SEX_CHANNELS),
}
#: The brain-age network's bins: 1-year bins from 42 to 82 (centres 42.5 ... 81.5).
SFCN_AGE_BINS: tuple[float, float, float] = (42.0, 82.0, 1.0)
SFCN_CITATION = (
    "Peng H, Gong W, Beckmann CF, Vedaldi A, Smith SM. Accurate brain age prediction "
    "with lightweight deep neural networks. Medical Image Analysis 68:101871, 2021. "
    "doi:10.1016/j.media.2020.101871"
)
HEAD_FILE = "head.safetensors"
_INPUT_SHAPE = (160, 192, 160)


class _SFCNNet(nn.Module):
    """The original's layout, ``feature_extractor`` + ``classifier``, around an encoder.

    Its state-dict names are the checkpoint's (``feature_extractor.conv_0.0.weight``,
    ``classifier.conv_6.weight``); the encoder is shared, not copied.
    """

    def __init__(self, task: str) -> None:
        super().__init__()
        outputs, channels = SFCN_TASKS[task]
        encoder = SFCNEncoder(channels=channels)
        object.__setattr__(self, "encoder", encoder)  # not a child: keep the original's names
        self.feature_extractor = encoder.feature_extractor
        self.classifier = nn.Sequential(
            OrderedDict(
                average_pool=nn.AvgPool3d((5, 6, 5)),
                dropout=nn.Dropout(0.5),
                conv_6=nn.Conv3d(channels[-1], outputs, 1),
            )
        )


def _channels(state: Mapping[str, Tensor]) -> tuple[int, ...]:
    out = []
    for i in range(6):
        weight = state.get(f"feature_extractor.conv_{i}.0.weight")
        if weight is None or weight.dim() != 5:
            return ()
        out.append(int(weight.shape[0]))
    return tuple(out)


def _hint(task: str) -> Any:
    def hint(state: Mapping[str, Tensor]) -> str:
        if not any(k.startswith("feature_extractor.") for k in state):
            return (
                "The file does not look like SFCN (no feature_extractor.* keys; its first "
                f"keys: {sorted(state)[:4]})"
            )
        channels = _channels(state)
        head = state.get("classifier.conv_6.weight")
        outputs = int(head.shape[0]) if head is not None else None
        for name, (n_out, chans) in SFCN_TASKS.items():
            if name != task and channels == chans and outputs == n_out:
                return (
                    f"Its channels {list(channels)} and {n_out} outputs are those of the "
                    f"{name} network: import it as sfcn-{name}"
                )
        if channels:
            return f"Its block channels are {list(channels)} with {outputs} outputs"
        return ""

    return hint


def _provenance(
    path: Path, digest: str, task: str, head_sha: str, filled: list[str]
) -> dict[str, Any]:
    outputs, channels = SFCN_TASKS[task]
    return {
        "zoo_name": f"sfcn-{task}",
        "source_file": str(path),
        "source_sha256": digest,
        "source_code": "ha-ha-ha-han/UKBiobank_deep_pretrain dp_model/model_files/sfcn.py",
        "network": f"SFCN, channels {list(channels)}; classifier conv_6 to {outputs} outputs",
        "trained_on": (
            "UK Biobank T1w MRI, 14,503-subject release"
            + ("; 12,949 training subjects" if task == "age" else "")
        ),
        "task": (
            "brain age: log-softmax over 40 one-year bins from 42 to 82 years"
            if task == "age"
            else "sex classification (2 classes, log-softmax)"
        ),
        "licence": "MIT (UKBiobank_deep_pretrain repository)",
        "citation": SFCN_CITATION,
        "expected_input": {
            "orientation": (
                "MNI152 (brain-extracted T1w, linearly registered; FSL's 182x218x182 "
                "1 mm grid, centre-cropped to 160x192x160)"
            ),
            "voxel_size": "1 mm isotropic",
            "voxel_size_mm": [1.0, 1.0, 1.0],
            "shape": "160x192x160 (the classifier pools 5x6x5); >= 32 per axis for the encoder",
            "intensity": "each volume divided by its mean (background 0)",
            "channels": 1,
        },
        "layer_groups": [f"conv_{i}" for i in range(6)],
        "head_file": HEAD_FILE,
        "head_sha256": head_sha,
        "head_outputs": outputs,
        "age_bins": list(SFCN_AGE_BINS) if task == "age" else None,
        "filled_keys": filled,
        "training_subjects_note": "unknown to transmri (UK Biobank participants, not IXI)",
    }


def import_sfcn(
    path: str | os.PathLike[str], out: str | os.PathLike[str], task: SfcnTask = "age"
) -> Path:
    """Convert an SFCN UK Biobank state dict into a transmri encoder in ``out``.

    Args:
        path: the ``.p`` file (a ``DataParallel`` state dict, or
            ``{"state_dict": ...}``).
        out: folder for ``encoder.safetensors``, ``encoder.json`` and
            ``head.safetensors`` (created).
        task: ``"age"`` (the brain-age network) or ``"sex"``.

    Returns:
        The card's path.

    Raises:
        FileNotFoundError: no such file.
        DataFormatError: not a PyTorch file, truncated, or not a state dict.
        CheckpointError: a pickle that would run code (refused), or weights
            that do not fit (keys and shapes named; the other task is
            suggested when the shapes are its). Nothing is written on error.
    """
    check_choice("task", task, tuple(SFCN_TASKS))
    source = Path(path)
    state = strip_prefix(read_state_dict(source, what="SFCN state dict"))
    net = _SFCNNet(task)
    filled = match_state(
        net, state, where=str(source), hint=_hint(task), what=f"SFCN ({task} network)"
    )
    encoder: SFCNEncoder = net.__dict__["encoder"]
    digest = sha256_file(source)
    out_dir = Path(out)
    head = {k: v.detach().contiguous().clone() for k, v in net.classifier.state_dict().items()}
    head_sha = atomic_save_tensors(head, out_dir / HEAD_FILE, save_id=tensors_id(head))
    outputs = SFCN_TASKS[task][0]
    return save_encoder(
        encoder,
        out_dir,
        architecture=encoder.config,
        model_config={"name": "sfcn_network", "task": task, "outputs": outputs},
        input_shape=_INPUT_SHAPE,
        preprocessing={},
        source=f"SFCN {task} network: UK Biobank T1w, 14,503-subject release",
        training_subjects=(),
        provenance=_provenance(source, digest, task, head_sha, filled),
    )
