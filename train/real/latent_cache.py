"""A one-time latent cache of a multi-camera dataset: every scene's videos through the Wan VAE and its caption
through umT5 once, stored as safetensors shards; training then never touches a video or the encoders.

Layout of a cache folder:
    cache.json                  {"format": "camgrid-latent-cache", "version": 1, "settings": {...}}: what the cache
                                holds (frames, size, cameras per scene, seed of the window choice, the encoder files)
    null_context.safetensors    "context" [L, D]: umT5 features of the empty caption (caption dropout)
    part-r<rank>.json           {"shards": [{"file": ..., "scenes": [{"key", "slot", "caption", "cameras", "start"}]}]}
                                the manifest of the shards process <rank> wrote
    shard-r<rank>-<n>.safetensors  per scene slot j: "j.latents" [Vc, C, T, h, w] bf16 (normalised, posterior mean),
                                "j.context" [L, D] bf16 (padding positions dropped), "j.c2w" [Vc, F, 4, 4] float64
                                (OpenCV camera-to-world, metres, the window's frames), "j.intrinsics" [Vc, 4] float64

Each scene: its window of `frames` frames and its cameras (all of them, or `cache_views`, a seeded choice),
exactly as train/multicam.py's MultiCamDataset chooses them; training draws the V views of a sample from the
cached cameras, so one cached scene gives many camera subsets.

Writing is atomic (model/files.py): a shard, then the manifest that lists it. Building is resumable: scenes
already in any part manifest are skipped, so a crash costs at most one shard's scenes, and a cache can be
extended by running again with more data. Under torchrun every process encodes the scenes i with
i % world == rank into its own shards and manifest. A cache built with other settings is refused (one line,
naming the difference) rather than mixed.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
from safetensors.torch import save_file
from tqdm.auto import tqdm

from ...model import components   # cheap: diffusers / transformers load inside its loaders
from ...model.checks import InputError
from ...model.files import atomic_save, atomic_write
from ..multicam import MultiCamDataset

CACHE_FORMAT = "camgrid-latent-cache"
CACHE_VERSION = 1
SETTINGS_FILE = "cache.json"
NULL_CONTEXT_FILE = "null_context.safetensors"
SCENES_PER_SHARD = 8


@dataclass(frozen=True)
class CacheSettings:
    """What a cache holds; two builds may share a folder only with equal settings."""
    frames: int
    height: int
    width: int
    cache_views: int        # 0: every camera of a scene
    seed: int
    vae: str                # file names of the encoders (informative, and a guard against mixing)
    text_encoder: str


def scene_key(dataset: MultiCamDataset, index: int) -> str:
    folder = dataset.scenes[index].folder
    return f"{folder.parent.name}/{folder.name}"


class Encoders:
    """The Wan VAE, umT5 and its tokenizer, loaded once for a cache build (model/components/)."""

    def __init__(self, vae: str, text_encoder: str, tokenizer: Optional[str], device, text_fp8: bool = False):
        self.components, self.device = components, torch.device(device)
        components.find_tokenizer(text_encoder, tokenizer)
        self.vae = components.load_wan_vae(vae, self.device, torch.float32)
        self.text = components.load_umt5(text_encoder, self.device, torch.bfloat16, fp8=text_fp8)
        self.tokenizer = components.load_tokenizer(text_encoder, tokenizer)

    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        """[F, H, W, 3] in 0..1 -> normalised latent [C, T, h, w] bf16 on the CPU."""
        return self.components.encode_frames(self.vae, frames, self.device)[0].to(torch.bfloat16).cpu()

    def encode_text(self, caption: str) -> torch.Tensor:
        """A caption -> umT5 features of its tokens [L, D] bf16 on the CPU (the padding dropped)."""
        n = int(self.tokenizer([caption], self.components.TEXT_LENGTH)[1].sum())
        feats = self.components.encode_prompts(self.text, self.tokenizer, [caption], self.device)
        return feats[0, :n].to(torch.bfloat16).cpu()


def check_settings(cache_dir: Path, settings: CacheSettings, create: bool) -> None:
    """Write cache.json for a new cache (when `create`), or refuse a cache built with other settings."""
    path = cache_dir / SETTINGS_FILE
    wanted = asdict(settings)
    if not path.is_file():
        if create:
            atomic_write(path, json.dumps({"format": CACHE_FORMAT, "version": CACHE_VERSION, "settings": wanted},
                                          indent=1))
        return
    stored = read_settings(cache_dir)
    differ = [f"{k} {stored.get(k)!r} (asked: {v!r})" for k, v in wanted.items() if stored.get(k) != v]
    if differ:
        raise InputError(f"{cache_dir}: this latent cache was built with other settings ({'; '.join(differ[:4])}): "
                         "use another --cache folder, or the settings it was built with")


def read_settings(cache_dir: Path) -> dict:
    path = Path(cache_dir) / SETTINGS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable latent-cache description ({exc}); build the cache again") from None
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT or not isinstance(data.get("settings"), dict):
        raise InputError(f"{path}: not a camgrid latent cache (format {data.get('format') if isinstance(data, dict) else '?'})")
    return data["settings"]


def read_parts(cache_dir: Path) -> list:
    """Every (shard file, scene entry) of the cache's part manifests, in a stable order."""
    entries = []
    for part in sorted(Path(cache_dir).glob("part-r*.json")):
        try:
            shards = json.loads(part.read_text(encoding="utf-8"))["shards"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{part}: a damaged cache manifest ({exc}); delete it and its shards to encode them again") from None
        entries += [(shard["file"], scene) for shard in shards for scene in shard["scenes"]]
    return entries


class ShardWriter:
    """The shards and manifest of one process: scenes are buffered and written SCENES_PER_SHARD at a time."""

    def __init__(self, cache_dir: Path, rank: int, per_shard: int = SCENES_PER_SHARD):
        self.cache_dir, self.rank, self.per_shard = cache_dir, rank, per_shard
        self.part = cache_dir / f"part-r{rank}.json"
        self.shards = json.loads(self.part.read_text(encoding="utf-8"))["shards"] if self.part.is_file() else []
        self.tensors, self.scenes = {}, []

    def add(self, entry: dict, tensors: dict) -> None:
        slot = len(self.scenes)
        self.scenes.append({**entry, "slot": slot})
        self.tensors.update({f"{slot}.{name}": t.contiguous() for name, t in tensors.items()})
        if len(self.scenes) >= self.per_shard:
            self.flush()

    def flush(self) -> None:
        if not self.scenes:
            return
        name = f"shard-r{self.rank}-{len(self.shards):05d}.safetensors"
        tensors = self.tensors
        atomic_save(self.cache_dir / name, lambda tmp: save_file(tensors, str(tmp), metadata={"format": CACHE_FORMAT}))
        self.shards.append({"file": name, "scenes": self.scenes})
        atomic_write(self.part, json.dumps({"shards": self.shards}))   # after the shard: the manifest never lies
        self.tensors, self.scenes = {}, []


def encode_scene(dataset: MultiCamDataset, index: int, encoders: Encoders) -> tuple[dict, dict]:
    """(manifest entry, tensors) of one scene, one camera video at a time (a 1280x1280x81 video is 400 MB)."""
    scene, names, start, cameras = dataset.choose(index)
    latents, source_hw = [], None
    for name in names:
        frames, source_hw = dataset.read_view(scene, name, start)
        latents.append(encoders.encode_video(frames))
    rig = dataset.rig(scene, cameras, names, start, source_hw)
    entry = {"key": scene_key(dataset, index), "caption": scene.caption, "cameras": list(names), "start": start}
    tensors = {"latents": torch.stack(latents), "context": encoders.encode_text(scene.caption),
               "c2w": rig.c2w.to(torch.float64), "intrinsics": rig.intrinsics.to(torch.float64)}
    return entry, tensors


def build_latent_cache(dataset: MultiCamDataset, cache_dir, settings: CacheSettings,
                       make_encoders: Callable[[], Encoders], rank: int = 0, world: int = 1, barrier=lambda: None,
                       log=print, progress: bool = True, per_shard: int = SCENES_PER_SHARD) -> int:
    """Encode this process's scenes that the cache lacks; returns how many it encoded. Every process of a
    run calls it (`barrier` waits for all of them); the encoders load only when there is work."""
    cache_dir = Path(cache_dir)
    if rank == 0:
        cache_dir.mkdir(parents=True, exist_ok=True)
        check_settings(cache_dir, settings, create=True)
    barrier()
    check_settings(cache_dir, settings, create=False)
    done = {scene["key"] for _, scene in read_parts(cache_dir)}
    todo = [i for i in range(len(dataset)) if i % world == rank and scene_key(dataset, i) not in done]
    need_null = rank == 0 and not (cache_dir / NULL_CONTEXT_FILE).is_file()
    if todo or need_null:
        encoders = make_encoders()
        if need_null:
            null = encoders.encode_text("")
            atomic_save(cache_dir / NULL_CONTEXT_FILE, lambda tmp: save_file({"context": null.contiguous()}, str(tmp)))
        writer = ShardWriter(cache_dir, rank, per_shard)
        if todo:
            log(f"latent cache: encoding {len(todo)} scenes into {cache_dir} ({len(done)} already there)")
        for index in tqdm(todo, desc="latent cache", unit="scene", disable=not (progress and rank == 0)):
            writer.add(*encode_scene(dataset, index, encoders))
        writer.flush()
        del encoders
    barrier()
    return len(todo)
