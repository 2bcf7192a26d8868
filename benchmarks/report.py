"""Trains the standard configurations and writes the results tables.

  python -m benchmarks.report                        # every row, default budgets
  python -m benchmarks.report --rows=gan_mnist       # one row
  python -m benchmarks.report --steps_scale=0.1      # a quick, smaller budget

Each row is an experiment module with its default config (the budget is its
`num_steps`, times --steps_scale), trained as a population of --seeds
members (or the row's own number) with seeds 0, 1, ... (genjax.population:
one program, each member equal to a single run with its seed) in
runs/report/<row>, then scored by `genjax.evaluate` member by member. A
row belongs to one of three tables (TABLES):

  generation   samples against the test split in the dataset's feature
               network (for VAEs also the test ELBO and IWAE NLL), and one
               `floor` row per dataset scoring real training images alike;
  translation  pix2pix, CycleGAN, super-resolution and inpainting on their
               test pairs: L1, PSNR, SSIM and FID, each beside its baseline;
  rgb          runs on a folder of RGB images (the Noto emoji of
               scripts/make_rgb_folder.py, --emoji and --emoji_1k), scored in
               the folder's own feature network, trained here first where
               the folder has none.

A table shows each number as mean ± standard deviation over the seeds, and
lists the per-seed values below it. Each table is a section of --out
between its markers (`markers`), rewritten from every finished row of its
kind in --workdir, so that running some rows leaves the other tables as
they are; the README's copy of a table (compact) is rewritten where the
README has its markers.

A row whose run and evaluation are already in runs/report is not redone, so
an interrupted report continues where it stopped; delete the row's folder to
redo it. A row whose training stops on SIGTERM or SIGINT (its checkpoint
saved) stops the report with status 1, nothing scored; the same command
resumes it, and its train time adds up the parts (shown as "≥" where a
part ended without a record, by SIGKILL say). A finished row scored with
other feature-network weights than the committed ones is scored again from
its checkpoint, not trained again.

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
from typing import NamedTuple

from absl import app, flags, logging

from genjax import cli, configs, evaluate, runtime, viz
from genjax.train import loop, members as members_lib, workdir as workdir_lib
from genjax.metrics import features

class Row(NamedTuple):
  """A row: an experiment module with its default config, a preset, overrides."""
  module: str
  preset: str | None
  overrides: dict
  what: str  # what the row shows
  table: str = "generation"  # which of TABLES it is in
  seeds: int | None = None  # members of its population; None: --seeds


# The tables, each a section of --out (and of the README where it has its
# markers): sample quality and likelihood; translators on their test pairs
# against a baseline; RGB folder runs, scored in the folder's own features
# (the 1,000-image rows in their folder's, so in a table of their own).
TABLES = {"generation": "Samples and likelihoods",
          "translation": "Translation, super-resolution and inpainting",
          "rgb": "RGB images at 64 px: Noto emoji",
          "augment": "RGB images at 64 px, 1,000 training images: augmentation"}
FOLDER_TABLES = ("rgb", "augment")
# Folder rows read {emoji} and {emoji_1k} from --emoji and --emoji_1k. A fifth
# of each folder is held out (by a hash of the name): the images FID is
# scored against (380 of the 1,906; 5%, the default, would leave 95).
_EMOJI = {"data.path": "{emoji}", "data.labels": "folders", "conditional": True,
          "data.test_percent": 20, "metrics_num_samples": 1000}
# One step per compiled call: a population of three with the default ten
# unrolled steps took tens of CPU minutes to compile (about 8% faster after).
_EMOJI_1K = {**_EMOJI, "data.path": "{emoji_1k}", "num_steps": 2000, "steps_per_call": 1}
_DIFFAUG = "color,translation,cutout"
# gan_folder's steps in the wall time of biggan_folder's 6,000 on a 2-core CPU:
# a step of each default, 64 px, alone on the machine, 1.318 s (DCGAN, batch
# 64) and 0.2456 s (BigGAN-style, batch 16), medians of 9 (`python
# scripts/time_ada_step.py --experiment=gan_folder --repeats=9`, `=biggan_folder`).
GAN_FOLDER_STEPS = 1118

# The loss rows share one shorter budget so that they compare with each other.
ROWS = {
    "gan_mnist": Row("gan_mnist", None, {}, "DCGAN, non-saturating loss"),
    "gan_fashion_mnist": Row("gan_mnist", None, {"data.name": "fashion_mnist"},
                             "DCGAN, non-saturating loss"),
    "progan_fashion_mnist": Row("progan_fashion_mnist", None, {},
                                "progressive GAN, 4x4 -> 32x32"),
    "vae_mnist": Row("vae_mnist", None, {}, "VAE, Bernoulli decoder"),
    "vae_fashion_mnist": Row("vae_fashion_mnist", None, {}, "VAE, Bernoulli decoder"),
    # eval_every 500: four points on each loss row's FID curve, not one.
    **{f"loss_{preset}": Row("gan_mnist", preset, {"num_steps": 2000, "eval_every": 500},
                             f"preset `{preset}`")
       for preset in ("dcgan", "gan", "wgan", "wgan_gp", "hinge_sn", "lsgan")},
    "pix2pix_edges2fashion": Row("pix2pix_edges2fashion", None, {},
                                 "pix2pix, edges -> garments (paired)", "translation"),
    "cyclegan_edges2fashion": Row("cyclegan_edges2fashion", None,
                                  {"num_steps": 1000, "decay_start": 500},
                                  "CycleGAN, edges -> garments (unpaired), pix2pix's steps",
                                  "translation"),
    "superres_fashion_mnist": Row("superres_fashion_mnist", None, {},
                                  "super-resolution x4, 7 -> 28 px", "translation", seeds=1),
    "inpaint_fashion_mnist": Row("inpaint_fashion_mnist", None, {},
                                 "inpainting, centre 16x16 hole", "translation", seeds=1),
    "gan_folder_emoji": Row("gan_folder", None, {**_EMOJI, "num_steps": GAN_FOLDER_STEPS},
                            "DCGAN (gan_folder), class-conditional", "rgb", seeds=1),
    "biggan_emoji": Row("biggan_folder", None, _EMOJI,
                        "BigGAN-style, class-conditional", "rgb", seeds=1),
    "biggan_emoji_1k": Row("biggan_folder", None, _EMOJI_1K,
                           "BigGAN-style, 1,000 images, no augmentation", "augment"),
    "biggan_emoji_1k_diffaugment": Row(
        "biggan_folder", None, {**_EMOJI_1K, "augment": "diffaugment", "diffaug": _DIFFAUG},
        "BigGAN-style, 1,000 images, DiffAugment", "augment"),
    "biggan_emoji_1k_ada": Row("biggan_folder", None, {**_EMOJI_1K, "augment": "ada"},
                               "BigGAN-style, 1,000 images, ADA", "augment"),
}

flags.DEFINE_list("rows", list(ROWS), "Rows to run (default: all).")
flags.DEFINE_integer("seeds", 3, "Members (seeds) of each row's population; 1 = a single run.")
flags.DEFINE_float("steps_scale", 1.0, "Multiplies every row's num_steps (the budget).")
flags.DEFINE_string("workdir", "runs/report", "Parent folder of the rows' runs.")
flags.DEFINE_integer("num", 10000, "Samples scored per row (a translator's: test pairs).")
flags.DEFINE_integer("iwae_k", 1000, "VAE rows: importance samples per test image.")
flags.DEFINE_string("out", "docs/results.md", "The markdown table.")
flags.DEFINE_string("readme", "README.md", "Updated between its results markers; '' = leave it.")
flags.DEFINE_string("plots", "docs/plots", "Folder of the rows' PNG plots of FID and the other "
                    "evaluation scalars against steps; '' = none.")
flags.DEFINE_list("plot_runs", [], "Run directories to plot to --plots/<folder>.png instead of "
                  "running rows.")
flags.DEFINE_string("emoji", "runs_data/emoji", "The folder the emoji rows read: "
                    "`python scripts/make_rgb_folder.py runs_data/emoji --source emoji`.")
flags.DEFINE_string("emoji_1k", "runs_data/emoji_1k", "The folder of the *_1k rows (1,196 "
                    "images, about 1,000 of them for training): "
                    "`python scripts/make_rgb_folder.py runs_data/emoji_1k --source emoji "
                    "--limit 140` (1,196 images).")
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


def markers(table: str) -> tuple[str, str]:
  """The comments around a table's section (the first table's are BEGIN, END)."""
  if table == "generation":
    return BEGIN, END
  return f"<!-- results:{table}:begin -->", f"<!-- results:{table}:end -->"


def _resolve(overrides: dict, folders: dict) -> dict:
  """The row's overrides with {emoji}-style folder names filled in."""
  return {k: v.format(**folders) if isinstance(v, str) else v for k, v in overrides.items()}


