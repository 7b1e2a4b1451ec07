"""Live-preview pieces (nodes/preview.py): view tiling and the built-in autoencoder's latent -> RGB map."""
import pytest
import torch

from camgrid.nodes import preview
from camgrid.train.builtin import builtin_available, load_builtin
from camgrid.train.fit_preview import latent_and_target_pixels, psnr
from camgrid.synth.dataset import SyntheticMultiViewDataset


def test_views_are_tiled_as_square_as_possible():
    grid = torch.arange(2 * 3 * 2 * 1 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 1, 2, 2)  # B V C T H W
    tiled = preview.tile_views(grid)
    assert tiled.shape == (1, 2, 1, 4, 4)  # 3 views -> 2 x 2 cells, first batch item only
    cells = [tiled[..., :2, :2], tiled[..., :2, 2:], tiled[..., 2:, :2]]
    for v, cell in enumerate(cells):
        assert torch.equal(cell[0], grid[0, v])
    assert not tiled[..., 2:, 2:].any()  # the empty cell stays zero
    two = preview.tile_views(grid[:, :2])
    assert two.shape == (1, 2, 1, 2, 4)  # two views side by side
    video = torch.randn(3, 16, 2, 4, 5)
    assert torch.equal(preview.tile_views(video), video[:1])  # a plain video is one view
    with pytest.raises(ValueError, match="latent grid"):
        preview.tile_views(torch.zeros(2, 3, 4))


def test_factors_exist_only_for_camgrids_own_latent():
    factors, bias = preview.latent_rgb_factors(preview.BUILTIN_LATENT_CHANNELS)
    assert len(factors) == preview.BUILTIN_LATENT_CHANNELS and all(len(row) == 3 for row in factors)
    assert len(bias) == 3
    assert preview.latent_rgb_factors(16) is None and preview.latent_rgb_factors(48) is None  # ComfyUI's Wan formats


def test_latent_to_rgb_matches_comfys_latent2rgb_formula():
    latent = torch.randn(1, 8, 2, 3, 4)
    factors, bias = preview.TINY_AE_LATENT_RGB_FACTORS, preview.TINY_AE_LATENT_RGB_BIAS
    rgb = preview.latent_to_rgb(latent, factors, bias, frame=1)
    expected = torch.nn.functional.linear(latent[0, :, 1].movedim(0, -1), torch.tensor(factors).T, torch.tensor(bias))
    assert rgb.shape == (3, 4, 3)
    torch.testing.assert_close(rgb, ((expected + 1) / 2).clamp(0, 1))


@pytest.mark.skipif(not builtin_available(), reason="the built-in model's asset files are not installed")
def test_builtin_latent_preview_resembles_the_decoded_frames():
    """The shipped constants, applied to the shipped autoencoder's latents of scenes it was not fitted on,
    give the decoded frames' colours to within a fair PSNR (26 dB when fitted); a retrained autoencoder
    whose latents they no longer fit fails here: rerun `python -m camgrid.train.fit_preview`."""
    ae = load_builtin().ae
    dataset = SyntheticMultiViewDataset(length=4, seed=99, min_views=2, max_views=2)
    latents, decoded, _ = latent_and_target_pixels(ae, dataset, range(4))
    factors = torch.tensor(preview.TINY_AE_LATENT_RGB_FACTORS, dtype=torch.float64)
    bias = torch.tensor(preview.TINY_AE_LATENT_RGB_BIAS, dtype=torch.float64)
    assert psnr(factors, bias, latents, decoded) > 22.0
    grey = psnr(torch.zeros_like(factors), decoded.mean(0) * 2 - 1, latents, decoded)  # the best flat colour
    assert psnr(factors, bias, latents, decoded) > grey + 6.0
    # and through the tiling and the image path the host uses, on a grid of two views
    z = ae.encode(dataset[0]["videos"])[None]                     # [1, V, C, T, h, w]
    rgb = preview.latent_to_rgb(preview.tile_views(z), factors, bias)
    assert rgb.shape == (z.shape[-2], 2 * z.shape[-1], 3) and torch.isfinite(rgb).all()
