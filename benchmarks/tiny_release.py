"""Ship a newly trained built-in model: the CPU steps after the GPU runs (benchmarks/TINY_MODEL.md).

Run from the repository root, with the folders the two GPU calls returned:
    python benchmarks/tiny_release.py --teacher-files DIR_A --student-files DIR_B [--skip-teacher-demo] [--skip-seeds]

1. checks issue 13's bar (the student's median reprojection error and found-rate within 15 % of the 20-step
   teacher's, every mode, in DIR_B's tables; it stops when the bar is missed unless --ship-student-anyway),
   copies the model files into assets/ (DIR_A: the three teacher files; DIR_B: the student LoRA) and checks
   that teacher and student load;
2. copies DIR_B's tables and distillation report into benchmarks/ (tiny_tables.md / .json, tiny_distill.json),
   and checks that the tables measured the shipped files (their fingerprint; the demo prints their claims
   only for those files);
3. refits the live-preview constants of the new autoencoder into nodes/preview.py (train/fit_preview.py);
4. runs the quick-start demo (`python -m camgrid demo`, the student) timing its wall (the median of three runs)
   and CPU seconds, and the 20-step teacher's (`--teacher`); their pictures become docs/tiny_model_comparison.png,
   docs/tiny_model_rig.png and docs/tiny_model_teacher_comparison.png, their metrics
   benchmarks/tiny_demo_{student,teacher}.json;
5. records the demo's verdicts for seeds 0-4 on this CPU (benchmarks/tiny_demo_seeds.json, tests/test_claims.py);
   with --skip-seeds, a record made on the GPU in DIR_B (tiny_demo_seeds.json) is used instead;
6. writes the generated sections of benchmarks/TINY_MODEL.md and README.md (between `<!-- generated:NAME -->`
   and `<!-- end:NAME -->` markers): the tables, the demo's output and timing, the README's results and the
   quick start's seconds.

    python benchmarks/tiny_release.py --demo-only [--skip-teacher-demo] [--skip-seeds]
runs steps 4-6 for the files already shipped (after a change to the demo).

    python benchmarks/tiny_release.py --tables DIR
only replaces the tables: DIR's tables of the files already shipped (`python -m camgrid.train.tables --out DIR`,
e.g. with a column added since) become benchmarks/tiny_tables.*, and the sections made from them are written
again (TINY_MODEL.md's tables, README.md's results, with the demo timings recorded at the release).
"""
import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path.cwd().resolve()
link_dir = Path(tempfile.mkdtemp())
(link_dir / "camgrid").symlink_to(ROOT, target_is_directory=True)
sys.path.insert(0, str(link_dir))

from camgrid.model.files import atomic_write  # noqa: E402
from camgrid.train.builtin import DIT_FILE, SYNC_FILE, TEXT_AE_FILE, load_builtin, model_fingerprint  # noqa: E402
from camgrid.train.student import STUDENT_FILE  # noqa: E402

ASSETS, DOCS, BENCH = ROOT / "assets", ROOT / "docs", ROOT / "benchmarks"
ENV = {"PYTHONPATH": str(link_dir), "PYTHONUNBUFFERED": "1"}


