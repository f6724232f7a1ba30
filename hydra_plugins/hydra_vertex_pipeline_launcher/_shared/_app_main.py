"""The app's `__main__`, in the launcher and in the step, as Hydra's basic launcher has it.

The launcher names the app's main script (or `-m` module) and the argv it was launched with,
and pickles the app's own classes and functions as references to `__main__`. The step runs
that script as `__main__`, its top-level `if __name__ == "__main__":` blocks left out (as
multiprocessing's spawn leaves them out, but the names stay `__main__`): `__main__.Model`,
pickles the job writes, loggers and tracebacks then work as they do in-process, and the job
sees the app's own `sys.argv`.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import io
import os
import pickle
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, List, Optional, Tuple

import cloudpickle
from hydra.core.config_store import ConfigStore

from ._hydra_state import reduce_config_store

# The name multiprocessing's spawn gives a main it re-runs; steps of older versions used it.
STEP_MAIN = "__mp_main__"
# cloudpickle names every code object it pickles by value so; the real file is kept instead.
CLOUDPICKLE_FILENAME = "<dynamic-code>"
# `@hydra.main` and other functools.wraps decorators: how deep a task function may be wrapped.
MAX_UNWRAP = 8


@dataclass(frozen=True)
class MainScript:
    """How a step finds the app's main: a path (relative to the launch dir when inside it) or a
    module name (`python -m pkg.mod`), and the digest of its source."""

    path: Optional[str]
    module: Optional[str]
    digest: str
    # sys.argv as the app was launched: what its jobs see (the script's path as found there).
    argv: Tuple[str, ...] = ()

    def describe(self) -> str:
        return f"module {self.module}" if self.module else f"script {self.path}"


def launching_main(launch_cwd: str) -> Optional[MainScript]:
    """The running app's main, or None where spawn would not re-run it either."""
    main = sys.modules.get("__main__")
    file = getattr(main, "__file__", None)
    if main is None or not file or not os.path.isfile(file):
        return None  # an interactive session
    spec_name = getattr(getattr(main, "__spec__", None), "name", None)
    if spec_name == "__main__" or (spec_name or "").endswith(".__main__"):
        return None  # packages' __main__.py run their main code unguarded
    digest = _digest(Path(file))
    if spec_name:
        return MainScript(path=None, module=spec_name, digest=digest, argv=tuple(sys.argv))
    path = Path(file).absolute()
    cwd = Path(launch_cwd).absolute()
    shown = path.relative_to(cwd) if cwd in path.parents else path
    return MainScript(path=str(shown), module=None, digest=digest, argv=tuple(sys.argv))


def import_main(script: MainScript) -> Optional[str]:
    """Runs the app's main as `__main__` but for its main block; why not, if it cannot."""
    found = _find(script)
    if script.argv:
        sys.argv = [_script_arg(script.argv[0], found), *script.argv[1:]]
    if found is None:
        return f"the app's {script.describe()} is not found here (working dir {os.getcwd()})"
    if _digest(found) != script.digest:
        return f"the app's {script.describe()} here ({found}) differs from the launched one"
    module = types.ModuleType("__main__")
    module.__file__ = str(found)
    if script.module:
        module.__spec__ = importlib.util.find_spec(script.module)
        module.__package__ = script.module.rpartition(".")[0]
    elif str(found.parent) not in sys.path:
        sys.path.insert(0, str(found.parent))  # as `python script.py` puts it first
    sys.modules["__main__"] = sys.modules[STEP_MAIN] = module
    code = compile(_without_main_block(found), str(found), "exec", dont_inherit=True)
    exec(code, module.__dict__)  # noqa: S102 - the app's own code, digest checked above
    return None


def _script_arg(launched: str, found: Optional[Path]) -> str:
    """argv[0] as launched when it names the same file here (a path relative to the launch
    dir, which the step's working dir stands for); else where the script is here."""
    if found is None:
        return launched
    try:
        return launched if os.path.samefile(launched, found) else str(found)
    except OSError:
        return str(found)


