"""Offline checks of the Helm chart that need no helm binary: the chart's
YAML parses, template actions are balanced, every `.Values` path a template
reads exists in values.yaml, and the variables it sets are Dockyard's.

(Rendering with Helm's own engine is in test_helm_render.py.)"""

from __future__ import annotations

import re

import pytest
import yaml

from tests.deploy.conftest import CHART, dockyard_variables, known_variable

TEMPLATES = sorted((CHART / "templates").glob("*.yaml")) + [
    CHART / "templates" / "_helpers.tpl"
]
_ACTION_RE = re.compile(r"{{-?\s*(.*?)\s*-?}}", re.DOTALL)
_OPENERS = ("if ", "range ", "with ", "define ", "block ")
_VALUES_RE = re.compile(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")
_ASSIGN_RE = re.compile(r"\$(\w+)\s*:?=\s*\.Values((?:\.[A-Za-z_]\w*)+)")
_VARIABLE_RE = re.compile(r"\$(\w+)((?:\.[A-Za-z_]\w*)+)")


def values() -> dict:
    return yaml.safe_load((CHART / "values.yaml").read_text())


def scopes(path) -> list[str]:
    """The template's text, split into `define` blocks (each has its own
    variables); a plain template is one scope."""
    text = path.read_text()
    if path.suffix != ".tpl":
        return [text]
    return [part for part in re.split(r"{{-?\s*define ", text) if part.strip()]


def lookup(tree, dotted: str) -> bool:
    node = tree
    for key in dotted.strip(".").split("."):
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


def referenced_values(scope: str) -> set[str]:
    """`.Values` paths read directly or through `$x := .Values...` variables."""
    found = set(_VALUES_RE.findall(scope))
    variables = dict(_ASSIGN_RE.findall(scope))
    for name, rest in _VARIABLE_RE.findall(scope):
        if name in variables:
            found.add(variables[name] + rest)
    return found


def test_chart_yaml_names_the_chart_and_its_version():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())

    assert (chart["apiVersion"], chart["name"]) == ("v2", "dockyard")
    assert re.fullmatch(r"\d+\.\d+\.\d+", chart["version"])


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_template_actions_open_and_close_in_pairs(path):
    depth = 0
    for action in _ACTION_RE.findall(path.read_text()):
        if action.startswith("/*"):
            continue
        if action.startswith(_OPENERS):
            depth += 1
        elif action == "end":
            depth -= 1
        assert depth >= 0, f"{path.name}: an end without its opener"

    assert depth == 0
    assert path.read_text().count("{{") == path.read_text().count("}}")


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_template_reads_only_values_that_exist(path):
    tree = values()

    missing = {
        dotted
        for scope in scopes(path)
        for dotted in referenced_values(scope)
        if not lookup(tree, dotted)
    }

    assert not missing, f"{path.name} reads values absent from values.yaml"


def test_storage_values_offer_every_harbor_storage_type():
    storage = values()["persistence"]["imageChartStorage"]

    assert {"filesystem", "s3", "gcs", "azure"} <= set(storage)
    assert storage["type"] in {"filesystem", "s3", "gcs", "azure"}


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_template_sets_only_variables_dockyard_reads(path):
    unknown = {
        name
        for name in dockyard_variables(path.read_text())
        if not known_variable(name)
    }

    assert not unknown
