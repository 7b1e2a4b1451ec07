"""benchmarks/floor_lattice.py: the lattice match tells a checkered floor from noise and from camouflage of the
same two tones, and leaves the objects out."""
import math

import torch
import torch.nn.functional as F

from grid_helpers import load_benchmark

lattice = load_benchmark("floor_lattice")
BANK = lattice.LatticeBank("close", 256)


def camouflage(floors: torch.Tensor, seed: int) -> torch.Tensor:
    """The floors' own two greys in smooth random blobs (a checker square's scale): the two tones, no lattice."""
    g = torch.Generator().manual_seed(seed)
    n, h, w, _ = floors.shape
    field = F.interpolate(torch.randn(n, 1, h // 8, w // 8, generator=g), size=(h, w), mode="bicubic")[:, 0]
    lum = floors.mean(-1)
    light, dark = lum.amax((1, 2), keepdim=True), lum.amin((1, 2), keepdim=True)
    return torch.where(field > 0, light, dark)[..., None].expand(-1, -1, -1, 3).clone()


def test_a_bank_floor_matches_exactly_and_an_unseen_floor_beats_noise_and_camouflage():
    assert torch.equal(BANK.match(lattice.floor_frames(3, lattice.BANK_SEED, "close")[:, 0]), torch.ones(3))
    held_out = lattice.floor_frames(12, 321, "close")[:, 0]
    truth = BANK.match(held_out)
    g = torch.Generator().manual_seed(0)
    noise = BANK.match(0.4 + 0.16 * torch.rand(held_out.shape, generator=g).mean(-1, keepdim=True).expand(-1, -1, -1, 3))
    blobs = BANK.match(camouflage(held_out, 1))
    assert (noise - 0.5).abs().max() < 0.08
    assert truth.median() > blobs.median() + 0.05 > noise.median() + 0.1


def test_objects_drop_out_of_the_match():
    floors = lattice.floor_frames(2, lattice.BANK_SEED, "close")[:, 0]
    with_object = floors.clone()
    with_object[:, 30:44, 20:40] = torch.tensor([0.8, 0.1, 0.1])    # a red object over part of the near floor
    assert torch.equal(BANK.match(with_object), torch.ones(2))
    all_red = floors.clone()
    all_red[:, lattice.LATTICE_TOP:] = torch.tensor([0.8, 0.1, 0.1])
    assert BANK.match(all_red).isnan().all()


def test_otsu_threshold_splits_two_levels_between_them():
    values = torch.cat([torch.full((60,), 0.4), torch.full((40,), 0.56)])
    assert 0.4 < lattice.otsu_threshold(values) < 0.56
    assert math.isnan(lattice.otsu_threshold(torch.full((100,), 0.5)))
    assert math.isnan(lattice.otsu_threshold(torch.rand(49)))
