"""Can the built-in DiT learn the checkered floor when the floor is all there is? (benchmarks/TINY_MODEL.md, "The
floor alone")

    python benchmarks/tiny_floor_probe.py [--space ae|pixels] [--init scratch|assets] [--budget 1500] \
        [--samples 8192] [--batch 64] [--eval-every 400] [--style standard|close] [--seed 0] [--out DIR] \
        [--save-model DIR]
    python benchmarks/tiny_floor_probe.py --shipped 8 [--model DIR] [--teacher] [--cfg G] [--empty] [--pictures PNG] \
        [--mode syncam|independent|hard|soft] [--bank 4096] [--empty-caption floor] [--scenes-style STYLE]
        (the second: a built-in model's floors in whole scenes, generated from held-out captions and rigs of the
        model's own scene style)

The data: floor-only frames (rendered with no objects), one view, one frame, 48x80, each from a random training
camera of `--style` (default standard: 0.5 m checkers seen from 3-4.5 m, the finer floor; synth/dataset.py
random_rig). The model: the shipped DiT's config (patch 2, width and
depth), variant "wan" (no camera), trained by flow matching in mode independent with the shipped shift and the
empty caption; AdamW at 4e-4, an EMA of 0.995 that is sampled (20 UniPC steps, guidance 1, 16 samples, the same noise every
time) every `--eval-every` steps and at the end of `--budget` seconds.

--space: the latents it learns. "ae" is the shipped autoencoder's (8 channels at 12x20). "pixels" puts each 4x4
pixel square into the channels (48 at 12x20, normalised per channel), which is the same token grid with no
learned latent space. --init "assets" starts from the shipped DiT's base weights instead of random ones.

The measure, `eta`: in the frame's bottom 12 rows (near floor, where a checker square is largest), the grey
pixels' brightness split at Otsu's threshold. Between-class variance / total variance, median over the 16
samples. Two sharp levels give 1, Gaussian noise 2/pi = 0.64. eta cannot tell checkers from camouflage (two tones
in blobs), so `lattice` asks for the squares: the share of the bottom 20 rows' pixels that agree with the best match
in a bank of 4,096 true floors of the style (floor_lattice.py; median over the samples; noise 0.5, camouflage about
0.74). The truth and the latent space's round trip (16 held-out frames) are printed first: the round trip is the
ceiling. One JSON line per evaluation. Samples
are saved to --out as samples_<step>.pt ([16, 48, 80, 3], 0..1) with truth.pt and round_trip.pt, and samples.png
shows the first 8 of each: truth, round trip, then a row per evaluation. CPU: about
0.9 s a step at batch 64 on 2 cores.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from camgrid_checkout import use_this_checkout  # noqa: E402  (this checkout as `camgrid`, whatever is installed)

use_this_checkout()

from floor_lattice import LatticeBank, floor_frames, is_grey, otsu_split  # noqa: E402

from camgrid.model.dit import GridDiT  # noqa: E402
from camgrid.model.files import atomic_save  # noqa: E402
from camgrid.model.sampling import sample_grid  # noqa: E402
from camgrid.synth.render import render  # noqa: E402
from camgrid.synth.scenes import SCENE_STYLES, scene_style  # noqa: E402
from camgrid.train.builtin import load_builtin, save_builtin  # noqa: E402
from camgrid.train.demo import load_demo_model  # noqa: E402
from camgrid.train.objective import flow_matching_loss  # noqa: E402

HEIGHT, WIDTH, NEAR_FLOOR_TOP = 48, 80, 36
SAMPLES, HELD_OUT = 16, 16
HELD_OUT_SEED = 321        # tiny_noise_left's and tiny_ae_latents' held-out scenes


def save(tensor: torch.Tensor, path: Path) -> None:
    atomic_save(path, lambda tmp: torch.save(tensor, tmp))


def otsu_eta(values: torch.Tensor) -> float:
    """Between-class / total variance of the best split of `values` into two levels (nan for fewer than 50)."""
    split = otsu_split(values)
    if split is None:
        return float("nan")
    v, between = split
    return float(between.max() / v.var(unbiased=False))


def near_floor_eta(frames: torch.Tensor) -> float:
    """Median over frames [N, H, W, 3] of the Otsu eta of the grey pixels in the bottom rows."""
    f = frames[:, NEAR_FLOOR_TOP:]
    etas = torch.tensor([otsu_eta(lum[g]) for lum, g in zip(f.mean(-1), is_grey(f))])
    return float(etas.nanmedian())


def floor_scores(frames: torch.Tensor, bank: LatticeBank) -> dict:
    """The near-floor eta (two tones) and the lattice match against `bank` (checkers) of frames [N, H, W, 3]."""
    return {"eta": round(near_floor_eta(frames), 3), "lattice": bank.median(frames)}


def object_share(frames: torch.Tensor) -> float:
    """The share of pixels that are not grey (the objects; floor, sky and shadows are grey), over all frames [..., 3]:
    how much of the frame the objects cover, which guidance inflates."""
    return round(float((~is_grey(frames)).float().mean()), 3)


def save_rows_png(rows: list, path: Path) -> None:
    """Frames as a PNG, one row per list entry (each [N, H, W, 3] in 0..1, laid side by side), written atomically."""
    sheet = torch.cat([torch.cat(list(frames), 1) for frames in rows], 0)
    image = Image.fromarray((sheet.clamp(0, 1).numpy() * 255).round().astype("uint8"))
    atomic_save(path, lambda tmp: image.save(tmp, format="PNG"))


class PixelSquares:
    """Each 4x4 pixel square as 48 channels, normalised per channel: the token grid of the autoencoder's latents,
    with no learned latent space."""

    def __init__(self, frames: torch.Tensor):
        raw = self.raw(frames)
        self.mean = raw.mean((0, 2, 3, 4), keepdim=True)
        self.std = raw.std((0, 2, 3, 4), keepdim=True)

    @staticmethod
    def raw(frames):
        return F.pixel_unshuffle(frames[:, 0].permute(0, 3, 1, 2) * 2 - 1, 4)[:, :, None]

    def encode(self, frames):
        return (self.raw(frames) - self.mean) / self.std

    def decode(self, z):
        x = F.pixel_shuffle((z * self.std + self.mean)[:, :, 0], 4)
        return ((x + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1)[:, None]


class FloorProbe:
    """The data in one latent space, a DiT of the shipped config, its EMA, and the evaluation."""

    def __init__(self, space_name: str, init: str, samples: int, lr: float, out, seed: int = 0,
                 style: str = "standard", device: str = "cpu", bank: int = 4096, align_floor: bool = False):
        aligned = align_floor or scene_style(style).align_floor
        frames = floor_frames(samples + HELD_OUT, style=style, align_floor=aligned)
        model = load_builtin(None)
        with torch.no_grad():
            self.space = model.ae if space_name == "ae" else PixelSquares(frames[:samples])
            latents = torch.cat([self.space.encode(frames[i:i + 256]) for i in range(0, len(frames), 256)])
            self.truth, self.round_trip = frames[-HELD_OUT:, 0], self.space.decode(latents[-HELD_OUT:])[:, 0]
        self.train_latents, self.channels = latents[:samples].to(device), latents.shape[1]
        self.context, self.shift = model.encode_prompt([""]).to(device), float(model.shift)
        self.out, self.seed, self.bank = out, seed, LatticeBank(style, bank, align_floor=False)
        # aligned floors are also matched against a bank of aligned floors: like against like
        self.aligned_bank = LatticeBank(style, bank, align_floor=True) if aligned else None
        self.dit = GridDiT(model.dit.config.replace(variant="wan", camera_rays=False, relative_cameras=False,
                                                    in_dim=self.channels, out_dim=self.channels))
        if init == "assets":
            missing, _ = self.dit.load_state_dict(model.dit.base_state_dict(), strict=False)
            assert not missing, missing
        self.dit.to(device)
        self.ema = copy.deepcopy(self.dit).eval().requires_grad_(False)
        self.opt = torch.optim.AdamW(self.dit.parameters(), lr=lr, weight_decay=0.0)
        if out:
            out.mkdir(parents=True, exist_ok=True)
            save(self.truth, out / "truth.pt")
            save(self.round_trip, out / "round_trip.pt")
        self.sheet = [self.truth[:8], self.round_trip[:8]]     # samples.png's rows: these, then every evaluation's

    def step(self, batch: int) -> float:
        pick = torch.randint(len(self.train_latents), (batch,), device=self.train_latents.device)
        x0 = self.train_latents[pick][:, None]   # [B, 1, C, 1, h, w]
        loss = flow_matching_loss(self.dit, x0, self.context.expand(batch, -1, -1), self.shift, mode="independent")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        with torch.no_grad():
            for pe, pt in zip(self.ema.parameters(), self.dit.parameters()):
                pe.lerp_(pt, 1 - 0.995)
        return loss.item()

    def save_model(self, directory: Path) -> dict:
        """The shipped model's files with the EMA as their base DiT, the camera, ray and sync parts as shipped: the
        floor learned here, for the trainer's later stages to start from (`camgrid train --init DIR`). Returns the
        files' paths."""
        model = load_builtin(None)
        _, unexpected = model.dit.load_state_dict(self.ema.state_dict(), strict=False)
        assert not unexpected, unexpected
        return save_builtin(model, directory)

    @torch.no_grad()
    def evaluate(self, step: int) -> dict:
        """The EMA's samples (the same noise every time): their near-floor eta and lattice match."""
        grid = sample_grid(self.ema, (SAMPLES, 1, self.channels, 1, HEIGHT // 4, WIDTH // 4),
                           self.context.expand(SAMPLES, -1, -1), None, mode="independent", steps=20, cfg=1.0,
                           shift=self.shift, seed=self.seed)
        samples = self.space.decode(grid[:, 0].cpu())[:, 0]
        if self.out:
            save(samples, self.out / f"samples_{step}.pt")
            self.sheet.append(samples[:8])
            save_rows_png(self.sheet, self.out / "samples.png")
        return self.scores(samples)

    def scores(self, frames: torch.Tensor) -> dict:
        """floor_scores against the bank of random floors, and on aligned floors (--align-floor, or a style that
        aligns them) `lattice_aligned` against the aligned bank."""
        scores = floor_scores(frames, self.bank)
        if self.aligned_bank is not None:
            scores["lattice_aligned"] = self.aligned_bank.median(frames)
        return scores


@torch.no_grad()
def shipped_floor(scenes: int, mode: str = "syncam", model_dir=None, teacher: bool = False,
                  device: str = "cpu", cfg=None, empty: bool = False, pictures=None, bank: int = 4096,
                  empty_caption: str = "", style=None) -> dict:
    """The near-floor eta and lattice match of a built-in model's grids in `mode` (assets/ or `model_dir`; the 4-step
    student when its LoRA is there and not `teacher`, else the 20-step teacher, at its own guidance unless `cfg`;
    from each held-out scene's caption and rig; frames 0, 8 and 16 of every view; objects are left out as not
    grey), beside the scenes' truth and round trip. `empty`: the same rigs with the objects taken out (the floor
    alone, under `empty_caption`: the empty one unless given), where no shadow or object edge enters the measure.
    Also the share of the frames the objects cover (`object_share`), truth and generated. `pictures`: a PNG path
    for the truth, the round trip and the grids (rows; frame 8 of every view of the first 4 scenes in each).
    `style`: held-out scenes of this scene style, not the model's. `lattice` matches against a bank of floors from
    cameras turned every way (`lattice_by_view`: the same, view by view); where the scenes' style aligns its floors,
    `lattice_aligned_view0` matches view 0's frames against a bank of aligned floors."""
    model = load_demo_model(model_dir, device=device, teacher=teacher, log=lambda *a: None)
    style = style or model.scene_style
    data = model.scenes(scenes, HELD_OUT_SEED, style=style)   # the model's resolution and frames
    items = [data.scene_and_rig(i) for i in range(scenes)]
    if empty:
        items = [(dataclasses.replace(scene, objects=()), rig) for scene, rig in items]
    truth = torch.stack([render(scene, rig, model.height, model.width) for scene, rig in items])  # [N, 4, F, H, W, 3]
    cameras = torch.stack([model.camera_embedding(rig) for _, rig in items])
    captions = [empty_caption if empty else scene.caption for scene, _ in items]
    generated = model.decode(model.generate_latents(captions, cameras, mode=mode, cfg=cfg))
    round_trip = torch.stack([model.ae.decode(model.ae.encode(views)).cpu() for views in truth])

    def frames(x):
        return x[:, :, [0, 8, 16]].flatten(0, 2)
    if pictures:
        save_rows_png([x[:4, :, 8].flatten(0, 1) for x in (truth, round_trip, generated)], Path(pictures))
    name = f"{'student' if model.is_student else 'teacher'}_{mode}{'_empty' if empty else ''}"
    lattice_bank = LatticeBank(style, bank, model.height, model.width, align_floor=False)
    aligned_bank = (LatticeBank(style, bank, model.height, model.width, align_floor=True)
                    if scene_style(style).align_floor else None)
    rows = (("truth", truth), ("round_trip", round_trip), (name, generated))
    scores = {key: floor_scores(frames(x), lattice_bank) for key, x in rows}
    # only view 0 looks along a grid line: the other views' floors are turned by the rig, not in the aligned bank
    aligned = {"lattice_aligned_view0": {key: aligned_bank.median(frames(x[:, :1])) for key, x in rows}
               } if aligned_bank else {}
    return {"frames": len(frames(truth)), "cfg": model.sampling["cfg"] if cfg is None else cfg, "style": style,
            **{f"{key}_eta": score["eta"] for key, score in scores.items()},
            "lattice": {key: score["lattice"] for key, score in scores.items()}, **aligned,
            # view 0 fixes the floor; the other views' floors follow from their cameras relative to it
            "lattice_by_view": {key: [lattice_bank.median(frames(x[:, v:v + 1])) for v in range(x.shape[1])]
                                for key, x in rows},
            "object_share": {"truth": object_share(truth), "generated": object_share(generated)}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--space", default="ae", choices=("ae", "pixels"))
    p.add_argument("--init", default="scratch", choices=("scratch", "assets"))
    p.add_argument("--budget", type=float, default=1500.0, help="training seconds")
    p.add_argument("--samples", type=int, default=8192, help="training frames")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=4e-4)
    p.add_argument("--eval-every", type=int, default=400)
    p.add_argument("--style", default="standard", choices=sorted(SCENE_STYLES),
                   help="the floor's scene style (the shipped model learned 'close': 1 m checkers from 2.2-3.2 m; "
                        "close_aligned: the same, each camera looking along a grid line)")
    p.add_argument("--seed", type=int, default=0, help="the DiT's initial weights, its batches and the samples' noise")
    p.add_argument("--out", type=Path, default=None, help="folder for the samples (default: none saved)")
    p.add_argument("--shipped", type=int, default=0, metavar="SCENES",
                   help="only measure the shipped student's floors on this many held-out scenes, then stop")
    p.add_argument("--model", default=None, help="with --shipped: this model folder instead of assets/")
    p.add_argument("--teacher", action="store_true", help="with --shipped: the 20-step teacher, not the student")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="where the DiT trains and samples (the data and the autoencoder stay on the CPU)")
    p.add_argument("--cfg", type=float, default=None, help="with --shipped: this guidance, not the model's own")
    p.add_argument("--pictures", type=Path, default=None, metavar="PNG",
                   help="with --shipped: save truth, round trip and generated frames (first 4 scenes) here")
    p.add_argument("--bank", type=int, default=4096, help="true floors the lattice match searches")
    p.add_argument("--save-model", type=Path, default=None, metavar="DIR",
                   help="at the end, write the shipped model's files with the trained DiT as their base (--space ae)")
    p.add_argument("--mode", default="syncam", choices=("independent", "syncam", "hard", "soft"),
                   help="with --shipped: the mode the grids are generated in (independent: the base DiT alone)")
    p.add_argument("--empty", action="store_true",
                   help="with --shipped: the held-out rigs with no objects (the floor alone, the empty caption)")
    p.add_argument("--align-floor", action="store_true",
                   help="train on floors whose squares lie the same way in every frame (each camera looks along a "
                        "grid line over a checker corner; synth/dataset.random_rig align_floor) and match them "
                        "against a bank of such floors too (lattice_aligned)")
    p.add_argument("--scenes-style", default=None, choices=sorted(SCENE_STYLES),
                   help="with --shipped: held-out scenes of this scene style instead of the model's (e.g. a close "
                        "model on close_aligned rigs, beside a model trained on them)")
    p.add_argument("--empty-caption", default="", metavar="TEXT",
                   help="with --empty: the caption of the empty rigs (a model trained with --image-source floor: "
                        "\"floor\")")
    args = p.parse_args()
    if args.shipped:
        print(json.dumps(shipped_floor(args.shipped, args.mode, model_dir=args.model, teacher=args.teacher,
                                       device=args.device, cfg=args.cfg, empty=args.empty,
                                       pictures=args.pictures, bank=args.bank, empty_caption=args.empty_caption,
                                       style=args.scenes_style)))
        return
    if (args.init == "assets" or args.save_model) and args.space != "ae":
        raise SystemExit("--init assets and --save-model need --space ae: the shipped DiT reads the autoencoder's "
                         "latents")
    torch.manual_seed(args.seed)
    probe = FloorProbe(args.space, args.init, args.samples, args.lr, args.out, args.seed, args.style, args.device,
                       args.bank, args.align_floor)
    print(json.dumps({"space": args.space, "init": args.init, "align_floor": args.align_floor,
                      "truth": probe.scores(probe.truth), "round_trip": probe.scores(probe.round_trip)}), flush=True)
    t0, losses = time.time(), []

    def report() -> None:
        recent = losses[-100:]
        print(json.dumps({"step": len(losses), "s": round(time.time() - t0),
                          "loss": round(sum(recent) / len(recent), 4), **probe.evaluate(len(losses))}),
              flush=True)

    while time.time() - t0 < args.budget:
        losses.append(probe.step(args.batch))
        if len(losses) % args.eval_every == 0:
            report()
    if len(losses) % args.eval_every:
        report()
    if args.save_model:
        print(json.dumps({"saved": {k: str(v) for k, v in probe.save_model(args.save_model).items()}}), flush=True)


if __name__ == "__main__":
    main()
