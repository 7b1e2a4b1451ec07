"""Text -> multi-view video grid, and video -> novel views, from local files (no ComfyUI).

    pipe = Pipeline.from_files(dit="syncammaster.safetensors", vae="Wan2.1-T2V-1.3B-Diffusers/vae",
                               text_encoder="Wan2.1-T2V-1.3B-Diffusers/text_encoder")
    frames = pipe.generate("a red fox in the snow", rig="orbit_arc", views=4)   # [V, F, H, W, 3] in 0..1

Components, as diffusers' Wan pipeline uses them:
  - the DiT: any file `load_grid_dit` reads (plain Wan, SynCamMaster, ReCamMaster);
  - the VAE: a diffusers-format `AutoencoderKLWan` folder; latents are normalised per channel,
    `(z - latents_mean) / latents_std`, with the numbers from the VAE's config;
  - the text encoder: a `UMT5EncoderModel` folder + its tokenizer; prompts are padded/truncated to
    512 tokens and the features of padding positions are zeroed (WanPipeline._get_t5_prompt_embeds).

`add_arguments` / `run` implement `python -m camgrid generate` (see camgrid/__main__.py).
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

from .camera import RIG_PRESETS, TRANSLATION_SCALE, CameraRig, latent_frame_count, load_rig, make_preset, \
    relative_extrinsics
from .conditioning import SOURCE_USES, SourceVideo
from .dit import MODES
from .lora.spec import parse_lora_arg
from .sampling import GUIDANCE, SCHEDULERS, sample_grid

TEXT_LENGTH = 512  # Wan's umT5 sequence length
SPATIAL_STRIDE = 16  # 8x VAE times the DiT's 2x2 patch: width and height must be multiples of this
# diffusers' Wan example negative prompt (Wan's own default is the Chinese original of it)
DEFAULT_NEGATIVE_PROMPT = (
    "Bright tones, overexposed, static, blurred details, subtitles, style, works, paintings, images, static, "
    "overall gray, worst quality, low quality, JPEG compression residue, ugly, incomplete, extra fingers, poorly "
    "drawn hands, poorly drawn faces, deformed, disfigured, misshapen limbs, fused fingers, still picture, messy "
    "background, three legs, many people in the background, walking backwards")

# mode "auto": what each released model was trained for (plain Wan: training-free 4Real-Video hard sync)
AUTO_MODE = {"syncammaster": "syncam", "recammaster": "recam", "wan": "hard"}
# camera reference per variant (camera.relative_extrinsics): SynCamMaster encodes every view relative
# to view 0 at the same frame; ReCamMaster encodes each target path relative to its own first pose.
CAMERA_REFERENCE = {"syncammaster": "view0", "recammaster": "first_pose", "wan": "view0"}

log_default = logging.getLogger("camgrid").info


# ---------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------

def pick_mode(variant: str, mode: str = "auto") -> str:
    if mode == "auto":
        return AUTO_MODE[variant]
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not 'auto' or one of {MODES}")
    return mode


def check_video_size(width: int, height: int, frames: int) -> None:
    if frames < 1 or (frames - 1) % 4:
        lo = max(1, (frames - 1) // 4 * 4 + 1)
        raise ValueError(f"frames must be 4k+1 (the Wan VAE packs 4 frames per latent frame after the first), got "
                         f"{frames}: use {lo} or {lo + 4}")
    for name, size in (("width", width), ("height", height)):
        if size < SPATIAL_STRIDE or size % SPATIAL_STRIDE:
            near = max(SPATIAL_STRIDE, round(size / SPATIAL_STRIDE) * SPATIAL_STRIDE)
            raise ValueError(f"{name} must be a positive multiple of {SPATIAL_STRIDE} (8x VAE, 2x2 patches), "
                             f"got {size}: use {near}")


def build_rig(rig: Union[str, Path, CameraRig], views: Optional[int] = None, frames: int = 81) -> CameraRig:
    """A rig from a CameraRig, a preset name (camera.RIG_PRESETS) or a rig JSON file, cut to `views` views."""
    if isinstance(rig, CameraRig):
        out = rig
    elif str(rig) in RIG_PRESETS:
        params = RIG_PRESETS[str(rig)].params
        kwargs = {}
        if "num_views" in params and views is not None:
            kwargs["num_views"] = int(views)
        if "num_frames" in params:
            kwargs["num_frames"] = int(frames)
        out = make_preset(str(rig), **kwargs)
    elif Path(rig).is_file():
        out = load_rig(Path(rig))
    else:
        raise ValueError(f"rig {str(rig)!r} is neither a camera preset nor an existing JSON file; presets: "
                         f"{', '.join(RIG_PRESETS)}")
    if views is not None:
        if out.num_views < views:
            raise ValueError(f"the rig has {out.num_views} cameras ({out.names}) but {views} views were asked for: "
                             "ask for fewer views or use a rig with more cameras")
        if out.num_views > views:
            out = out.select_views(list(range(int(views))))
    return out.validate()


def camera_embedding(rig: CameraRig, variant: str, num_latent_frames: int) -> torch.Tensor:
    """[V, T_lat, 12] relative extrinsics with the variant's translation scale and reference rule."""
    return relative_extrinsics(rig, TRANSLATION_SCALE[variant], reference=CAMERA_REFERENCE[variant],
                               num_latent_frames=num_latent_frames)


