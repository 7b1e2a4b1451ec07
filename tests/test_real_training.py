"""`camgrid train --dit`: datasets in both published layouts -> latent cache -> sync layers + LoRA on a tiny DiT
(CPU). Stand-in VAE / umT5 files in the real key layouts (component_helpers.py)."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from component_helpers import save_comfy_umt5, save_original_vae, tiny_spiece, tiny_umt5, tiny_wan_vae
from grid_helpers import tiny_model

import camgrid
from camgrid.__main__ import main
from camgrid.model import load_grid_dit, save_grid_dit
from camgrid.model.camera import CameraRig
from camgrid.model.checks import InputError
from camgrid.model.components import encode_frames, load_wan_vae
from camgrid.model.lora import apply_lora
from camgrid.model.modes import camera_embedding
from camgrid.model.sync import attach_sync_layers, save_sync_weights
from camgrid.train.multicam import CAMERA_FILE, MultiCamDataset, write_synthetic_dataset
from camgrid.train.objective import flow_matching_loss
from camgrid.train.real import latent_cache
from camgrid.train.real.cached_source import CachedGridSource
from camgrid.train.real.config import RealTrainConfig
from camgrid.train.real.lora import LoraSet
from camgrid.train.real.run import LORA_FILE, SYNC_FILE, run

pytest.importorskip("imageio_ffmpeg", reason="the datasets' mp4 videos need imageio-ffmpeg (test extra)")
pytest.importorskip("sentencepiece", reason="umT5's tokenizer needs sentencepiece (test extra)")
SIZE, FRAMES, VIEWS = 32, 5, 2


@pytest.fixture(autouse=True)
def one_thread():
    """One CPU thread per process: tiny models gain nothing from more, and a busy machine loses a lot."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("realtrain")
    save_comfy_umt5(tiny_umt5(seed=1), root / "umt5_xxl_fp8_e4m3fn_scaled.safetensors", tiny_spiece(), fp8=True)
    save_original_vae(tiny_wan_vae(seed=2), root / "wan_2.1_vae.safetensors")
    save_grid_dit(tiny_model("syncammaster", seed=1, zero_new_modules=False), root / "dit.safetensors")
    write_synthetic_dataset(root / "syncamvideo", "syncamvideo", scenes=2, cameras=3, frames=FRAMES, height=SIZE,
                            width=SIZE, seed=0)
    write_synthetic_dataset(root / "multicamvideo", "multicamvideo", scenes=1, cameras=2, frames=FRAMES, height=SIZE,
                            width=SIZE, seed=1)
    return root


def settings(files, **kw):
    base = dict(frames=FRAMES, height=SIZE, width=SIZE, cache_views=0, seed=0, vae="wan_2.1_vae.safetensors",
                text_encoder="umt5_xxl_fp8_e4m3fn_scaled.safetensors")
    return latent_cache.CacheSettings(**{**base, **kw})


def encoders(files):
    return lambda: latent_cache.Encoders(files / "wan_2.1_vae.safetensors",
                                         files / "umt5_xxl_fp8_e4m3fn_scaled.safetensors", None, "cpu")


def build(files, layout, cache, **kw):
    data = MultiCamDataset(files / layout, views=0, frames=FRAMES, height=SIZE, width=SIZE, seed=0)
    return data, latent_cache.build_latent_cache(data, cache, settings(files), encoders(files), progress=False,
                                                 log=lambda *_: None, **kw)


@pytest.fixture(scope="module")
def cache(files):
    build(files, "syncamvideo", files / "cache")
    return files / "cache"


# --- the cache --------------------------------------------------------------------------------------------------

