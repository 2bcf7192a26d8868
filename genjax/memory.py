"""How much memory and disk there is, checked before a large allocation.

A population of many members, `genjax.evaluate --num N` and `genjax.sample
--num N` allocate in proportion to a number the user types. Each estimates
what it needs from the shapes (`jax.eval_shape`, the run's image shape) and
refuses, naming the figure and a number that fits, before it allocates.
"""

import os
import shutil
from pathlib import Path

import jax


def describe(num_bytes: float) -> str:
  """1234567 -> '1.2 MB' (powers of 1000, as `df -H` and most file managers)."""
  for unit in ("bytes", "kB", "MB", "GB", "TB", "PB"):
    if abs(num_bytes) < 1000 or unit == "PB":
      return f"{num_bytes:.0f} {unit}" if unit == "bytes" else f"{num_bytes:.1f} {unit}"
    num_bytes /= 1000
  raise AssertionError("unreachable")


def host_available() -> tuple[int, str]:
  """(bytes this process can still allocate on the host, where that figure comes from)."""
  try:
    for line in Path("/proc/meminfo").read_text().splitlines():
      if line.startswith("MemAvailable:"):
        return int(line.split()[1]) * 1024, "MemAvailable in /proc/meminfo"
  except (OSError, ValueError, IndexError):
    pass
  try:
    return (os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"),
            "free physical pages (sysconf)")
  except (OSError, ValueError):
    return (os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"),
            "physical memory (sysconf)")


def device_available(device) -> tuple[int, str] | None:
  """(bytes free on an accelerator, where from), or None where it does not say."""
  try:
    stats = device.memory_stats()
  except Exception:  # pylint: disable=broad-except  # backends without stats raise
    return None
  if not stats or "bytes_limit" not in stats:
    return None
  free = stats["bytes_limit"] - stats.get("bytes_in_use", 0)
  return free, f"free memory of {device.device_kind} {device.id}"


def available(devices=None) -> tuple[int, str]:
  """(bytes free where arrays live, where from): the host's on a CPU, else the
  least of the accelerators' (the host's where they do not say)."""
  devices = jax.devices() if devices is None else list(devices)
  if devices and devices[0].platform != "cpu":
    known = [d for d in map(device_available, devices) if d is not None]
    if known:
      return min(known)
  return host_available()


def disk_free(folder) -> int:
  return shutil.disk_usage(folder).free


def state_bytes(abstract) -> int:
  """Bytes of a pytree of arrays or `jax.ShapeDtypeStruct`s."""
  return sum(int(x.size) * x.dtype.itemsize for x in jax.tree.leaves(abstract))
