"""model/components: the Wan VAE, umT5 and its tokenizer from tiny stand-in files in the real key layouts
(tests/component_helpers.py), checked numerically against the same weights loaded into diffusers /
transformers directly. fp32 comparisons are exact up to float rounding (the weights are the same numbers)."""
import copy

import pytest
import torch
from safetensors.torch import load_file, save_file

from component_helpers import (dequantized_comfy_state, save_comfy_umt5, save_original_vae, save_wan_umt5,
                               tiny_spiece, tiny_umt5, tiny_wan_vae)
from grid_helpers import tiny_model

from camgrid.model import save_grid_dit
from camgrid.model.checkpoint import CheckpointError
from camgrid.model.checks import InputError
from camgrid.model.components import (SentencePieceTokenizer, TransformersTokenizer, describe_umt5, describe_wan_vae,
                                      encode_frames, encode_prompts, file_kind, find_tokenizer, load_tokenizer,
                                      load_umt5, load_wan_vae)
from camgrid.model.fp8 import FP8Linear
from camgrid.model.pipeline import Pipeline

pytest.importorskip("sentencepiece", reason="umT5's tokenizer needs sentencepiece (test extra)")
PROMPTS = ["a red fox runs in the snow", "a cat", ""]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("components")
    spiece = tiny_spiece()
    umt5 = tiny_umt5(seed=1)
    vae = tiny_wan_vae(seed=2)
    paths = {"spiece": spiece, "umt5_ref": copy.deepcopy(umt5), "vae_ref": vae,
             "comfy": save_comfy_umt5(umt5, root / "umt5_xxl_fp16.safetensors", spiece),
             "comfy_fp8": save_comfy_umt5(umt5, root / "umt5_xxl_fp8_e4m3fn_scaled.safetensors", spiece, fp8=True),
             "wan_t5": save_wan_umt5(umt5, root / "umt5-xxl-enc-bf16.safetensors"),
             "vae": save_original_vae(vae, root / "wan_2.1_vae.safetensors", dtype=torch.float32),
             "root": root}
    (root / "spiece.model").write_bytes(spiece)
    return paths


def reference_umt5(state, config):
    from transformers import UMT5EncoderModel
    model = UMT5EncoderModel(config).eval()
    model.load_state_dict(state)
    return model


def features(encoder, tokenizer):
    ids, mask = tokenizer(PROMPTS, 16)
    with torch.no_grad():
        return encoder(input_ids=ids, attention_mask=mask).last_hidden_state.float()


def test_comfy_umt5_file_equals_transformers_with_the_same_weights(files):
    tok = load_tokenizer(files["comfy"])
    ref = reference_umt5({k: v.float() for k, v in load_file(str(files["comfy"])).items() if k != "spiece_model"}
                         | {"encoder.embed_tokens.weight": load_file(str(files["comfy"]))["shared.weight"].float()},
                         files["umt5_ref"].config)
    got = load_umt5(files["comfy"], dtype=torch.float32)
    assert got.config.d_model == 32 and got.config.num_heads == 4 and got.config.num_layers == 2
    torch.testing.assert_close(features(got, tok), features(ref, tok), rtol=0, atol=1e-6)


def test_fp8_scaled_file_is_dequantised_with_its_scales_or_kept_in_fp8(files):
    tok = load_tokenizer(files["comfy_fp8"])
    ref = reference_umt5(dequantized_comfy_state(files["comfy_fp8"]), files["umt5_ref"].config)
    want = features(ref, tok)
    torch.testing.assert_close(features(load_umt5(files["comfy_fp8"], dtype=torch.float32), tok), want, rtol=0, atol=1e-6)
    stored = load_umt5(files["comfy_fp8"], dtype=torch.float32, fp8=True)
    q = stored.encoder.block[1].layer[0].SelfAttention.q
    assert isinstance(q, FP8Linear) and q.weight_fp8.dtype == torch.float8_e4m3fn
    torch.testing.assert_close(features(stored, tok), want, rtol=0, atol=1e-5)
    # bf16 compute (the default): loose
    assert (features(load_umt5(files["comfy_fp8"]), tok) - want).abs().max() < 0.1 * want.abs().max()


def test_wan_layout_umt5_maps_gate_fc1_fc2_onto_the_gated_ffn(files):
    tok = load_tokenizer(files["comfy"])
    ref = copy.deepcopy(files["umt5_ref"]).to(torch.bfloat16).float()
    torch.testing.assert_close(features(load_umt5(files["wan_t5"], dtype=torch.float32), tok), features(ref, tok),
                               rtol=0, atol=1e-6)
    assert describe_umt5(files["wan_t5"]) == {"d_model": 32, "layout": "Wan names", "has_tokenizer": False}


def test_tokenizer_from_the_file_matches_sentencepiece_and_wan_conventions(files):
    import sentencepiece as spm
    tok = load_tokenizer(files["comfy"])
    assert isinstance(tok, SentencePieceTokenizer)
    ids, mask = tok(["a  red\tfox &amp; a cat", ""], 32)
    sp = spm.SentencePieceProcessor(model_proto=files["spiece"])
    want = sp.encode("a red fox & a cat") + [1]   # whitespace collapsed, HTML unescaped, </s> = 1
    assert ids[0, :len(want)].tolist() == want and ids[0, len(want):].eq(0).all()
    assert mask.sum(1).tolist() == [len(want), 1] and ids[1, 0] == 1
    long_ids, long_mask = tok(["fox " * 100], 8)
    assert long_mask.sum() == 8 and long_ids[0, -1] == 1   # cut to 7 pieces + </s>
    # the same model given as a .model file or folder-less: the same ids
    assert torch.equal(load_tokenizer(tokenizer=files["root"] / "spiece.model")(PROMPTS, 16)[0], tok(PROMPTS, 16)[0])
    assert "embedded" in find_tokenizer(files["comfy"])
    with pytest.raises(InputError, match="--tokenizer"):
        find_tokenizer(files["wan_t5"])   # Wan's file carries no tokenizer


