"""The analysis notebooks run headless (nbclient) against a tiny run directory."""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
NAMES = ["01_hashtags_and_vocabulary", "02_training_run", "03_transfer_results"]


def _execute(name: str, run_dir: Path, monkeypatch) -> nbformat.NotebookNode:
    monkeypatch.setenv("WEAKSUP_RUN_DIR", str(run_dir))
    monkeypatch.setenv("WEAKSUP_TRAIN_DIR", "")
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return nb


def _text(nb) -> str:
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            if o.get("output_type") == "stream":
                out.append(o["text"])
            elif o.get("output_type") in ("execute_result", "display_data"):
                out.append(o.get("data", {}).get("text/plain", ""))
    return "\n".join(out)


def _figures(nb) -> int:
    return sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    from _paper_run import paper_run

    return paper_run(tmp_path_factory.getbasetemp())


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_parameterised_and_imports_the_library(name):
    raw = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())
    # Cell ids as written, not as nbformat fills them in on reading (a future nbformat refuses
    # a 4.5 notebook without them).
    assert all(c.get("id") for c in raw["cells"]), "cells without an id: nbformat.validator.normalize"
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", [])
    assert 'os.environ.get("WEAKSUP_RUN_DIR"' in code[0].source
    source = "\n".join(c.source for c in code)
    assert "import weaksup" in source and "from weaksup." in source
    assert all(not c.get("outputs") for c in code), "notebooks are committed without outputs"
    # Analysis only: no notebook redefines a function the library provides.
    library = set()
    for path in (REPO / "weaksup").rglob("*.py"):
        library |= {n.name for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.FunctionDef)
                    and not n.name.startswith("_")}
    defined = {n.name for c in code for n in ast.walk(ast.parse(c.source)) if isinstance(n, ast.FunctionDef)}
    assert not defined & library, f"{name} redefines library functions {defined & library}"


def test_hashtags_notebook(run_dir, monkeypatch):
    nb = _execute("01_hashtags_and_vocabulary", run_dir, monkeypatch)
    text = _text(nb)
    config = json.loads((run_dir / "train" / "config.json").read_text())
    vocab = json.loads(Path(config["vocab_path"]).read_text())
    assert f"vocabulary: {vocab['num_classes']} classes" in text
    assert "occurrences ~ rank^-" in text  # a falling power law
    assert "resolved:" in text and "vocabulary coverage:" in text
    assert "trace:" in text and "trains on:" in text and "ground truth:" in text
    assert _figures(nb) >= 3  # Zipf plot, lexnames, post images


def test_training_notebook(run_dir, monkeypatch):
    from _paper_run import STEPS

    nb = _execute("02_training_run", run_dir, monkeypatch)
    text = _text(nb)
    assert f"{STEPS} logged steps, last step {STEPS}" in text
    assert "restored resnext_tiny:" in text and "predicted" in text
    assert "top-1 prediction among the post's labels:" in text
    assert _figures(nb) >= 2  # curves, predictions


def test_transfer_notebook(run_dir, monkeypatch):
    nb = _execute("03_transfer_results", run_dir, monkeypatch)
    text = _text(nb)
    results = json.loads((run_dir / "transfer" / "results.json").read_text())
    linear = results["results"]["pretrained"]["linear"]["test_top1"]
    assert "1 evaluation results" in text
    assert f"transfer | pretrained | linear | {linear:.4f} |" in text
    assert _figures(nb) >= 1


def test_transfer_notebook_shows_every_protocols_top1(run_dir, tmp_path, monkeypatch):
    # A second evaluation beside the real one, as the demo writes it: few-shot and zero-shot
    # name their top-1 `5shot_top1` and `top1`, not `test_top1`.
    shutil.copytree(run_dir, tmp_path / "run", ignore=shutil.ignore_patterns("target"))
    results = json.loads((run_dir / "transfer" / "results.json").read_text())
    for init, shift in (("pretrained", 0.0), ("random", -0.1)):
        results["results"].setdefault(init, {})
        results["results"][init]["fewshot_ridge"] = {"5shot_top1": 0.4321 + shift, "10shot_top1": 0.5432 + shift}
        results["results"][init]["zeroshot"] = {"top1": 0.0123 + shift / 10, "top5": 0.05}
    (tmp_path / "run" / "more").mkdir()
    (tmp_path / "run" / "more" / "results.json").write_text(json.dumps(results))
    text = _text(_execute("03_transfer_results", tmp_path / "run", monkeypatch))
    assert "more | pretrained | fewshot_ridge 5shot | 0.4321 |" in text
    assert "more | random | fewshot_ridge 10shot | 0.4432 |" in text
    assert "more | pretrained | zeroshot | 0.0123 |" in text
    table = [line for line in text.splitlines() if line.startswith(("transfer |", "more |"))]
    assert table and not [line for line in table if line.split(" | ")[3] == "None"]


def test_notebook_names_a_missing_run_directory(tmp_path, monkeypatch):
    with pytest.raises(CellExecutionError, match="does not exist"):
        _execute("03_transfer_results", tmp_path / "no_such_run", monkeypatch)