def run(args: list, log: Path) -> dict:
    """Run `python -m camgrid ...` args; its wall and CPU seconds (children's user + system)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    with open(log, "w") as f:
        subprocess.run([sys.executable, "-m", *args], env={**os.environ, **ENV}, stdout=f, stderr=subprocess.STDOUT,
                       check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(time.time() - t0, 1), "cpu_s": round(cpu, 1), "log": log.read_text()}


def splice(text: str, name: str, body: str) -> str:
    begin, end = f"<!-- generated:{name} -->", f"<!-- end:{name} -->"
    if begin not in text or end not in text:
        raise SystemExit(f"no {begin} ... {end} section to write")
    head, rest = text.split(begin, 1)
    return head + begin + "\n" + body.strip() + "\n" + end + rest.split(end, 1)[1]


def student_holds(tables: dict, tolerance: float = 0.15) -> list:
    """Issue 13's bar for the demo to default to the student: in every mode, its median reprojection error at most
    15 % above the 20-step teacher's and its found-rate at most 15 % below. Returns the failures (empty: it holds)."""
    rows = tables["rows"]
    if "student 4 steps" not in rows or "teacher 20 steps" not in rows:
        return ["the tables have no student or no teacher row"]
    failures = []
    for mode, t in rows["teacher 20 steps"].items():
        s = rows["student 4 steps"].get(mode)
        if mode in ("settings", "claims") or s is None:
            continue
        if t["reproj_px_median"] is not None and (s["reproj_px_median"] is None or
                                                  s["reproj_px_median"] > (1 + tolerance) * t["reproj_px_median"]):
            failures.append(f"{mode}: median reprojection {s['reproj_px_median']} px vs the teacher's {t['reproj_px_median']:.2f}")
        if s["found"] < (1 - tolerance) * t["found"]:
            failures.append(f"{mode}: found-rate {s['found']:.2f} vs the teacher's {t['found']:.2f}")
    return failures


def stage_table(log: str) -> str:
    """The stages' steps, seconds and last losses, from the training run's log."""
    rows = ["| stage | steps | seconds | last loss |", "|---|---:|---:|---:|"]
    for m in re.finditer(r"stage (\w+): (\d+) steps in (\d+)s, last loss ([\d.na]+)", log):
        rows.append(f"| {m[1]} | {m[2]} | {m[3]} | {m[4]} |")
    extra = [line for line in log.splitlines() if line.startswith(("autoencoder reconstruction", "data:", "training samples"))]
    return "\n".join(rows + [""] + [f"- {line}" for line in extra])


def distill_summary(report: dict) -> str:
    lines = [f"Distilled in {report['seconds']['total']:.0f} s on the device ({report['seconds']['trajectories']:.0f} s of "
             f"teacher trajectories: {report['trajectories']}), {report['steps']} student steps (batch "
             f"{report['batch']}, LoRA rank {report['rank']}, lr {report['lr']}), last loss {report['last_loss']:.4f}; "
             f"{report['file_mb']:.2f} MB; merged by apply_lora the file reproduces the trained student to "
             f"{report['export_check']['relative_error']:.1e} (relative). Latent PSNR of 4-step grids against the "
             "20-step teacher's, on held-out trajectories (same noise):", "",
             "| mode | student, 4 steps | teacher, 4 steps |", "|---|---:|---:|"]
    for mode, v in report["validation"].items():
        lines.append(f"| {mode} | {v['student_4step_psnr']:.1f} dB | {v['teacher_4step_psnr']:.1f} dB |")
    return "\n".join(lines)


def _cell(r: dict) -> str:
    if r.get("reproj_px") is None:
        return "n/a"
    return f"{r['reproj_px_median']:.2f} / {r['reproj_px']:.1f}"


def _nvs_cell(r: dict) -> str:
    place = f" / {r['place_px']:.1f} px" if r.get("place_px") is not None else ""
    return f"{r['psnr']:.1f} / {r['iou']:.2f}{place}"


