"""The decode policy (model/vae_decode.py): views per call, tiles only when needed, out-of-memory fallback,
and the same frames whichever way a grid is decoded (a tiny diffusers AutoencoderKLWan)."""
import pytest
import torch

from camgrid.model.vae_decode import DecodeOptions, DecodeReport, WanVaeDecoder, decode_views, plan_batch, \
    set_conv3d_layout


def test_plan_batch_fits_views_into_free_memory():
    opts = DecodeOptions(max_batch=8, headroom=0.5)
    assert plan_batch(6, 100, 1000, opts) == 5        # 0.5 * 1000 / 100
    assert plan_batch(3, 100, 1000, opts) == 3        # no more than the views left
    assert plan_batch(20, 1, 10 ** 9, opts) == 8      # max_batch caps it
    assert plan_batch(6, 100, 150, opts) == 0         # one view does not fit: tiles
    assert plan_batch(6, 100, 150, DecodeOptions(tiled="never")) == 1
    assert plan_batch(6, None, 10 ** 9, opts) == 1    # cost unknown: one view at a time
    assert plan_batch(6, 100, None, opts) == 1        # free memory unknown (CPU): one view at a time
    assert plan_batch(6, 1, 10 ** 9, DecodeOptions(tiled="always")) == 0
    with pytest.raises(ValueError, match="tiled"):
        DecodeOptions(tiled="sometimes")


class FakeVAE:
    """Frames are a fixed function of each view's latent; untiled calls of more than `max_untiled` views (or
    any untiled call, with max_untiled=0) raise torch.OutOfMemoryError, as CUDA would."""

    def __init__(self, max_untiled=10 ** 6):
        self.max_untiled, self.calls, self.released = max_untiled, [], 0

    @staticmethod
    def frames(z):                                   # [n, C, T, h, w] -> [n, 4T-3, 2h, 2w, 3]
        rgb = torch.sigmoid(z[:, :3]).repeat_interleave(4, 2)[:, :, 3:]
        return rgb.repeat_interleave(2, 3).repeat_interleave(2, 4).permute(0, 2, 3, 4, 1)

    def decode(self, z):
        self.calls.append(("decode", len(z)))
        if len(z) > self.max_untiled:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return self.frames(z)

    def decode_tiled(self, z):
        self.calls.append(("tiled", len(z)))
        return self.frames(z)

    def release(self):
        self.released += 1


LATENTS = torch.randn(7, 4, 2, 3, 5, generator=torch.Generator().manual_seed(0))
EXPECTED = FakeVAE.frames(LATENTS)


def run(vae, options=DecodeOptions(), **kw):
    kw.setdefault("release", vae.release)
    frames, report = decode_views(LATENTS, vae.decode, vae.decode_tiled, options, **kw)
    assert torch.equal(frames, EXPECTED)             # whatever happened, every view in its place
    return report


def test_views_are_batched_by_free_memory():
    vae = FakeVAE()
    report = run(vae, per_view_bytes=100, free_bytes=lambda: 350)   # 0.85 * 350 // 100 = 2 views per call
    assert report.batches == [2, 2, 2, 1] and report.tiled_views == 0 and report.oom_retries == 0
    assert vae.calls == [("decode", 2)] * 3 + [("decode", 1)]
    assert "7 views in 4 call(s) of 2" in report.summary()


def test_out_of_memory_halves_the_batch_and_frees_memory_first():
    vae = FakeVAE(max_untiled=2)
    report = run(vae, per_view_bytes=1, free_bytes=lambda: 10 ** 9)  # plans 7, then 3, then 1
    assert [c for c in vae.calls if c[0] == "decode"][:3] == [("decode", 7), ("decode", 3), ("decode", 1)]
    assert report.oom_retries == 2 and vae.released == 2 and report.batches == [1] * 7


def test_out_of_memory_at_one_view_falls_back_to_tiles():
    vae = FakeVAE(max_untiled=0)
    report = run(vae)
    assert report.oom_retries == 1 and report.tiled_views == 7 and report.batches == []
    assert vae.calls[0] == ("decode", 1) and all(c == ("tiled", 1) for c in vae.calls[1:])
    with pytest.raises(torch.OutOfMemoryError):
        run(FakeVAE(max_untiled=0), DecodeOptions(tiled="never"))


