"""Data parallelism: 8 simulated CPU devices train like 1 device."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    from genjax import loop
    from tests.conftest import make_tiny_gan_config
    config = make_tiny_gan_config(sys.argv[1], sys.argv[2])
    config.num_steps = 6
    config.steps_per_call = 3
    config.eval_every = config.checkpoint_every = 6
    assert jax.device_count() == 8, jax.devices()
    one, _ = loop.train_and_evaluate(config, sys.argv[3] + "/one", devices=jax.devices()[:1])
    eight, _ = loop.train_and_evaluate(config, sys.argv[3] + "/eight")
    sharding = eight.generator.params["Dense_0"]["kernel"].sharding
    diffs = [float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in
             zip(jax.tree.leaves(one.generator.params) + jax.tree.leaves(one.discriminator.params),
                 jax.tree.leaves(eight.generator.params) + jax.tree.leaves(eight.discriminator.params))]
    print("RESULT", json.dumps({"max_diff": max(diffs), "num_devices": len(sharding.device_set),
                                "replicated": sharding.is_fully_replicated}))
""")


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
  assert result["max_diff"] < 1e-4, result
