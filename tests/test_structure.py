"""The code's shape, as rules that stay true (docs/ARCHITECTURE.md §1 Layout and boundaries):

- layering: what each folder may import (kernels <- model <- synth <- train, nodes on top), ComfyUI only in
  nodes/host.py, no node module imports the CLI module model/pipeline.py;
- no import cycle among the pack's modules, and no function-level import of the pack's own modules (the way a
  cycle is usually hidden); lazy imports of heavy optional packages are fine;
- size: no file in model/ or nodes/ above 500 lines, no function above 60 lines, except the allow-listed ones;
- every package folder is listed in pyproject.toml (a regular install would otherwise miss it).

Everything is read with `ast`: nothing is imported, so the rules hold for files no test imports.
"""
from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("kernels", "model", "synth", "train", "nodes")

# What each folder may import from the pack (docs/ARCHITECTURE.md §1 Layout and boundaries).
ALLOWED_IMPORTS = {
    "kernels": set(),                                  # self-contained: kernel, launcher, torch reference
    "model": {"kernels"},                              # pure PyTorch
    "synth": {"model", "kernels"},                     # synthetic scenes, rendered with the model's cameras
    "train": {"model", "synth", "kernels"},            # training and the built-in model
    "nodes": {"model", "kernels", "train"},            # ComfyUI nodes (train: the built-in model only)
}
# the only node module that reaches into train/: the built-in model's node (it loads that model)
NODES_USING_TRAIN = {"nodes.builtin"}
# top-level modules that are ComfyUI (or live only inside a ComfyUI process); an absolute `import nodes` is
# ComfyUI's nodes.py (the pack's own nodes/ is always imported relatively)
COMFYUI_MODULES = {"comfy", "comfy_extras", "comfy_api", "folder_paths", "latent_preview", "server", "execution",
                   "node_helpers", "comfy_execution", "nodes"}
# Heavy or optional third-party packages a function may import lazily (each such import carries a comment).
LAZY_IMPORT_OK = {"diffusers", "transformers", "PIL", "imageio", "imageio_ffmpeg", "tqdm", "torch", "sentencepiece"} | COMFYUI_MODULES

MAX_FILE_LINES = 500     # model/ and nodes/
MAX_FUNCTION_LINES = 60  # everywhere in the pack; a function's lines from `def` to its last line
# Justified exceptions, each with its reason. Keep this short: a new entry needs a reason a reviewer accepts.
FILE_LINES_ALLOWED: dict[str, str] = {}
FUNCTION_LINES_ALLOWED: dict[str, str] = {
    # "model/x.py::function": "why it is one function",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _pack_files() -> dict[str, Path]:
    return {_module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


FILES = _pack_files()


def _imports(name: str, path: Path, tree: ast.AST):
    """(node, pack module it names or None, third-party top-level name or None) for every import in `tree`."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")
            base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
            target = ".".join(base + ([node.module] if node.module else []))
            submodules = [f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in FILES]
            if node.module or len(submodules) < len(node.names):  # `from . import host` names only a submodule
                yield node, target, None
            for submodule in submodules:   # `from . import host`, `from .camera import rig`
                yield node, submodule, None
        elif isinstance(node, ast.ImportFrom):
            top = node.module.split(".")[0]
            yield node, (node.module if top == "camgrid" else None), (None if top == "camgrid" else top)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                yield node, (alias.name if top == "camgrid" else None), (None if top == "camgrid" else top)


def _strip_camgrid(target: str) -> str:
    return target[len("camgrid."):] if target.startswith("camgrid.") else target


PARSED = {name: ast.parse(path.read_text(encoding="utf-8"), str(path)) for name, path in FILES.items()}


def _function_scopes(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def _module_level_edges() -> dict[str, set]:
    """Pack module -> pack modules it imports at module level (imports inside functions run later)."""
    inside = {id(n) for tree in PARSED.values() for fn in _function_scopes(tree) for n in ast.walk(fn)}
    edges = defaultdict(set)
    for name, tree in PARSED.items():
        for node, target, _ in _imports(name, FILES[name], tree):
            if target is not None and id(node) not in inside:
                target = _strip_camgrid(target)
                if target in FILES and target != name:
                    edges[name].add(target)
    return edges


# --- layering ----------------------------------------------------------------------------------------

def test_each_folder_imports_only_the_layers_below_it():
    bad = []
    for name, tree in PARSED.items():
        layer = name.split(".")[0]
        for node, target, _ in _imports(name, FILES[name], tree):
            if target is None:
                continue
            other = _strip_camgrid(target).split(".")[0]
            if other in ALLOWED_IMPORTS and other != layer and other not in ALLOWED_IMPORTS[layer]:
                bad.append(f"{FILES[name].relative_to(ROOT)}:{node.lineno} imports {target}")
            if layer == "nodes" and other == "train" and name not in NODES_USING_TRAIN:
                bad.append(f"{FILES[name].relative_to(ROOT)}:{node.lineno} imports {target} (only "
                           f"{NODES_USING_TRAIN} may: the built-in model)")
    assert not bad, "imports against docs/ARCHITECTURE.md §1 Layout and boundaries:\n" + "\n".join(bad)


def test_only_nodes_host_imports_comfyui():
    bad = [f"{FILES[name].relative_to(ROOT)}:{node.lineno} imports {top}"
           for name, tree in PARSED.items() if name != "nodes.host"
           for node, _, top in _imports(name, FILES[name], tree) if top in COMFYUI_MODULES]
    assert not bad, "\n".join(bad)


def test_no_node_module_imports_the_cli_module():
    bad = [f"{FILES[name].relative_to(ROOT)}:{node.lineno}" for name, tree in PARSED.items()
           if name.startswith("nodes") for node, target, _ in _imports(name, FILES[name], tree)
           if target is not None and _strip_camgrid(target) == "model.pipeline"]
    assert not bad, "node modules importing model/pipeline.py (use model/modes.py): " + ", ".join(bad)


def test_the_layering_rules_can_fail():
    # the parser sees relative imports of every depth, so the rules above are not vacuous
    tree = ast.parse("from ..model.pipeline import run\nfrom . import host\nimport folder_paths\n")
    found = list(_imports("nodes.sampler", ROOT / "nodes" / "sampler.py", tree))
    assert ("model.pipeline" in {t for _, t, _ in found} and "nodes.host" in {t for _, t, _ in found}
            and "folder_paths" in {top for _, _, top in found})


# --- cycles and hidden imports ------------------------------------------------------------------------

def _cycle(edges: dict[str, set]):
    """One import cycle as a list of modules, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def test_no_import_cycle():
    cycle = _cycle(_module_level_edges())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_cycles():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}}) is None


