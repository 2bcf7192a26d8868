"""Trains the standard configurations and writes the results table.

  python -m benchmarks.report                        # every row, default budgets
  python -m benchmarks.report --rows=gan_mnist       # one row
  python -m benchmarks.report --steps_scale=0.1      # a quick, smaller budget

Each row is an experiment module with its default config (the budget is its
`num_steps`, times --steps_scale), trained as a population of --seeds
members with seeds 0, 1, ... (genjax.population: one program, each member
equal to a single run with its seed) in runs/report/<row>, then scored by
`genjax.evaluate` (samples against the test split in the dataset's feature
network; for VAEs also the test ELBO and IWAE NLL), member by member. The
table shows each number as mean ± standard deviation over the seeds, and
docs/results.md lists the per-seed values. One `floor` row per dataset
scores real training images the same way. The table goes to
docs/results.md and, between its markers, into README.md.

A row whose run and evaluation are already in runs/report is not redone, so
an interrupted report continues where it stopped; delete the row's folder to
redo it. A finished row scored with other feature-network weights than the
committed ones is scored again from its checkpoint, not trained again.

Each row's evaluation scalars against steps, read from its run's TensorBoard
event files (FID and the others the family reports; one line per member, the
mean ± standard deviation as a band), go to --plots/<row>.png.
`--plot_runs=DIR,...` only draws those runs' plots (any run directory, a
single run or a population) to --plots/<folder name>.png, and trains nothing.
"""

import json
import os
import re
import sys
import time
from pathlib import Path

from absl import app, flags, logging

from genjax import configs, evaluate, runtime, viz
from genjax.train import loop, workdir as workdir_lib
from genjax.metrics import features

# name -> (experiment module, preset, config overrides, what the row shows).
# The loss rows share one shorter budget so that they compare with each other.
ROWS = {
    "gan_mnist": ("gan_mnist", None, {}, "DCGAN, non-saturating loss"),
    "gan_fashion_mnist": ("gan_mnist", None, {"data.name": "fashion_mnist"},
                          "DCGAN, non-saturating loss"),
    "progan_fashion_mnist": ("progan_fashion_mnist", None, {},
                             "progressive GAN, 4x4 -> 32x32"),
    "vae_mnist": ("vae_mnist", None, {}, "VAE, Bernoulli decoder"),
    "vae_fashion_mnist": ("vae_fashion_mnist", None, {}, "VAE, Bernoulli decoder"),
    **{f"loss_{preset}": ("gan_mnist", preset, {"num_steps": 2000}, f"preset `{preset}`")
       for preset in ("dcgan", "gan", "wgan", "wgan_gp", "hinge_sn", "lsgan")},
}

flags.DEFINE_list("rows", list(ROWS), "Rows to run (default: all).")
flags.DEFINE_integer("seeds", 3, "Members (seeds) of each row's population; 1 = a single run.")
flags.DEFINE_float("steps_scale", 1.0, "Multiplies every row's num_steps (the budget).")
flags.DEFINE_string("workdir", "runs/report", "Parent folder of the rows' runs.")
flags.DEFINE_integer("num", 10000, "Samples scored per row.")
flags.DEFINE_integer("iwae_k", 1000, "VAE rows: importance samples per test image.")
flags.DEFINE_string("out", "docs/results.md", "The markdown table.")
flags.DEFINE_string("readme", "README.md", "Updated between its results markers; '' = leave it.")
flags.DEFINE_string("plots", "docs/plots", "Folder of the rows' PNG plots of FID and the other "
                    "evaluation scalars against steps; '' = none.")
flags.DEFINE_list("plot_runs", [], "Run directories to plot to --plots/<folder>.png instead of "
                  "running rows.")
flags.DEFINE_string("note", "", "A paragraph added to the notes of the table: what the rows' train "
                    "times shared the machine with, say.")

# What the rows are, below the tables that have them.
DCGAN_NOTE = (
    "The DCGAN rows are the default tuned for sample quality per CPU minute "
    "([quality.md](quality.md)); before it (widths 32/64, batch 64, Adam(2e-4), 3,000 steps, "
    "seed 0) they measured FID 173 (MNIST) and 101 (Fashion-MNIST).")