def test_a_view_that_cannot_fit_is_tiled_from_the_start_and_tiled_always_means_tiles():
    vae = FakeVAE()
    report = run(vae, per_view_bytes=10 ** 9, free_bytes=lambda: 10 ** 6)
    assert report.tiled_views == 7 and vae.calls == [("tiled", 1)] * 7
    vae = FakeVAE()
    assert run(vae, DecodeOptions(tiled="always")).tiled_views == 7
    with pytest.raises(ValueError, match="no tiled decoding"):
        decode_views(LATENTS, vae.decode, None, DecodeOptions(tiled="always"))


def test_the_cost_of_one_view_is_measured_then_views_are_batched():
    class Peak:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.bytes = 100
            return False

    vae = FakeVAE()
    report = run(vae, free_bytes=lambda: 400, measure_peak=Peak)    # after the first view: 0.85 * 400 // 100 = 3
    assert report.per_view_bytes == 100 and report.batches == [1, 3, 3]


def test_progress_is_reported_per_call_and_can_cancel():
    seen = []
    run(FakeVAE(), per_view_bytes=100, free_bytes=lambda: 350, progress=seen.append)
    assert seen == [2, 4, 6, 7]

    def cancel(done):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(FakeVAE(), progress=cancel)
    assert DecodeReport().summary() == "nothing decoded"


# --- a real (tiny, random) diffusers AutoencoderKLWan ------------------------------------------------

MEAN, STD = [0.1, -0.2, 0.3, 0.0], [1.5, 0.5, 2.0, 1.0]


@pytest.fixture(scope="module")
def tiny_vae():
    """Wan's VAE architecture at a tiny size. Its spatial taps other than the centre and its attention output are
    zeroed, so each output pixel depends on its own latent pixel only: tiled decoding must then give exactly the
    untiled frames, and any tile or view put in the wrong place shows."""
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    vae = diffusers.AutoencoderKLWan(base_dim=8, z_dim=4, dim_mult=[1, 1, 2, 2], num_res_blocks=1,
                                     temperal_downsample=[False, True, True], latents_mean=MEAN,
                                     latents_std=STD).eval()
    with torch.no_grad():
        for name, p in vae.decoder.named_parameters():
            if p.ndim >= 4 and p.shape[-1] == 3:                  # 3x3 (x3 in time) kernels: keep the centre
                centre = p[..., 1:2, 1:2].clone()
                p.zero_()
                p[..., 1:2, 1:2] = centre
            if ".proj." in name:                                  # attention output: off
                p.zero_()
    vae.tile_sample_min_height = vae.tile_sample_min_width = 32   # tiles of 32 px, 8 px overlap
    vae.tile_sample_stride_height = vae.tile_sample_stride_width = 24
    return vae


def reference_decode(vae, grid):
    """Pipeline.decode before the policy: one view at a time, the formula written out."""
    mean, std = torch.tensor(MEAN).view(1, 4, 1, 1, 1), torch.tensor(STD).view(1, 4, 1, 1, 1)
    views = [((vae.decode(z[None] * std + mean).sample[0].clamp(-1, 1) + 1) / 2).permute(1, 2, 3, 0) for z in grid]
    return torch.stack(views)


def test_batched_tiled_and_untiled_give_the_same_frames(tiny_vae):
    grid = torch.randn(2, 4, 2, 4, 6, generator=torch.Generator().manual_seed(1))   # 2 views -> 5 x 32 x 48
    with torch.no_grad():
        expected = reference_decode(tiny_vae, grid)
    decoder = WanVaeDecoder(tiny_vae, MEAN, STD)
    one_by_one = decoder(grid)                                   # CPU: one view per call
    assert decoder.last_report.batches == [1, 1]
    torch.testing.assert_close(one_by_one, expected, atol=1e-5, rtol=1e-5)
    batched, report = decode_views(grid, decoder.decode_batch, decoder.decode_tiled, per_view_bytes=1,
                                   free_bytes=lambda: 100)
    assert report.batches == [2]
    torch.testing.assert_close(batched, expected, atol=1e-5, rtol=1e-5)

    def one_at_most(z):                                          # a GPU that holds one view
        if len(z) > 1:
            raise torch.OutOfMemoryError("simulated")
        return decoder.decode_batch(z)

    halved, report = decode_views(grid, one_at_most, decoder.decode_tiled, per_view_bytes=1,
                                  free_bytes=lambda: 100, release=lambda: None)
    assert report.batches == [1, 1] and report.oom_retries == 1   # 2 -> 1 (halved), then kept
    torch.testing.assert_close(halved, expected, atol=1e-5, rtol=1e-5)
    tiled = WanVaeDecoder(tiny_vae, MEAN, STD, DecodeOptions(tiled="always"))
    torch.testing.assert_close(tiled(grid), expected, atol=1e-4, rtol=1e-4)   # 32 px tiles: 2 x 2 per frame
    assert tiled.last_report.tiled_views == 2


