"""The tiny preview decoder (model/preview_decoder.py), its trainer (train/preview_decoder.py), the shipped
decoder of the built-in model, and where it is used: live previews (nodes/preview.py) and CamGrid Decode's
`decoder: preview`."""
import os
import sys

import pytest
import torch

from camgrid.model.preview_decoder import PreviewDecoder, load_preview_decoder, matches_teacher, \
    module_fingerprint, save_preview_decoder
from camgrid.model.weights_io import CheckpointError
from camgrid.nodes import latent_convert, preview
from camgrid.nodes.builtin import BuiltinVAE
from camgrid.nodes.decode import CamGridDecode
from camgrid.synth.dataset import SyntheticMultiViewDataset
from camgrid.train.autoencoder import TinyVideoAE
from camgrid.train.builtin import builtin_available, load_builtin
from camgrid.train.fit_preview import fit
from camgrid.train.preview_decoder import distillation_pairs, frame_groups, latent_pixel_colours, \
    linear_preview_frames, psnr, strides, train_student

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "host"))
from standin_pack import StandInVAE  # noqa: E402


def test_shapes_and_the_causal_first_frame():
    decoder = PreviewDecoder(8, (8, 8, 4), temporal_stride=4).eval()
    z = torch.randn(2, 8, 3, 6, 10)
    frames = decoder(z)
    assert frames.shape == (2, 9, 24, 40, 3) and 0 <= frames.min() and frames.max() <= 1
    groups = decoder.groups(z.transpose(1, 2).flatten(0, 1)).unflatten(0, (2, 3))   # [N, T, 4, H, W, 3]
    raw = decoder.frames_raw(z)
    assert torch.equal(raw[:, 0], groups[:, 0, -1])          # the first latent frame gives one frame: its last
    assert torch.equal(raw[:, 1:5], groups[:, 1]) and torch.equal(raw[:, 5:], groups[:, 2])
    assert decoder(z[None]).shape == (1, 2, 9, 24, 40, 3)     # a grid keeps its leading dimensions
    with pytest.raises(ValueError, match="8-channel"):
        decoder(torch.randn(1, 16, 2, 6, 10))


def test_file_round_trip_and_teacher_fingerprint(tmp_path):
    teacher = TinyVideoAE(latent_dim=4, width=8)
    decoder = PreviewDecoder(4, (8, 4)).eval()
    path = save_preview_decoder(decoder, tmp_path / "p.safetensors", module_fingerprint(teacher), {"psnr": 30.0})
    loaded, meta = load_preview_decoder(path)
    z = torch.randn(1, 4, 2, 5, 7)
    torch.testing.assert_close(loaded(z), decoder(z), atol=2e-3, rtol=0)   # stored as float16
    assert meta["report"] == {"psnr": 30.0} and matches_teacher(meta, teacher)
    with torch.no_grad():
        teacher.decoder[0].weight[0, 0, 0, 0] += 0.5
    assert not matches_teacher(meta, teacher) and not matches_teacher(meta, None)
    from safetensors.torch import save_file
    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(CheckpointError, match="not a camgrid preview decoder"):
        load_preview_decoder(tmp_path / "other.safetensors")


def test_trainer_pieces_distil_a_small_teacher():
    """Pairs from a (random) teacher on a tiny scene, the strides read off them, the frame groups, and a few
    training steps that bring the student closer to the teacher than where it started."""
    torch.manual_seed(0)
    teacher = TinyVideoAE(latent_dim=4, width=8).eval()
    data = SyntheticMultiViewDataset(length=1, height=16, width=24, num_frames=5, min_views=2, max_views=2, seed=3)
    latents, frames, clean = distillation_pairs(teacher, data, [0], degraded=True)
    assert latents.shape == (4, 4, 2, 4, 6) and frames.shape == (4, 5, 16, 24, 3) and clean.tolist() == [1, 1, 0, 0]
    assert not torch.equal(latents[2:], latents[:2])            # the degraded copies differ
    assert strides(latents, frames) == (4, 4)
    groups = frame_groups(frames, 4)
    assert groups.shape == (8, 4, 16, 24, 3) and torch.equal(groups[0], frames[0, :1].expand(4, -1, -1, -1))
    assert torch.equal(groups[1], frames[0, 1:5])
    student = PreviewDecoder(4, (8, 8, 4))
    before = psnr(student(latents), frames)
    train_student(student, latents, frames, steps=30, batch=4, lr=1e-2, seed=0, log=lambda _: None)
    assert psnr(student(latents), frames) > before + 3.0


