"""Executes every notebook in notebooks/ top to bottom against a lake, headless (nbclient with
the vendor/pyenv kernel), and fails on the first error. Used by tests/e2e/notebooks.rs.

    vendor/pyenv/bin/python scripts/run-notebooks.py LAKE_DIR OUT_DIR

The executed copies (with their outputs and figures) are written to OUT_DIR; the notebooks in
git stay without outputs. Prints one line per notebook: name, cells, figures, seconds.
"""
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

lake, out = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
out.mkdir(parents=True, exist_ok=True)
os.environ["SUPPORTLAKE_LAKE_URL"] = str(lake)
notebooks = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
if not notebooks:
    sys.exit("no notebooks found")
for path in notebooks:
    book = nbformat.read(path, as_version=4)
    started = time.monotonic()
    NotebookClient(book, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    figures = sum(1 for cell in book.cells if cell.cell_type == "code"
                  for output in cell.get("outputs", []) if "image/png" in output.get("data", {}))
    nbformat.write(book, out / path.name)
    print(f"{path.name} cells={len(book.cells)} figures={figures} seconds={time.monotonic() - started:.1f}")