def readme_results(tables: dict, demo: dict, timing: dict) -> str:
    """The README's tiny-model results, from the tables and the demo's metrics."""
    modes = ("independent", "syncam", "hard", "soft")
    s = tables["settings"]
    t = timing.get("student", {})
    lines = [f"**Built-in tiny model** (`python -m camgrid demo`: the few-step student, 4 Euler steps of a LoRA "
             f"distilled from the 20-step teacher; 4 cameras, \"a red sphere and a blue box\", 80×48, "
             f"{t.get('wall_s', 0):.0f} s on 2 CPU cores), middle frames: a ground-truth render on top; under it the "
             "same scene's other three views as syncam draws them when given that scene's view 0 (compare them with "
             "the row above); then the caption generated from text by each mode (the first of its grids); last, from "
             "text in two passes: the independent grid's view 0 given to syncam the same way.", "",
             "![tiny model: ground truth, views generated from view 0, the four modes from text, and two passes]"
             "(docs/tiny_model_comparison.png)", ""]
    if "teacher" in timing:
        lines += ["The 20-step teacher with guidance (`python -m camgrid demo --teacher`, "
                  f"{timing['teacher']['wall_s']:.0f} s):", "",
                  "![tiny model, 20-step teacher](docs/tiny_model_teacher_comparison.png)", ""]
    lines += [f"Multi-view consistency on {s['scenes']} held-out scenes (objects triangulated across the {s['views']} "
             "views; reprojection error in pixels, median / mean; `benchmarks/TINY_MODEL.md`):", "",
             "| | " + " | ".join(modes) + " |", "| --- |" + " --- |" * len(modes)]
    for name in ("teacher 20 steps", "student 4 steps"):
        row = tables["rows"].get(name)
        if row:
            lines.append(f"| {name} | " + " | ".join(_cell(row[m]) for m in modes if m in row) + " |")
    copied = tables.get("controls", {}).get("view 0 copied")
    if copied:
        lines.append("| *control, the same in every column: the true view 0 copied into every view* | "
                     + " | ".join([_cell(copied)] * len(modes)) + " |")
        lines += ["", "The control is not generated: four identical views score "
                  f"{copied['reproj_px_median']:.2f} px, so on these rigs a low error says the views agree, not "
                  "that each shows its own camera's view; the NVS placement below (the third number) measures that."]
    if tables.get("nvs"):
        ceiling = tables.get("nvs_ceiling", {})
        placement = "" if ceiling.get("place_px") is None else (
            f" / median distance in pixels of each object from its true place, where copying view 0 would give "
            f"{ceiling['copy_px']:.1f} px and the true views' round trip {ceiling['place_px']:.1f} px")
        noise = s.get("source_noise", 1.0)
        held = "" if noise == 1.0 else f" at {noise:g} of the grid's noise level (`--source-noise {noise:g}`)"
        lines += ["", f"Novel-view synthesis on the same scenes (view 0's video given{held}, the other views generated and "
                  f"compared with their renders; PSNR in dB / colour-mask IoU{placement}):", "",
                  "| | " + " | ".join(modes) + " |", "| --- |" + " --- |" * len(modes)]
        for name, table in tables["nvs"].items():
            lines.append(f"| {name} | " + " | ".join(_nvs_cell(table[m]) for m in modes if m in table) + " |")
    lines += ["", f"The demo's own comparison ({demo['grids']} grids per mode, same noise in every mode; a direction "
              "only when a paired signed-rank test decides, and it holds for seeds 0–4):", ""]
    lines += [f"- {c['line']}" for c in demo["claims"].values()]
    nvs = demo.get("novel_views")
    if nvs:
        lines += ["", f"And whether the views follow their cameras ({nvs['scenes']} scenes of the caption on the demo's "
                  f"rig, the first the picture's; view 0's video given at {nvs['noise_scale']:g} of the noise level; "
                  "each object's distance from its true place in the other views against copying view 0, paired per "
                  "scene under the same rule):", "", f"- {nvs['line']}"]
    return "\n".join(lines)


def check_tables_fingerprint() -> None:
    """The demo prints the tables' claims only for the files they measured (train/demo.py); tables made before
    they recorded their files were measured on the files shipped here."""
    tables, shipped = json.loads((BENCH / "tiny_tables.json").read_text()), model_fingerprint()
    if tables.setdefault("files", shipped) != shipped:
        raise SystemExit("release: the tables measured other files than the ones shipped now "
                         f"({tables['files']} vs {shipped}): run the tables on these files")
    atomic_write(BENCH / "tiny_tables.json", json.dumps(tables, indent=1))


