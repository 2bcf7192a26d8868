"""The streaming input path: batches read and decoded on the host, per process.

For datasets that do not fit in device memory (a folder of photos, a
prepared ArrayRecord dataset), or on purpose (`config.data.pipeline=stream`).
A source is anything with `len(source)` and `source[i] -> (uint8 [H, W, C],
label)`: an `ImageFolder`, a TFDS data source, or an in-memory split.

Batches are a function of the step, as on the device path, and the same
ones: step s reads the examples `device.step_indices(s, ...)` picks, the
epoch permutation the device path draws inside the compiled step. So the
train state's step is the whole state of the pipeline: a resumed run reads
exactly the batches an uninterrupted one would, and a streamed run trains to
the same parameters as a device-path run of the same data. Each process
reads only its share of every global batch (the rows its devices hold),
decoding in Grain's worker threads ahead of the training step, and the
host batches become one global array with the mesh's batch sharding
(`jax.make_array_from_process_local_data`).
"""

import threading

import grain
import jax
import numpy as np

from genjax.data import device


class StepBatches:
  """`batches[step]`: this process's rows of step `step`'s batches:
  {'image': uint8 [num_batches, b, H, W, C], 'label': int32 [num_batches, b]},
  b = batch_size / process_count."""

  def __init__(self, source, batch_size: int, num_batches: int, key: jax.Array,
               process_index: int = 0, process_count: int = 1):
    if batch_size % process_count:
      raise ValueError(f"config.batch_size={batch_size} must be divisible by the "
                       f"{process_count} processes.")
    self.source, self.batch_size, self.num_batches = source, batch_size, num_batches
    self.local = batch_size // process_count
    self.offset = process_index * self.local
    self.n = len(source)
    if self.n < batch_size * num_batches:
      raise ValueError(f"config.batch_size={batch_size} is larger than the {self.n} "
                       "training images.")
    cpu = jax.local_devices(backend="cpu")[0]  # this process's own
    self._key = jax.device_put(key, cpu)
    self._indices = jax.jit(device.step_indices, static_argnums=(1, 3))
    self._cpu = cpu
    self._lock = threading.Lock()  # one thread at a time through jit's dispatch

  def indices(self, step: int) -> np.ndarray:
    """This process's example indices of step `step`: [num_batches, b]."""
    with self._lock:
      idx = self._indices(jax.device_put(np.int32(step), self._cpu), self.n, self._key,
                          self.num_batches * self.batch_size)
      idx = np.asarray(idx)
    idx = idx.reshape(self.num_batches, self.batch_size)
    return idx[:, self.offset:self.offset + self.local]

  def __getitem__(self, step: int) -> dict:
    idx = self.indices(step)
    examples = [self.source[int(i)] for i in idx.reshape(-1)]
    images = np.stack([e[0] for e in examples])
    labels = np.asarray([e[1] for e in examples], np.int32)
    return {"image": images.reshape(*idx.shape, *images.shape[1:]),
            "label": labels.reshape(idx.shape)}


class Stream:
  """Steps [start, stop) of `batches`, read `threads` steps at a time ahead of
  use; `take(k)` returns the next k steps stacked: {'image': [k, n, b, H, W, C], ...}."""

  def __init__(self, batches: StepBatches, start: int, stop: int, threads: int = 4,
               prefetch: int = 8):
    self.next_step = start
    dataset = grain.MapDataset.range(start, max(stop, start)).map(batches.__getitem__)
    options = grain.ReadOptions(num_threads=threads, prefetch_buffer_size=prefetch)
    self._iterator = iter(dataset.to_iter_dataset(options))

  def take(self, k: int) -> dict:
    steps = [next(self._iterator) for _ in range(k)]
    self.next_step += k
    return {name: np.stack([s[name] for s in steps]) for name in steps[0]}


def to_global(stacked: dict, sharding: jax.sharding.NamedSharding, process_count: int) -> dict:
  """This process's rows of k steps -> global arrays [k, n, B, ...] split over
  the mesh's `data` axis (dimension 2)."""

  def one(x):
    shape = (*x.shape[:2], x.shape[2] * process_count, *x.shape[3:])
    return jax.make_array_from_process_local_data(sharding, x, shape)

  return {name: one(x) for name, x in stacked.items()}
