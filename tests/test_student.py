"""The few-step student (train/student.py, train/distill.py), the NVS measurement and the tables (CPU, micro sizes)."""
import json

import pytest
import torch

from camgrid.model.lora import apply_lora
from camgrid.model.sampling import prepare_scheduler, sample_grid
from camgrid.train.builtin import load_builtin
from camgrid.train.config import TrainConfig
from camgrid.train.distill import Trajectories, distill, euler_sample, student_sigmas, student_velocity
from camgrid.train.claims import median_of
from camgrid.train.nvs import nvs_scores, ordering_stability, placement
from camgrid.model.checks import InputError
from camgrid.train.student import (STUDENT_FILE, STUDENT_SAMPLING, TEACHER_STEPS, attach_student, detach_student,
                                   export_student, load_student, student_state_dict)
from camgrid.train.trainer import Trainer

MICRO = dict(device="cpu", height=16, width=32, frames=5, views=2, samples=6, workers=0, dim=32, ffn_dim=64,
             num_heads=2, num_layers=1, text_dim=32, latent_dim=4, ae_width=8, sync_rank=8, batch=2,
             time_budget=1e9, checkpoint_every=10 ** 9, progress_bar=False)


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher")
    Trainer(TrainConfig(**{**MICRO, "out": str(out), "steps": 2}), log=lambda *_: None).run()
    return out


def _inputs(model, b=2, v=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, v, *model.latent_shape(v)[2:], generator=g)
    return x, model.encode_prompt(["a red sphere and a blue box"] * b), torch.randn(b, v, model.latent_frames, 12,
                                                                                  generator=g) * 0.1


def _perturb(dit, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in dit.named_parameters():
            if name.endswith((".up", ".delta")):
                p.add_(torch.randn(p.shape, generator=g) * 0.05)


def test_the_student_starts_as_the_teacher_and_its_lora_file_reproduces_it(teacher_dir):
    teacher, student = load_builtin(teacher_dir), load_builtin(teacher_dir)
    params = attach_student(student.dit, rank=4)
    assert params and all(p.requires_grad for p in params)
    assert not any(p.requires_grad for n, p in student.dit.named_parameters() if "original" in n)
    x, ctx, cam = _inputs(teacher)
    t = torch.tensor([700.0, 300.0])
    with torch.no_grad():
        for mode in ("independent", "syncam", "hard", "soft"):
            torch.testing.assert_close(student.dit(x, t, ctx, mode=mode, camera=cam),
                                       teacher.dit(x, t, ctx, mode=mode, camera=cam))
    _perturb(student.dit)
    sd = student_state_dict(student.dit, dtype=torch.float32)
    assert any(k.endswith(".lora_down.weight") for k in sd) and any(k.endswith(".diff_m") for k in sd)
    assert all(k.startswith("diffusion_model.") for k in sd)
    merged = apply_lora(load_builtin(teacher_dir).dit, sd)
    assert not merged.applied_loras[-1].unmatched
    with torch.no_grad():
        for mode in ("independent", "syncam", "hard", "soft"):
            ours = student.dit(x, t, ctx, mode=mode, camera=cam)
            assert not torch.allclose(ours, teacher.dit(x, t, ctx, mode=mode, camera=cam), atol=1e-4)
            torch.testing.assert_close(merged(x, t, ctx, mode=mode, camera=cam), ours, atol=1e-5, rtol=1e-4)
    merged_in_place = detach_student(student.dit, merge=True)
    with torch.no_grad():
        torch.testing.assert_close(merged_in_place(x, t, ctx, mode="syncam", camera=cam),
                                   merged(x, t, ctx, mode="syncam", camera=cam), atol=1e-5, rtol=1e-4)


def test_the_student_schedule_is_four_of_the_teachers_noise_levels_and_sample_grids_euler():
    for shift in (1.0, 3.0, 5.0):
        sigmas = student_sigmas(shift)
        teacher = prepare_scheduler("unipc", TEACHER_STEPS, shift)[1]
        assert sigmas.numel() == STUDENT_SAMPLING["steps"] + 1 and float(sigmas[-1]) == 0.0
        for s in sigmas[1:-1]:
            assert (teacher - s).abs().min() < 1e-5
    assert torch.allclose(student_sigmas(3.0), torch.tensor([1.0, 0.9, 0.75, 0.5, 0.0]))


def test_euler_over_the_student_sigmas_is_what_sample_grid_runs(teacher_dir):
    model = load_builtin(teacher_dir)
    attach_student(model.dit, rank=4)
    _perturb(model.dit)
    x, ctx, cam = _inputs(model)
    traj = Trajectories("syncam", x[:, None], ctx, cam)
    sigmas = student_sigmas(3.0)
    ours = euler_sample(model.dit, traj, sigmas, student_velocity)
    theirs = sample_grid(model.dit, x, ctx, mode="syncam", camera=cam, steps=4, cfg=1.0, shift=3.0, scheduler="euler")
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)