def _config(module_name: str, preset, overrides: dict, steps_scale: float, seeds: int = 1):
  import importlib  # pylint: disable=g-import-not-at-top

  get_config = importlib.import_module(f"experiments.{module_name}").get_config
  config = get_config(preset) if preset else get_config()
  configs.apply_overrides(config, overrides)
  config.population.seeds = seeds if seeds > 1 else 0
  steps = max(config.steps_per_call, int(round(config.num_steps * steps_scale)))
  config.num_steps = steps  # the loop evaluates and checkpoints at the last step too
  if "decay_start" in config:  # a schedule's decay keeps its share of the budget
    config.decay_start = min(steps, int(round(config.decay_start * steps_scale)))
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


def _feature_sha(metrics: dict):
  """The SHA-256 of the feature network a result was scored in (a single run's
  or its first member's), None where it names none."""
  for m in [metrics, *metrics.get("members", [])[:1]]:
    if "feature_network" in m:
      return m["feature_network"].get("sha256")
  return None


def _folder_network(config) -> None:
  """Trains the folder's feature network where it has none (once per folder),
  so that the run's evaluations and the report score in it."""
  # pylint: disable=g-import-not-at-top
  from genjax.metrics import folder_features, train_classifier

  try:
    folder_features.load(config.data)
  except features.FeatureNetworkError:
    print(f"Training the feature network of {config.data.path}...", file=sys.stderr)
    params, record = train_classifier.train_folder(
        config.data, log=lambda m: print(m, file=sys.stderr))
    features.save(folder_features.NAME, params, record,
                  folder_features.network_dir(config.data))