def test_cache_holds_the_vae_latents_text_and_cameras_of_every_scene(files, cache):
    data = MultiCamDataset(files / "syncamvideo", views=0, frames=FRAMES, height=SIZE, width=SIZE, seed=0)
    entries = latent_cache.read_parts(cache)
    assert [scene["key"] for _, scene in entries] == ["f24_aperture5/scene1", "f24_aperture5/scene2"]
    vae = load_wan_vae(files / "wan_2.1_vae.safetensors")
    for index, (shard, scene) in enumerate(entries):
        sample = data[index]
        assert scene["cameras"] == sample["rig"].names and scene["caption"] == sample["caption"] != ""
        with safe_open(str(cache / shard), "pt") as f:
            latents, c2w = f.get_tensor(f"{scene['slot']}.latents"), f.get_tensor(f"{scene['slot']}.c2w")
            context = f.get_tensor(f"{scene['slot']}.context")
        assert latents.shape == (3, 16, 2, 4, 4) and latents.dtype == torch.bfloat16
        want = torch.cat([encode_frames(vae, v, "cpu") for v in sample["videos"]])
        torch.testing.assert_close(latents.float(), want, rtol=0.02, atol=0.02)   # bf16 storage
        assert torch.equal(c2w, sample["rig"].c2w) and context.shape[-1] == 32 and 2 < len(context) < 64
    assert load_file(str(cache / latent_cache.NULL_CONTEXT_FILE))["context"].shape == (1, 32)   # "" = </s> only
    assert build(files, "syncamvideo", cache)[1] == 0   # complete: nothing encoded again
    with pytest.raises(InputError, match="other settings.*frames 5"):
        latent_cache.build_latent_cache(data, cache, settings(files, frames=9), encoders(files), progress=False)


def test_multicamvideo_layout_cache_resumes_after_a_lost_shard(files, tmp_path):
    data, encoded = build(files, "multicamvideo", tmp_path / "cache", per_shard=1)
    assert encoded == 2 and sorted(s["key"] for _, s in latent_cache.read_parts(tmp_path / "cache")) == \
        ["f18_aperture10/scene1", "f24_aperture5/scene1"]
    part = tmp_path / "cache" / "part-r0.json"
    manifest = json.loads(part.read_text())
    part.write_text(json.dumps({"shards": manifest["shards"][:1]}))   # a crash before the last manifest update
    assert build(files, "multicamvideo", tmp_path / "cache", per_shard=1)[1] == 1
    # process 1 of 2 encodes its own share into its own manifest
    assert build(files, "multicamvideo", tmp_path / "other", rank=1, world=2)[1] == 1
    assert [p.name for p in (tmp_path / "other").glob("part-*.json")] == ["part-r1.json"]


def test_cached_source_draws_views_cameras_and_padded_captions(cache):
    source = CachedGridSource(cache, VIEWS, "syncammaster", "cpu", seed=3)
    batch = source.grid_batch(4)
    assert batch.latents.shape == (4, VIEWS, 16, 2, 4, 4) and batch.context.shape == (4, 512, 32)
    assert batch.cameras.shape == (4, VIEWS, 2, 12) and torch.isfinite(batch.cameras).all()
    assert torch.allclose(batch.cameras[:, 0], torch.eye(3, 4).flatten().expand(4, 2, 12))   # view 0: the reference
    lengths = (batch.context.abs().sum(-1) > 0).sum(1)
    assert (lengths > 2).all() and (batch.context[:, 60:] == 0).all()
    shard, scene = source.entries[0]
    with safe_open(str(cache / shard), "pt") as f:
        stored, c2w, k = f.get_tensor("0.latents"), f.get_tensor("0.c2w"), f.get_tensor("0.intrinsics")
    source.generator.manual_seed(5)
    latents, _, cameras = source.sample(0)
    pick = torch.randperm(3, generator=torch.Generator().manual_seed(5))[:VIEWS].tolist()
    assert torch.equal(latents, stored[pick].float())
    torch.testing.assert_close(cameras, camera_embedding(CameraRig(c2w[pick], k[pick]), "syncammaster", 2))
    dropped = CachedGridSource(cache, VIEWS, "syncammaster", "cpu", caption_dropout=1.0).grid_batch(2)
    assert (dropped.context.abs().sum(-1) > 0).sum(1).tolist() == [1, 1]   # the empty caption: </s> only
    with pytest.raises(InputError, match="fewer --views"):
        CachedGridSource(cache, 5, "syncammaster", "cpu")


