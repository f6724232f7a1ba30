"""The border between where code runs: the step's container imports nothing of the launch, the
backends or the command line (nor kfp or aiplatform), and the launch nothing of the step."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import hydra_plugins.hydra_vertex_pipeline_launcher as plugin

PACKAGE = plugin.__name__
PACKAGE_DIR = Path(plugin.__file__).parent
PUBLIC = {"config", "components", "vertex_pipeline_launcher", "__main__", "__init__"}
SIDES = ("_launch", "_backends", "_step", "_shared", "_cli")
# What each side may import of the package: the step's container holds only the step and what
# both sides share (config is the light settings module every Hydra app loads anyway).
ALLOWED: Dict[str, Set[str]] = {
    "_step": {"_step", "_shared", "config", ""},
    "_shared": {"_shared", "config", ""},
    "_backends": {"_backends", "_shared", "config", ""},
    "_launch": {"_launch", "_backends", "_shared", "config", ""},
    "_cli": {"_cli", "_launch", "_backends", "_shared", "config", ""},
    "public": {"_launch", "_cli", "_shared", "config", "components", ""},
}
STEP_NEVER_IMPORTS = ("kfp", "google.cloud.aiplatform", "google_cloud_pipeline_components")


def _part(module: str) -> str:
    """The subpackage or public module of the package a module is in ("" for the package)."""
    parts = module.split(".")
    return parts[2] if len(parts) > 2 else ""


def _side(module: str) -> str:
    part = _part(module)
    return part if part in SIDES else "public"


def _modules(package_dir: Path) -> Iterator[Tuple[str, Path]]:
    for path in sorted(package_dir.rglob("*.py")):
        relative = path.relative_to(package_dir).with_suffix("")
        parts = [p for p in relative.parts if p != "__init__"]
        yield ".".join([PACKAGE, *parts]), path


def _imports(module: str, path: Path) -> Iterator[Tuple[str, int]]:
    """Every module an import statement names, at any depth (lazy ones inside functions too)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            yield base, node.lineno
            for alias in node.names:
                yield f"{base}.{alias.name}", node.lineno


def border_crossings(package_dir: Path) -> List[str]:
    """Each import that crosses a border the wrong way, as `file:line: a -> b`."""
    crossings = []
    for module, path in _modules(package_dir):
        side = _side(module)
        for imported, line in _imports(module, path):
            is_ours = imported == PACKAGE or imported.startswith(PACKAGE + ".")
            wrong = (is_ours and _part(imported) not in ALLOWED[side]) or (
                side in ("_step", "_shared") and imported.startswith(STEP_NEVER_IMPORTS)
            )
            if wrong:
                crossings.append(f"{path.relative_to(package_dir)}:{line}: {module} -> {imported}")
    return crossings


def test_no_import_crosses_the_border_the_wrong_way() -> None:
    assert border_crossings(PACKAGE_DIR) == []


def test_the_border_check_catches_a_step_that_imports_the_launch(tmp_path: Path) -> None:
    copy = tmp_path / "pkg"
    shutil.copytree(PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    entry = copy / "_step" / "_entry.py"
    entry.write_text(entry.read_text() + "\n\ndef _late():\n    from .._launch import _flow\n")
    launch = copy / "_launch" / "_flow.py"
    launch.write_text(launch.read_text() + "\nimport kfp\nfrom .._step import _handback\n")
    crossings = border_crossings(copy)
    assert any(c.startswith("_step/_entry.py:") and c.endswith("._launch._flow") for c in crossings)
    assert any(
        c.startswith("_launch/_flow.py:") and c.endswith("._step._handback") for c in crossings
    )
    # kfp is the launch side's own business.
    assert not any(c.endswith("-> kfp") for c in crossings)


def test_the_steps_modules_load_nothing_of_the_other_sides_in_a_fresh_interpreter() -> None:
    step_side = [m for m, _ in _modules(PACKAGE_DIR) if _side(m) in ("_step", "_shared")]
    code = (
        "import sys\n"
        f"for name in {step_side!r}:\n    __import__(name)\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout.split()
    ours = [m for m in loaded if m.startswith(PACKAGE + ".")]
    assert {_part(m) for m in ours} == {"_step", "_shared", "config"}, ours
    assert not [m for m in loaded if m.startswith(STEP_NEVER_IMPORTS)]


def test_hydras_plugin_scan_finds_nothing_to_run_in_the_subpackages() -> None:
    """Hydra runs every module not named `_x` under hydra_plugins at any app's start, and
    imports each subpackage to look inside (what it loads: test_launcher_options.py)."""
    for sub in SIDES:
        init = ast.parse((PACKAGE_DIR / sub / "__init__.py").read_text(encoding="utf-8"))
        only_docstring = [type(node) for node in init.body] == [ast.Expr]
        assert only_docstring, f"{sub}/__init__.py says what lives there and nothing else"
    for module, _ in _modules(PACKAGE_DIR):
        name = module.rsplit(".", 1)[-1]
        assert _part(module) in PUBLIC | {""} or name.startswith("_") or name in SIDES, module