builtin = pytest.mark.skipif(not builtin_available(), reason="the built-in model's asset files are not installed")


@pytest.fixture(scope="module")
def shipped():
    found = preview.builtin_preview_decoder()
    assert found is not None, "assets/camgrid-tiny-preview-decoder.safetensors is missing"
    return found


@builtin
def test_shipped_decoder_fits_the_shipped_autoencoder_and_beats_the_linear_preview(shipped):
    """Fails after the built-in autoencoder is retrained: rerun `python -m camgrid.train.preview_decoder`."""
    decoder, meta = shipped
    ae = load_builtin().ae
    assert matches_teacher(meta, ae), "the preview decoder was distilled from another autoencoder: retrain it"
    assert sum(p.numel() * 2 for p in decoder.parameters()) < 1 << 20     # ships in float16, under 1 MB
    data = SyntheticMultiViewDataset(length=2, seed=4242, min_views=2, max_views=2)   # not its training scenes
    latents, frames, _ = distillation_pairs(ae, data, [0, 1], degraded=False)
    spatial, temporal = strides(latents, frames)
    factors, bias = fit(latents.movedim(1, -1).reshape(-1, latents.shape[1]).double(),   # the best linear map
                        latent_pixel_colours(frames, spatial, temporal))                # for these very scenes
    linear = psnr(linear_preview_frames(latents, factors, bias, spatial, temporal), frames)
    student = psnr(decoder(latents), frames)
    assert student > 24.0 and student > linear + 3.0, (student, linear)


@builtin
def test_live_preview_and_draft_decode_use_it(shipped):
    fn = preview.decoder_preview_fn(preview.BUILTIN_LATENT_CHANNELS)
    assert fn is not None and preview.decoder_preview_fn(16) is None     # Wan latents: ComfyUI's own previewers
    tiny = load_builtin()
    grid = torch.randn(1, 3, 8, tiny.latent_frames, tiny.height // 4, tiny.width // 4)
    image = fn(grid)
    assert image.size == (2 * tiny.width, 2 * tiny.height)                # 3 views laid out 2 x 2, full resolution
    latent = latent_convert.grid_to_latent(grid)
    vae = BuiltinVAE(tiny.ae)
    full = CamGridDecode().decode(latent, vae, 0, 0, 2)[0]
    draft = CamGridDecode().decode(latent, vae, 0, 0, 2, decoder="preview")[0]
    assert draft.shape == full.shape and psnr(draft, full) > 18.0         # random latents: far off-manifold


@builtin
def test_a_decoder_for_another_autoencoder_is_not_used(shipped, monkeypatch):
    other = TinyVideoAE(latent_dim=8, width=8)
    with pytest.raises(ValueError, match="retrain it"):
        preview.draft_decoder(BuiltinVAE(other), 8)
    monkeypatch.setattr(preview, "shipped_autoencoder_fingerprint", lambda: "another one")
    assert preview.decoder_preview_fn(8) is None                          # live previews fall back to the projection


def test_wan_latents_get_a_draft_error_that_names_taehv():
    latent = latent_convert.grid_to_latent(torch.randn(1, 2, 16, 2, 4, 4))
    with pytest.raises(ValueError, match="lighttaew2_1"):
        CamGridDecode().decode(latent, StandInVAE(), 0, 0, 2, decoder="preview")
    with pytest.raises(ValueError, match="decoder"):
        CamGridDecode().decode(latent, StandInVAE(), 0, 0, 2, decoder="fast")
