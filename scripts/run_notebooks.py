"""Re-executes notebooks and stores their outputs in them.

  python scripts/run_notebooks.py                      # every notebooks/*.ipynb
  python scripts/run_notebooks.py deepdream populations

Each notebook runs top to bottom with nbclient from the repository root (the
working directory the notebooks import `experiments` and `genjax` from),
without GENJAX_NOTEBOOK_QUICK (the stored outputs are the full runs), and is
written back with its outputs: images as image/png, printed figures. Cell
execution timestamps are not recorded, the kernel's version details and the
stderr streams (progress bars, timings, temporary paths, warnings) are
dropped, so that a rerun changes a notebook only where what it shows
changes; execution counts are kept. The wall time each notebook took and its
kernel's CPU time are printed.
"""

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import nbclient
import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def notebook_paths(names: list[str]) -> list[Path]:
  """notebooks/<name>.ipynb for each name (with or without .ipynb); all when empty."""
  if not names:
    return sorted(NOTEBOOKS.glob("*.ipynb"))
  paths = [NOTEBOOKS / (n if n.endswith(".ipynb") else f"{n}.ipynb") for n in names]
  missing = [p.name for p in paths if not p.exists()]
  if missing:
    known = ", ".join(p.stem for p in sorted(NOTEBOOKS.glob("*.ipynb")))
    raise SystemExit(f"no notebook {', '.join(missing)} in {NOTEBOOKS}; have: {known}")
  return paths


def strip(notebook) -> None:
  """Drops what changes from run to run without changing what the notebook shows."""
  notebook.metadata.pop("widgets", None)
  notebook.metadata.get("language_info", {}).pop("version", None)
  for cell in notebook.cells:
    cell.metadata.pop("execution", None)
    cell.metadata.pop("ExecuteTime", None)
    if cell.cell_type == "code":  # progress bars, timings and temporary paths go to stderr
      cell.outputs = [out for out in cell.outputs
                      if not (out.output_type == "stream" and out.name == "stderr")]


def execute(path: Path, timeout: int = 1200):
  """The notebook at `path`, executed from the repository root."""
  notebook = nbformat.read(path, as_version=4)
  nbclient.NotebookClient(notebook, timeout=timeout, kernel_name="python3", record_timing=False,
                          resources={"metadata": {"path": str(ROOT)}}).execute()
  strip(notebook)
  return notebook


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("names", nargs="*", help="notebook names (default: all)")
  parser.add_argument("--timeout", type=int, default=1200, help="seconds per cell")
  args = parser.parse_args(argv)
  if os.environ.pop("GENJAX_NOTEBOOK_QUICK", None):
    print("GENJAX_NOTEBOOK_QUICK is unset for these runs: the stored outputs are the full runs.",
          file=sys.stderr)
  for path in notebook_paths(args.names):
    start, cpu = time.perf_counter(), _children_cpu_seconds()
    notebook = execute(path, args.timeout)
    nbformat.write(notebook, path)
    print(f"{path.relative_to(ROOT)}: {(time.perf_counter() - start) / 60:.1f} min, its kernel "
          f"{(_children_cpu_seconds() - cpu) / 60:.1f} CPU min", flush=True)


def _children_cpu_seconds() -> float:
  """User + system CPU time of the finished child processes (the kernels): on a
  shared machine the figure that does not grow with the other jobs' load."""
  usage = resource.getrusage(resource.RUSAGE_CHILDREN)
  return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
  main()