def test_prompt_features_are_zero_padded_to_512(files):
    encoder, tok = load_umt5(files["comfy"], dtype=torch.float32), load_tokenizer(files["comfy"])
    feats = encode_prompts(encoder, tok, PROMPTS, "cpu")
    lengths = tok(PROMPTS, 512)[1].sum(1).tolist()
    assert feats.shape == (3, 512, 32)
    for row, n in zip(feats, lengths):
        assert row[:n].abs().amin(-1).min() > 0 and row[n:].abs().max() == 0
    # running only the longest prompt's tokens changes nothing (masked padding)
    ids, mask = tok(PROMPTS, 512)
    with torch.no_grad():
        full = encoder(input_ids=ids, attention_mask=mask).last_hidden_state * mask[..., None]
    torch.testing.assert_close(feats, full, rtol=0, atol=1e-5)


def test_original_layout_vae_equals_diffusers_with_the_same_weights(files):
    vae = load_wan_vae(files["vae"])
    ref = files["vae_ref"]
    assert vae.config.base_dim == 8 and vae.config.z_dim == 16 and list(vae.config.temperal_downsample) == [False, True, True]
    frames = torch.rand(5, 32, 32, 3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(encode_frames(vae, frames, "cpu"), encode_frames(ref, frames, "cpu"), rtol=0, atol=1e-6)
    z = torch.randn(1, 16, 2, 4, 4, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(vae.decode(z).sample, ref.decode(z).sample, rtol=0, atol=1e-6)
    assert describe_wan_vae(files["vae"])["z_dim"] == 16


def test_files_in_the_wrong_place_or_damaged_are_refused_by_name(files, tmp_path):
    with pytest.raises(CheckpointError, match="passed as --vae.*umT5 text encoder.*--text-encoder"):
        load_wan_vae(files["comfy"])
    with pytest.raises(CheckpointError, match="passed as --text-encoder.*Wan2.1 VAE.*--vae"):
        load_umt5(files["vae"])
    dit = tmp_path / "dit.safetensors"
    save_grid_dit(tiny_model(), dit)
    with pytest.raises(CheckpointError, match="video DiT.*--dit"):
        load_umt5(dit)
    sd = load_file(str(files["vae"]))
    save_file({k: v for k, v in sd.items() if "decoder.upsamples.5." not in k}, str(tmp_path / "cut.safetensors"))
    with pytest.raises(CheckpointError, match="do not form a Wan2.1 VAE.*missing"):
        load_wan_vae(tmp_path / "cut.safetensors")
    wan22 = {**sd, "decoder.upsamples.0.upsamples.0.residual.2.weight": torch.zeros(1)}
    assert file_kind(wan22) == "wan22_vae" and file_kind(load_file(str(files["wan_t5"]))) == "umt5_wan"


def test_pipeline_from_comfyui_single_files(files, tmp_path):
    dit = tmp_path / "syncam.safetensors"
    save_grid_dit(tiny_model("syncammaster", seed=3), dit)
    pipe = Pipeline.from_files(dit, files["vae"], files["comfy_fp8"], device="cpu")
    assert isinstance(pipe.tokenizer, SentencePieceTokenizer) and pipe.text_encoder.dtype == torch.bfloat16
    frames = pipe.generate("a red fox", rig="orbit_arc", views=2, width=32, height=32, frames=5, steps=2, seed=1)
    assert frames.shape == (2, 5, 32, 32, 3) and torch.isfinite(frames).all()
    wrapped = Pipeline(pipe.model, pipe.vae, pipe.text_encoder, pipe.tokenizer)   # built by hand: kept as is
    assert wrapped.tokenizer is pipe.tokenizer and TransformersTokenizer.wrap(object()).source == "object"


def test_pipeline_vae_in_bfloat16(files, tmp_path):
    """vae_dtype=bfloat16 (the CLI's --vae-dtype) loads the VAE in bf16 and decodes close to the float32 VAE."""
    dit = tmp_path / "wan.safetensors"
    save_grid_dit(tiny_model("wan", seed=4), dit)
    full = Pipeline.from_files(dit, files["vae"], files["comfy_fp8"], device="cpu")
    half = Pipeline.from_files(dit, files["vae"], files["comfy_fp8"], device="cpu", vae_dtype=torch.bfloat16)
    assert next(full.vae.parameters()).dtype == torch.float32 and next(half.vae.parameters()).dtype == torch.bfloat16
    grid = torch.randn(2, full.vae.config.z_dim, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    a, b = full.decode(grid), half.decode(grid)
    assert a.dtype == b.dtype == torch.float32 and a.shape == b.shape and torch.isfinite(b).all()
    assert (a - b).abs().max() < 0.05 and not torch.equal(a, b)   # bf16 rounding, not a different network
