"""Test-only stand-ins for the two loaders whose real weights cannot be had in tests.

The umT5-XXL text encoder (5.7B parameters) and the Wan2.1 VAE have fixed architectures in
ComfyUI, so no tiny file loads through core CLIPLoader / VAELoader. The host tests swap ONLY those
two loader nodes for these; everything else in a workflow (CLIPTextEncode, our nodes, the video
save nodes) is the real thing. The objects below speak the same methods the real ones do:

  StandInCLIP.tokenize(text) / encode_from_tokens_scheduled(tokens) -> CONDITIONING
      [[features [1, tokens, dim], {"pooled_output": None}]], deterministic per text
  StandInVAE.decode(latent [B, C, T, h, w]) -> [B, 4(T-1)+1, 8h, 8w, 3] in 0..1
  StandInVAE.decode_tiled(...), encode(frames [F, H, W, 3]) -> [1, C, (F-1)//4+1, H/8, W/8]

This folder is a ComfyUI custom node pack only when a test links it into custom_nodes; the plain
classes are also imported by tests/test_nodes.py. No ComfyUI import here.
"""
import hashlib

import torch
import torch.nn.functional as F

TEXT_DIM = 32  # the tiny test DiT's text width


class StandInCLIP:
    def __init__(self, dim: int = TEXT_DIM):
        self.dim = dim

    def tokenize(self, text: str):
        return [w for w in str(text).split() if w] or [""]

    def encode_from_tokens_scheduled(self, tokens, **_):
        seed = int(hashlib.sha256(" ".join(tokens).encode()).hexdigest()[:8], 16)
        g = torch.Generator().manual_seed(seed)
        return [[torch.randn(1, len(tokens), self.dim, generator=g), {"pooled_output": None}]]


class StandInVAE:
    """A fixed, weight-free 'VAE' with the Wan2.1 VAE's shapes (8x space, 4x time, 16 channels)."""

    latent_channels = 16

    def __init__(self):
        self.calls = []

    def spacial_compression_decode(self):
        return 8

    def temporal_compression_decode(self):
        return 4

    def decode(self, samples, **_):
        self.calls.append(("decode", tuple(samples.shape)))
        b, c, t, h, w = samples.shape
        rgb = torch.sigmoid(samples[:, :3].float())                           # [B, 3, T, h, w]
        video = rgb.repeat_interleave(4, dim=2)[:, :, 3:]                     # 4(T-1)+1 frames
        video = F.interpolate(video, scale_factor=(1, 8, 8), mode="nearest")
        return video.permute(0, 2, 3, 4, 1).contiguous()                     # [B, F, H, W, 3]

    def decode_tiled(self, samples, tile_x=None, tile_y=None, overlap=None, tile_t=None, overlap_t=None):
        self.calls.append(("decode_tiled", tuple(samples.shape), tile_x, tile_t))
        return self.decode(samples)

    def encode(self, pixels):
        self.calls.append(("encode", tuple(pixels.shape)))
        x = pixels[..., :3].float().permute(3, 0, 1, 2)[None]                # [1, 3, F, H, W]
        x = x[:, :, ::4]                                                      # frames 0, 4, 8, ...
        x = F.avg_pool3d(x, kernel_size=(1, 8, 8))
        x = torch.logit(x.clamp(1e-3, 1 - 1e-3))
        return x.repeat(1, 6, 1, 1, 1)[:, :self.latent_channels]


class StandInCLIPLoader:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip_name": ("STRING", {"default": ""}), "type": ("STRING", {"default": "wan"})},
                "optional": {"device": ("STRING", {"default": "default"})}}

    RETURN_TYPES = ("CLIP",)
    FUNCTION = "load"
    CATEGORY = "testing"

    def load(self, clip_name, type, device="default"):
        return (StandInCLIP(),)


class StandInVAELoader:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"vae_name": ("STRING", {"default": ""})}}

    RETURN_TYPES = ("VAE",)
    FUNCTION = "load"
    CATEGORY = "testing"

    def load(self, vae_name):
        return (StandInVAE(),)


NODE_CLASS_MAPPINGS = {"TestStandInCLIPLoader": StandInCLIPLoader, "TestStandInVAELoader": StandInVAELoader}