def fit_frames(frames, width: int, height: int, num_frames: int) -> torch.Tensor:
    """Video frames [F, H, W, 3] (uint8 or float 0..1) -> float [num_frames, height, width, 3]:
    the first `num_frames` frames, centre-cropped to the aspect ratio and resized."""
    x = torch.as_tensor(np.asarray(frames) if not isinstance(frames, torch.Tensor) else frames)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"source video frames must be [F, H, W, 3], got shape {tuple(x.shape)}")
    if x.shape[0] < num_frames:
        raise ValueError(f"the source video has {x.shape[0]} frames but {num_frames} are needed: use a longer video "
                         f"or fewer frames (4k+1, e.g. {max(1, (x.shape[0] - 1) // 4 * 4 + 1)})")
    x = x[:num_frames]
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    x = x.permute(0, 3, 1, 2)  # [F, 3, H, W]
    h, w = x.shape[-2:]
    if h * width != w * height:  # centre crop to the target aspect ratio
        if w * height > h * width:
            cw = round(h * width / height)
            x = x[..., (w - cw) // 2:(w - cw) // 2 + cw]
        else:
            ch = round(w * height / width)
            x = x[..., (h - ch) // 2:(h - ch) // 2 + ch, :]
    if tuple(x.shape[-2:]) != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    return x.clamp(0, 1).permute(0, 2, 3, 1)


def _find_tokenizer(text_encoder: Path) -> Path:
    markers = ("tokenizer.json", "spiece.model", "tokenizer_config.json")
    for folder in (text_encoder, text_encoder.parent / "tokenizer"):
        if any((folder / m).is_file() for m in markers):
            return folder
    raise FileNotFoundError(f"no tokenizer found in {str(text_encoder)!r} or beside it ('tokenizer' folder): pass "
                            "--tokenizer DIR (the umT5 tokenizer, e.g. the 'tokenizer' folder of a Wan diffusers repo)")


# ---------------------------------------------------------------------------------------------
# the pipeline
# ---------------------------------------------------------------------------------------------

class Pipeline:
    """DiT + Wan VAE + umT5 text encoder: prompt (and optional source video) -> frames of every view."""

    def __init__(self, model, vae, text_encoder, tokenizer, device: Union[str, torch.device] = "cpu",
                 log: Optional[Callable[[str], None]] = None):
        self.model, self.vae, self.text_encoder, self.tokenizer = model, vae, text_encoder, tokenizer
        self.device = torch.device(device)
        self.log = log or log_default
        if vae.config.z_dim != model.config.in_dim:
            raise ValueError(f"the VAE has {vae.config.z_dim} latent channels but the DiT expects {model.config.in_dim}: "
                             "use the Wan2.1 VAE with a Wan2.1 DiT")
        if text_encoder.config.d_model != model.config.text_dim:
            raise ValueError(f"the text encoder gives {text_encoder.config.d_model}-d features but the DiT expects "
                             f"{model.config.text_dim}: use the umT5-XXL encoder of Wan2.1")

    @classmethod
    def from_files(cls, dit: Union[str, Path], vae: Union[str, Path], text_encoder: Union[str, Path],
                   tokenizer: Union[str, Path, None] = None, device: Union[str, torch.device] = "cpu",
                   dtype: Optional[torch.dtype] = None, sync_weights: Union[str, Path, None] = None,
                   attention: Optional[str] = None, log: Optional[Callable[[str], None]] = None,
                   loras: Sequence[tuple[Union[str, Path], float]] = ()) -> "Pipeline":
        """Load every component from local files. dtype None: the DiT file's dtype on CUDA, float32 on CPU.
        The VAE always runs in float32 (as Wan does); umT5 in bfloat16 when the DiT is half precision on CUDA.
        loras: (file, strength) pairs merged into the DiT in order (model/lora)."""
        from diffusers import AutoencoderKLWan
        from transformers import AutoTokenizer, UMT5EncoderModel

        from .checkpoint import load_grid_dit
        from .lora import apply_lora
        from .sync import load_sync_weights

        device = torch.device(device)
        if dtype is None and device.type == "cpu":
            dtype = torch.float32
        model = load_grid_dit(dit, device=device, dtype=dtype)
        for path, strength in loras:
            apply_lora(model, path, strength)
            (log or log_default)(model.applied_loras[-1].summary())
        if sync_weights is not None:
            load_sync_weights(model, sync_weights)
            model.to(device)
        if attention is not None:
            model.attention_backend = attention
        for name, folder in (("VAE", vae), ("text encoder", text_encoder)):
            if not Path(folder).is_dir():
                raise FileNotFoundError(f"{name} folder {str(folder)!r} does not exist: pass a diffusers-format folder "
                                        "(with config.json and weights)")
        vae_model = AutoencoderKLWan.from_pretrained(str(vae), torch_dtype=torch.float32).to(device).eval()
        text_dtype = torch.bfloat16 if (device.type == "cuda" and model.dtype != torch.float32) else torch.float32
        encoder = UMT5EncoderModel.from_pretrained(str(text_encoder), torch_dtype=text_dtype).to(device).eval()
        tok_dir = Path(tokenizer) if tokenizer is not None else _find_tokenizer(Path(text_encoder))
        tok = AutoTokenizer.from_pretrained(str(tok_dir))
        return cls(model, vae_model, encoder, tok, device, log)

    # -- text ------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode_prompt(self, prompts: Union[str, Sequence[str]]) -> torch.Tensor:
        """[B, 512, text_dim] float32 umT5 features, padding positions zeroed."""
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        tokens = self.tokenizer([p.strip() for p in prompts], padding="max_length", max_length=TEXT_LENGTH,
                                truncation=True, add_special_tokens=True, return_attention_mask=True,
                                return_tensors="pt")
        ids, mask = tokens.input_ids.to(self.device), tokens.attention_mask.to(self.device)
        feats = self.text_encoder(ids, mask).last_hidden_state.float()
        return feats * mask[..., None].to(feats.dtype)  # padding tokens carry zeros, as in Wan

    # -- video <-> latent ------------------------------------------------------------------------
    def _latent_stats(self, dtype=torch.float32):
        c = self.vae.config.z_dim
        mean = torch.tensor(self.vae.config.latents_mean, dtype=dtype, device=self.device).view(1, c, 1, 1, 1)
        std = torch.tensor(self.vae.config.latents_std, dtype=dtype, device=self.device).view(1, c, 1, 1, 1)
        return mean, std

    @torch.no_grad()
    def encode_video(self, frames) -> torch.Tensor:
        """Frames [F, H, W, 3] in 0..1 -> normalised latent [1, C, T, H/8, W/8] (the posterior mean)."""
        x = torch.as_tensor(frames, dtype=torch.float32).to(self.device)
        x = x.permute(3, 0, 1, 2)[None] * 2.0 - 1.0  # [1, 3, F, H, W] in -1..1
        z = self.vae.encode(x).latent_dist.mode()
        mean, std = self._latent_stats()
        return (z.float() - mean) / std

    @torch.no_grad()
    def decode(self, grid: torch.Tensor) -> torch.Tensor:
        """Latent grid [V, C, T, h, w] or [1, V, ...] -> frames [V, F, H, W, 3] float 0..1, one view at a time."""
        if grid.ndim == 6:
            grid = grid.flatten(0, 1)
        mean, std = self._latent_stats()
        views = []
        for z in grid:
            video = self.vae.decode(z[None].to(self.device, torch.float32) * std + mean).sample  # [1, 3, F, H, W]
            views.append(((video[0].float().clamp(-1, 1) + 1) / 2).permute(1, 2, 3, 0).cpu())
        return torch.stack(views)

    # -- generation ------------------------------------------------------------------------------
    def generate(self, prompt: str, negative_prompt: str = DEFAULT_NEGATIVE_PROMPT, *,
                 rig: Union[str, Path, CameraRig] = "orbit_arc", views: Optional[int] = None, width: int = 832,
                 height: int = 480, frames: int = 81, mode: str = "auto", steps: int = 50, cfg: float = 5.0,
                 shift: float = 5.0, seed: int = 0, scheduler: str = "unipc", source=None,
                 source_mode: Optional[str] = None, source_view: int = 0, guidance: str = "text",
                 video_cfg: float = 1.8, batch_cfg: bool = True,
                 callback: Optional[Callable[[int, int, torch.Tensor], None]] = None,
                 interrupt: Optional[Callable[[], Optional[bool]]] = None) -> torch.Tensor:
        """Frames [V, F, H, W, 3] float 0..1.

        rig: preset name, rig JSON path or CameraRig (for ReCamMaster: the target camera paths).
        source: optional input video (path, or frames [F, H, W, 3]) used as `source_mode`
            ("recam" | "replace_view" | "first_row"; default recam for ReCamMaster, else replace_view)
            on view `source_view`. Other arguments: see `sampling.sample_grid`.
        """
        check_video_size(width, height, frames)
        variant = self.model.variant
        mode_used = pick_mode(variant, mode)
        if mode == "auto":
            self.log(f"mode auto -> {mode_used!r} (model variant {variant!r})")
        if mode_used == "recam" and source is None:
            raise ValueError("mode 'recam' (ReCamMaster) re-renders an input video: pass a source video "
                             "(--source video.mp4), or choose another mode")
        t_lat = latent_frame_count(frames)
        the_rig = build_rig(rig, views, frames)
        num_views = the_rig.num_views
        self.log(f"{num_views} views ({', '.join(the_rig.names)}), {frames} frames at {width}x{height}, mode {mode_used}")
        camera = camera_embedding(the_rig, variant, t_lat) if self.model.has_camera_encoder else None

        source_video = None
        if source is not None:
            how = source_mode or ("recam" if mode_used == "recam" else "replace_view")
            if how not in SOURCE_USES:
                raise ValueError(f"source_mode {how!r} is not one of {SOURCE_USES}")
            if isinstance(source, (str, Path)):
                from .video_io import read_video

                source, _ = read_video(source, max_frames=frames)
            latent = self.encode_video(fit_frames(source, width, height, frames))
            source_video = SourceVideo(latent, how, 0 if how == "first_row" else source_view)

        context = self.encode_prompt(prompt)
        negative = self.encode_prompt(negative_prompt) if (cfg != 1.0 or guidance == "two_scale") else None
        shape = (1, num_views, self.model.config.in_dim, t_lat, height // 8, width // 8)
        grid = sample_grid(self.model, shape, context, negative, mode=mode_used, camera=camera, source=source_video,
                           steps=steps, cfg=cfg, shift=shift, scheduler=scheduler, seed=seed, guidance=guidance,
                           video_cfg=video_cfg, batch_cfg=batch_cfg, callback=callback, interrupt=interrupt)
        self.last_latent, self.last_rig, self.last_mode = grid, the_rig, mode_used
        return self.decode(grid)


# ---------------------------------------------------------------------------------------------
# `python -m camgrid generate`
# ---------------------------------------------------------------------------------------------

DTYPES = {"auto": None, "fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    p = parser
    p.description = "Generate a synchronized multi-view video grid from text (and optionally an input video)."
    files = p.add_argument_group("model files (local)")
    files.add_argument("--dit", required=True, help="DiT weights: Wan2.1 / SynCamMaster / ReCamMaster (.safetensors, .ckpt)")
    files.add_argument("--vae", required=True, help="diffusers-format Wan VAE folder (AutoencoderKLWan)")
    files.add_argument("--text-encoder", required=True, help="umT5 encoder folder (transformers UMT5EncoderModel)")
    files.add_argument("--tokenizer", default=None, help="tokenizer folder (default: the text encoder folder or a "
                                                         "'tokenizer' folder beside it)")
    files.add_argument("--sync-weights", default=None, help="optional camgrid sync-weights file (hard/soft sync)")
    files.add_argument("--lora", action="append", default=[], type=parse_lora_arg, metavar="FILE[:STRENGTH]",
                       help="merge a LoRA into the DiT (any of the Kijai/lightx2v, diffusers/PEFT, kohya, DiffSynth "
                            "layouts); strength default 1; repeat to stack LoRAs")
    p.add_argument("--prompt", required=True, help="text prompt shared by all views")
    p.add_argument("--negative-prompt", default=DEFAULT_NEGATIVE_PROMPT, help="negative prompt (the CFG uncond branch)")
    p.add_argument("--rig", default="orbit_arc", help=f"camera preset ({', '.join(RIG_PRESETS)}) or a rig JSON file")
    p.add_argument("--views", type=int, default=None, help="number of views (default: the rig's)")
    p.add_argument("--width", type=int, default=832, help="multiple of 16")
    p.add_argument("--height", type=int, default=480, help="multiple of 16")
    p.add_argument("--frames", type=int, default=81, help="video frames per view, 4k+1")
    p.add_argument("--mode", default="auto", choices=("auto",) + MODES,
                   help="grid mode; auto: syncammaster->syncam, recammaster->recam, wan->hard")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--cfg", type=float, default=5.0, help="text guidance scale (1 = no CFG)")
    p.add_argument("--shift", type=float, default=5.0, help="flow shift of the sigma schedule")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scheduler", default="unipc", choices=SCHEDULERS)
    p.add_argument("--guidance", default="text", choices=GUIDANCE,
                   help="two_scale: InstructPix2Pix guidance with --source (s_t = --cfg, s_v = --video-cfg)")
    p.add_argument("--video-cfg", type=float, default=1.8, help="video guidance scale s_v (two_scale)")
    p.add_argument("--no-batch-cfg", dest="batch_cfg", action="store_false",
                   help="run the guidance branches as separate forwards (less memory)")
    p.add_argument("--source", default=None, help="input video for novel-view generation (mp4, ...)")
    p.add_argument("--source-mode", default=None, choices=SOURCE_USES,
                   help="how the source is used (default: recam for ReCamMaster, else replace_view)")
    p.add_argument("--source-view", type=int, default=0, help="the view the source replaces (replace_view)")
    p.add_argument("--out", default="camgrid_out", help="output folder")
    p.add_argument("--fps", type=float, default=16.0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default="auto", choices=tuple(DTYPES))
    p.add_argument("--attention", default=None, help="attention backend (sdpa, flash_attn, sage, chunked)")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .video_io import tile_views, write_video

    pipe = Pipeline.from_files(args.dit, args.vae, args.text_encoder, args.tokenizer, device=args.device,
                               dtype=DTYPES[args.dtype], sync_weights=args.sync_weights, attention=args.attention,
                               log=print, loras=args.lora)
    bar = tqdm(total=args.steps, desc="sampling", unit="step")

    def progress(step, total, _x0):
        bar.total = total
        bar.update(step - bar.n)

    try:
        frames = pipe.generate(args.prompt, args.negative_prompt, rig=args.rig, views=args.views, width=args.width,
                               height=args.height, frames=args.frames, mode=args.mode, steps=args.steps, cfg=args.cfg,
                               shift=args.shift, seed=args.seed, scheduler=args.scheduler, source=args.source,
                               source_mode=args.source_mode, source_view=args.source_view, guidance=args.guidance,
                               video_cfg=args.video_cfg, batch_cfg=args.batch_cfg, callback=progress)
    finally:
        bar.close()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for i, name in enumerate(pipe.last_rig.names):
        safe = "".join(ch if ch.isalnum() or ch in "+-_." else "_" for ch in name)
        written.append(write_video(out / f"view{i:02d}_{safe}.mp4", frames[i], fps=args.fps))
    written.append(write_video(out / "grid.mp4", tile_views(frames), fps=args.fps))
    settings = {k: v for k, v in vars(args).items() if k != "func"}
    settings["mode_used"] = pipe.last_mode
    (out / "settings.json").write_text(json.dumps(settings, indent=1, default=str))
    for path in written:
        print(f"wrote {path}")
    return 0