LOSS_NOTE = (
    "The preset rows share one short budget, {steps} steps of batch 32 with each paper's "
    "optimiser, so that the losses compare with each other; they are not converged models, "
    "and most of their differences are within the spread over seeds.")


def rows_note(results: list[dict]) -> str:
  """What the rows of `results` are, in sentences for those present."""
  notes = []
  if any(r["name"] in ("gan_mnist", "gan_fashion_mnist") for r in results):
    notes.append(DCGAN_NOTE)
  losses = [r for r in results if r["name"].startswith("loss_")]
  if losses:
    notes.append(LOSS_NOTE.format(steps=f"{losses[0]['steps']:,}"))
  return " ".join(notes)

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def _config(module_name: str, preset, overrides: dict, steps_scale: float, seeds: int = 1):
  import importlib  # pylint: disable=g-import-not-at-top

  get_config = importlib.import_module(f"experiments.{module_name}").get_config
  config = get_config(preset) if preset else get_config()
  configs.apply_overrides(config, overrides)
  config.population.seeds = seeds if seeds > 1 else 0
  steps = max(config.steps_per_call, int(round(config.num_steps * steps_scale)))
  config.num_steps = steps  # the loop evaluates and checkpoints at the last step too
  return config


def _command(module_name: str, preset, overrides: dict, steps: int, seeds: int = 1) -> str:
  args = [f"--config=experiments/{module_name}.py:{preset}"] if preset else []
  args += [f"--config.{k}={v}" for k, v in overrides.items() if k != "num_steps"]
  if seeds > 1:
    args.append(f"--config.population.seeds={seeds}")
  default = _config(module_name, preset, {}, 1.0).num_steps
  if steps != default:
    args.append(f"--config.num_steps={steps}")
  return " ".join([f"python -m experiments.{module_name}", *args])


def run_row(name: str, workdir: Path, steps_scale: float, num: int, iwae_k: int,
            seeds: int = 1) -> dict:
  """Trains and evaluates one row (or reads its finished result)."""
  module_name, preset, overrides, what = ROWS[name]
  config = _config(module_name, preset, overrides, steps_scale, seeds)
  result_path = workdir / "report.json"
  iwae_k = iwae_k if config.family == "vae" else 0
  if result_path.exists():
    result = json.loads(result_path.read_text())
    if (result.get("steps") == config.num_steps and result.get("num") == num
        and result.get("seeds", 1) == seeds):
      scored_with = result["metrics"].get("feature_network", {}).get("sha256")
      current = features.KNOWN_WEIGHTS.get(config.data.name)
      if scored_with == current:
        print(f"[{name}] already done: {result_path}", file=sys.stderr)
        return result
      # The run is finished but its numbers are in another feature space:
      # score its checkpoint again rather than train it again.
      print(f"[{name}] rescoring: it was scored with feature network {str(scored_with)[:12]}, "
            f"the metrics now use {str(current)[:12]}", file=sys.stderr)
      result["metrics"] = evaluate.evaluate(workdir, num=num, iwae_k=iwae_k)
      result_path.write_text(json.dumps(result, indent=2))
      return result
  print(f"[{name}] training {config.num_steps} steps in {workdir}", file=sys.stderr)
  start = time.perf_counter()
  loop.train_and_evaluate(config, workdir)
  train_seconds = time.perf_counter() - start
  metrics = evaluate.evaluate(workdir, num=num, iwae_k=iwae_k)
  result = {
      "name": name, "model": what, "family": config.family, "dataset": config.data.name,
      "data_source": metrics["data_source"], "steps": config.num_steps, "num": num,
      "seeds": seeds, "train_seconds": round(train_seconds, 1),
      "command": _command(module_name, preset, overrides, config.num_steps, seeds),
      "metrics": metrics,
  }
  result_path.write_text(json.dumps(result, indent=2))
  return result


def _fmt(value, digits=3) -> str:
  if isinstance(value, dict):  # a population's summary: mean ± std over the members
    if value["std"] is None:  # one member: no spread
      return f"{_fmt(value['mean'], digits)} (one seed)"
    return f"{_fmt(value['mean'], digits)} ± {value['std']:.2g}"
  return "–" if value is None else f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _row_values(metrics: dict) -> dict:
  """{'fid': value or summary, 'iwae_1000_nll_nats': ...}: a single run's
  numbers, or a population's {mean, std, min, max} of each."""
  if "summary" not in metrics:
    return {**metrics.get("samples", {}), **metrics}
  summary = metrics["summary"]
  return {k.removeprefix("samples."): v for k, v in summary.items()}