def test_a_student_file_loads_back_as_the_students_starting_point(teacher_dir, tmp_path):
    """load_student (distill --init-student) is export_student's inverse; a file of another rank, or with a
    non-finite value, is refused by name instead of training from a broken start."""
    trained = load_builtin(teacher_dir)
    attach_student(trained.dit, rank=4)
    _perturb(trained.dit)
    path = export_student(trained.dit, tmp_path / STUDENT_FILE)
    fresh = load_builtin(teacher_dir)
    attach_student(fresh.dit, rank=4)
    assert load_student(fresh.dit, path) == len(student_state_dict(fresh.dit)) - sum(
        k.endswith(".alpha") for k in student_state_dict(fresh.dit))
    for key, value in student_state_dict(trained.dit).items():
        torch.testing.assert_close(student_state_dict(fresh.dit)[key], value, atol=0, rtol=0)
    x, ctx, cam = _inputs(trained)
    t = torch.tensor([700.0, 300.0])
    with torch.no_grad():
        torch.testing.assert_close(fresh.dit(x, t, ctx, mode="hard", camera=cam),
                                   trained.dit(x, t, ctx, mode="hard", camera=cam), atol=1e-3, rtol=1e-3)
    other_rank = load_builtin(teacher_dir)
    attach_student(other_rank.dit, rank=2, alpha=4)
    with pytest.raises(InputError, match="another LoRA rank"):
        load_student(other_rank.dit, path)
    sd = student_state_dict(trained.dit)
    sd[next(k for k in sd if k.endswith(".diff_m"))][0, 0] = float("nan")
    with pytest.raises(InputError, match="non-finite"):
        load_student(fresh.dit, sd)
    with pytest.raises(InputError, match="not a student LoRA of this model"):
        load_student(fresh.dit, {k: v for k, v in sd.items() if "blocks.0." not in k})


def test_distill_can_start_from_an_earlier_student(teacher_dir, tmp_path):
    first = distill(teacher_dir, tmp_path / "a", budget=1e6, trajectories=2, cfg=3.0, batch=2, teacher_batch=2,
                    rank=4, device="cpu", log=lambda *_: None, max_steps=2)
    again = distill(teacher_dir, tmp_path / "b", budget=1e6, trajectories=2, cfg=3.0, batch=2, teacher_batch=2,
                    rank=4, device="cpu", log=lambda *_: None, max_steps=1, init_student=tmp_path / "a" / STUDENT_FILE)
    start = again["init_student"]["student_4step_psnr"]
    # the same held-out trajectories (same seed): the warm start scores what the first run's student scored
    for mode, score in first["validation"].items():
        assert start[mode] == pytest.approx(score["student_4step_psnr"], abs=0.05)


