"""One 3x3 SAME convolution, forward and backward, in XLA:CPU and in PyTorch.

  python -m benchmarks.conv_shapes                      # the translation family's shapes
  python -m benchmarks.conv_shapes --shapes=32x7x7x64x64,64x7x7x64x64
  python -m benchmarks.conv_shapes --output=benchmarks/results/conv_shapes_cpu.json

Each shape is B x H x W x C x F (batch, height, width, input and output
channels). For each, XLA's forward, input gradient and weight gradient
(lax.conv_general_dilated under genjax.runtime's flags, each its own jitted
call) and PyTorch's forward and backward (both gradients and the bias's, in
the eager NCHW and channels_last forms) are timed in alternating rounds in
one process; medians over --rounds. Prints JSON (and writes it to
--output): milliseconds per shape and
xla_over_torch, XLA's forward + backward over the faster PyTorch form's
(above 1: XLA slower). The whole-step comparison is benchmarks.benchmark;
this says which convolutions make its difference.
"""

import json
import sys
import time

from absl import app, flags

from benchmarks import common
from genjax import runtime

runtime.configure()

import jax  # noqa: E402
import numpy as np  # noqa: E402

_SHAPES = flags.DEFINE_string(
    "shapes",
    # superres_fashion_mnist: residual blocks, the two upsampling convolutions,
    # the content trunk's 28 and 14 px layers.
    "32x7x7x64x64,32x7x7x64x256,32x14x14x64x256,32x28x28x1x32,32x28x28x32x32,"
    "32x14x14x32x64,32x14x14x64x64",
    "comma-separated BxHxWxCxF")
_ROUNDS = flags.DEFINE_integer("rounds", 15, "alternating rounds; medians are reported")
_OUTPUT = flags.DEFINE_string("output", "", "also write the JSON here")
_THREADS = flags.DEFINE_integer("torch_threads", 0, "torch.set_num_threads; 0: os.cpu_count()")


def _timed(fn, repeats=3):
  t = time.perf_counter()
  for _ in range(repeats):
    fn()
  return (time.perf_counter() - t) / repeats * 1e3


def _xla(b, h, w, c, f, rng):
  x = jax.numpy.asarray(rng.standard_normal((b, h, w, c), np.float32))
  k = jax.numpy.asarray(0.05 * rng.standard_normal((3, 3, c, f), np.float32))

  def conv(x, k):
    return jax.lax.conv_general_dilated(x, k, (1, 1), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))

  forward = jax.jit(conv)
  g = forward(x, k)
  dx = jax.jit(lambda x, k, g: jax.vjp(lambda x: conv(x, k), x)[1](g)[0])
  dk = jax.jit(lambda x, k, g: jax.vjp(lambda k: conv(x, k), k)[1](g)[0])
  return {"forward": lambda: forward(x, k).block_until_ready(),
          "input_grad": lambda: dx(x, k, g).block_until_ready(),
          "weight_grad": lambda: dk(x, k, g).block_until_ready()}


def _torch(b, h, w, c, f, channels_last):
  import torch
  fmt = torch.channels_last if channels_last else torch.contiguous_format
  m = torch.nn.Conv2d(c, f, 3, padding=1).to(memory_format=fmt)
  x = torch.randn(b, c, h, w).contiguous(memory_format=fmt).requires_grad_(True)
  gy = torch.randn(b, f, h, w).contiguous(memory_format=fmt)

  def forward():
    with torch.no_grad():
      m(x)

  def both():
    torch.autograd.grad(m(x), [x, m.weight, m.bias], gy)

  return {"forward": forward, "forward_backward": both}


def main(argv):
  del argv
  import os

  import torch
  torch.set_num_threads(_THREADS.value or os.cpu_count())
  rng = np.random.default_rng(0)
  rows = []
  for spec in _SHAPES.value.split(","):
    shape = tuple(int(v) for v in spec.split("x"))
    fns = {("xla", n): fn for n, fn in _xla(*shape, rng).items()}
    for form in ("nchw", "channels_last"):
      fns.update({(form, n): fn for n, fn in _torch(*shape, form == "channels_last").items()})
    times = {key: [] for key in fns}
    for fn in fns.values():  # warm-up: compiles, allocator
      _timed(fn, 2)
    for _ in range(_ROUNDS.value):
      for key, fn in fns.items():
        times[key].append(_timed(fn))
    ms = {f"{a}/{n}": round(float(np.median(v)), 3) for (a, n), v in times.items()}
    xla = ms["xla/forward"] + ms["xla/input_grad"] + ms["xla/weight_grad"]
    torch_best = min(ms["nchw/forward_backward"], ms["channels_last/forward_backward"])
    rows.append({"shape": spec, "ms": ms, "xla_forward_backward": round(xla, 3),
                 "torch_best_forward_backward": round(torch_best, 3),
                 "xla_over_torch": round(xla / torch_best, 2)})
    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)  # progress
  common.print_report({"jax": jax.__version__, "torch": torch.__version__,
                       "rounds": _ROUNDS.value, "rows": rows}, _OUTPUT.value)


if __name__ == "__main__":
  app.run(main)