def refresh_tables(folder: Path) -> None:
    """--tables: new tables of the shipped files in; TINY_MODEL's tables and README's results spliced again."""
    tables = json.loads((folder / "tables.json").read_text())
    if tables.get("files") != model_fingerprint():
        raise SystemExit(f"release: {folder}/tables.json measured other files than the shipped ones: run "
                         "`python -m camgrid.train.tables` on assets/ (its default)")
    for src, dst in (("tables.md", "tiny_tables.md"), ("tables.json", "tiny_tables.json")):
        atomic_write(BENCH / dst, (folder / src).read_text())
    timing = {who: json.loads((BENCH / f"tiny_demo_{who}.json").read_text())["timing"]
              for who in ("student", "teacher") if (BENCH / f"tiny_demo_{who}.json").is_file()}
    doc = BENCH / "TINY_MODEL.md"
    atomic_write(doc, splice(doc.read_text(), "tables", (BENCH / "tiny_tables.md").read_text()))
    readme = ROOT / "README.md"
    atomic_write(readme, splice(readme.read_text(), "tiny-results", readme_results(
        tables, json.loads((BENCH / "tiny_demo_student.json").read_text()), timing)))
    print(f"release: benchmarks/tiny_tables.*, {doc.name}'s tables and README's results updated")


def ship_files(args) -> None:
    """Steps 1-3: the bar, the model files into assets/, the tables and reports, the preview constants."""
    failures = student_holds(json.loads((args.student_files / "tables.json").read_text()))
    if failures and not args.ship_student_anyway:
        raise SystemExit("release: the student does not hold the teacher's quality (issue 13: within 15 %), so the "
                         "demo would not default to it: " + "; ".join(failures) + ". Ship the teacher alone "
                         "(copy the three files of call A into assets/) or rerun with --ship-student-anyway")
    print("release: student vs teacher: " + ("within 15 % in every mode" if not failures else "; ".join(failures)))
    for name in (DIT_FILE, SYNC_FILE, TEXT_AE_FILE):
        shutil.copyfile(args.teacher_files / name, ASSETS / name)
    shutil.copyfile(args.student_files / STUDENT_FILE, ASSETS / STUDENT_FILE)
    load_builtin(student=True)   # both load (the student through apply_lora)
    for src, dst in (("tables.md", "tiny_tables.md"), ("tables.json", "tiny_tables.json"),
                     ("distill.json", "tiny_distill.json")):
        if (args.student_files / src).is_file():
            shutil.copyfile(args.student_files / src, BENCH / dst)
    for src, dst in (("loss.csv", "tiny_train_loss.csv"), ("train.log", "tiny_train.log")):
        if (args.teacher_files / src).is_file():
            shutil.copyfile(args.teacher_files / src, BENCH / dst)
    check_tables_fingerprint()
    print(run(["camgrid.train.fit_preview", "--write"], Path(tempfile.mkdtemp()) / "fit.log")["log"])


def run_demos(skip_teacher: bool) -> dict:
    """Step 4: the demos, timed; their metrics and pictures recorded. {who: timing with the log}."""
    work, timing = Path(tempfile.mkdtemp()), {}
    for who, extra in (("student", []), ("teacher", ["--teacher"])):
        record = BENCH / f"tiny_demo_{who}.json"
        if who == "teacher" and skip_teacher:
            # the recorded run of these files stands, so its section is written again rather than dropped
            recorded = json.loads(record.read_text()) if record.is_file() else {}
            if "log" in recorded.get("timing", {}):
                timing[who] = recorded["timing"]
            continue
        out = work / who
        timing[who] = run(["camgrid", "demo", "--out", str(out), *extra], work / f"demo_{who}.log")
        print(timing[who]["log"])
        if who == "student":
            # the quick start's seconds go into the README; this machine's wall time varies by 15-20 % from run to
            # run, so its seconds (wall and CPU) are those of the median of three runs (the same grids each time)
            runs = [timing[who]] + [run(["camgrid", "demo", "--out", str(work / f"again{i}")], work / f"again{i}.log")
                                    for i in range(2)]
            middle = sorted(runs, key=lambda r: r["wall_s"])[1]
            timing[who] = {**timing[who], "wall_s": middle["wall_s"], "cpu_s": middle["cpu_s"],
                           "wall_runs_s": [r["wall_s"] for r in runs]}
        metrics = json.loads((out / "metrics.json").read_text())
        metrics["timing"] = {**{k: v for k, v in timing[who].items() if k != "log"},
                             "log": "\n".join(line for line in timing[who]["log"].splitlines()
                                              if line.startswith("demo: "))}
        atomic_write(record, json.dumps(metrics, indent=1))
        picture = "tiny_model_comparison.png" if who == "student" else "tiny_model_teacher_comparison.png"
        shutil.copyfile(out / "comparison.png", DOCS / picture)
        if who == "student":
            shutil.copyfile(out / "rig.png", DOCS / "tiny_model_rig.png")
    return timing