def test_distill_writes_a_lora_that_loads_as_the_student(teacher_dir, tmp_path):
    lines = []
    report = distill(teacher_dir, tmp_path / "student", budget=1e6, trajectories=2, cfg=3.0, batch=2, teacher_batch=2,
                     rank=4, device="cpu", log=lines.append, max_steps=3)
    assert (tmp_path / "student" / STUDENT_FILE).is_file()
    saved = json.loads((tmp_path / "student" / "distill.json").read_text())
    assert saved["steps"] == 3 and set(saved["validation"]) == {"independent", "syncam", "hard", "soft"}
    assert report["export_check"]["relative_error"] < 2e-2 and report["export_check"]["patched"] > 0
    student = load_builtin(teacher_dir, student=tmp_path / "student" / STUDENT_FILE)
    assert student.is_student and student.sampling == STUDENT_SAMPLING
    rig_cams = torch.zeros(2, 3, student.latent_frames, 12)
    lat = student.generate_latents(["a red sphere"] * 2, rig_cams, mode="soft")
    assert lat.shape == student.latent_shape(3, 2) and torch.isfinite(lat).all()
    with pytest.raises(FileNotFoundError, match="distil it"):
        load_builtin(teacher_dir, student=True)                          # no LoRA beside the teacher's files


def test_nvs_scores_and_ordering_stability():
    g = torch.Generator().manual_seed(0)
    truth = torch.full((3, 2, 8, 8, 3), 0.5)
    ids = torch.full((3, 2, 8, 8), -1)
    truth[:, :, 2:5, 2:5] = torch.tensor([0.9, 0.12, 0.12])             # a red object
    ids[:, :, 2:5, 2:5] = 0
    perfect = nvs_scores(truth, truth, ids, ["red"])
    assert perfect["iou"] == 1.0 and perfect["psnr"] > 90
    shifted = truth.roll(1, dims=3)
    worse = nvs_scores(shifted, truth, ids, ["red"])
    assert worse["iou"] == pytest.approx(6 / 12) and worse["psnr"] < 30
    noisy = truth.clone()
    noisy[0] = torch.rand(2, 8, 8, 3, generator=g)                      # view 0 (the source) is not scored
    assert nvs_scores(noisy, truth, ids, ["red"]) == perfect
    st = ordering_stability({"a": [3.0, 3.1, 2.9, 3.2], "b": [1.0, 1.2, 0.9, 1.1], "c": [2.0, None, 2.1, 1.9]})
    assert st["order"] == ["a", "c", "b"] and st["bootstrap"] == 1.0 and st["halves_agree"] and st["scenes"] == 3


def _moving_object_grid():
    """3 views of a red 3x3 object 0, 2 and 4 pixels right of view 0's position: (frames, ids)."""
    frames = torch.full((3, 2, 8, 12, 3), 0.5)
    ids = torch.full((3, 2, 8, 12), -1)
    for v in range(3):
        frames[v, :, 2:5, 2 + 2 * v:5 + 2 * v] = torch.tensor([0.9, 0.12, 0.12])
        ids[v, :, 2:5, 2 + 2 * v:5 + 2 * v] = 0
    return frames, ids


def test_nvs_placement_tells_views_that_follow_their_cameras_from_copies_of_view_0():
    truth, ids = _moving_object_grid()
    right = placement(truth, ids, ["red"])
    assert right == {"place_px": 0.0, "copy_px": 3.0, "placed": 4, "missed": 0.0}   # median of 2 and 4 px
    copied = truth[:1].expand(3, -1, -1, -1, -1).clone()                # every view drawn as view 0
    assert placement(copied, ids, ["red"]) == {**right, "place_px": 3.0}
    gone = truth.clone()
    gone[2] = 0.5                                                       # view 2 forgot the object
    assert placement(gone, ids, ["red"]) == {"place_px": 0.0, "copy_px": 2.0, "placed": 2, "missed": 0.5}
    assert placement(truth, torch.full_like(ids, -1), ["red"])["place_px"] is None   # nothing to place
    assert nvs_scores(truth, truth, ids, ["red"])["copy_px"] == 3.0
    assert median_of([None, 1.0, 4.0]) == 2.5 and median_of([]) is None and median_of(torch.tensor([3.0, 1.0])) == 2.0


