"""Speed of the progressive GAN's 32x32-phase step: genjax against PyTorch.

  python -m benchmarks.progan --output=benchmarks/results/benchmark_progan_cpu.json

Prints one JSON object: images/s (median, min and max over --windows timed
windows of at least --window_seconds, after a warm-up call) of

  genjax    the loop's own compiled call (`loop.make_train_call`) of the
            default experiment (progan_fashion_mnist) with its step placed in
            the 32x32 phase, one step per call, compile seconds and XLA's
            FLOP count of a step;
  pytorch   the same step written in PyTorch (`build_torch`): the same
            generator and discriminator (equalised learning rate, pixel
            norm, minibatch stddev, the fade-in blend), the same batch, WGAN-GP
            with the drift term, Adam(1e-3, 0, 0.99), one generator forward
            pass, the generator's loss through the updated discriminator and
            the EMA of its weights;

and `genjax_over_pytorch_best`, against the faster of PyTorch with one
thread and with one per core (its default): on a machine shared with other
work, PyTorch's spinning OpenMP threads can run its step many times slower
with two threads than with one. Each measurement runs in its own process,
one after the other; JAX uses every core. The step's
cost does not depend on pixel values: both train on random images. Compare
ratios taken within one run; the machine's load moves both.
"""

import json
import math
import os
import sys

from absl import app, flags

from benchmarks import common
from genjax import runtime

flags.DEFINE_integer("windows", 5, "Timed windows per measurement; the median is reported.")
flags.DEFINE_float("window_seconds", 5.0, "Least duration of one timed window.")
flags.DEFINE_boolean("pytorch", True, "Measure PyTorch too, when torch is installed.")
flags.DEFINE_string("output", "", "Also write the JSON here.")
flags.DEFINE_string("one", "", "Internal: measure 'genjax' or 'pytorch' in this process.")
flags.DEFINE_string("preset", "", "A preset of progan_fashion_mnist to measure (default: none).")
flags.DEFINE_integer("torch_threads", 0, "Internal: PyTorch's intra-op threads for --one=pytorch.")

IMAGE_SHAPE = (28, 28, 1)


def _config():
  from experiments import progan_fashion_mnist

  config = progan_fashion_mnist.get_config(flags.FLAGS.preset or None)
  config.steps_per_call = 1
  return config


def measure_genjax(windows: int, window_seconds: float) -> dict:
  import time

  import jax
  import jax.numpy as jnp

  from genjax import families, loop, parallel
  from genjax.steps import progan

  config = _config()
  family = families.get(config.family)
  mesh = parallel.make_mesh()
  dataset = family.to_device(common.synthetic_split(config.family, IMAGE_SHAPE), mesh)
  init_key, train_key, data_key = jax.random.split(jax.random.key(0), 3)
  state = jax.jit(lambda k: family.create_state(config, k, IMAGE_SHAPE, 10),
                  out_shardings=parallel.replicated(mesh))(init_key)
  sched = progan.schedule(config, IMAGE_SHAPE[0])
  state = state.replace(step=jnp.asarray(sched.last_start, jnp.int32))  # 32x32, alpha = 1
  call = loop.make_train_call(family, config, mesh, 1)
  start = time.perf_counter()
  compiled = call.lower(state, dataset, train_key, data_key).compile()
  compile_seconds = time.perf_counter() - start
  flops = compiled.cost_analysis().get("flops", 0.0)
  holder = [state]

  def run_once():
    holder[0], metrics = compiled(holder[0], dataset, train_key, data_key)
    jax.block_until_ready(metrics)

  rate = common.timed_windows(run_once, config.batch_size, windows, window_seconds)
  resolution = float(jax.device_get(call(holder[0], dataset, train_key, data_key)[1])
                     ["resolution"][0])
  return {"jax_version": jax.__version__, "device_kind": jax.devices()[0].device_kind,
          "batch_size": config.batch_size, "resolution": resolution,
          "compile_seconds_all_phases": round(compile_seconds, 1),
          "gflop_per_step_all_branches": round(flops / 1e9, 2),
          "images_per_sec": {k: round(v, 1) for k, v in rate.items()}}