# A row's train time so far, written when its training is interrupted.
TRAIN_TIME = "report_train_time.json"


def _latest_step(workdir: Path) -> int | None:
  steps = [int(p.name) for p in (workdir / "checkpoints").glob("*") if p.name.isdigit()]
  return max(steps, default=None)


def _train_time(r: dict) -> str:
  """'12.3 min'; '≥ 12.3 min' where a part of the training went unrecorded."""
  at_least = "" if r.get("train_seconds_complete", True) else "≥ "
  return f"{at_least}{r['train_seconds'] / 60:.1f} min"


class RowInterrupted(Exception):
  """A row's training stopped on a signal before num_steps (checkpoint saved)."""


def run_row(name: str, workdir: Path, steps_scale: float, num: int, iwae_k: int,
            seeds: int = 1, folders: dict | None = None) -> dict:
  """Trains and evaluates one row (or reads its finished result)."""
  row = ROWS[name]
  seeds = row.seeds or seeds
  overrides = _resolve(row.overrides, folders or {})
  config = _config(row.module, row.preset, overrides, steps_scale, seeds)
  result_path = workdir / "report.json"
  iwae_k = iwae_k if config.family == "vae" else 0
  num_test = num if row.table == "translation" else 0  # a translator's test pairs; 0: all
  folder = config.data.name == "folder"
  if folder:
    _folder_network(config)
  if result_path.exists():
    result = json.loads(result_path.read_text())
    if (result.get("steps") == config.num_steps and result.get("num") == num
        and result.get("seeds", 1) == seeds):
      scored_with = _feature_sha(result["metrics"])
      current = (folder_features_sha(config) if folder else
                 features.KNOWN_WEIGHTS.get(FEATURE_DATASET.get(config.data.name,
                                                                config.data.name)))
      if scored_with == current:
        print(f"[{name}] already done: {result_path}", file=sys.stderr)
        return result
      # The run is finished but its numbers are in another feature space:
      # score its checkpoint again rather than train it again.
      print(f"[{name}] rescoring: it was scored with feature network {str(scored_with)[:12]}, "
            f"the metrics now use {str(current)[:12]}", file=sys.stderr)
      result["metrics"] = evaluate.evaluate(workdir, num=num, iwae_k=iwae_k, num_test=num_test)
      result_path.write_text(json.dumps(result, indent=2))
      return result
  print(f"[{name}] training {config.num_steps} steps in {workdir}", file=sys.stderr)
  # Train time over every part of an interrupted row: the parts before this
  # one are in TRAIN_TIME; a part ended by SIGKILL records none (`complete`).
  time_path = workdir / TRAIN_TIME
  earlier = json.loads(time_path.read_text()) if time_path.exists() else None
  complete = (earlier["complete"] and earlier["step"] == _latest_step(workdir) if earlier
              else _latest_step(workdir) is None)
  start = time.perf_counter()
  _, last = loop.train_and_evaluate(config, workdir)
  train_seconds = (earlier["seconds"] if earlier else 0.0) + time.perf_counter() - start
  if last["step"] < config.num_steps:  # stopped by SIGTERM/SIGINT, checkpoint saved
    time_path.write_text(json.dumps({"seconds": train_seconds, "complete": complete,
                                     "step": last["step"]}))
    raise RowInterrupted(f"[{name}] stopped at step {last['step']} of {config.num_steps}; "
                         "nothing scored. Run the same command to resume the report.")
  metrics = evaluate.evaluate(workdir, num=num, iwae_k=iwae_k, num_test=num_test)
  result = {
      "name": name, "model": row.what, "table": row.table, "family": config.family,
      "dataset": Path(config.data.path).name if folder else config.data.name,
      "data_source": metrics["data_source"], "steps": config.num_steps, "num": num,
      "seeds": seeds, "train_seconds": round(train_seconds, 1),
      "train_seconds_complete": complete,
      "command": _command(row.module, row.preset, overrides, config.num_steps, seeds),
      "metrics": metrics,
  }
  result_path.write_text(json.dumps(result, indent=2))
  return result