def test_no_function_level_import_of_the_pack():
    """An import of the pack's own modules inside a function is how a cycle is hidden; a lazy import of a heavy
    optional package (diffusers, PIL, ComfyUI, ...) is fine."""
    bad = []
    for name, tree in PARSED.items():
        for fn in _function_scopes(tree):
            for node in ast.walk(fn):
                if not isinstance(node, (ast.Import, ast.ImportFrom)):
                    continue
                _, target, top = next(_imports(name, FILES[name], ast.Module(body=[node], type_ignores=[])))
                if target is not None or top not in LAZY_IMPORT_OK:
                    what = target or top
                    bad.append(f"{FILES[name].relative_to(ROOT)}:{node.lineno} {fn.name}() imports {what}")
    assert not bad, "function-level imports:\n" + "\n".join(bad)


# --- size ------------------------------------------------------------------------------------------------

def test_files_in_model_and_nodes_stay_small():
    long = {str(path.relative_to(ROOT)): len(path.read_text(encoding="utf-8").splitlines())
            for name, path in FILES.items() if name.split(".")[0] in ("model", "nodes")}
    over = {f: n for f, n in long.items() if n > MAX_FILE_LINES and f not in FILE_LINES_ALLOWED}
    assert not over, f"files over {MAX_FILE_LINES} lines (split them by job): {over}"


def test_functions_stay_short():
    over = {}
    for name, tree in PARSED.items():
        for fn in _function_scopes(tree):
            lines = fn.end_lineno - fn.lineno + 1
            key = f"{FILES[name].relative_to(ROOT)}::{fn.name}"
            if lines > MAX_FUNCTION_LINES and key not in FUNCTION_LINES_ALLOWED:
                over[key] = lines
    assert not over, f"functions over {MAX_FUNCTION_LINES} lines: {over}"


def test_the_allow_lists_name_things_that_exist_and_say_why():
    for key, reason in {**FILE_LINES_ALLOWED, **FUNCTION_LINES_ALLOWED}.items():
        path, _, function = key.partition("::")
        assert (ROOT / path).is_file() and len(reason) > 20, key
        if function:
            names = {fn.name for fn in _function_scopes(PARSED[_module_name(ROOT / path)])}
            assert function in names, key


# --- packaging ---------------------------------------------------------------------------------------------

def test_every_package_folder_is_in_pyproject():
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    listed = set(re.findall(r'"(camgrid(?:\.[a-z_0-9]+)*)"', text.split("packages =", 1)[1].split("]", 1)[0]))
    folders = {"camgrid." + _module_name(p.parent / "__init__.py") for p in ROOT.rglob("__init__.py")
               if p.parent != ROOT and p.parent.parts[len(ROOT.parts)] in PACKAGES}
    assert folders - listed == set(), f"add to [tool.setuptools] packages: {sorted(folders - listed)}"


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q"]))