def build_torch(config, channels: int = 1, final: int = 32):
  """The generator and discriminator of genjax.nn.progan in PyTorch, at
  every level up to `final`; called as G(z, level, alpha), D(x, level, alpha)."""
  import torch
  from torch import nn
  import torch.nn.functional as F

  from genjax.nn import progan as nets

  m = config.model
  levels = nets.num_levels(final)
  g_widths = nets.widths(m.g_width, m.max_width, levels)
  d_widths = nets.widths(m.d_width, m.max_width, levels)

  class EqualConv(nn.Module):
    def __init__(self, c, f, k=3, gain=math.sqrt(2.0)):
      super().__init__()
      self.weight = nn.Parameter(torch.randn(f, c, k, k))
      self.bias = nn.Parameter(torch.zeros(f))
      self.scale, self.pad = gain / math.sqrt(c * k * k), k // 2

    def forward(self, x):
      return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.pad)

  class EqualDense(nn.Module):
    def __init__(self, c, f, gain=math.sqrt(2.0)):
      super().__init__()
      self.weight = nn.Parameter(torch.randn(f, c))
      self.bias = nn.Parameter(torch.zeros(f))
      self.scale = gain / math.sqrt(c)

    def forward(self, x):
      return F.linear(x, self.weight * self.scale, self.bias)

  def act(x):
    return F.leaky_relu(x, 0.2)

  def pixel_norm(x, dim=1):
    return x * torch.rsqrt(torch.mean(x * x, dim=dim, keepdim=True) + 1e-8)

  def up(x):
    return F.interpolate(x, scale_factor=2, mode="nearest")

  def down(x):
    return F.avg_pool2d(x, 2)

  def mbstd(x, group):
    b, c, h, w = x.shape
    y = x.reshape(b // group, group, c, h, w)
    y = y - y.mean(1, keepdim=True)
    s = torch.sqrt(torch.mean(y * y, 1) + 1e-8).mean((1, 2, 3))  # [B/g]
    s = s[:, None, None, None, None].expand(b // group, group, 1, h, w).reshape(b, 1, h, w)
    return torch.cat([x, s], 1)

  class Generator(nn.Module):
    def __init__(self):
      super().__init__()
      self.head = EqualDense(m.latent_dim, 16 * g_widths[0], gain=math.sqrt(2.0) / 4)
      self.head_conv = EqualConv(g_widths[0], g_widths[0])
      self.blocks = nn.ModuleList(
          nn.ModuleList([EqualConv(g_widths[l - 1], g_widths[l]), EqualConv(g_widths[l], g_widths[l])])
          for l in range(1, levels))
      self.to_rgb = nn.ModuleList(EqualConv(w, channels, 1, 1.0) for w in g_widths)

    def forward(self, z, level, alpha):
      h = pixel_norm(act(self.head(pixel_norm(z))).reshape(-1, g_widths[0], 4, 4))
      hs = [pixel_norm(act(self.head_conv(h)))]
      for a, b in self.blocks[:level]:
        h = pixel_norm(act(a(up(hs[-1]))))
        hs.append(pixel_norm(act(b(h))))
      new = self.to_rgb[level](hs[level])
      if level == 0:
        return new
      return (1 - alpha) * up(self.to_rgb[level - 1](hs[level - 1])) + alpha * new

  class Discriminator(nn.Module):
    def __init__(self):
      super().__init__()
      self.from_rgb = nn.ModuleList(EqualConv(channels, w, 1) for w in d_widths)
      self.blocks = nn.ModuleList(
          nn.ModuleList([EqualConv(d_widths[l], d_widths[l]), EqualConv(d_widths[l], d_widths[l - 1])])
          for l in range(1, levels))
      self.head_conv = EqualConv(d_widths[0] + 1, d_widths[0])
      self.head_dense = EqualDense(16 * d_widths[0], d_widths[0])
      self.out = EqualDense(d_widths[0], 1, gain=1.0)

    def block(self, l, h):
      a, b = self.blocks[l - 1]
      return down(act(b(act(a(h)))))

    def forward(self, x, level, alpha):
      h = act(self.from_rgb[level](x))
      if level > 0:
        h = (1 - alpha) * act(self.from_rgb[level - 1](down(x))) + alpha * self.block(level, h)
        for l in range(level - 1, 0, -1):
          h = self.block(l, h)
      h = act(self.head_conv(mbstd(h, m.mbstd_group)))
      # The same flattening order as genjax's NHWC reshape.
      h = act(self.head_dense(h.permute(0, 2, 3, 1).reshape(h.shape[0], -1)))
      return self.out(h)[:, 0]

  return Generator(), Discriminator(), torch, levels


def measure_pytorch(windows: int, window_seconds: float, threads: int) -> dict:
  import copy

  config = _config()
  generator, discriminator, torch, levels = build_torch(config)
  torch.set_num_threads(threads)
  torch.manual_seed(0)
  level, alpha, b = levels - 1, 1.0, config.batch_size
  opt = dict(lr=config.opt.g_lr, betas=(config.opt.b1, config.opt.b2), eps=config.opt.eps)
  opt_g = torch.optim.Adam(generator.parameters(), **opt)
  opt_d = torch.optim.Adam(discriminator.parameters(), **opt)
  ema = copy.deepcopy(generator).requires_grad_(False)
  images = torch.randint(0, 256, (60000, 1, 28, 28), dtype=torch.uint8)

  def step():
    idx = torch.randint(0, images.shape[0], (b,))
    real = torch.nn.functional.pad(images[idx].float() / 127.5 - 1.0, (2, 2, 2, 2), value=-1.0)
    fake = generator(torch.randn(b, config.model.latent_dim), level, alpha)
    scores = discriminator(torch.cat([real, fake.detach()]), level, alpha)
    real_scores, fake_scores = scores[:b], scores[b:]
    eps = torch.rand(b, 1, 1, 1)
    x_hat = (eps * real + (1 - eps) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(discriminator(x_hat, level, alpha).sum(), x_hat,
                                  create_graph=True)
    gp = ((grad.flatten(1).pow(2).sum(1) + 1e-12).sqrt() - 1).pow(2).mean()
    d_loss = (fake_scores.mean() - real_scores.mean() + config.gp_weight * gp
              + config.drift * real_scores.pow(2).mean())
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()
    g_loss = -discriminator(fake, level, alpha).mean()
    opt_g.zero_grad(set_to_none=True)
    discriminator.requires_grad_(False)
    g_loss.backward()
    discriminator.requires_grad_(True)
    opt_g.step()
    with torch.no_grad():
      for e, p in zip(ema.parameters(), generator.parameters()):
        e.lerp_(p, 1.0 - config.ema_decay)

  rate = common.timed_windows(step, b, windows, window_seconds)
  return {"torch_version": torch.__version__, "threads": torch.get_num_threads(),
          "batch_size": b, "resolution": 4 * 2**level,
          "images_per_sec": {k: round(v, 1) for k, v in rate.items()}}


def _run_child(args: list[str]) -> dict:
  return common.run_child(args, "benchmarks.progan")


def main(argv):
  del argv
  f = flags.FLAGS
  runtime.configure()  # here and, through XLA_FLAGS, in the children
  if f.one == "genjax":
    print(json.dumps(measure_genjax(f.windows, f.window_seconds)))
    return
  if f.one == "pytorch":
    print(json.dumps(measure_pytorch(f.windows, f.window_seconds, f.torch_threads)))
    return
  args = [f"--windows={f.windows}", f"--window_seconds={f.window_seconds}",
          *([f"--preset={f.preset}"] if f.preset else [])]
  report = {"cpu_count": os.cpu_count(), "experiment": "progan_fashion_mnist"
            + (f":{f.preset}" if f.preset else ""), "phase": "32x32, alpha = 1"}
  print("Measuring genjax...", file=sys.stderr)
  report["genjax"] = _run_child(["--one=genjax", *args])
  if f.pytorch:
    import importlib.util  # pylint: disable=g-import-not-at-top

    if importlib.util.find_spec("torch") is None:
      report["pytorch"] = {"not_measured": "torch is not installed; pip install -e '.[bench]'."}
    else:
      report["pytorch"] = {}
      for threads in sorted({1, os.cpu_count()}):
        print(f"Measuring PyTorch, {threads} thread(s)...", file=sys.stderr)
        report["pytorch"][f"threads_{threads}"] = _run_child(
            ["--one=pytorch", f"--torch_threads={threads}", *args])
      rates = [r["images_per_sec"]["median"] for r in report["pytorch"].values()
               if "images_per_sec" in r]
      if rates and "images_per_sec" in report["genjax"]:
        report["genjax_over_pytorch_best"] = round(
            report["genjax"]["images_per_sec"]["median"] / max(rates), 3)
  common.print_report(report, f.output)


if __name__ == "__main__":
  app.run(main)
