"""The Models view's code stays simple: no function of the UI package above complexity B
(radon's grades: A 1-5, B 6-10), and no markup written outside its templates."""

from __future__ import annotations

import re
from pathlib import Path

import loopline.airflow.ui
import pytest
from radon.complexity import cc_rank, cc_visit

PACKAGE = Path(loopline.airflow.ui.__file__).parent
MODULES = sorted(PACKAGE.glob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_function_above_complexity_b(path: Path):
    blocks = cc_visit(path.read_text())
    too_complex = [f"{b.name} {cc_rank(b.complexity)} ({b.complexity})" for b in blocks]
    too_complex = [t for t, b in zip(too_complex, blocks, strict=True) if b.complexity > 10]
    assert not too_complex


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_markup_lives_in_the_templates(path: Path):
    """An element with attributes, or a closing tag, in a Python string would be markup built
    outside autoescape (finding ``<body>`` in a stored report to put the links after it is
    not)."""
    tags = re.findall(r"""["'][^"'\n]*<(?:[a-z]+\s[^>]*>|/[a-z]+>)""", path.read_text())
    assert not tags, tags


def test_the_templates_and_the_style_ship_with_the_package():
    names = {p.name for p in (PACKAGE / "templates").iterdir()}
    assert {"base.html", "overview.html", "model.html", "_macros.html", "card.html"} <= names
    assert (PACKAGE / "static" / "models.css").read_text().startswith("/*")