def _without_main_block(found: Path) -> ast.Module:
    """The script, its top-level `if __name__ == "__main__":` blocks replaced by their else."""
    tree = ast.parse(found.read_bytes(), str(found))
    body: List[ast.stmt] = []
    for statement in tree.body:
        if isinstance(statement, ast.If) and _tests_for_main(statement.test):
            body.extend(statement.orelse)
        else:
            body.append(statement)
    tree.body = body
    return tree


def _tests_for_main(test: ast.expr) -> bool:
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1):
        return False
    sides = {ast.dump(test.left), ast.dump(test.comparators[0])}
    name, main = ast.dump(ast.Name("__name__", ast.Load())), ast.dump(ast.Constant("__main__"))
    return isinstance(test.ops[0], ast.Eq) and sides == {name, main}


def _find(script: MainScript) -> Optional[Path]:
    if script.module:
        try:
            spec = importlib.util.find_spec(script.module)
        except ImportError:
            return None
        origin = spec.origin if spec else None
        return Path(origin) if origin and os.path.isfile(origin) else None
    path = Path(str(script.path)).absolute()
    return path if path.is_file() else None


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main_attribute(qualname: str, unwraps: int) -> Any:
    """What `__main__.<qualname>` is, unwrapped `unwraps` times: the step's side of a reference."""
    found: Any = sys.modules["__main__"]
    for part in qualname.split("."):
        found = getattr(found, part)
    for _ in range(unwraps):
        found = found.__wrapped__
    return found


def main_reference(obj: Any) -> Optional[Tuple[str, int]]:
    """(qualname, unwraps) when obj is a class or function of __main__ reachable by name."""
    if not isinstance(obj, (type, types.FunctionType)) or obj.__module__ != "__main__":
        return None
    qualname = getattr(obj, "__qualname__", "")
    if "<" in qualname:  # <locals>, <lambda>
        return None
    try:
        found = main_attribute(qualname, 0)
    except (AttributeError, KeyError):
        return None
    for unwraps in range(MAX_UNWRAP + 1):
        if found is obj:
            return qualname, unwraps
        found = getattr(found, "__wrapped__", None)
        if found is None:
            return None
    return None


class ByValuePickler(cloudpickle.Pickler):
    """cloudpickle, but code pickled by value keeps its file name, for tracebacks, and Hydra's
    ConfigStore carries only what a step may use (see _hydra_state)."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, ConfigStore):
            return reduce_config_store(obj)
        if isinstance(obj, types.CodeType):
            constructor, args = self.dispatch_table[types.CodeType](obj)
            return constructor, tuple(
                obj.co_filename if arg == CLOUDPICKLE_FILENAME else arg for arg in args
            )
        return super().reducer_override(obj)


class ByReferencePickler(ByValuePickler):
    """Pickles the app's `__main__` classes and functions as references the step resolves."""

    def __init__(self, file: BinaryIO) -> None:
        super().__init__(file)
        self.referenced_main = False

    def reducer_override(self, obj: Any) -> Any:
        reference = main_reference(obj)
        if reference is not None:
            self.referenced_main = True
            return main_attribute, reference
        return super().reducer_override(obj)


def dumps_by_value(obj: Any) -> bytes:
    with io.BytesIO() as file:
        ByValuePickler(file).dump(obj)
        return file.getvalue()


def dumps_by_reference(obj: Any) -> Tuple[bytes, bool]:
    """The pickle, and whether it refers to `__main__` (then a step needs the app's main)."""
    with io.BytesIO() as file:
        pickler = ByReferencePickler(file)
        pickler.dump(obj)
        return file.getvalue(), pickler.referenced_main


class _FromStep(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        return super().find_class("__main__" if module == STEP_MAIN else module, name)


def loads_from_step(data: bytes) -> Any:
    """What a step pickled: its `__mp_main__` is the app's `__main__` here."""
    return _FromStep(io.BytesIO(data)).load()
