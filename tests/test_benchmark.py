"""benchmarks.benchmark: its arithmetic, its JSON, and genjax's XLA:CPU option."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import benchmark, common

ROOT = Path(__file__).resolve().parents[1]


def test_timed_windows_measures_a_known_rate(monkeypatch):
  """On a simulated clock (the machine's load cannot move it; dyadic times add
  exactly): calls of 1/32 s, then 1/16 s, each of 5 items, in windows of
  1/4 s give 160 and 80 items/s."""
  clock = [0.0]
  monkeypatch.setattr(common.time, "perf_counter", lambda: clock[0])
  durations = iter([1 / 32] * 9 + [1 / 16] * 8 + [1 / 32] * 100)
  calls = []

  def run_once():
    calls.append(1)
    clock[0] += next(durations)

  rate = common.timed_windows(run_once, 5, windows=3, window_seconds=0.25)
  # the warm-up call, window 1: eight calls of 1/32 s; windows 2 and 3: four of 1/16 s each
  assert rate == {"median": 80.0, "min": 80.0, "max": 160.0}
  assert len(calls) == 1 + 8 + 4 + 4


def test_benchmark_json_is_consistent(tmp_path):
  out = tmp_path / "bench.json"
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  proc = subprocess.run(
      [sys.executable, "-m", "benchmarks.benchmark", "--experiments=vae_mnist",
       "--windows=2", "--window_seconds=0.2", "--nopytorch", f"--output={out}",
       "--set=batch_size=50", "--profile"],
      capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  report = json.loads(out.read_text())
  assert report == json.loads(proc.stdout[proc.stdout.index("{"):])
  assert report["backend"] == "cpu" and report["device_count"] >= 1
  assert report["matmul_peak_gflops"] > 1
  assert report["config_overrides"] == ["batch_size=50"]
  assert report["settings"]["precision"] == ["float32"] and report["settings"]["batches"] == "cpu"
  assert set(report["vae_mnist"]) == {"experiment", "batch_size", "float32", "best"}
  vae = report["vae_mnist"]["float32"]["genjax"]
  assert vae["batch_size"] == vae["images_per_step"] == 50  # --set reached the measuring child
  assert set(vae["images_per_sec"]) == {"1", "10"}  # k=1 and the config's steps_per_call
  assert set(vae["compile_seconds"]) == {"1", "10"}
  best = max(r["median"] for r in vae["images_per_sec"].values())
  assert report["vae_mnist"]["best"] == {"genjax": {"precision": "float32", "images_per_sec": best}}
  assert abs(vae["achieved_gflops"] - vae["gflop_per_step"] * best / vae["images_per_step"]) < 0.2
  assert vae["fraction_of_matmul_peak"] == round(
      vae["achieved_gflops"] / report["matmul_peak_gflops"], 3)
  # No device memory on the CPU: null, and why.
  assert vae["peak_device_mb"] is None and "peak_rss_mb" in vae["peak_device_mb_why_none"]
  # The VAE's step: encoder + decoder MLPs over a batch of 50, forward and backward.
  assert 0.01 < vae["gflop_per_step"] < 10
  assert 100 < vae["peak_rss_mb"] < 20_000
  profile = vae["profile"]  # --profile: the step's operations, most of them matrix products
  assert abs(sum(profile["share"].values()) - 1) < 0.01 and profile["share"]["matmul"] > 0.2
  assert 0.1 < profile["op_ms_per_step"] / (vae["step_seconds"] * 1e3) < 3


def test_op_profile_gives_the_matrix_product_its_time():
  """A 512^3 product under a tanh, beside a 64-element add: the product (a dot,
  or the CPU's library fusion holding it) takes most of the traced time, and
  every named operation is one of the compiled program's."""
  import jax
  import jax.numpy as jnp

  a, b = jnp.ones((512, 512)), jnp.ones((64,))
  compiled = jax.jit(lambda a, b: (jnp.tanh(a @ a), b + 1.0)).lower(a, b).compile()
  out = benchmark.op_profile(compiled, lambda: jax.block_until_ready(compiled(a, b)),
                             steps_per_call=2, calls=3)
  assert out["calls"] == 3 and abs(sum(out["share"].values()) - 1) < 0.01
  assert out["share"]["matmul"] > 0.5 and out["top_ops"][0]["kind"] == "matmul"
  kinds = benchmark.instruction_kinds(compiled.as_text())
  assert {op["op"] for op in out["top_ops"]} <= set(kinds)
  assert sum(op["us_per_step"] for op in out["top_ops"]) <= out["op_ms_per_step"] * 1e3 + 0.5


@pytest.mark.parametrize("fastest_k", [1, 10])
def test_profile_traces_the_program_of_the_fastest_k(monkeypatch, fastest_k):
  """Whichever k measures fastest, the profile traces that k's own program:
  its events all name that program's instructions (the products among them)."""
  calls = []

  def fake_windows(run_once, images_per_call, windows, window_seconds):
    run_once()
    k = images_per_call // 50
    calls.append(k)
    return {"median": 2.0 if k == fastest_k else 1.0, "min": 1.0, "max": 2.0}

  monkeypatch.setattr(common, "timed_windows", fake_windows)
  result = benchmark.measure_experiment("vae_mnist", windows=1, window_seconds=0.0,
                                        assignments=["batch_size=50"], profile=True)
  assert calls == [1, 10]
  profile = result["profile"]
  assert "error" not in profile, profile
  # The products are found in the trace; their rank among the slowest ops
  # moves with the machine's load, so a product among the first three.
  assert profile["share"]["matmul"] > 0.2
  assert "matmul" in [op["kind"] for op in profile["top_ops"][:3]], profile["top_ops"][:3]


def test_instruction_kinds_reads_fused_products():
  text = """HloModule m

%fused_computation (p: f32[4,4]) -> f32[4,4] {
  %p = f32[4,4]{1,0} parameter(0)
  ROOT %dot.1 = f32[4,4]{1,0} dot(%p, %p), lhs_contracting_dims={1}, rhs_contracting_dims={0}
}

%fused_computation.1 (q: f32[4]) -> f32[4] {
  %q = f32[4]{0} parameter(0)
  ROOT %tanh.2 = f32[4]{0} tanh(%q)
}

ENTRY %main (a: f32[4,4], b: f32[4]) -> (f32[4,4], f32[4]) {
  %a = f32[4,4]{1,0} parameter(0)
  %b = f32[4]{0} parameter(1)
  %lib_fusion = f32[4,4]{1,0} fusion(%a), kind=kCustom, calls=%fused_computation
  %tanh_fusion = f32[4]{0} fusion(%b), kind=kLoop, calls=%fused_computation.1
  %copy.3 = f32[4]{0} copy(%tanh_fusion)
  %dot.4 = f32[4,4]{1,0} dot(%a, %a), lhs_contracting_dims={1}, rhs_contracting_dims={0}
  ROOT %tuple.5 = (f32[4,4]{1,0}, f32[4]{0}) tuple(%lib_fusion, %copy.3)
}
"""
  kinds = benchmark.instruction_kinds(text)
  assert kinds["lib_fusion"] == ("fusion", "matmul")
  assert kinds["tanh_fusion"] == ("fusion", "fusion")
  assert kinds["copy.3"] == ("copy", "copy") and kinds["dot.4"] == ("dot", "matmul")
  assert kinds["tuple.5"] == ("tuple", "other") and kinds["a"] == ("parameter", "other")


def _xla_flags_after(code: str, **env):
  env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "GENJAX_KEEP_XLA_FLAGS")} | env
  proc = subprocess.run([sys.executable, "-c", f"import os; {code}; print(os.environ.get('XLA_FLAGS'))"],
                        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
  assert proc.returncode == 0, proc.stderr
  return proc.stdout.strip()


def test_importing_genjax_changes_no_process_wide_setting():
  imports = "import genjax, genjax.train.loop, genjax.cli, genjax.evaluate, genjax.sample"
  assert _xla_flags_after(imports) == "None"


def test_xla_cpu_option_is_added_by_configure_but_never_overrides_the_user():
  import jaxlib.version

  configure = "from genjax import runtime; runtime.configure()"
  option = "--xla_cpu_experimental_ynn_fusion_type"
  if jaxlib.version.__version__.startswith("0.10."):
    assert _xla_flags_after(configure) == f"{option}="
    assert (_xla_flags_after(configure, XLA_FLAGS="--xla_force_host_platform_device_count=2")
            == f"--xla_force_host_platform_device_count=2 {option}=")
  else:
    assert _xla_flags_after(configure) == "None"
  mine = f"{option}=LIBRARY_FUSION_TYPE_DOT"
  assert _xla_flags_after(configure, XLA_FLAGS=mine) == mine
  assert _xla_flags_after(configure, GENJAX_KEEP_XLA_FLAGS="1") == "None"


def test_unknown_preset_is_named_with_the_choices():
  proc = subprocess.run(
      [sys.executable, "-m", "benchmarks.benchmark", "--experiments=gan_mnist:wgan_pg"],
      capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
      timeout=300)
  assert proc.returncode != 0
  assert "gan_mnist has no preset 'wgan_pg'" in proc.stderr and "'wgan_gp'" in proc.stderr, \
      proc.stderr[-2000:]


def test_pipeline_benchmark_measures_reading_and_streamed_training(tmp_path):
  """`--pipeline`: folder and prepared-dataset reading, and the 64x64 GAN on
  both paths, as JSON with the ratio the docs quote."""
  out = tmp_path / "pipeline.json"
  proc = subprocess.run(
      [sys.executable, "-m", "benchmarks.benchmark", "--pipeline", "--windows=1",
       "--window_seconds=0.1", f"--output={out}"],
      capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
      timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  report = json.loads(out.read_text())
  assert report["num_images"] == 1900 and report["image_size"] == 64
  for key in ("folder_images_per_sec", "prepared_images_per_sec",
              "gan64_device_images_per_sec", "gan64_stream_images_per_sec"):
    assert report[key]["median"] > 0, key
  ratio = (report["gan64_stream_images_per_sec"]["median"]
           / report["gan64_device_images_per_sec"]["median"])
  assert abs(report["stream_over_device"] - ratio) < 0.01


def test_set_reaches_the_pytorch_twin():
  pytest.importorskip("torch")
  proc = subprocess.run(
      [sys.executable, "-m", "benchmarks.benchmark", "--one=vae_mnist", "--pytorch_form=nchw",
       "--windows=1", "--window_seconds=0.05", "--set=batch_size=20", "--set=model.latent_dim=8"],
      capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
      timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  twin = json.loads(proc.stdout.strip().splitlines()[-1])
  assert twin["batch_size"] == 20
  default = subprocess.run(
      [sys.executable, "-m", "benchmarks.benchmark", "--one=vae_mnist", "--pytorch_form=nchw",
       "--windows=1", "--window_seconds=0.05", "--set=batch_size=20"],
      capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
      timeout=300)
  assert default.returncode == 0, default.stderr[-2000:]
  assert twin["parameters"] < json.loads(default.stdout.strip().splitlines()[-1])["parameters"]


@pytest.mark.parametrize("item, words", [
    ("model.g_width=wide", ["'model.g_width=wide'", "int", "'wide' is not one"]),
    ("model.g_wdth=32", ["no key 'model.g_wdth'"]),
    ("batch_size", ["must read KEY=VALUE"]),
    # well-typed values a run refuses are refused before anything is measured
    ("batch_size=0", ["gan_mnist's config with --set ['batch_size=0'] is invalid",
                      "batch_size=0 must be a positive"]),
    ("loss=hinged", ["gan_mnist's config with --set", "config.loss='hinged'"]),
    # and a batch the devices do not divide (4 simulated devices here)
    ("batch_size=30", ["gan_mnist's config with --set ['batch_size=30'] is invalid",
                       "batch_size=30 must be divisible by the 4 devices"]),
])
def test_bad_set_is_named(item, words):
  env = dict(os.environ, PYTHONPATH=str(ROOT),
             XLA_FLAGS="--xla_force_host_platform_device_count=4")
  proc = subprocess.run(
      [sys.executable, "-m", "benchmarks.benchmark", "--experiments=gan_mnist", f"--set={item}"],
      capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
  assert proc.returncode != 0
  assert all(w in proc.stderr for w in words), proc.stderr[-2000:]


def test_set_with_pipeline_is_refused():
  """The pipeline measurement builds its own config: --set would be ignored."""
  proc = subprocess.run(
      [sys.executable, "-m", "benchmarks.benchmark", "--pipeline", "--set=batch_size=10"],
      capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
      timeout=300)
  assert proc.returncode != 0
  assert "--pipeline" in proc.stderr and "batch_size=10" in proc.stderr, proc.stderr[-2000:]


def test_gpu_script_runs_its_comparison_tiny_on_the_cpu(tmp_path):
  """benchmarks/gpu.sh with the tiny presets: genjax and the twin in both
  precisions per row, the GPU-only form reported as such, each side's best,
  and the device memory the CPU has not."""
  pytest.importorskip("torch")
  out = tmp_path / "gpu.json"
  proc = subprocess.run(
      ["bash", "benchmarks/gpu.sh", "--batches=tiny", "--experiments=vae_mnist",
       "--pytorch_forms=nchw,reduce_overhead", "--windows=1", "--window_seconds=0.05",
       "--max_steps_per_call=1", f"--output={out}"],
      capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
      timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  report = json.loads(out.read_text())
  assert report["settings"] | {"windows": 1} == {
      "batches": "tiny", "precision": ["float32", "bfloat16"], "repeats": 1, "windows": 1,
      "window_seconds": 0.05, "preset": "gpu", "budget_seconds": 450.0}
  assert report["xla_preallocate"] == "false"
  row = report["vae_mnist:tiny@2"]
  assert row["experiment"] == "vae_mnist:tiny" and row["batch_size"] == 2
  for precision in ("float32", "bfloat16"):
    side = row[precision]
    assert side["genjax"]["images_per_sec"]["1"]["median"] > 0
    assert side["genjax"]["peak_device_mb"] is None
    twin = side["pytorch"]["nchw"]
    assert twin["precision"] == precision and twin["batch_size"] == 2
    assert twin["images_per_sec"]["median"] > 0 and twin["peak_device_mb"] is None
    assert "GPU only" in side["pytorch"]["reduce_overhead"]["unavailable"]
    assert side["pytorch_best_form"] == "nchw"
    assert side["genjax_over_pytorch_best"] == round(
        side["genjax_best"] / twin["images_per_sec"]["median"], 3)
  best = row["best"]
  assert best["genjax"]["images_per_sec"] == max(row[p]["genjax_best"] for p in
                                                 ("float32", "bfloat16"))
  assert best["pytorch"]["images_per_sec"] == row[best["pytorch"]["precision"]]["pytorch_best"]


def test_batch_settings_name_each_row():
  rows = benchmark.entries(["gan_mnist", "cyclegan_horse2zebra", "progan_fashion_mnist"],
                           "realistic", ["model.g_width=8"])
  assert [(r.key, r.assignments) for r in rows] == [
      ("gan_mnist@256", ("model.g_width=8", "batch_size=256")),
      ("cyclegan_horse2zebra@1", ("model.g_width=8", "batch_size=1")),
      ("cyclegan_horse2zebra@4", ("model.g_width=8", "batch_size=4")),
      ("progan_fashion_mnist", ("model.g_width=8",))]  # its own batch, its last phase
  assert [r.key for r in benchmark.entries(["gan_mnist:wgan_gp", "vae_mnist"], "tiny")] == [
      "gan_mnist:wgan_gp,tiny@2", "vae_mnist:tiny@2"]
  assert [r.key for r in benchmark.entries(["gan_mnist:wgan_gp"], "cpu")] == ["gan_mnist:wgan_gp"]
  assert {e.partition(":")[0] for e in benchmark.REALISTIC_BATCHES} <= set(common.EXPERIMENTS)
  # A setting with its own assignments: BigGAN's widths at 64 and at 128 px,
  # measured at the images its config reads (a folder's data.image_size).
  rows = benchmark.entries(["biggan_folder:paper"], "realistic")
  assert [(r.key, r.assignments[0], r.assignments[-1]) for r in rows] == [
      ("biggan_folder:paper@256@64px", "data.image_size=64", "batch_size=256"),
      ("biggan_folder:paper@256@128px", "data.image_size=128", "batch_size=256")]
  shapes = [common.image_shape(r.experiment, common.load_config(r.experiment, r.assignments))
            for r in rows]
  assert shapes == [(64, 64, 3), (128, 128, 3)]
  assert common.image_shape("gan_mnist", common.load_config("gan_mnist")) == (28, 28, 1)


def test_repeats_alternate_and_a_spent_budget_skips(monkeypatch):
  """Each measurement runs once per pass, the passes in turn; the medians of
  the runs' medians are reported; past the budget nothing more starts, and a
  GPU-only form is reported unavailable on the CPU, not run."""
  order, rates = [], iter([10.0, 30.0, 20.0, 40.0])

  def fake_child(args, module, timeout):
    order.append(args[1])
    rate = next(rates)
    return {"images_per_step": 5, "images_per_sec": {"median": rate, "min": rate - 1,
                                                     "max": rate + 1}}

  monkeypatch.setattr(common, "run_child", fake_child)
  row = benchmark.entries(["vae_mnist"], "cpu")[0]
  jobs = [benchmark.Job(row, "float32", "nchw"), benchmark.Job(row, "float32", "compile"),
          benchmark.Job(row, "float32", "reduce_overhead")]
  flags_ = type("F", (), {"repeats": 2, "budget_seconds": 0.0, "windows": 1,
                          "window_seconds": 0.1})
  out = benchmark.run_jobs(jobs, flags_, "cpu", started=0.0)
  assert order == ["--pytorch_form=nchw", "--pytorch_form=compile"] * 2
  assert out[jobs[0]]["images_per_sec"] == {"median": 15.0, "min": 9.0, "max": 21.0}
  assert out[jobs[0]]["repeat_medians"] == [10.0, 20.0]
  assert out[jobs[1]]["images_per_sec"]["median"] == 35.0
  assert "GPU only" in out[jobs[2]]["unavailable"]
  flags_.budget_seconds, flags_.repeats = 5.0, 1
  out = benchmark.run_jobs(jobs[:1], flags_, "cpu", started=-100.0)
  assert out[jobs[0]] == {"skipped": "the --budget_seconds=5 were spent"}
  # a second run the budget left out: the measured run's figures, and what was not
  measured = {"images_per_sec": {"median": 3.0, "min": 2.0, "max": 4.0}}
  assert benchmark.combine_runs([measured, out[jobs[0]]]) == measured | {
      "runs_not_measured": [{"skipped": "the --budget_seconds=5 were spent"}]}


@pytest.mark.parametrize("flag, words", [
    ("--precision=float16", ["--precision: unknown ['float16']", "'bfloat16'"]),
    ("--pytorch_forms=compiled", ["--pytorch_forms: unknown ['compiled']", "'reduce_overhead'"]),
])
def test_bad_precision_and_form_are_named(flag, words):
  proc = subprocess.run(
      [sys.executable, "-m", "benchmarks.benchmark", flag],
      capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
      timeout=300)
  assert proc.returncode != 0
  assert all(w in proc.stderr for w in words), proc.stderr[-2000:]


def test_conv_shapes_times_each_convolution_in_both_frameworks():
  """benchmarks.conv_shapes: every timing of every shape, and the ratio the
  docs quote computed from them."""
  proc = subprocess.run(
      [sys.executable, "-m", "benchmarks.conv_shapes", "--shapes=2x5x5x3x4,1x4x6x2x1",
       "--rounds=2"],
      capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
      timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  report = json.loads(proc.stdout)
  assert [row["shape"] for row in report["rows"]] == ["2x5x5x3x4", "1x4x6x2x1"]
  for row in report["rows"]:
    ms = row["ms"]
    assert set(ms) == {"xla/forward", "xla/input_grad", "xla/weight_grad", "nchw/forward",
                       "nchw/forward_backward", "channels_last/forward",
                       "channels_last/forward_backward"}
    assert all(v > 0 for v in ms.values())
    xla = ms["xla/forward"] + ms["xla/input_grad"] + ms["xla/weight_grad"]
    torch_best = min(ms["nchw/forward_backward"], ms["channels_last/forward_backward"])
    assert abs(row["xla_over_torch"] - xla / torch_best) < 0.01 * xla / torch_best + 0.01