def write_sections(timing: dict) -> None:
    """Step 6: the generated sections of TINY_MODEL.md and README.md."""
    doc = BENCH / "TINY_MODEL.md"
    text = splice(doc.read_text(), "tables", (BENCH / "tiny_tables.md").read_text())
    if (BENCH / "tiny_train.log").is_file():
        text = splice(text, "stages", stage_table((BENCH / "tiny_train.log").read_text()))
    if (BENCH / "tiny_distill.json").is_file():
        text = splice(text, "distill", distill_summary(json.loads((BENCH / "tiny_distill.json").read_text())))
    demo_lines = []
    for who, t in timing.items():
        lines = [line for line in t["log"].splitlines() if line.startswith("demo: ")]
        demo_lines += [f"`python -m camgrid demo{' --teacher' if who == 'teacher' else ''}` on this machine's CPU "
                       f"(2 cores): {t['wall_s']:.0f} s wall, {t['cpu_s']:.0f} s CPU", "", "```", *lines, "```", ""]
    text = splice(text, "demo", "\n".join(demo_lines))
    atomic_write(doc, text)
    readme = ROOT / "README.md"
    text = splice(readme.read_text(), "tiny-results", readme_results(
        json.loads((BENCH / "tiny_tables.json").read_text()), json.loads((BENCH / "tiny_demo_student.json").read_text()),
        timing))
    seconds = timing["student"]["wall_s"]
    text = text.replace(text[text.index("<!-- generated:demo-seconds -->"):text.index("<!-- end:demo-seconds -->")],
                        f"<!-- generated:demo-seconds -->{5 * round(seconds / 5):.0f}")
    atomic_write(readme, text)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--teacher-files", type=Path, help="the folder call A's files came back to")
    p.add_argument("--student-files", type=Path, help="the folder call B's files came back to")
    p.add_argument("--tables", type=Path, metavar="DIR", help="only this: tables measured again on the files already "
                   "shipped (python -m camgrid.train.tables --out DIR) replace benchmarks/tiny_tables.* and the "
                   "sections made from them (TINY_MODEL's tables, README's results, the recorded demo timings)")
    p.add_argument("--demo-only", action="store_true", help="no new files: the demos, their pictures and records, the "
                   "seeds and the sections made from them again, for the files already shipped (after a change to "
                   "the demo)")
    p.add_argument("--skip-teacher-demo", action="store_true",
                   help="keep the recorded run of the 20-step teacher's demo (its sections are written from its record)")
    p.add_argument("--skip-seeds", action="store_true", help="use call B's GPU record of the demo seeds (with --demo-only: keep the recorded one)")
    p.add_argument("--ship-student-anyway", action="store_true",
                   help="ship the student as the demo's default even if it misses the 15 %% quality bar")
    args = p.parse_args()
    if args.tables:
        return refresh_tables(args.tables)
    if not args.demo_only and not (args.teacher_files and args.student_files):
        p.error("give --teacher-files and --student-files (a release), --tables DIR (new tables only) or --demo-only")
    if not args.demo_only:
        ship_files(args)
    timing = run_demos(args.skip_teacher_demo)
    if args.skip_seeds and not args.demo_only:
        shutil.copyfile(args.student_files / "tiny_demo_seeds.json", BENCH / "tiny_demo_seeds.json")
    elif not args.skip_seeds:
        print(run(["camgrid.train.demo_seeds"], Path(tempfile.mkdtemp()) / "seeds.log")["log"])
    write_sections(timing)
    print("release: assets/, docs/ pictures, benchmarks/tiny_* and TINY_MODEL.md updated; run the test suite next")


if __name__ == "__main__":
    main()
