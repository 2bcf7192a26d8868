"""The input pipeline's speed: `python -m benchmarks.benchmark --pipeline`.

Measures, on a folder of 64x64 RGB JPEGs written for the purpose (smooth
random images, so that JPEG has real work to do), and on the same images
prepared as an ArrayRecord TFDS dataset (genjax.data.prepare):
  folder_images_per_sec, prepared_images_per_sec
      decoded, resized 64x64 RGB batches of 64 from the streaming pipeline
      alone (genjax.data.stream, `threads` reader threads), median of windows;
  gan64_device_images_per_sec, gan64_stream_images_per_sec
      the gan_folder DCGAN at 64x64 trained on the device path (images held
      on the device) and through the stream from the prepared dataset, the
      pipeline's reading overlapped with the steps; and their ratio.
"""

import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.common import timed_windows


def _write_jpegs(folder: Path, n: int, size: int = 80) -> None:
  rng = np.random.default_rng(0)
  for i in range(n):
    coarse = rng.integers(0, 256, (size // 8, size // 8, 3), np.uint8)
    image = Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC)
    image.save(folder / f"{i:05d}.jpg", quality=90)


def _pipeline_rate(source, windows, window_seconds, threads, batch=64):
  import jax

  from genjax.data import stream

  batches = stream.StepBatches(source, batch, 1, jax.random.key(0))
  pipe = stream.Stream(batches, 0, 10**9, threads=threads)
  return timed_windows(lambda: pipe.take(1), batch, windows, window_seconds)


def _gan_rates(train, windows, window_seconds, threads):
  import jax

  from experiments import gan_folder
  from genjax import data, models, parallel
  from genjax.train import calls
  from genjax.data import stream

  config = gan_folder.get_config()
  config.data.image_size = 64
  family = models.get("gan")
  mesh = parallel.make_mesh()
  init_key, train_key, data_key = jax.random.split(jax.random.key(0), 3)
  make_state = jax.jit(lambda k: family.create_state(config, k, train.image_shape, 1),
                       out_shardings=parallel.replicated(mesh))
  k = config.steps_per_call
  per_call = k * config.batch_size
  rates = {}

  in_memory = data.materialize(train, threads)
  dataset = family.to_device(in_memory, mesh)
  call = calls.make_train_call(family, config, mesh, k)
  holder = [make_state(init_key)]

  def device_once():
    holder[0], metrics = call(holder[0], dataset, train_key, data_key)
    jax.block_until_ready(metrics)

  rates["device"] = timed_windows(device_once, per_call, windows, window_seconds)

  batches = stream.StepBatches(train, config.batch_size, 1, data_key)
  pipe = stream.Stream(batches, 0, 10**9, threads=threads)
  streamed = calls.make_train_call(family, config, mesh, k, streamed=True)
  sharding = parallel.batch_sharding(mesh, batch_axis=2)
  holder[0] = make_state(init_key)

  def stream_once():
    host = stream.to_global(pipe.take(k), sharding, 1)
    holder[0], metrics = streamed(holder[0], host, train_key)
    jax.block_until_ready(metrics)

  rates["stream"] = timed_windows(stream_once, per_call, windows, window_seconds)
  return rates


def measure(windows: int, window_seconds: float, threads: int = 4, num_images: int = 2000):
  import ml_collections

  from genjax import data
  from genjax.data import prepare

  with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    (tmp / "jpegs").mkdir()
    _write_jpegs(tmp / "jpegs", num_images)
    config = ml_collections.ConfigDict(dict(
        path=str(tmp / "jpegs"), image_size=64, channels=3, labels="none", test_percent=5,
        threads=threads, pipeline="stream", name="folder", data_dir=str(tmp / "tfds")))
    os.environ["GENJAX_CACHE"] = str(tmp / "cache")
    folder = data.folder_split(config, "train")
    start = time.perf_counter()
    prepare.prepare(config.path, 64, "bench_photos", data_dir=config.data_dir)
    prepare_seconds = time.perf_counter() - start
    prepared = data.load_from_config(ml_collections.ConfigDict(
        {**config.to_dict(), "path": "", "name": "bench_photos"}), "train")
    result = {
        "num_images": len(folder), "threads": threads, "image_size": 64,
        "prepare_seconds": round(prepare_seconds, 1),
        "folder_images_per_sec": _pipeline_rate(folder, windows, window_seconds, threads),
        "prepared_images_per_sec": _pipeline_rate(prepared, windows, window_seconds, threads),
    }
    gan = _gan_rates(prepared, windows, window_seconds, threads)
    result["gan64_device_images_per_sec"] = gan["device"]
    result["gan64_stream_images_per_sec"] = gan["stream"]
  result["stream_over_device"] = round(
      gan["stream"]["median"] / gan["device"]["median"], 3)
  result["prepared_over_gan64_consumption"] = round(
      result["prepared_images_per_sec"]["median"] / gan["device"]["median"], 2)
  for key, value in result.items():
    if isinstance(value, dict):
      result[key] = {k: round(v, 1) for k, v in value.items()}
  return result