# The dataset whose committed feature network scores a row's data.
FEATURE_DATASET = {"edges2fashion": "fashion_mnist"}


def folder_features_sha(config):
  """The SHA-256 of the folder's own feature network (None without one)."""
  from genjax.metrics import folder_features  # pylint: disable=g-import-not-at-top

  try:
    return folder_features.load(config.data).record["sha256"]
  except features.FeatureNetworkError:
    return None


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
  nll = any(r["family"] == "vae" for r in results)  # a test-NLL column where a row has one
  columns = ["fid", *(["inception_fid"] if inception else []),
             *([] if compact else ["kid"]), "precision", "recall",
             *([] if compact else ["density", "coverage", "classifier_score"])]
  names = {"fid": "FID", "inception_fid": "Inception FID", "kid": "KID",
           "classifier_score": "classifier score"}
  head = ("| model | dataset | steps | seeds | train time | "
          + "".join(f"{names.get(c, c)} | " for c in columns)
          + ("test NLL (nats) |" if nll else "") + ("" if compact else " command |"))
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
        f"{_train_time(r)} | {scores(values)} |"
        + (f" {nll_of(values, iwae_k)} |" if nll else "")
        + command(f"`{r['command']}`"))
    if "floor_train_vs_test" in m:
      floors[r["dataset"]] = m["floor_train_vs_test"]
  for dataset, f in floors.items():
    lines.append(f"| floor: training images | {dataset} | – | – | – | {scores(f)} |"
                 + (" – |" if nll else "")
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
      + _features_text(results)
      + ("; the Inception FID column is the standard one" if inception else "")
      + "). Data: " + "; ".join(sources) + ".",
      "",
      " ".join(filter(None, [rows_note(results), note])),
  ]
  return "\n".join(lines + notes) + "\n"


def _features_text(results: list[dict]) -> str:
  """Which features the rows were scored in, for the notes (ends inside a
  parenthesis the caller closes)."""
  folder = [r for r in results if r.get("table") in FOLDER_TABLES]
  if not folder:
    return ("in the dataset's own feature network (`genjax.metrics.features`; not Inception, so "
            "not comparable with published FIDs")
  texts = []
  for r in folder:
    m = r["metrics"]
    first = (m.get("members") or [m])[0]
    net = first.get("feature_network", m.get("feature_network", {}))
    name = m.get("features", first.get("features", {})).get("name", "?")
    text = f"{r['dataset']}: {name}"
    if "test_accuracy" in net:
      text += (f", {net['test_accuracy']:.1%} held-out accuracy against "
               f"{net.get('chance', 0):.1%} chance")
    if text not in texts:
      texts.append(text)
  return ("in the folder's own feature network (`genjax.metrics.folder_features`; "
          + "; ".join(texts) + "; FIDs compare rows on one folder only")


# The translation table's measures: (column, keys tried in the result in turn).
MEASURES = (("L1", ("l1", "ab_l1")), ("PSNR (dB)", ("psnr_db", "ab_psnr_db")),
            ("SSIM", ("ssim", "ab_ssim")), ("FID", ("fid", "ab_fid")))