def _per_seed(results: list[dict]) -> list[str]:
  lines = []
  for r in results:
    members = r["metrics"].get("members")
    if not members:
      continue
    fids = [m.get("samples", {}).get("fid") for m in members]
    nlls = [next((v for k, v in m.items() if k.endswith("_nll_nats")), None) for m in members]
    parts = [f"seed {m['seed']}: " + ", ".join(
        x for x in (f"FID {f:.3g}" if f is not None else "", f"NLL {n:.2f}" if n is not None
                    else "") if x) if not m.get("diverged") else f"seed {m['seed']}: diverged"
             for m, f, n in zip(members, fids, nlls)]
    lines.append(f"- {r['model']}, {r['dataset']}, {r['steps']} steps: " + "; ".join(parts))
  return lines


def table(results: list[dict], compact: bool = False, note: str = "") -> str:
  """The markdown table: one row per run, then one floor row per dataset. An
  "Inception FID" column appears when some row has one (its weights were on
  disk). `compact` (the README's) keeps FID, precision, recall and the NLL,
  without commands or notes; `note` is added to the notes."""
  inception = any("inception_fid" in r["metrics"].get("samples", {}) for r in results)
  columns = ["fid", *(["inception_fid"] if inception else []),
             *([] if compact else ["kid"]), "precision", "recall",
             *([] if compact else ["density", "coverage", "classifier_score"])]
  names = {"fid": "FID", "inception_fid": "Inception FID", "kid": "KID",
           "classifier_score": "classifier score"}
  head = ("| model | dataset | steps | seeds | train time | "
          + "".join(f"{names.get(c, c)} | " for c in columns)
          + "test NLL (nats) |" + ("" if compact else " command |"))
  lines = [head, "|" + " --- |" * (head.count("|") - 1)]

  def scores(s):
    return " | ".join(_fmt(s.get(c)) for c in columns)

  def nll_of(values, iwae_k):
    nll = next((v for k, v in values.items() if k.startswith("iwae_") and k.endswith("_nll_nats")),
               None)
    if nll is None:
      return "–"
    if not isinstance(nll, dict):
      text = f"{nll:.2f}"
    elif nll["std"] is None:  # one member: no spread
      text = f"{nll['mean']:.2f} (one seed)"
    else:
      text = f"{nll['mean']:.2f} ± {nll['std']:.2f}"
    return f"{text} (IWAE-{iwae_k})"

  def command(text):
    return "" if compact else f" {text} |"

  floors = {}
  for r in results:
    m = r["metrics"]
    values = _row_values(m)
    iwae_k = m.get("iwae_k") or next((e.get("iwae_k") for e in m.get("members", [])), None)
    seeds = r.get("seeds", 1)
    lines.append(
        f"| {r['model']} | {r['dataset']} | {r['steps']} | {seeds} | "
        f"{r['train_seconds'] / 60:.1f} min | {scores(values)} | {nll_of(values, iwae_k)} |"
        + command(f"`{r['command']}`"))
    if "floor_train_vs_test" in m:
      floors[r["dataset"]] = m["floor_train_vs_test"]
  for dataset, f in floors.items():
    lines.append(f"| floor: training images | {dataset} | – | – | – | {scores(f)} | – |"
                 + command("`python -m genjax.evaluate --workdir DIR`"))
  if compact:
    return "\n".join(lines) + "\n"
  sources = sorted({f"{r['dataset']}: {r['data_source']}" for r in results})
  notes = [
      "",
      "Rows with several seeds show mean ± standard deviation over the members of one "
      "population run (`--config.population.seeds=N`; each member equals a single run with "
      "its seed), and the train time of the whole population. Per seed:",
      "",
      *_per_seed(results),
      "",
      f"Samples per row: {results[0]['num'] if results else '–'}, scored against the test split "
      "in the dataset's own feature network (`genjax.metrics.features`; not Inception, so "
      "not comparable with published FIDs"
      + ("; the Inception FID column is the standard one" if inception else "")
      + "). Data: " + "; ".join(sources) + ".",
      "",
      " ".join(filter(None, [rows_note(results), note])),
  ]
  return "\n".join(lines + notes) + "\n"


