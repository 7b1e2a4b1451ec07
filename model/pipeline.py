"""Text -> multi-view video grid, and video -> novel views, from local files (no ComfyUI).

    pipe = Pipeline.from_files(dit="syncammaster.safetensors", vae="wan_2.1_vae.safetensors",
                               text_encoder="umt5_xxl_fp8_e4m3fn_scaled.safetensors", device="cuda")
    frames = pipe.generate("a red fox in the snow", rig="orbit_arc", views=4)   # [V, F, H, W, 3] in 0..1

Components, as diffusers' Wan pipeline uses them (loaded by model/components/):
  - the DiT: any file `load_grid_dit` reads (plain Wan, SynCamMaster, ReCamMaster);
  - the VAE: ComfyUI's / Wan's single file (`wan_2.1_vae.safetensors`, `Wan2.1_VAE.pth`) or a diffusers
    folder, as diffusers' `AutoencoderKLWan`; latents are normalised per channel,
    `(z - latents_mean) / latents_std`, with Wan2.1's numbers;
  - the text encoder: ComfyUI's single files (`umt5_xxl_fp16.safetensors`, `umt5_xxl_fp8_e4m3fn_scaled.safetensors`),
    Wan's `models_t5_umt5-xxl-enc-bf16.pth` or a transformers folder, as `UMT5EncoderModel` in bfloat16 (or with
    fp8 weight storage); the tokenizer from the ComfyUI file itself, a tokenizer folder or spiece.model; prompts
    are padded/truncated to 512 tokens and the features of padding positions are zeroed
    (WanPipeline._get_t5_prompt_embeds).

`add_arguments` / `run` implement `python -m camgrid generate` (see camgrid/__main__.py).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
from tqdm import tqdm

from . import components
from .camera import RIG_PRESETS, CameraRig, latent_frame_count
from .checkpoint import LoadOptions, describe, load_grid_dit
from .checks import SOURCE_NOISE, VIEW_INDEX, VIEWS, InputError, Limit, check_video_size, cli_flag, raise_problem, range_problem
from .conditioning import SOURCE_USES, TEXT_LENGTH, SourceVideo
from . import context_windows
from .context_windows import ContextWindows
from .distributed import is_main
from .files import atomic_save, atomic_write
from .lora import apply_lora
from .lora.spec import parse_lora_arg
from .modes import MODES, build_rig, camera_embedding, fit_frames, mode_problem, pick_mode, source_problem
from .sampling import GUIDANCE, SCHEDULERS, SamplerOptions, sample_grid
from .schedules import SCHEDULES, parse_sigmas
from .step_cache import CACHES, SamplingStats
from .vae_decode import DecodeOptions, WanVaeDecoder
from .video_io import read_video, tile_views, write_video

# diffusers' Wan example negative prompt (Wan's own default is the Chinese original of it)
DEFAULT_NEGATIVE_PROMPT = (
    "Bright tones, overexposed, static, blurred details, subtitles, style, works, paintings, images, static, "
    "overall gray, worst quality, low quality, JPEG compression residue, ugly, incomplete, extra fingers, poorly "
    "drawn hands, poorly drawn faces, deformed, disfigured, misshapen limbs, fused fingers, still picture, messy "
    "background, three legs, many people in the background, walking backwards")

log_default = logging.getLogger("camgrid").info


# ---------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------

def check_component_widths(dit_config, vae_latent_channels: int, text_features: int) -> None:
    """InputError unless the VAE's latent channels and the text encoder's width are what the DiT takes."""
    if vae_latent_channels != dit_config.in_dim:
        raise InputError(f"the VAE has {vae_latent_channels} latent channels but the DiT expects "
                         f"{dit_config.in_dim}: use the Wan2.1 VAE with a Wan2.1 DiT")
    if text_features != dit_config.text_dim:
        raise InputError(f"the text encoder gives {text_features}-d features but the DiT expects "
                         f"{dit_config.text_dim}: use the umT5-XXL encoder of Wan2.1")


# ---------------------------------------------------------------------------------------------
# the pipeline
# ---------------------------------------------------------------------------------------------

class Pipeline:
    """DiT + Wan VAE + umT5 text encoder: prompt (and optional source video) -> frames of every view."""

    def __init__(self, model, vae, text_encoder, tokenizer, device: Union[str, torch.device] = "cpu",
                 log: Optional[Callable[[str], None]] = None):
        if not isinstance(tokenizer, (components.SentencePieceTokenizer, components.TransformersTokenizer)):
            tokenizer = components.TransformersTokenizer.wrap(tokenizer)   # a transformers tokenizer object
        self.model, self.vae, self.text_encoder, self.tokenizer = model, vae, text_encoder, tokenizer
        self.device = torch.device(device)
        self.log = log or log_default
        self.decode_options = DecodeOptions()  # how `decode` uses memory (batching, tiles, compile)
        self._vae_decoder: Optional[WanVaeDecoder] = None   # kept: it remembers the measured cost of a view
        check_component_widths(model.config, vae.config.z_dim, text_encoder.config.d_model)

    @classmethod
    def from_files(cls, dit: Union[str, Path], vae: Union[str, Path], text_encoder: Union[str, Path],
                   tokenizer: Union[str, Path, None] = None, device: Union[str, torch.device] = "cpu",
                   dtype: Optional[torch.dtype] = None, sync_weights: Union[str, Path, None] = None,
                   attention: Optional[str] = None, log: Optional[Callable[[str], None]] = None,
                   loras: Sequence[tuple[Union[str, Path], float]] = (),
                   text_dtype: torch.dtype = torch.bfloat16, text_fp8: bool = False,
                   vae_dtype: torch.dtype = torch.float32) -> "Pipeline":
        """Load every component from local files: each a single file as ComfyUI users have them, or a
        diffusers / transformers folder (model/components/). dtype None: the DiT file's dtype on CUDA, float32
        on CPU. The VAE runs in `vae_dtype`: float32 as Wan's reference code, or bfloat16 as ComfyUI runs it on
        recent GPUs (faster, half the activation memory; benchmarks/RESULTS.md). umT5 runs in `text_dtype`
        (bfloat16: ~11 GB for umT5-XXL, fp32 would be ~23 GB), with its block weights kept in fp8 when
        `text_fp8`. tokenizer None: the one the text-encoder file carries (ComfyUI's do), or a tokenizer folder
        beside a text-encoder folder.
        loras: (file, strength) pairs merged into the DiT in order (model/lora)."""
        device = torch.device(device)
        components.find_tokenizer(text_encoder, tokenizer)   # before minutes of loading
        if dtype is None and device.type == "cpu":
            dtype = torch.float32
        model = load_grid_dit(dit, device=device, options=LoadOptions(dtype=dtype, sync_weights=sync_weights,
                                                                      attention=attention))
        for path, strength in loras:
            apply_lora(model, path, strength)
            (log or log_default)(model.applied_loras[-1].summary())
        vae_model = components.load_wan_vae(vae, device, vae_dtype)
        encoder = components.load_umt5(text_encoder, device, text_dtype, fp8=text_fp8)
        tok = components.load_tokenizer(text_encoder, tokenizer)
        return cls(model, vae_model, encoder, tok, device, log)

    # -- text ------------------------------------------------------------------------------------
    def encode_prompt(self, prompts: Union[str, Sequence[str]]) -> torch.Tensor:
        """[B, 512, text_dim] float32 umT5 features, padding positions zeroed."""
        return components.encode_prompts(self.text_encoder, self.tokenizer, prompts, self.device, TEXT_LENGTH)

    # -- video <-> latent ------------------------------------------------------------------------
    def _latent_stats(self, dtype=torch.float32):
        return components.latent_stats(self.vae, self.device, dtype)

    def encode_video(self, frames) -> torch.Tensor:
        """Frames [F, H, W, 3] in 0..1 -> normalised latent [1, C, T, H/8, W/8] (the posterior mean)."""
        return components.encode_frames(self.vae, frames, self.device)

    @torch.no_grad()
    def decode(self, grid: torch.Tensor, options: Optional[DecodeOptions] = None) -> torch.Tensor:
        """Latent grid [V, C, T, h, w] or [1, V, ...] -> frames [V, F, H, W, 3] float 0..1, as many views per VAE
        call as memory allows, tiles only when needed (model/vae_decode.py). `options` replace the pipeline's
        `decode_options` (set that attribute once to change them for every decode)."""
        if grid.ndim == 6:
            grid = grid.flatten(0, 1)
        options = options or self.decode_options
        if self._vae_decoder is None or self._vae_decoder.options != options:
            self._vae_decoder = WanVaeDecoder(self.vae, self.vae.config.latents_mean, self.vae.config.latents_std,
                                              options)
        frames = self._vae_decoder(grid)
        self.log(f"VAE decode: {self._vae_decoder.last_report.summary()}")
        return frames

    # -- generation ------------------------------------------------------------------------------
    def generate(self, prompt: str, negative_prompt: str = DEFAULT_NEGATIVE_PROMPT, *,
                 rig: Union[str, Path, CameraRig] = "orbit_arc", views: Optional[int] = None, width: int = 832,
                 height: int = 480, frames: int = 81, mode: str = "auto", steps: int = 50,
                 cfg: Optional[float] = None, shift: Optional[float] = None, seed: int = 0, scheduler: str = "unipc",
                 source=None, source_mode: Optional[str] = None, source_view: int = 0, source_noise: float = 1.0,
                 guidance: str = "text",
                 video_cfg: float = 1.8, batch_cfg: bool = True, windows: Optional[ContextWindows] = None,
                 options: Optional[SamplerOptions] = None,
                 callback: Optional[Callable[[int, int, torch.Tensor], None]] = None,
                 interrupt: Optional[Callable[[], Optional[bool]]] = None, **fast) -> torch.Tensor:
        """Frames [V, F, H, W, 3] float 0..1.

        rig: preset name, rig JSON path or CameraRig (for ReCamMaster: the target camera paths).
        source: optional input video (path, or frames [F, H, W, 3]) used as `source_mode`
            ("recam" | "replace_view" | "first_row"; default recam for ReCamMaster, else replace_view)
            on view `source_view`, held at `source_noise` x the noise level (SourceVideo.noise_scale; 1: SynCamMaster).
            cfg / shift None: 5, or a schedule preset's. fast: schedule=, sigmas=, cache=, cache_threshold=,
            cache_start=, cache_end=, cfg_max_sigma= (`SamplerOptions`).
        options: a checked `SamplerOptions` (the command line makes one before loading); when given it replaces
            steps, cfg, shift, seed, scheduler, guidance, video_cfg, batch_cfg and the fast settings. Other
            arguments: see `sampling.sample_grid`. `self.last_stats` says afterwards which steps ran the DiT.
        windows: context windows over time / views (model/context_windows.py), for videos longer than the
            model's 81 training frames or rigs larger than one pass (when `options` is given, its own windows).
        """
        check_video_size(width, height, frames)
        options = options or SamplerOptions(steps=steps, cfg=cfg, shift=shift, seed=seed, scheduler=scheduler,
                                            guidance=guidance, video_cfg=video_cfg, batch_cfg=batch_cfg,
                                            windows=windows, **fast)
        variant = self.model.variant
        mode_used = pick_mode(variant, mode)
        if mode == "auto":
            self.log(f"mode auto -> {mode_used!r} (model variant {variant!r})")
        how = (source_mode or ("recam" if mode_used == "recam" else "replace_view")) if source is not None else None
        raise_problem(source_problem(mode_used, how))   # before the source and the prompts are encoded
        t_lat = latent_frame_count(frames)
        camera_rig = build_rig(rig, views, frames)
        num_views = camera_rig.num_views
        self.log(f"{num_views} views ({', '.join(camera_rig.names)}), {frames} frames at {width}x{height}, mode {mode_used}")
        camera = camera_embedding(camera_rig, variant, t_lat) if self.model.has_camera_encoder else None

        source_video = None
        if source is not None:
            if how not in SOURCE_USES:
                raise InputError(f"source_mode {how!r} is not one of {', '.join(SOURCE_USES)}")
            if isinstance(source, (str, Path)):
                source = read_source_video(source, frames, "source")
            latent = self.encode_video(fit_frames(source, width, height, frames))
            source_video = SourceVideo(latent, how, 0 if how == "first_row" else source_view, noise_scale=source_noise)

        context = self.encode_prompt(prompt)
        negative = self.encode_prompt(negative_prompt) if options.uses_negative else None
        shape = (1, num_views, self.model.config.in_dim, t_lat, height // 8, width // 8)
        if options.windows is not None:
            keep = (source_video.view,) if source_video is not None and source_video.replaces_a_view else ()
            self.log(context_windows.describe(options.windows, num_views, t_lat, keep))
        stats = SamplingStats()
        grid = sample_grid(self.model, shape, context, negative, mode=mode_used, camera=camera, source=source_video,
                           options=options, callback=callback, interrupt=interrupt, stats=stats)
        self.last_latent, self.last_rig, self.last_mode, self.last_stats = grid, camera_rig, mode_used, stats
        return self.decode(grid)


# ---------------------------------------------------------------------------------------------
# reading a source video
# ---------------------------------------------------------------------------------------------

def read_source_video(path: Union[str, Path], frames: int, what: str = "--source") -> np.ndarray:
    """The first `frames` frames [F, H, W, 3] uint8 of the video at `path`, or an InputError naming `what`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} {str(path)!r} does not exist: give a video file (mp4, ...)")
    try:
        video, _ = read_video(path, max_frames=frames)
    except (OSError, RuntimeError, ValueError, StopIteration) as exc:  # what ffmpeg's reader raises on junk
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{what} {str(path)!r} is not a readable video ({reason[:200]})") from None
    if len(video) < frames:
        shorter = max(1, (len(video) - 1) // 4 * 4 + 1)
        raise InputError(f"{what} {str(path)!r} has {len(video)} frames but {frames} are needed: use a longer video "
                         f"or fewer frames (4k+1, e.g. {shorter})")
    return video


# ---------------------------------------------------------------------------------------------
# `python -m camgrid generate`
# ---------------------------------------------------------------------------------------------

DTYPES = {"auto": None, "fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# the command line's own numbers (sampling and video size limits live in model/checks.py)
CLI_LIMITS = {"views": VIEWS, "source_view": VIEW_INDEX,
              "source_noise": SOURCE_NOISE,
              "fps": Limit(1.0, 240.0, hint="frames per second of the written videos")}


def add_file_arguments(p: argparse.ArgumentParser) -> None:
    """The local model files and how the VAE runs."""
    files = p.add_argument_group("model files (local)")
    files.add_argument("--dit", required=True, help="DiT weights: Wan2.1 / SynCamMaster / ReCamMaster (.safetensors, .ckpt)")
    files.add_argument("--vae", required=True, help="Wan2.1 VAE: wan_2.1_vae.safetensors (ComfyUI), Wan2.1_VAE.pth, "
                                                    "or a diffusers vae/ folder")
    files.add_argument("--text-encoder", required=True, help="umT5-XXL: umt5_xxl_fp16.safetensors or "
                       "umt5_xxl_fp8_e4m3fn_scaled.safetensors (ComfyUI), models_t5_umt5-xxl-enc-bf16.pth, or a "
                       "transformers folder")
    files.add_argument("--tokenizer", default=None, help="umT5 tokenizer folder or spiece.model (default: the one "
                       "ComfyUI's umT5 files carry, or a 'tokenizer' folder beside a text-encoder folder)")
    files.add_argument("--text-fp8", action="store_true", help="keep the text encoder's block weights in fp8 "
                       "(~6 GB for umT5-XXL instead of ~11 GB in bf16)")
    files.add_argument("--sync-weights", default=None, help="optional camgrid sync-weights file (hard/soft sync)")
    files.add_argument("--lora", action="append", default=[], type=parse_lora_arg, metavar="FILE[:STRENGTH]",
                       help="merge a LoRA into the DiT (any of the Kijai/lightx2v, diffusers/PEFT, kohya, DiffSynth "
                            "layouts); strength default 1; repeat to stack LoRAs")
    decoding = p.add_argument_group("VAE")
    decoding.add_argument("--vae-dtype", default="float32", choices=("float32", "bfloat16"),
                          help="the VAE's weights and activations: float32 as Wan's reference code, bfloat16 as "
                               "ComfyUI runs it on recent GPUs (faster on CUDA, half the memory; slow on CPUs)")
    decoding.add_argument("--decode-channels-last", action="store_true",
                          help="decode with channels-last-3d convolutions (CUDA; faster and less memory on an H200, "
                               "benchmarks/RESULTS.md)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    p = parser
    p.description = "Generate a synchronized multi-view video grid from text (and optionally an input video)."
    add_file_arguments(p)
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
    p.add_argument("--cfg", type=float, default=None, help="text guidance scale (1 = no CFG; default 5, or the "
                                                          "--schedule preset's: 1 for the distilled ones)")
    p.add_argument("--cfg-max-sigma", type=float, default=1.0,
                   help="text guidance only at noise levels at or below this (0-1; 1 = every step): 0.8 leaves "
                        "the first, layout-setting steps unguided, so guidance does not inflate the objects")
    p.add_argument("--shift", type=float, default=None, help="flow shift of the sigma schedule (default 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scheduler", default="unipc", choices=SCHEDULERS)
    fast = p.add_argument_group("fast generation (README: Fast generation)")
    fast.add_argument("--schedule", default="default", choices=SCHEDULES,
                      help="a step-distilled model's few-step preset (fixes sigmas and solver; e.g. lightx2v_4step "
                           "with the lightx2v LoRA or model), or default (--steps, --shift, --scheduler)")
    fast.add_argument("--sigmas", default=None, metavar="S0,S1,...,0",
                      help="custom schedule: descending sigmas in [0, 1] ending in 0, used as given")
    fast.add_argument("--cache", default="none", choices=CACHES,
                      help="training-free step cache: skip the DiT on steps where the grid changed little")
    fast.add_argument("--cache-threshold", type=float, default=0.1, help="step cache threshold (0 = never skip)")
    fast.add_argument("--cache-start", type=float, default=0.2, help="fraction of the steps that always run first")
    fast.add_argument("--cache-end", type=float, default=1.0, help="fraction of the steps after which all run")
    p.add_argument("--guidance", default="text", choices=GUIDANCE,
                   help="two_scale: InstructPix2Pix guidance with --source (s_t = --cfg, s_v = --video-cfg)")
    p.add_argument("--video-cfg", type=float, default=1.8, help="video guidance scale s_v (two_scale)")
    p.add_argument("--no-batch-cfg", dest="batch_cfg", action="store_false",
                   help="run the guidance branches as separate forwards (less memory)")
    p.add_argument("--source", default=None, help="input video for novel-view generation (mp4, ...)")
    p.add_argument("--source-mode", default=None, choices=SOURCE_USES,
                   help="how the source is used (default: recam for ReCamMaster, else replace_view)")
    p.add_argument("--source-view", type=int, default=0, help="the view the source replaces (replace_view)")
    p.add_argument("--source-noise", type=float, default=1.0,
                   help="replace_view / first_row: hold the source at this share of the grid's noise level (1: "
                        "SynCamMaster's setting; lower: the other views see it more clearly)")
    p.add_argument("--out", default="camgrid_out", help="output folder")
    p.add_argument("--fps", type=float, default=16.0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default="auto", choices=tuple(DTYPES))
    p.add_argument("--attention", default=None, help="attention backend (sdpa, flash_attn, sage, chunked)")
    context_windows.add_arguments(p)


@dataclass
class GenerateJob:
    """What `generate` settled before loading any weights."""

    rig: CameraRig                    # cut to the requested views
    source: Optional[np.ndarray]      # the source video's frames [F, H, W, 3] uint8, or None
    options: SamplerOptions           # the sampling settings, checked (errors name the flags)


def _existing(path, flag: str, folder: bool = False) -> Path:
    path = Path(path)
    if not (path.is_dir() if folder else path.is_file()):
        kind = "folder" if folder else "file"
        raise InputError(f"{flag} {str(path)!r} is not an existing {kind}")
    return path


def _existing_any(path, flag: str) -> Path:
    """A model file or folder that exists."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{flag} {str(path)!r} does not exist: give the file (e.g. as ComfyUI has it) or a "
                         "diffusers-format folder")
    return path


def generate_problem(variant: str, mode: str, source_use: Optional[str], has_sync_weights: bool, guidance: str,
                     source_view: int, views: int) -> Optional[str]:
    """None, or why `generate` cannot run `mode` with this DiT variant and these options, asked before anything
    is loaded: the rules of model/modes.py, and the command line's own (--guidance, --source-view)."""
    problem = mode_problem(mode, variant, soft_sync=has_sync_weights) or source_problem(mode, source_use)
    if problem is not None:
        return problem
    if guidance == "two_scale" and source_use is None:
        return "--guidance two_scale weighs a source video against the text: pass --source, or use --guidance text"
    if source_use == "replace_view" and not 0 <= source_view < views:
        return f"--source-view {source_view} is not a view of the grid (0..{views - 1}): pick one that exists"
    return None


def check_generate_args(args: argparse.Namespace) -> GenerateJob:
    """Everything `generate` can check before it loads the DiT, VAE and umT5 (minutes with real weights):
    numbers, sizes, files, the DiT's variant against the mode, the rig, and the source video (read here)."""
    if args.sigmas is not None:
        args.sigmas = parse_sigmas(args.sigmas, "--sigmas")
    options = SamplerOptions(label=cli_flag, steps=args.steps, cfg=args.cfg, cfg_max_sigma=args.cfg_max_sigma,
                             video_cfg=args.video_cfg,
                             shift=args.shift, seed=args.seed, scheduler=args.scheduler, guidance=args.guidance,
                             batch_cfg=args.batch_cfg, windows=context_windows.from_arguments(args),
                             **fast_settings(args))
    check_video_size(args.width, args.height, args.frames, ("--width", "--height", "--frames"))
    raise_problem(range_problem(CLI_LIMITS, {"views": args.views, "source_view": args.source_view,
                                             "source_noise": args.source_noise, "fps": args.fps}, cli_flag))
    dit_config = describe(_existing(args.dit, "--dit"))["config"]
    vae, text_encoder = _existing_any(args.vae, "--vae"), _existing_any(args.text_encoder, "--text-encoder")
    check_component_widths(dit_config, components.describe_wan_vae(vae)["z_dim"],
                           components.describe_umt5(text_encoder)["d_model"])
    components.find_tokenizer(text_encoder, args.tokenizer)
    if args.sync_weights is not None:
        _existing(args.sync_weights, "--sync-weights")
    mode = pick_mode(dit_config.variant, args.mode)
    rig = build_rig(args.rig, args.views, args.frames)
    source_use = (args.source_mode or ("recam" if mode == "recam" else "replace_view")) if args.source else None
    raise_problem(generate_problem(dit_config.variant, mode, source_use, args.sync_weights is not None,
                                   args.guidance, args.source_view, rig.num_views))
    if source_use == "recam" and args.source_noise != 1.0:
        raise InputError("--source-noise sets the noise of a source that replaces a view (replace_view / first_row); "
                         "recam feeds the source to the model clean: leave --source-noise out")
    source = read_source_video(args.source, args.frames) if args.source else None
    return GenerateJob(rig, source, options)


def save_video(path: Path, frames, fps: float) -> Path:
    """write_video through model/files.py: the finished file replaces `path` atomically."""
    def write(tmp: Path) -> None:
        staged = tmp.with_name(tmp.name + path.suffix)  # ffmpeg picks the container from the file's extension
        try:
            write_video(staged, frames, fps=fps)
            os.replace(staged, tmp)
        finally:
            staged.unlink(missing_ok=True)
    return atomic_save(path, write)


def write_outputs(out: Path, frames: torch.Tensor, names: Sequence[str], fps: float, settings: dict) -> list[Path]:
    """One video per view, the views tiled in grid.mp4, and settings.json; every file written atomically."""
    written = []
    for i, name in enumerate(names):
        safe = "".join(ch if ch.isalnum() or ch in "+-_." else "_" for ch in name)
        written.append(save_video(out / f"view{i:02d}_{safe}.mp4", frames[i], fps))
    written.append(save_video(out / "grid.mp4", tile_views(frames), fps))
    written.append(atomic_write(out / "settings.json", json.dumps(settings, indent=1, default=str)))
    return written


def fast_settings(args: argparse.Namespace) -> dict:
    """The fast-generation flags as SamplerOptions fields."""
    return dict(schedule=args.schedule, sigmas=args.sigmas, cache=args.cache, cache_threshold=args.cache_threshold,
                cache_start=args.cache_start, cache_end=args.cache_end)


def run(args: argparse.Namespace) -> int:
    job = check_generate_args(args)
    pipe = Pipeline.from_files(args.dit, args.vae, args.text_encoder, args.tokenizer, device=args.device,
                               dtype=DTYPES[args.dtype], sync_weights=args.sync_weights, attention=args.attention,
                               log=print, loras=args.lora, text_fp8=args.text_fp8,
                               vae_dtype=getattr(torch, args.vae_dtype))
    pipe.decode_options = replace(pipe.decode_options, channels_last=args.decode_channels_last)
    bar = tqdm(total=args.steps, desc="sampling", unit="step", disable=not is_main())  # one bar under torchrun

    def progress(step, total, _x0):
        bar.total = total
        bar.update(step - bar.n)

    try:
        frames = pipe.generate(args.prompt, args.negative_prompt, rig=job.rig, width=args.width, height=args.height,
                               frames=args.frames, mode=args.mode, source=job.source, source_mode=args.source_mode,
                               source_view=args.source_view, source_noise=args.source_noise, options=job.options,
                               callback=progress)
    finally:
        bar.close()
    print(pipe.last_stats.summary())
    settings = {k: v for k, v in vars(args).items() if k != "func"}
    settings["mode_used"] = pipe.last_mode
    for path in write_outputs(Path(args.out), frames, pipe.last_rig.names, args.fps, settings):
        print(f"wrote {path}")
    return 0
