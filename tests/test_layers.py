"""The program's shape (SPEC §8): the layers import downwards only, run.py stays thin, and nobody asks
a model or guide what it is by probing it."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BELOW = {"data": set(), "model": {"data"}, "guides": {"data", "model"},
         "training": {"data", "model", "guides"}, "evaluation": {"data", "model", "guides", "training"}}
PROJECT = {"data", "model", "guides", "training", "evaluation", "experiment", "baselines", "bench", "run",
           "superresolve"}


def imported_packages(path: Path) -> set[str]:
    """The project's top-level packages a module imports, at any depth of the file."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names & PROJECT


@pytest.mark.parametrize("package", list(BELOW))
def test_each_layer_imports_only_the_layers_below_it(package):
    for path in sorted((ROOT / package).glob("*.py")):
        assert imported_packages(path) <= BELOW[package] | {package}, path.name


@pytest.mark.parametrize("command", ["run.py", "superresolve.py"])
def test_the_commands_only_parse_and_dispatch(command):
    source = (ROOT / command).read_text()
    assert len(source.splitlines()) < 80
    assert imported_packages(ROOT / command) == {"experiment"}


def test_models_and_guides_are_asked_through_what_they_declare_not_probed():
    for package in ("model", "guides", "training", "evaluation", "experiment"):
        for path in sorted((ROOT / package).glob("*.py")):
            text = path.read_text()
            for probe in ("hasattr(guide", "hasattr(model", "getattr(guide", "getattr(model", "config.get("):
                assert probe not in text, f"{path.name}: {probe}"
