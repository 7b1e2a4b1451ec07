"""The key layouts camgrid reads for the VAE and umT5 are ComfyUI's own: tiny ComfyUI WanVAE and T5 (umt5)
modules, built by ComfyUI's code, their state dicts saved as files, loaded by camgrid, and the outputs compared
with ComfyUI's forward passes (fp32). ComfyUI runs in a child process, so that importing it does not make this
test process look like a ComfyUI host to camgrid's nodes."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from camgrid.model.components import encode_prompts, load_umt5, load_wan_vae, file_kind

STUBS = Path(__file__).resolve().parent / "stubs"
COMFY_SIDE = r'''
import json, sys, torch
from safetensors.torch import save_file
import comfy.cli_args
comfy.cli_args.args.cpu = True
import comfy.ldm.wan.vae as wan_vae, comfy.text_encoders.t5 as t5, comfy.ops
out = sys.argv[1]
torch.manual_seed(0)
vae = wan_vae.WanVAE(dim=8, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                     temperal_downsample=[False, True, True]).eval()
with torch.no_grad():
    for name, p in vae.named_parameters():
        p.copy_(torch.randn_like(p) * 0.1 + (1.0 if name.endswith("gamma") else 0.0))
    video = torch.rand(1, 3, 5, 32, 32) * 2 - 1
    mu = vae.encode(video)
    z = torch.randn(1, 16, 2, 4, 4)
    decoded = vae.decode(z)
save_file({k: v.contiguous() for k, v in vae.state_dict().items()}, out + "/wan_2.1_vae.safetensors")
config = json.load(open("comfy/text_encoders/umt5_config_xxl.json"))
config.update(d_model=32, d_ff=48, num_heads=4, d_kv=8, num_layers=2, vocab_size=64)
text = t5.T5(config, dtype=torch.float32, device="cpu", operations=comfy.ops.manual_cast).eval()
with torch.no_grad():
    for name, p in text.named_parameters():
        p.copy_(torch.randn_like(p) * 0.3 + (1.0 if "layer_norm" in name else 0.0))
    ids = torch.randint(2, 64, (2, 12)); ids[0, 7] = 1; ids[0, 8:] = 0; ids[1, 11] = 1
    mask = (torch.arange(12)[None] < torch.tensor([[8], [12]])).long()
    feats = text(ids, mask)[0]
save_file({k: v.contiguous() for k, v in text.state_dict().items()}, out + "/umt5_xxl_fp16.safetensors")
save_file({"video": video, "mu": mu, "z": z, "decoded": decoded, "ids": ids, "mask": mask, "feats": feats},
          out + "/reference.safetensors")
'''


@pytest.fixture(scope="module")
def comfy_files(comfyui_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("comfy_layouts")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([comfyui_path, str(STUBS)])}
    done = subprocess.run([sys.executable, "-c", COMFY_SIDE, str(out)], cwd=comfyui_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_comfyui_wan_vae_state_dict_loads_and_matches_comfyuis_forward(comfy_files):
    ref = load_file(str(comfy_files / "reference.safetensors"))
    sd = load_file(str(comfy_files / "wan_2.1_vae.safetensors"))
    assert file_kind(sd) == "wan_vae" and len(sd) == 194   # the real wan_2.1_vae.safetensors has 194 tensors too
    vae = load_wan_vae(comfy_files / "wan_2.1_vae.safetensors")
    with torch.no_grad():
        mu = vae.encode(ref["video"]).latent_dist.mode()
        decoded = vae.decode(ref["z"]).sample
    torch.testing.assert_close(mu, ref["mu"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(decoded, ref["decoded"].clamp(-1, 1), rtol=1e-4, atol=1e-5)   # diffusers clamps


def test_comfyui_umt5_state_dict_loads_and_matches_comfyuis_forward(comfy_files):
    ref = load_file(str(comfy_files / "reference.safetensors"))
    encoder = load_umt5(comfy_files / "umt5_xxl_fp16.safetensors", dtype=torch.float32)
    with torch.no_grad():
        feats = encoder(input_ids=ref["ids"], attention_mask=ref["mask"]).last_hidden_state
    valid = ref["mask"].bool()
    torch.testing.assert_close(feats[valid], ref["feats"][valid], rtol=1e-4, atol=1e-5)

    class Ids:   # the tokenizer's output for these ids, to check encode_prompts' zero padding on ComfyUI weights
        def __call__(self, prompts, length):
            ids = torch.zeros(2, length, dtype=torch.long)
            ids[:, :12] = ref["ids"]
            mask = torch.zeros(2, length, dtype=torch.long)
            mask[:, :12] = ref["mask"]
            return ids, mask

    padded = encode_prompts(encoder, Ids(), ["a", "b"], "cpu")
    torch.testing.assert_close(padded[0, :8], ref["feats"][0, :8], rtol=1e-4, atol=1e-5)
    assert padded[0, 8:].abs().max() == 0 and padded.shape == (2, 512, 32)
    assert json.dumps(sorted(load_file(str(comfy_files / "umt5_xxl_fp16.safetensors")))).count("relative_attention_bias") == 2
