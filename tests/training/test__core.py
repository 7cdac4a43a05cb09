"""The Learner's plumbing: the seeded sampler reseeds augmentation per epoch."""

from __future__ import annotations

from typing import Any

import torch

from transmri.data import AugmentConfig, build_augmentation
from transmri.training._core import SeededSampler


class _Augmented(torch.utils.data.Dataset[Any]):
    """Eight constant-but-distinct volumes through a random augmentation."""

    def __init__(self) -> None:
        self.transform = build_augmentation(AugmentConfig.preset("light"), seed=0)
        self.volume = torch.arange(6**3, dtype=torch.float32).reshape(1, 6, 6, 6)

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.transform(self.volume + index)


def _epoch(dataset: _Augmented, sampler: SeededSampler, epoch: int) -> list[torch.Tensor]:
    sampler.use_epoch(epoch)
    return [dataset[i] for i in sampler]


def test_use_epoch_reseeds_the_augmentation_from_seed_and_epoch() -> None:
    dataset = _Augmented()
    sampler = SeededSampler(dataset, num_replicas=1, rank=0, shuffle=True, seed=3)
    sampler.worker_generator = torch.Generator()
    straight = [_epoch(dataset, sampler, e) for e in (1, 2, 3)]
    seeds = []
    for e in (1, 2):
        sampler.use_epoch(e)
        seeds.append(torch.empty((), dtype=torch.int64).random_(generator=sampler.worker_generator))

    # A "resumed" run: a new dataset and sampler whose streams were used differently before.
    other = _Augmented()
    for i in range(5):
        other[i]
    resumed_sampler = SeededSampler(other, num_replicas=1, rank=0, shuffle=True, seed=3)
    resumed_sampler.worker_generator = torch.Generator()
    resumed = _epoch(other, resumed_sampler, 3)
    for a, b in zip(straight[2], resumed, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # epochs draw differently from one another (the reseed is per epoch, not one fixed draw)
    assert not all(torch.equal(a, b) for a, b in zip(straight[1], straight[2]))
    # the loader's worker seeds follow (seed, epoch) too
    resumed_sampler.use_epoch(2)
    again = torch.empty((), dtype=torch.int64).random_(generator=resumed_sampler.worker_generator)
    assert int(again) == int(seeds[1]) and int(seeds[0]) != int(seeds[1])
