"""The reliability suite's figures: cases tried, rows checked, lost, duplicated and mixed,
printed at the end of the session and written to test-output/reliability.json."""

from __future__ import annotations

import json

import pytest

from ..conftest import REPO
from .suite import CASES, FIGURES


@pytest.fixture(scope="session", autouse=True)
def figures():
    yield FIGURES
    out = REPO / "test-output" / "reliability.json"
    out.parent.mkdir(exist_ok=True)
    summary = {
        **FIGURES,
        "cases": sorted(FIGURES["cases"]),
        "of": len(CASES),
        "untried": sorted(set(CASES) - FIGURES["cases"]),
    }
    out.write_text(json.dumps(summary, indent=2))
    print(
        f"\nreliability suite: {len(FIGURES['cases'])} of {len(CASES)} cases, "
        f"{FIGURES['rows_checked']} rows "
        f"checked, lost {FIGURES['lost']}, duplicated {FIGURES['duplicated']}, "
        f"mixed {FIGURES['mixed']}"
    )
