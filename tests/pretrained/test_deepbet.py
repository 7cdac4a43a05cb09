"""Importing deepbet's archives: the pinned hash, the card, the cache, brain masks."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from transmri.errors import IntegrityError
from transmri.models import EncoderClassifier
from transmri.models.deepbet import DeepbetEncoder
from transmri.training.encoder_io import load_encoder

pytest.importorskip("safetensors")


@pytest.fixture(scope="module")
def source() -> Path:
    from transmri.pretrained import deepbet_source_file

    try:
        return deepbet_source_file("model")
    except ImportError as exc:
        pytest.skip(f"deepbet not installed ({exc})")


@pytest.fixture(scope="module")
def imported(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transmri.pretrained import import_deepbet

    return import_deepbet(tmp_path_factory.mktemp("deepbet"), "model")


def test_card_round_trips_with_provenance(imported: Path) -> None:
    from transmri.pretrained import DEEPBET_SHA256

    encoder, card = load_encoder(imported.parent)
    assert isinstance(encoder, DeepbetEncoder)
    assert card["load_report"] == {"missing": [], "unexpected": []}
    prov = card["provenance"]
    assert prov["source_sha256"] == DEEPBET_SHA256["model"]
    assert prov["licence"] == "MIT"
    assert prov["trained_on"] == "7,837 T1w scans from 191 OpenNeuro datasets"
    assert "Computers in Biology and Medicine" in prov["citation"]
    assert "0.5-99.5 %" in prov["expected_input"]["intensity"]
    assert prov["layer_groups"] == ["init", "down0", "down1", "down2", "down3"]
    assert card["architecture"] == {"name": "deepbet_encoder"}


def test_wrong_hash_is_refused_and_nothing_written(source: Path, tmp_path: Path) -> None:
    from transmri.pretrained import import_deepbet

    fake = tmp_path / "model.pt"
    shutil.copyfile(source, fake)
    with fake.open("ab") as fh:
        fh.write(b"\0")
    out = tmp_path / "out"
    with pytest.raises(
        IntegrityError, match=r"model\.pt: sha256 .* not the pinned deepbet 'model'"
    ):
        import_deepbet(out, "model", source=str(fake))
    assert not out.exists()


def test_missing_deepbet_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib import metadata

    from transmri.pretrained import deepbet_source_file

    def absent(name: str) -> metadata.Distribution:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "distribution", absent)
    with pytest.raises(ImportError, match=r'pip install "transmri\[deepbet\]"'):
        deepbet_source_file("bbox")


def test_imported_encoder_trains_in_a_classifier(imported: Path) -> None:
    encoder, _ = load_encoder(imported)
    torch.manual_seed(0)
    model = EncoderClassifier(encoder, 2, head="gap", input_shape=(40, 40, 40))
    for group in model.layer_groups()[:-2]:
        group.requires_grad_(False)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    x, y = torch.randn(4, 1, 40, 40, 40), torch.tensor([0, 1, 0, 1])
    before = encoder.init[0].weight.detach().clone()
    last = encoder.down3.block2.double_conv[3].weight.detach().clone()
    loss = torch.nn.functional.cross_entropy(model(x)["logits"], y)
    loss.backward()
    opt.step()
    assert torch.equal(encoder.init[0].weight, before)  # frozen early group
    assert not torch.equal(encoder.down3.block2.double_conv[3].weight, last)


def test_network_is_cached_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, source: Path
) -> None:
    from transmri.pretrained import deepbet, load_deepbet_network

    monkeypatch.setenv("TRANSMRI_CACHE", str(tmp_path))
    first = load_deepbet_network("model")
    calls: list[str] = []
    monkeypatch.setattr(deepbet, "import_deepbet", lambda *a, **k: calls.append("x"))
    second = load_deepbet_network("model")
    assert calls == []
    for (k, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    net_file = deepbet.deepbet_cache_dir("model") / "network.safetensors"
    with net_file.open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(IntegrityError, match=r"network\.safetensors: sha256"):
        load_deepbet_network("model")


@pytest.mark.ixi
@pytest.mark.slow
def test_brain_mask_matches_ixi_masks(
    ixi_root: Path, source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nibabel as nib

    from transmri.pretrained import brain_mask

    monkeypatch.setenv("TRANSMRI_CACHE", str(tmp_path))
    scan = sorted((ixi_root / "t1").glob("*_T1.nii.gz"))[1]
    subject = scan.name.removesuffix("_T1.nii.gz")
    ref = nib.load(ixi_root / "brainmask" / f"{subject}_brainmask.nii.gz").get_fdata() > 0
    img = nib.load(scan)
    mask = brain_mask(np.asarray(img.get_fdata()), img.affine)
    assert mask.dtype == bool and mask.shape == img.shape
    dice = 2 * (mask & ref).sum() / (mask.sum() + ref.sum())
    assert dice >= 0.95
    # The same scan flipped along an axis (another orientation) gives the flipped mask.
    flip = np.diag([-1.0, 1.0, 1.0, 1.0])
    flip[0, 3] = img.shape[0] - 1
    flipped = brain_mask(np.asarray(img.get_fdata())[::-1], img.affine @ flip)
    assert 2 * (flipped[::-1] & mask).sum() / (flipped.sum() + mask.sum()) > 0.99


def test_create_classifier_from_encoder_trains_with_a_warning(
    imported: Path, make_cohort: Callable[..., Path], tmp_path: Path
) -> None:
    from transmri.data import DataBunch, PreprocessConfig, ScanTable
    from transmri.training import create_classifier_from_encoder

    csv = make_cohort(12, seed=0, folder="tgt")
    table = ScanTable.from_csv(csv, mask_col="mask", label_col="label")
    data = DataBunch(table, PreprocessConfig(target_shape=(40, 40, 40)), cache_dir=tmp_path / "c")
    data.prepare(progress=False)
    with pytest.warns(UserWarning, match=r"deepbet-model expects input .*0\.5-99\.5 %"):
        learner = create_classifier_from_encoder(
            data, imported, tmp_path / "ft", batch_size=4, progress=False
        )
    before = learner.model.encoder.init[0].weight.detach().clone()
    learner.fit(1, 1e-3)
    assert len(learner.history_) == 1
    assert not torch.equal(learner.model.encoder.init[0].weight, before)
