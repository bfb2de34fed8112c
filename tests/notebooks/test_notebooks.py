"""Every analysis notebook runs on the demo data, writes its HTML, and draws charts that show data."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from tests.notebooks.conftest import ROOT, notebook_runner

NOTEBOOKS = notebook_runner().NOTEBOOKS
HTML = ROOT / "artifacts" / "notebooks"
README_FIGURES = notebook_runner().README_FIGURES


def test_every_notebook_has_a_readme_chart() -> None:
    assert {n.stem for n in NOTEBOOKS} == set(README_FIGURES)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_and_every_chart_has_data(
    notebook: Path, runner: ModuleType, demo: dict[str, str], tmp_path: Path
) -> None:
    figures = tmp_path / "figures"
    html = runner.execute(notebook, HTML, demo | {"ZHIDA_FIGURES": str(figures)})
    page = html.read_text(encoding="utf-8")
    assert "Traceback" not in page
    saved = sorted(figures.glob("*.png"))
    assert saved, "the notebook saved no chart"
    assert page.count("data:image/png;base64") >= len(saved)
    assert README_FIGURES[notebook.stem] in {p.stem for p in saved}
    for png in saved:
        pixels = plt.imread(png)
        assert png.stat().st_size > 10_000 and pixels.std() > 0.05, f"{png.name} looks empty"


def test_readme_charts_are_committed() -> None:
    for name in README_FIGURES.values():
        assert (ROOT / "notebooks" / "figures" / f"{name}.png").is_file(), f"run `make figures` for {name}"
