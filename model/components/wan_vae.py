"""The Wan2.1 VAE from the files people have, as diffusers' `AutoencoderKLWan`.

Accepted:
  - a single file in the original Wan layout: `wan_2.1_vae.safetensors` (Comfy-Org's repackaged Wan2.1 files,
    ComfyUI's core Load VAE), `Wan2_1_VAE_bf16.safetensors` (Kijai), `Wan2.1_VAE.pth` (Wan-AI). The module
    names are those of Wan's `WanVAE` (= ComfyUI's comfy/ldm/wan/vae.py): `encoder.conv1`,
    `encoder.downsamples.N.residual.K`, `encoder.middle.{0,1,2}`, `encoder.head.{0,2}`, `conv1`, `conv2`,
    `decoder.conv1`, `decoder.middle`, `decoder.upsamples.N`, `decoder.head`;
  - a diffusers folder (the `vae/` folder of a Wan2.1 diffusers repository: config.json + weights).

The original -> diffusers names (`to_diffusers_names`), from the two module trees:
  encoder.conv1 / decoder.conv1          -> encoder.conv_in / decoder.conv_in
  conv1 / conv2 (top level)              -> quant_conv / post_quant_conv
  *.middle.0 / .1 / .2                   -> *.mid_block.resnets.0 / attentions.0 / resnets.1
  *.head.0.gamma / *.head.2              -> *.norm_out.gamma / *.conv_out
  encoder.downsamples.N                  -> encoder.down_blocks.N (same flat numbering)
  decoder.upsamples.N                    -> decoder.up_blocks.S.resnets.P (P <= num_res_blocks) or
                                            decoder.up_blocks.S.upsamplers.0, with S, P = divmod(N, num_res_blocks + 2)
  in a residual block: residual.0.gamma -> norm1.gamma, residual.2 -> conv1, residual.3.gamma -> norm2.gamma,
                       residual.6 -> conv2, shortcut -> conv_shortcut; resample.1, time_conv, attention
                       (norm, to_qkv, proj) keep their names.
The config (base width, channel multipliers, residual blocks per stage, which stages halve time, latent
channels) is read off the shapes, so a file of any width loads (tests use tiny ones); every key and shape is
checked against the AutoencoderKLWan built from it before a tensor is assigned.

Latents are normalised per channel, `(z - latents_mean) / latents_std`, with Wan2.1's numbers (the diffusers
config's); a VAE with other than 16 latent channels (test stand-ins) gets mean 0, std 1.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Union

import torch

from ..checks import InputError
from ..weights_io import CheckpointError, check_finite, check_layout, open_weights
from .kinds import folder_config_value, require_kind

PathLike = Union[str, Path]
WAN21_LATENT_CHANNELS = 16
_RESIDUAL_PARTS = {"residual.0.gamma": "norm1.gamma", "residual.2.": "conv1.", "residual.3.gamma": "norm2.gamma",
                   "residual.6.": "conv2.", "shortcut.": "conv_shortcut."}
_MIDDLE = {"0": "mid_block.resnets.0.", "1": "mid_block.attentions.0.", "2": "mid_block.resnets.1."}
_HEAD = {"head.0.gamma": "norm_out.gamma", "head.2.": "conv_out."}


def _residual_rename(rest: str) -> str:
    for old, new in _RESIDUAL_PARTS.items():
        if rest.startswith(old):
            return new + rest[len(old):]
    return rest   # resample.1.*, time_conv.*, attention norm / to_qkv / proj


def to_diffusers_names(keys, num_res_blocks: int) -> dict:
    """{original Wan VAE key: diffusers AutoencoderKLWan key}."""
    out = {}
    for key in keys:
        new = key
        if key.startswith(("conv1.", "conv2.")):
            new = ("quant_conv." if key.startswith("conv1.") else "post_quant_conv.") + key[6:]
        else:
            side, _, rest = key.partition(".")   # encoder | decoder
            if rest.startswith("conv1."):
                new = f"{side}.conv_in.{rest[6:]}"
            elif rest.startswith("middle."):
                index, _, tail = rest[len("middle."):].partition(".")
                new = f"{side}.{_MIDDLE.get(index, 'middle.' + index + '.')}{_residual_rename(tail)}"
            elif rest.startswith("head."):
                head = next((h for h in _HEAD if rest.startswith(h)), None)
                new = f"{side}.{_HEAD[head]}{rest[len(head):]}" if head else key
            elif rest.startswith("downsamples."):
                index, _, tail = rest[len("downsamples."):].partition(".")
                new = f"{side}.down_blocks.{index}.{_residual_rename(tail)}"
            elif rest.startswith("upsamples.") and rest[len("upsamples."):].split(".")[0].isdigit():
                index, _, tail = rest[len("upsamples."):].partition(".")
                stage, pos = divmod(int(index), num_res_blocks + 2)
                slot = f"resnets.{pos}" if pos <= num_res_blocks else "upsamplers.0"
                new = f"{side}.up_blocks.{stage}.{slot}.{_residual_rename(tail)}"
        out[key] = new
    return out


def infer_config(name: str, shapes: dict) -> dict:
    """AutoencoderKLWan keyword arguments from the shapes of an original-layout state dict."""
    def shape(key):
        if key not in shapes:
            raise CheckpointError(f"{name}: not a Wan2.1 VAE in the original layout: key {key!r} is missing")
        return tuple(shapes[key])

    base = shape("encoder.conv1.weight")[0]
    z_dim = shape("conv2.weight")[0]
    down = sorted({int(k.split(".")[2]) for k in shapes if k.startswith("encoder.downsamples.")})
    kinds = ["resample" if f"encoder.downsamples.{i}.resample.1.weight" in shapes else "residual" for i in down]
    stages, blocks, dims, temporal = [], 0, [], []
    for i, kind in zip(down, kinds):
        if kind == "residual":
            blocks += 1
            if blocks == 1:
                dims.append(shape(f"encoder.downsamples.{i}.residual.2.weight")[0])
        else:
            stages.append(blocks)
            temporal.append(f"encoder.downsamples.{i}.time_conv.weight" in shapes)
            blocks = 0
    stages.append(blocks)
    if not down or len(set(stages)) != 1 or stages[0] < 1 or any(d % base for d in dims):
        raise CheckpointError(f"{name}: the encoder's blocks do not form a Wan2.1 VAE (residual blocks per stage "
                              f"{stages}); the file is damaged or another VAE")
    means, stds = _latent_stats(z_dim)
    return {"base_dim": base, "z_dim": z_dim, "dim_mult": [d // base for d in dims], "num_res_blocks": stages[0],
            "attn_scales": [], "temperal_downsample": temporal, "in_channels": shape("encoder.conv1.weight")[1],
            "out_channels": shape("decoder.head.2.weight")[0], "latents_mean": means, "latents_std": stds}


def _latent_stats(z_dim: int) -> tuple[list, list]:
    if z_dim == WAN21_LATENT_CHANNELS:   # diffusers' defaults are Wan2.1's numbers
        from diffusers import AutoencoderKLWan   # lazy: diffusers takes seconds to import
        defaults = inspect.signature(AutoencoderKLWan.__init__).parameters
        return list(defaults["latents_mean"].default), list(defaults["latents_std"].default)
    return [0.0] * z_dim, [1.0] * z_dim


def _check_against_model(name: str, model, renamed: dict, shapes: dict) -> None:
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {renamed[k]: tuple(s) for k, s in shapes.items()}
    check_layout(name, expected, got, "a Wan2.1 VAE", "the file is damaged or another VAE")


def load_wan_vae(path: PathLike, device="cpu", dtype: torch.dtype = torch.float32):
    """A Wan2.1 VAE file (original layout) or diffusers folder -> AutoencoderKLWan in eval mode, no gradients."""
    from diffusers import AutoencoderKLWan   # lazy: diffusers takes seconds to import
    path = Path(path)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise InputError(f"VAE folder {str(path)!r} has no config.json: pass a diffusers-format folder or the "
                             "single file (e.g. wan_2.1_vae.safetensors)")
        vae = AutoencoderKLWan.from_pretrained(str(path), torch_dtype=dtype)
        return vae.to(device).eval().requires_grad_(False)
    with open_weights(path, what="VAE file") as weights:
        require_kind(weights, "wan_vae", "--vae")
        shapes = {k: info.shape for k, info in weights.infos.items()}
        config = infer_config(weights.name, shapes)
        renamed = to_diffusers_names(shapes, config["num_res_blocks"])
        with torch.device("meta"):
            vae = AutoencoderKLWan(**config)
        _check_against_model(weights.name, vae, renamed, shapes)
        state = {}
        for key in weights.infos:
            stored = weights.tensor(key)
            value = stored.to(device=device, dtype=dtype)
            check_finite(weights.name, key, value, stored)
            state[renamed[key]] = value
    vae.load_state_dict(state, strict=True, assign=True)
    return vae.eval().requires_grad_(False)


def describe_wan_vae(path: PathLike) -> dict:
    """{"z_dim", "layout"} of a VAE file or folder, from its header / config.json only."""
    path = Path(path)
    if path.is_dir():
        z_dim = folder_config_value(path, "z_dim", "--vae", "pass a diffusers-format folder or the single VAE file")
        return {"z_dim": z_dim, "layout": "diffusers folder"}
    with open_weights(path, what="VAE file") as weights:
        require_kind(weights, "wan_vae", "--vae")
        shapes = {k: info.shape for k, info in weights.infos.items()}
        return {"z_dim": infer_config(weights.name, shapes)["z_dim"], "layout": "original Wan (single file)"}


# --- frames <-> normalised latents -------------------------------------------------------------

def latent_stats(vae, device, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std), each [1, C, 1, 1, 1]: the per-channel normalisation of the DiT's latents."""
    c = vae.config.z_dim
    mean = torch.tensor(vae.config.latents_mean, dtype=dtype, device=device).view(1, c, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std, dtype=dtype, device=device).view(1, c, 1, 1, 1)
    return mean, std


@torch.no_grad()
def encode_frames(vae, frames, device) -> torch.Tensor:
    """Frames [F, H, W, 3] in 0..1 -> normalised latent [1, C, T, H/8, W/8] float32 (the posterior mean)."""
    dtype = next(vae.parameters()).dtype
    x = torch.as_tensor(frames, dtype=torch.float32).to(device)
    x = (x.permute(3, 0, 1, 2)[None] * 2.0 - 1.0).to(dtype)   # [1, 3, F, H, W] in -1..1
    z = vae.encode(x).latent_dist.mode()
    mean, std = latent_stats(vae, device)
    return (z.float() - mean) / std