# --- the model's training path ----------------------------------------------------------------------------------

def trainable_tiny(variant="syncammaster"):
    model = tiny_model(variant, seed=4)
    torch.manual_seed(0)
    attach_sync_layers(model, rank=8)
    model.requires_grad_(False)
    for block in model.blocks:
        torch.nn.init.normal_(block.sync.soft.up.weight, std=0.05)
        torch.nn.init.normal_(block.sync.gate.proj.weight, std=0.05)
        block.sync.requires_grad_(True)
    lora = LoraSet(model, rank=4, seed=1)
    for adapter in lora.adapters:
        torch.nn.init.normal_(adapter.up, std=0.05)
    return model, lora


@pytest.mark.parametrize("mode", ["independent", "syncam", "hard", "soft"])
def test_gradient_checkpointing_gives_the_same_gradients(mode):
    model, lora = trainable_tiny()
    g = torch.Generator().manual_seed(1)
    x, ctx = torch.randn(2, 2, 16, 2, 4, 4, generator=g), torch.randn(2, 7, 32, generator=g)
    cam, t = torch.randn(2, 2, 2, 12, generator=g) * 0.1, torch.tensor([300.0, 700.0])
    params = [p for p in list(model.parameters()) + list(lora.parameters()) if p.requires_grad]
    grads = []
    for checkpointing in (False, True):
        model.set_gradient_checkpointing(checkpointing)
        model.set_row_chunks(3 if checkpointing else None)
        for p in params:
            p.grad = None
        model(x, t, ctx, mode=mode, camera=cam).square().mean().backward()
        grads.append([p.grad.clone() if p.grad is not None else None for p in params])
    assert any(gr is not None and gr.abs().max() > 0 for gr in grads[0])
    for a, b in zip(*grads):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_lora_file_is_the_kijai_layout_and_merges_to_the_hooked_output(tmp_path):
    model, lora = trainable_tiny()
    g = torch.Generator().manual_seed(2)
    x, ctx, cam = torch.randn(1, 2, 16, 2, 4, 4, generator=g), torch.randn(1, 7, 32, generator=g), torch.zeros(1, 2, 2, 12)
    with torch.no_grad():
        hooked = model(x, torch.tensor([500.0]), ctx, mode="soft", camera=cam)
    lora.save(tmp_path / "lora.safetensors", dtype=torch.float32)
    lora.remove()
    sd = load_file(str(tmp_path / "lora.safetensors"))
    assert "diffusion_model.blocks.1.self_attn.q.lora_down.weight" in sd and sd["diffusion_model.blocks.0.ffn.2.alpha"] == 4
    assert sd["diffusion_model.blocks.0.ffn.0.lora_up.weight"].shape == (128, 4)
    assert not any("mvs_attn" in k for k in sd)   # not run by the two-stream modes
    with torch.no_grad():
        plain = model(x, torch.tensor([500.0]), ctx, mode="soft", camera=cam)
        apply_lora(model, tmp_path / "lora.safetensors")
        merged = model(x, torch.tensor([500.0]), ctx, mode="soft", camera=cam)
    report = model.applied_loras[-1]
    assert report.layout == "Kijai/lightx2v/ComfyUI" and not report.unmatched and len(report.patched) == 2 * 10   # q k v o of 2 attentions, ffn.0, ffn.2
    assert (plain - hooked).abs().max() > 1e-3
    torch.testing.assert_close(merged, hooked, rtol=1e-4, atol=1e-5)


# --- whole runs ---------------------------------------------------------------------------------------------------

def config(files, out, **kw):
    base = dict(dit=str(files / "dit.safetensors"), out=str(out), cache=str(files / "cache"), height=SIZE, width=SIZE,
                frames=FRAMES, views=VIEWS, steps=6, lr=2e-2, warmup=1, lora_rank=4, sync_rank=8, batch=2,
                checkpoint_every=2, caption_dropout=0.0, progress_bar=False)
    return RealTrainConfig(**{**base, **kw})


