"""Data parallelism: 8 simulated CPU devices, and 2 processes x 4 devices on
loopback, train like 1 device; checkpoints move between process counts."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    from genjax.train import loop
    from tests.conftest import make_tiny_gan_config
    config = make_tiny_gan_config(sys.argv[1], sys.argv[2])
    config.num_steps = 6
    config.steps_per_call = 3
    config.eval_every = config.checkpoint_every = 6
    assert jax.device_count() == 8, jax.devices()
    one, _ = loop.train_and_evaluate(config, sys.argv[3] + "/one", devices=jax.devices()[:1])
    eight, _ = loop.train_and_evaluate(config, sys.argv[3] + "/eight")
    sharding = eight.generator.params["Dense_0"]["kernel"].sharding
    leaves = lambda s: jax.tree.leaves(s.generator.params) + jax.tree.leaves(s.discriminator.params)
    diffs = np.concatenate([np.abs(np.asarray(a) - np.asarray(b)).ravel()
                            for a, b in zip(leaves(one), leaves(eight))])
    print("RESULT", json.dumps({"diffs": diffs.tolist(), "num_devices": len(sharding.device_set),
                                "replicated": sharding.is_fully_replicated}))
""")


def assert_equal_up_to_reduction_order(diffs):
  """|parameter differences| after a few Adam steps (lr 2e-4) from the same
  batches and keys, summed in another order. Adam divides each gradient by
  its running RMS, so an entry whose gradient is near zero can move by up to
  lr a step when its sign flips with the summation order: a few outliers
  may approach lr, the bulk must agree to float32 rounding. A data-parallel
  bug (unaveraged gradients, other batches) moves most entries by ~lr."""
  diffs = np.asarray(diffs)
  quantiles = dict(zip(("median", "p99", "max"), np.quantile(diffs, [0.5, 0.99, 1.0])))
  assert quantiles["median"] < 1e-5 and quantiles["p99"] < 5e-5 and quantiles["max"] < 5e-4, \
      quantiles