# --- CamGrid Decode with a ComfyUI-like VAE ----------------------------------------------------------

def comfy_like_vae(per_view_bytes, max_untiled=10 ** 6):
    """StandInVAE with ComfyUI's `memory_used_decode` estimate, failing untiled calls of too many views."""
    import os
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "host"))
    from standin_pack import StandInVAE

    class ComfyLikeVAE(StandInVAE):
        vae_dtype = torch.bfloat16

        def memory_used_decode(self, shape, dtype):
            self.estimates.append((tuple(shape), dtype))
            return per_view_bytes

        def decode(self, samples, **kw):
            if len(samples) > max_untiled:
                self.calls.append(("oom", len(samples)))
                raise torch.OutOfMemoryError("simulated")
            return super().decode(samples, **kw)

        def decode_tiled(self, samples, **kw):
            self.calls.append(("decode_tiled", tuple(samples.shape)))
            return StandInVAE.decode(self, samples)

    vae = ComfyLikeVAE()
    vae.estimates = []
    return vae, StandInVAE()


def test_camgrid_decode_sends_views_in_chunks_of_comfys_estimate(monkeypatch):
    from camgrid.nodes import host, latent_convert
    from camgrid.nodes.decode import CamGridDecode

    monkeypatch.setattr(host, "free_bytes", lambda device=None: 250)      # ComfyUI's estimate: 2 views fit
    vae, plain = comfy_like_vae(per_view_bytes=100)
    latent = latent_convert.grid_to_latent(torch.randn(2, 3, 16, 2, 4, 4, generator=torch.Generator().manual_seed(0)))
    frames, side, _sheet, views = CamGridDecode().decode(latent, vae, 0, 0, 2)
    assert views == 3 and vae.calls == [("decode", (2, 16, 2, 4, 4))] * 3   # 6 views (2 items x 3), 2 per call
    assert vae.estimates[0] == ((1, 16, 2, 4, 4), torch.bfloat16)      # asked for one view, in its dtype
    one_by_one = torch.cat([plain.decode(z[None])[0] for z in latent_convert.latent_to_grid(latent).flatten(0, 1)])
    assert torch.equal(frames, one_by_one)                              # view-major, batch item after batch item
    assert side.shape == (2 * 5, 2 * 32, 2 * 32, 3)


def test_camgrid_decode_tiles_when_memory_runs_out_past_comfys_guard(monkeypatch):
    from camgrid.nodes import host, latent_convert
    from camgrid.nodes.decode import CamGridDecode

    monkeypatch.setattr(host, "free_bytes", lambda device=None: 10 ** 12)
    vae, plain = comfy_like_vae(per_view_bytes=1, max_untiled=0)
    latent = latent_convert.grid_to_latent(torch.randn(1, 4, 16, 2, 4, 4))
    frames = CamGridDecode().decode(latent, vae, 0, 0, 2, tile_size=64, overlap=16)[0]
    tried = [c for c in vae.calls if c[0] != "decode"]                 # (a tiled call decodes inside)
    assert [c[0] for c in tried] == ["oom", "oom", "oom"] + ["decode_tiled"] * 4   # 4 -> 2 -> 1 -> tiles
    assert [c[1] for c in tried[:3]] == [4, 2, 1] and tried[-1][1] == (1, 16, 2, 4, 4)
    assert torch.equal(frames, plain.decode(latent["samples"]).flatten(0, 1))


def test_channels_last_layout_reaches_the_wan_vaes_conv_kernels_only(tiny_vae):
    """`vae.to(memory_format=channels_last_3d)` fails on the Wan VAE (its RMS-norm gammas are 4-D; found on the
    H200); set_conv3d_layout converts the 5-D kernels and leaves the rest, and decoding gives the same frames."""
    with pytest.raises(RuntimeError, match="rank 5"):
        tiny_vae.to(memory_format=torch.channels_last_3d)
    grid = torch.randn(1, 4, 2, 4, 4, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        before = tiny_vae.decode(grid).sample
    set_conv3d_layout(tiny_vae, torch.channels_last_3d)
    kernels = [p for p in tiny_vae.parameters() if p.dim() == 5]
    assert kernels and all(p.is_contiguous(memory_format=torch.channels_last_3d) for p in kernels)
    with torch.no_grad():
        after = tiny_vae.decode(grid).sample
    set_conv3d_layout(tiny_vae, torch.contiguous_format)
    assert all(p.is_contiguous() for p in tiny_vae.parameters())
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-5)