def fixed_loss(model, cache, mode="soft"):
    """The flow-matching loss on fixed batches, noise and timesteps."""
    source = CachedGridSource(cache, VIEWS, "syncammaster", "cpu", seed=11)
    total = 0.0
    with torch.no_grad():
        for i in range(3):
            batch = source.grid_batch(4)
            torch.manual_seed(i)
            total += float(flow_matching_loss(model, batch.latents, batch.context, 5.0, mode=mode, camera=batch.cameras))
    return total / 3


def test_training_lowers_the_loss_resumes_and_its_files_load_in_the_nodes(files, cache, tmp_path, monkeypatch):
    out = tmp_path / "run"
    calls, draw = [0], CachedGridSource.grid_batch

    def crash_at_step_3(self, size, single_view=False):
        calls[0] += 1
        if calls[0] == 3:
            raise KeyboardInterrupt("killed")
        return draw(self, size, single_view)

    monkeypatch.setattr(CachedGridSource, "grid_batch", crash_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        run(config(files, out), log=lambda *_: None)
    assert (out / "checkpoint.pt").is_file() and not (out / SYNC_FILE).exists()
    monkeypatch.setattr(CachedGridSource, "grid_batch", draw)
    logs = []
    paths = run(config(files, out, resume=True), log=logs.append)
    assert "resumed at step 2" in logs and paths == {"sync": out / SYNC_FILE, "lora": out / LORA_FILE}
    rows = list(csv.DictReader((out / "loss.csv").open()))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5] and not (out / "checkpoint.pt").exists()
    assert json.loads((out / "progress.json").read_text())["done"] == ["dit"]

    untrained = attach_sync_layers(load_grid_dit(files / "dit.safetensors"), rank=8)
    trained = load_grid_dit(files / "dit.safetensors", sync_weights=out / SYNC_FILE)
    apply_lora(trained, out / LORA_FILE)
    before, after = fixed_loss(untrained, cache), fixed_loss(trained, cache)
    assert after < 0.95 * before, (before, after)

    # the soft-sync workflow: Model Loader (sync_weights) + CamGrid LoRA change the soft-mode output
    from test_nodes import run_sampler
    from camgrid.nodes.loader import CamGridModelLoader
    from camgrid.nodes.lora import CamGridLora
    models = tmp_path / "models"
    for sub in ("diffusion_models", "camgrid", "loras"):
        (models / sub).mkdir(parents=True)
    monkeypatch.setenv("CAMGRID_MODELS_DIR", str(models))
    (models / "diffusion_models" / "dit.safetensors").write_bytes((files / "dit.safetensors").read_bytes())
    (models / "camgrid" / SYNC_FILE).write_bytes((out / SYNC_FILE).read_bytes())
    (models / "loras" / LORA_FILE).write_bytes((out / LORA_FILE).read_bytes())
    save_sync_weights(untrained, models / "camgrid" / "untrained.safetensors")

    def soft(sync, lora=None):
        model = CamGridModelLoader().load("dit.safetensors", "fp32", "auto", sync_weights=sync)[0]
        if lora:
            model = CamGridLora().apply(model, lora, 1.0)[0]
        return run_sampler(model, sync_mode="soft")[0]["samples"]

    plain, synced, full = soft("untrained.safetensors"), soft(SYNC_FILE), soft(SYNC_FILE, LORA_FILE)
    assert (synced - plain).abs().max() > 1e-3 and (full - synced).abs().max() > 1e-3
    assert torch.isfinite(full).all()