def test_eight_devices_match_one_device(mnist_idx_dir, tfds_dir, tmp_path):
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             PYTHONPATH=str(ROOT))
  proc = subprocess.run(
      [sys.executable, "-c", SCRIPT, str(mnist_idx_dir), str(tfds_dir), str(tmp_path)],
      capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(proc.stdout.split("RESULT", 1)[1])
  assert result["num_devices"] == 8 and result["replicated"]
  # Same global batch, same keys: equal up to the order of float reductions.
  assert_equal_up_to_reduction_order(result["diffs"])


# Runs the loop for each WORKDIR:STEPS:OUT[:PIPELINE] job in turn, in one
# process of a possibly multi-process run; process 0 saves the final
# parameters to OUT.
JOBS_SCRIPT = textwrap.dedent("""
    import sys
    from genjax import parallel
    parallel.initialize_distributed()
    import jax, numpy as np
    from genjax.train import loop
    from tests.conftest import make_tiny_gan_config
    idx_dir, tfds_dir, *jobs = sys.argv[1:]
    for job in jobs:
      workdir, num_steps, out, *pipeline = job.split(":")
      config = make_tiny_gan_config(idx_dir, tfds_dir)
      config.data.pipeline = pipeline[0] if pipeline else "device"
      config.num_steps = int(num_steps)
      config.steps_per_call = config.eval_every = config.checkpoint_every = 3
      state, _ = loop.train_and_evaluate(config, workdir)
      params = jax.tree.leaves((state.generator.params, state.discriminator.params))
      if jax.process_index() == 0:
        np.savez(out, *[np.asarray(p) for p in params])
      print("FINISHED", workdir, jax.process_count(), jax.device_count(), flush=True)
""")


def _free_port() -> int:
  import socket
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _run_jobs(num_processes, jobs, mnist_idx_dir, tfds_dir):
  """Runs JOBS_SCRIPT as `num_processes` processes x 4 CPU devices (or one
  process with one device) on loopback; returns each one's stdout + stderr."""
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  if num_processes > 1:
    env.update(XLA_FLAGS="--xla_force_host_platform_device_count=4",
               JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{_free_port()}",
               JAX_NUM_PROCESSES=str(num_processes))
  args = [sys.executable, "-c", JOBS_SCRIPT, str(mnist_idx_dir), str(tfds_dir), *jobs]
  procs = [subprocess.Popen(args, env=dict(env, JAX_PROCESS_ID=str(i)), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for i in range(num_processes)]
  outputs = [p.communicate(timeout=600) for p in procs]
  for p, (out, err) in zip(procs, outputs):
    assert p.returncode == 0, err[-4000:]
  return [out + err for out, err in outputs]


def test_two_processes_match_one_and_share_checkpoints(mnist_idx_dir, tfds_dir, tmp_path):
  """2 processes x 4 devices (gloo collectives on loopback) train like 1
  device, and a checkpoint written by either restores in the other."""
  t = tmp_path
  # One process, one device: 6 steps straight; and 3 steps to hand over.
  _run_jobs(1, [f"{t}/ref:6:{t}/ref.npz", f"{t}/one_then_two:3:{t}/x.npz"],
            mnist_idx_dir, tfds_dir)
  # Two processes: resume the 1-process run to 6; start a run of 3 to hand back.
  outs = _run_jobs(2, [f"{t}/one_then_two:6:{t}/one_then_two.npz",
                       f"{t}/two_then_one:3:{t}/y.npz"], mnist_idx_dir, tfds_dir)
  assert all(f"FINISHED {t}/two_then_one 2 8" in out for out in outs), outs
  assert all("Resuming from step 3 of 6" in out for out in outs), outs
  # One process resumes the 2-process run to 6.
  out, = _run_jobs(1, [f"{t}/two_then_one:6:{t}/two_then_one.npz"], mnist_idx_dir, tfds_dir)
  assert "Resuming from step 3 of 6" in out and "FINISHED" in out, out

  ref = np.load(t / "ref.npz")
  for name in ("one_then_two", "two_then_one"):
    got = np.load(t / f"{name}.npz")
    assert len(got.files) == len(ref.files) > 0
    # Same global batches and keys: equal up to the order of float reductions.
    assert_equal_up_to_reduction_order(
        np.concatenate([np.abs(ref[k] - got[k]).ravel() for k in ref.files]))


def test_two_processes_stream_their_own_shares_and_train_like_one(mnist_idx_dir, tfds_dir,
                                                                  tmp_path):
  """The streaming path on 2 processes x 4 devices: each process reads its
  half of every global batch, and they train to the parameters of one
  process on the device path."""
  t = tmp_path
  _run_jobs(1, [f"{t}/ref:6:{t}/ref.npz"], mnist_idx_dir, tfds_dir)
  outs = _run_jobs(2, [f"{t}/stream:6:{t}/stream.npz:stream"], mnist_idx_dir, tfds_dir)
  assert all(f"FINISHED {t}/stream 2 8" in out and "Streaming" in out for out in outs), outs
  ref, got = np.load(t / "ref.npz"), np.load(t / "stream.npz")
  assert_equal_up_to_reduction_order(
      np.concatenate([np.abs(ref[k] - got[k]).ravel() for k in ref.files]))


def test_each_process_reads_a_disjoint_share_of_every_global_batch():
  import jax

  from genjax.data import stream

  source = [(np.full((2, 2, 1), i % 256, np.uint8), i) for i in range(1000)]
  key = jax.random.key(3)
  whole = stream.StepBatches(source, 32, 2, key)
  halves = [stream.StepBatches(source, 32, 2, key, process_index=p, process_count=2)
            for p in (0, 1)]
  for step in (0, 1, 30, 31, 32):  # 31 steps an epoch: across the epoch boundary too
    parts = [h.indices(step) for h in halves]
    assert not set(parts[0].ravel()) & set(parts[1].ravel())
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), whole.indices(step))
    batch = halves[1][step]
    assert batch["image"].shape == (2, 16, 2, 2, 1)
    np.testing.assert_array_equal(batch["label"], parts[1])
    np.testing.assert_array_equal(batch["image"][:, :, 0, 0, 0], parts[1] % 256)