def test_tables_on_another_scene_style_pair_with_that_styles_model(teacher_dir, tmp_path):
    # --scene-style: a model measured on another style's held-out scenes, so that same_views can pair it with a
    # model of that style (the rigs differ between styles, and same_views refuses grids of other cameras)
    from camgrid.train.same_views import compare_runs
    from camgrid.train.tables import ROWS, run_tables

    assert load_builtin(teacher_dir).scene_style == "standard"
    runs = {}
    for style in (None, "close_aligned"):
        out = tmp_path / str(style)
        runs[style] = run_tables(teacher_dir, out, scenes=1, views=2, batch=1, rows=ROWS[:1], log=lambda *_: None,
                                 scene_style=style)
    assert runs[None]["settings"]["scene_style"] == "standard"
    assert runs["close_aligned"]["settings"]["scene_style"] == "close_aligned"
    with pytest.raises(InputError, match="scene style"):
        compare_runs(tmp_path / "None", tmp_path / "close_aligned")


def test_tables_run_every_row_and_the_nvs_table(teacher_dir, tmp_path):
    from camgrid.train.tables import ROWS, run_tables

    student_dir = tmp_path / "student"
    distill(teacher_dir, student_dir, budget=1e6, trajectories=1, batch=1, teacher_batch=1, rank=2, device="cpu",
            log=lambda *_: None, max_steps=1)
    results = run_tables(teacher_dir, tmp_path / "tables", student_dir / STUDENT_FILE, scenes=2, views=2, batch=2,
                         rows=ROWS[:2], log=lambda *_: None)
    assert set(results["rows"]) == {"teacher 20 steps", "student 4 steps"} and not results["skipped"]
    assert results["rows"]["teacher 20 steps"]["syncam"]["psnr_vs_reference"] > 90     # the reference itself
    assert set(results["nvs"]) == {"teacher 20 steps", "student 4 steps"}
    assert {"psnr", "iou", "place_px", "copy_px", "placed"} <= set(results["nvs"]["student 4 steps"]["soft"])
    text = (tmp_path / "tables" / "tables.md").read_text()
    assert "| student 4 steps | hard |" in text and "Novel-view synthesis" in text and "copying view 0 px" in text
    assert set(results["controls"]) == {"truth round trip", "view 0 copied"} and "| view 0 copied |" in text
    assert results["controls"]["view 0 copied"]["scenes"] == 2 and "place_px" in results["nvs_ceiling"]
    from camgrid.train.tables import format_tables
    assert results["settings"]["source_noise"] == 1.0 and "(view 0 given; views" in text
    results["settings"]["source_noise"] = 0.5   # --source-noise: the NVS table says at which noise view 0 was given
    assert "(view 0 given at 0.5 of the noise level; views" in format_tables(results)
    # every grid's detections are kept, so two runs compare on the same views (train/same_views.py)
    from camgrid.train.same_views import compare_runs, main as same_views_main
    same = compare_runs(tmp_path / "tables", tmp_path / "tables")
    assert set(same) == {"teacher 20 steps", "student 4 steps"} and set(same["student 4 steps"]) == set(
        results["rows"]["student 4 steps"]) - {"settings", "claims"}
    assert all(r["a"] == r["b"] and r["b_lower"] == 0 for modes in same.values() for r in modes.values())
    assert same_views_main([str(tmp_path / "tables"), str(tmp_path / "tables"), "--out", str(tmp_path / "s.md")]) == 0
    assert "| student 4 steps | hard |" in (tmp_path / "s.md").read_text()
    # and the novel-view scores per scene, so those pair too
    assert len(results["nvs"]["student 4 steps"]["soft"]["per_scene"]["psnr"]) == 2
    assert "Novel-view synthesis on the same scenes" in (tmp_path / "s.md").read_text()
    # the files measured, so the demo can tell whether these claims are about the model it runs
    from camgrid.train.builtin import model_fingerprint
    assert results["files"] == model_fingerprint(teacher_dir, student_dir / STUDENT_FILE)
    assert set(results["files"]) >= {"camgrid-tiny.safetensors", STUDENT_FILE}