@pytest.mark.parametrize("argv, expected", [
    (["--block-swap", "2"], "inference only"),
    (["--attention", "sage"], "backward"),
    (["--modes", "hard,fused"], "--modes"),
    (["--data", "{files}/syncamvideo"], "--vae and --text-encoder"),
    (["--cache-views", "1"], "fewer than --views"),
])
def test_bad_options_are_one_line_errors_before_loading(files, tmp_path, capsys, argv, expected):
    argv = [a.format(files=files) for a in argv]
    rc = main(["train", "--dit", str(files / "dit.safetensors"), "--cache", str(tmp_path), "--out", str(tmp_path / "o"),
               "--device", "cpu", *argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and expected in err and len(err.splitlines()) == 1, err


def test_torchrun_two_gloo_processes_ddp_and_fsdp_take_the_same_step(files, cache, tmp_path):
    """One step with two processes (gloo, CPU): DDP, then FSDP; rank 0 alone writes; both compute the same."""
    package_parent = str(Path(camgrid.__file__).parent.parent)   # the checkout conftest.py links as `camgrid`
    env = {**os.environ, "PYTHONPATH": package_parent, "OMP_NUM_THREADS": "1"}
    losses = {}
    for parallel in ("ddp", "fsdp"):
        out = tmp_path / parallel
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "camgrid", "train", "--dit", str(files / "dit.safetensors"), "--cache", str(cache),
               "--out", str(out), "--views", str(VIEWS), "--steps", "1", "--lora-rank", "4", "--sync-rank", "8",
               "--device", "cpu", "--no-progress", "--parallel", parallel, "--checkpoint-every", "1"]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        rows = list(csv.DictReader((out / "loss.csv").open()))
        assert [r["step"] for r in rows] == ["1"]
        losses[parallel] = float(rows[0]["loss"])
        model = load_grid_dit(files / "dit.safetensors", sync_weights=out / SYNC_FILE)
        apply_lora(model, out / LORA_FILE)
        assert model.applied_loras[-1].patched and model.has_sync_weights
    assert losses["ddp"] == pytest.approx(losses["fsdp"], rel=1e-4)


def test_bench_train_step_smoke_on_cpu(tmp_path, capsys):
    """benchmarks/bench_train_step.py --tiny --device cpu: every row runs (timings are not checked)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("bench_train_step", Path(__file__).resolve().parents[1] /
                                                  "benchmarks" / "bench_train_step.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rows = bench.main(["--tiny", "--device", "cpu", "--json", str(tmp_path / "rows.json")])
    assert [r["row"] for r in rows] == ["forward (no grad) hard", "train step hard #1", "train step hard #2",
                                        "train step soft #1", "train step soft #2"]
    assert all(r["seconds"] is not None and r["note"] == "" for r in rows)
    assert "trainable:" in capsys.readouterr().out and (tmp_path / "rows.json").is_file()
    skipped = bench.main(["--tiny", "--device", "cpu", "--budget", "0"])
    assert all(r["seconds"] is None and r["note"].startswith("skipped") for r in skipped)


def test_synthetic_data_source_is_written_once_in_the_published_layout(tmp_path):
    from camgrid.train.real.distributed import Dist
    from camgrid.train.real.run import SYNTHETIC_FOLDER, dataset_root
    cfg = RealTrainConfig(dit=str(Path(__file__)), out=str(tmp_path), data="synthetic:1", vae="v", text_encoder="t",
                          height=16, width=32, frames=FRAMES, views=VIEWS)
    logs = []
    root = dataset_root(cfg, Dist(), logs.append)
    assert root == tmp_path / SYNTHETIC_FOLDER and len(logs) == 1
    scene = root / "train" / "f24_aperture5" / "scene1"
    assert sorted(p.name for p in (scene / "videos").iterdir()) == [f"cam{k:02d}.mp4" for k in range(1, 5)]
    assert (scene / CAMERA_FILE).is_file()
    sample = MultiCamDataset(root, views=VIEWS, frames=FRAMES, height=16, width=32)[0]
    assert sample["videos"].shape == (VIEWS, FRAMES, 16, 32, 3) and sample["caption"]
    assert dataset_root(cfg, Dist(), logs.append) == root and len(logs) == 1   # written once