def _pick(values: dict, keys) -> object:
  return next((values[k] for k in keys if k in values), None)


def translation_table(results: list[dict], compact: bool = False, note: str = "") -> str:
  """One row per translator on its test pairs, its baseline's row beside it
  (identity, bicubic, the masked input); inpainting's measures are inside
  the hole (FID of the whole images)."""
  measures = [m for m in MEASURES if not compact or m[0] != "SSIM"]  # the README's: no SSIM
  head = ("| model | dataset | steps | seeds | " + ("" if compact else "train time | ")
          + "".join(f"{c} | " for c, _ in measures) + ("" if compact else "command |"))
  lines = [head.rstrip(), "|" + " --- |" * (head.count("|") - 1)]
  for r in results:
    values = {k.removeprefix("samples."): v for k, v in _flat(r["metrics"]).items()}
    cells = " | ".join(_fmt(_pick(values, keys), 4) for _, keys in measures)
    lines.append(f"| {r['model']} | {r['dataset']} | {r['steps']} | {r.get('seeds', 1)} | "
                 + ("" if compact else f"{_train_time(r)} | ") + f"{cells} |"
                 + ("" if compact else f" `{r['command']}` |"))
    for baseline in ("identity", "bicubic", "mean_fill"):
      # the same for every member (fixed test inputs): its mean, without a spread
      base = {k.removeprefix(baseline + "."): v["mean"] if isinstance(v, dict) else v
              for k, v in values.items() if k.startswith(baseline + ".")}
      if base:
        cells = " | ".join(_fmt(_pick(base, keys), 4) for _, keys in measures)
        lines.append(f"| baseline: {baseline.replace('_', '-')} | {r['dataset']} | – | – | "
                     + ("" if compact else "– | ") + f"{cells} |"
                     + ("" if compact else " `python -m genjax.evaluate --workdir DIR --num 0` |"))
  if compact:
    return "\n".join(lines) + "\n"
  notes = [
      "",
      "Every test pair of each dataset (`python -m genjax.evaluate --workdir DIR --num 0`): "
      "L1, PSNR and SSIM of the outputs against the targets on [0, 1] pixels (Fashion-MNIST "
      "padded to 32 px on its 28x28 centre; inpainting inside the hole only), FID of all "
      "outputs against all targets in Fashion-MNIST's feature network. The baseline rows "
      "score the model's input as its output: the edge map (identity), the bicubic upsampling "
      "of the low-resolution input, the input with its hole filled by the image's mean. "
      "Rows with several seeds show mean ± standard deviation over a population's members. "
      "Per seed:", "", *_translation_per_seed(results), "", note]
  return "\n".join(lines + notes) + "\n"


def _translation_per_seed(results: list[dict]) -> list[str]:
  lines = []
  for r in results:
    members = r["metrics"].get("members")
    if not members:
      continue
    parts = []
    for m in members:
      l1, fid = _pick(m, ("l1", "ab_l1")), _pick(m, ("fid", "ab_fid"))
      parts.append(f"seed {m['seed']}: L1 {_fmt(l1, 3)}, FID {_fmt(fid, 3)}")
    lines.append(f"- {r['model']}, {r['steps']} steps: " + "; ".join(parts))
  return lines


def _flat(metrics: dict) -> dict:
  """A single run's numbers as 'a.b' keys, or a population's summaries."""
  if "summary" in metrics:
    return dict(metrics["summary"])
  out = {}
  for k, v in metrics.items():
    if isinstance(v, dict):
      out.update({f"{k}.{kk}": vv for kk, vv in _flat(v).items()})
    elif isinstance(v, (int, float)) and not isinstance(v, bool):
      out[k] = v
  return out


def write_section(path: Path, table_name: str, text: str, title: str | None = None) -> bool:
  """Replaces the table's section between its markers in `path`; appends it
  (under `title`) where `path` has none and a title is given. False when
  neither."""
  begin, end = markers(table_name)
  content = path.read_text() if path.exists() else ""
  if begin in content and end in content:
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    path.write_text(pattern.sub(lambda _: f"{begin}\n{text}{end}", content))
    return True
  if title is None:
    return False
  sep = "" if not content or content.endswith("\n\n") else "\n"
  path.write_text(f"{content}{sep}## {title}\n\n{begin}\n{text}{end}\n")
  return True