def write_readme(readme: Path, text: str) -> None:
  content = readme.read_text()
  if BEGIN not in content or END not in content:
    print(f"{readme} has no {BEGIN} ... {END} markers; left as it is.", file=sys.stderr)
    return
  pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
  readme.write_text(pattern.sub(lambda _: f"{BEGIN}\n{text}{END}", content))


# The evaluation scalars a plot shows, FID first, where the run has them.
PLOTTED = ("eval/fid", "eval/kid", "eval/precision", "eval/recall", "eval/classifier_score",
           "eval/elbo", "eval/ab_psnr_db")


def plot_run(run_dir: Path, out: Path, title: str = "", most: int = 3) -> Path | None:
  """Draws up to `most` of the run's PLOTTED scalars against steps to `out`;
  None (and a line on stderr) where the run has none of them."""
  scalars = workdir_lib.read_scalars(run_dir, "eval/")
  names = [n for n in PLOTTED if n in scalars or f"{n}/member_0" in scalars][:most]
  if not names:
    print(f"{run_dir}: no evaluation scalars in its TensorBoard files; no plot.", file=sys.stderr)
    return None
  viz.save_scalar_plot(out, scalars, names, title)
  print(f"plot: {out}", file=sys.stderr)
  return out


def plots_section(drawn: list[tuple[dict, Path]], page_dir: Path) -> str:
  """Markdown embedding each row's plot, linked relative to the page's folder."""
  if not drawn:
    return ""
  lines = ["", "## Evaluation scalars against steps", "",
           "Read from each row's TensorBoard files: one line per seed, the mean ± standard "
           "deviation over the seeds as a band.", ""]
  for r, path in drawn:
    rel = os.path.relpath(path, page_dir)
    lines += [f"{r['model']}, {r['dataset']}:", "", f"![{r['name']}]({rel})", ""]
  return "\n".join(lines)


def main(argv):
  del argv
  runtime.configure()
  logging.set_verbosity(logging.WARNING)
  FLAGS = flags.FLAGS
  unknown = [r for r in FLAGS.rows if r not in ROWS]
  if unknown:
    raise app.UsageError(f"--rows: unknown {unknown}; choose from {list(ROWS)}.")
  if not FLAGS.steps_scale > 0:
    raise app.UsageError(f"--steps_scale={FLAGS.steps_scale} must be positive.")
  if FLAGS.seeds < 1:
    raise app.UsageError(f"--seeds={FLAGS.seeds} must be at least 1.")
  if FLAGS.plot_runs:
    missing = [d for d in FLAGS.plot_runs if not (Path(d) / "tensorboard").is_dir()]
    if missing:
      raise app.UsageError(f"--plot_runs: {missing} have no tensorboard/ folder; name run "
                           "directories (the --workdir of a training run).")
    for run_dir in map(Path, FLAGS.plot_runs):
      plot_run(run_dir, Path(FLAGS.plots or "docs/plots") / f"{run_dir.name}.png", run_dir.name)
    return
  results = [run_row(name, Path(FLAGS.workdir) / name, FLAGS.steps_scale, FLAGS.num, FLAGS.iwae_k,
                     FLAGS.seeds)
             for name in FLAGS.rows]
  text = table(results, note=FLAGS.note)
  if FLAGS.plots:
    drawn = [(r, plot_run(Path(FLAGS.workdir) / r["name"], Path(FLAGS.plots) / f"{r['name']}.png",
                          f"{r['model']}, {r['dataset']}, {r.get('seeds', 1)} seeds"))
             for r in results]
    text += plots_section([(r, path) for r, path in drawn if path], Path(FLAGS.out).parent)
  Path(FLAGS.out).parent.mkdir(parents=True, exist_ok=True)
  Path(FLAGS.out).write_text(f"# Results\n\nWritten by `python -m benchmarks.report`.\n\n{text}")
  if FLAGS.readme:
    write_readme(Path(FLAGS.readme), table(results, compact=True))
  print(text)


if __name__ == "__main__":
  app.run(main)
