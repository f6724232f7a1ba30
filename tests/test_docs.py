"""The docs stay true: links and anchors resolve, settings named exist and every setting is
documented, and the README's commands are the ones CI runs."""

from __future__ import annotations

import dataclasses
import re
import shlex
from pathlib import Path
from typing import Dict, List, Set

import pytest

from hydra_plugins.hydra_vertex_pipeline_launcher.config import VertexPipelineLauncherConf

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]
CONFIG_PAGE = REPO / "docs" / "configuration.md"
CI_SCRIPT = REPO / ".ci" / "run"
# Settings documented ahead of the branch that adds them (issue 18). Once config.py has one,
# test_pending_settings_are_not_fields_yet fails: take it out of this set.
PENDING_SETTINGS: set = set()

FENCE = re.compile(r"^```.*?^```[ \t]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)
SETTING = re.compile(r"hydra\.launcher\.([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)")
TABLE_SETTING = re.compile(r"^\| `([\w.]+)` \|", re.MULTILINE)


def _prose(text: str) -> str:
    """The text outside code blocks and code spans: where Markdown makes links and headings."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: its text, lowercased, punctuation dropped, spaces as -."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> Set[str]:
    seen: Dict[str, int] = {}
    anchors = set()
    for heading in HEADING.findall(FENCE.sub("", page.read_text(encoding="utf-8"))):
        base = _anchor(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        anchors.add(base if count == 0 else f"{base}-{count}")
    return anchors


def _broken_links(page: Path) -> List[str]:
    broken = []
    for target in LINK.findall(_prose(page.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", target):
            continue  # a web address
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no file {linked}")
        elif anchor and anchor not in _anchors(linked):
            broken.append(f"{target}: no heading with that anchor in {linked.name}")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    assert _broken_links(page) == []


def _kinds(conf: type = VertexPipelineLauncherConf, prefix: str = "") -> Dict[str, str]:
    """Every name under hydra.launcher, dotted, and what it is: a `setting`, a `map` of names
    to values (`env`), or a `group` of settings (`resources`)."""
    kinds = {}
    for field in dataclasses.fields(conf):
        if field.name.startswith("_"):
            continue
        name = prefix + field.name
        default = field.default_factory() if callable(field.default_factory) else field.default
        if dataclasses.is_dataclass(default):
            kinds[name] = "group"
            kinds.update(_kinds(type(default), f"{name}."))
        else:
            kinds[name] = "map" if isinstance(default, dict) else "setting"
    return kinds


def _setting_names() -> Set[str]:
    """What the configuration reference lists: every setting and map, by its dotted name."""
    return {name for name, kind in _kinds().items() if kind != "group"}


def _known(dotted: str) -> bool:
    """`dotted` is a setting, a group of them, or a key of a map (`env.PYTHONPATH`)."""
    kinds = _kinds()
    parts = dotted.split(".")
    holders = [".".join(parts[:n]) for n in range(1, len(parts))]
    return (
        dotted in kinds
        or dotted in PENDING_SETTINGS
        or any(kinds.get(holder) == "map" for holder in holders)
    )


def test_every_setting_the_docs_name_is_a_field_of_the_settings() -> None:
    unknown = {
        f"{page.name}: hydra.launcher.{dotted}"
        for page in PAGES
        for dotted in SETTING.findall(page.read_text(encoding="utf-8"))
        if not _known(dotted)
    }
    assert unknown == set()


def test_the_configuration_reference_lists_every_setting_and_only_those() -> None:
    listed = set(TABLE_SETTING.findall(CONFIG_PAGE.read_text(encoding="utf-8")))
    assert listed == _setting_names() | PENDING_SETTINGS


def test_pending_settings_are_not_fields_yet() -> None:
    assert PENDING_SETTINGS & _setting_names() == set()


def _code_lines(text: str) -> List[str]:
    """The command lines of text's shell code blocks."""
    lines = []
    for block in FENCE.findall(text):
        lines += [line.strip() for line in block.splitlines()[1:-1]]
    return [line for line in lines if line and not line.startswith("#")]


def _quick_start_commands() -> List[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Quick start on your machine\n", 1)[1]
    first_block = FENCE.search(section)
    assert first_block is not None, "the Quick start has no code block"
    return _code_lines(first_block.group(0))


def _extras(command: str) -> Set[str]:
    """The extras of a `pip install ".[a,b]"` command line."""
    found = re.search(r"\.\[([\w,]+)\]", command)
    assert found is not None, f"{command!r} installs no extras of this checkout"
    return set(found.group(1).split(","))


def test_the_quick_start_is_one_install_and_one_local_sweep_of_the_example() -> None:
    install, sweep = _quick_start_commands()
    ci = CI_SCRIPT.read_text(encoding="utf-8")
    ci_install = next(line for line in ci.splitlines() if "pip install" in line)
    assert shlex.split(install)[:2] == ["pip", "install"]
    assert _extras(install) <= _extras(ci_install), "CI must install what the README installs"
    script = shlex.split(sweep)[1]
    assert sweep.startswith("python ") and (REPO / script).is_file()
    config = (REPO / script).parent / "conf" / "config.yaml"
    assert "override hydra/launcher: vertex_pipeline_local" in config.read_text(encoding="utf-8")


def test_the_readme_test_command_is_the_one_ci_runs() -> None:
    ci_lines = [line.strip() for line in CI_SCRIPT.read_text(encoding="utf-8").splitlines()]
    whole_suite = [line for line in ci_lines if re.fullmatch(r"python -m pytest( -\S+)*", line)]
    assert len(whole_suite) == 1, f"CI should run the whole suite once: {whole_suite}"
    assert whole_suite[0] in _code_lines(README.read_text(encoding="utf-8"))