# The evaluation scalars a plot shows, FID first, where the run has them.
PLOTTED = ("eval/fid", "eval/ab_fid", "eval/l1", "eval/ab_l1", "eval/kid", "eval/precision",
           "eval/recall", "eval/classifier_score", "eval/elbo", "eval/psnr_db", "eval/ab_psnr_db")


def plot_run(run_dir: Path, out: Path, title: str = "", most: int = 3) -> Path | None:
  """Draws up to `most` of the run's PLOTTED scalars against steps to `out`;
  None (and a line on stderr) where the run has none of them."""
  scalars = workdir_lib.read_scalars(run_dir, "eval/")
  names = [n for n in PLOTTED if n in scalars or f"{n}/member_0" in scalars][:most]
  if not names:
    print(f"{run_dir}: no evaluation scalars in its TensorBoard files; no plot.", file=sys.stderr)
    return None
  viz.save_scalar_plot(out, scalars, names, title, groups=_sweep_groups(run_dir))
  print(f"plot: {out}", file=sys.stderr)
  return out


def _count(n: int, noun: str) -> str:
  return f"{n} {noun}{'' if n == 1 else 's'}"


def _sweep_groups(run_dir: Path) -> list[str] | None:
  """A swept population's member labels (viz.member_groups); None for any other run."""
  if not (run_dir / "config.json").exists():
    return None
  config, _ = workdir_lib.read(run_dir)
  return viz.member_groups(members_lib.members_of(config).swept)


def plots_section(drawn: list[tuple[dict, Path]], page_dir: Path) -> str:
  """Markdown embedding each row's plot, linked relative to the page's folder."""
  if not drawn:
    return ""
  lines = ["", "### Evaluation scalars against steps", "",
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
  folders = {"emoji": FLAGS.emoji, "emoji_1k": FLAGS.emoji_1k}
  for name in FLAGS.rows:
    for key, folder in folders.items():
      if any(v == "{%s}" % key for v in ROWS[name].overrides.values()) and not Path(
          folder).is_dir():
        raise app.UsageError(
            f"--{key}={folder}: no such folder, and row {name} reads it. Make it with "
            f"`python scripts/make_rgb_folder.py {folder} --source emoji"
            + (" --limit 140`" if key == "emoji_1k" else "`") + f", or pass --{key}=DIR.")
  workdir = Path(FLAGS.workdir)
  results = {}
  try:
    for name in FLAGS.rows:
      results[name] = run_row(name, workdir / name, FLAGS.steps_scale, FLAGS.num,
                              FLAGS.iwae_k, FLAGS.seeds, folders)
  except RowInterrupted as e:
    print(e, file=sys.stderr)
    sys.exit(1)
  except cli.USER_ERRORS as e:  # a diverged row, a missing dataset: one line, the row named
    print(f"[{name}] error: {e}", file=sys.stderr)
    sys.exit(1)
  out = Path(FLAGS.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  if not out.exists():
    out.write_text("# Results\n\nWritten by `python -m benchmarks.report`: each table is "
                   "rewritten from the finished rows of its kind in --workdir.\n\n")
  for table_name, title in TABLES.items():
    names = [n for n, row in ROWS.items() if row.table == table_name]
    if not any(n in results for n in names):
      continue
    # The table: the rows just run, and the other finished rows of its kind.
    rows = [results.get(n) or _finished(workdir / n) for n in names]
    rows = [r for r in rows if r is not None]
    render = translation_table if table_name == "translation" else table
    text = render(rows, note=FLAGS.note)
    if FLAGS.plots:
      drawn = [(r, plot_run(workdir / r["name"], Path(FLAGS.plots) / f"{r['name']}.png",
                            f"{r['name']}, {_count(r.get('seeds', 1), 'seed')}"))
               for r in rows if (workdir / r["name"]).is_dir()]
      text += plots_section([(r, path) for r, path in drawn if path], out.parent)
    write_section(out, table_name, text, title)
    if FLAGS.readme:
      if not write_section(Path(FLAGS.readme), table_name, render(rows, compact=True)):
        print(f"{FLAGS.readme} has no {markers(table_name)[0]} ... markers; its "
              f"{table_name} table is left as it is.", file=sys.stderr)
    print(text)


def _finished(row_dir: Path) -> dict | None:
  path = row_dir / "report.json"
  return json.loads(path.read_text()) if path.exists() else None


if __name__ == "__main__":
  app.run(main)
