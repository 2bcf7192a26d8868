"""One run per workdir: `<workdir>/lock`, which a second run finds and is refused by.

Two runs in one workdir would both save to `checkpoints/`, which would end up
holding whichever saved last. A run's first process therefore creates the
lock before it touches the workdir and removes it when it ends; a run that
finds a live lock stops with `WorkdirLocked`, naming the holder. The lock is
a JSON object: run_id (shared by the processes of a multi-process run), token
(new for every acquire), host, pid, pid_start_ticks (/proc start time, against
pid reuse), boot_id, pid_namespace, started, command, heartbeat_every. Its
mtime is the heartbeat: a daemon thread of the holder touches it every
`heartbeat_every` s (30).

A lock is stale, and is taken over with a message naming the old holder, when
  * its holder ran on this machine (same host name, boot id and PID namespace)
    and its process is gone: no such pid, a pid that started at another time
    (reused), or a zombie; or
  * its holder ran elsewhere (another host on a shared filesystem, another
    container), or the file is unreadable, and its heartbeat is older than
    `stale_after` s (300, and at least 3 of the holder's heartbeats). Ages are
    read on the filesystem's clock (the mtime of a file just written beside
    the lock), so hosts whose clocks disagree still agree on them over NFS.

Each step is atomic on local filesystems and NFS: a lock is published by
os.link of a complete temporary file, which fails if a lock exists (where
there are no hard links: O_CREAT|O_EXCL, then written, and readers retry a
half-written file); a stale lock is replaced only by the process that creates
the marker `.lock.takeover.<stale lock's token>` with O_EXCL and still finds
that lock there, so of several processes that find one stale lock exactly one
takes it over and the others are refused by its lock.

A workdir that cannot hold a run (a file, a folder this user cannot create
or write in, a `lock` that is a folder) is refused with WorkdirUnusable,
whose message names the path and the fix; nothing in it is changed.

In a multi-process run process 0 acquires with the run id all processes
share; the others pass is_main=False and that id, wait until the lock holds
it, and take nothing. `WorkdirLock.check()`, one read of the small lock file,
raises WorkdirLockLost once the lock was deleted or replaced: the training
loop calls it before it writes evaluations and checkpoints.
"""

import contextlib
import datetime
import json
import os
import shlex
import socket
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import NamedTuple, Optional

LOCK_NAME = "lock"
DEFAULT_HEARTBEAT_EVERY = 30.0  # seconds between the holder's touches of the lock file
DEFAULT_STALE_AFTER = 300.0  # seconds without a heartbeat after which a remote holder is gone
DEFAULT_JOIN_TIMEOUT = 120.0  # seconds a non-main process waits for process 0's lock
TAKEOVER_GRACE = 60.0  # a takeover marker older than this was left by a process that died


class WorkdirLocked(RuntimeError):
  """The workdir is held by another live run. `path`: the lock file; `holder`:
  its content (None if unreadable or missing)."""

  def __init__(self, message: str, path: Path, holder: Optional[dict]):
    super().__init__(message)
    self.path, self.holder = path, holder


class WorkdirLockLost(RuntimeError):
  """This run's lock file was deleted or replaced while the run was going."""


class WorkdirUnusable(RuntimeError):
  """The workdir cannot hold a run: it is a file, it cannot be created or
  written, or its `lock` is not a file. The message names the path and the fix."""


def lock_path(workdir) -> Path:
  return Path(workdir) / LOCK_NAME


def _check_lock_file(path: Path) -> None:
  """WorkdirUnusable when something other than a file is at the lock's path."""
  if os.path.lexists(path) and not path.is_file():
    what = "a folder" if path.is_dir() else "not a regular file"
    raise WorkdirUnusable(
        f"{path} is {what}, not the lock file a run keeps there while it is alive (a small "
        f"JSON file); genjax did not make it. Move it out of {path.parent}, or name another "
        "--workdir.")


def _prepare_workdir(workdir: Path) -> None:
  """Creates `workdir` if missing; WorkdirUnusable, naming the path and the
  fix, when it is a file or cannot be created."""
  if workdir.exists() and not workdir.is_dir():
    raise WorkdirUnusable(
        f"--workdir {workdir} is a file, not a folder: a workdir is the folder (created if "
        "missing) that holds a run's checkpoints and logs. Name a folder, or move the file "
        "away.")
  try:
    workdir.mkdir(parents=True, exist_ok=True)
  except (FileExistsError, NotADirectoryError):  # a file where a parent folder should be
    parent = next(p for p in workdir.parents if p.exists())
    raise WorkdirUnusable(
        f"--workdir {workdir} cannot be created: {parent} is a file, not a folder. Name "
        "another --workdir.") from None
  except OSError as e:
    raise WorkdirUnusable(
        f"--workdir {workdir} cannot be created ({e.strerror or e}): make its parent folder "
        "writable for this user, or name another --workdir.") from None


def _proc_stat(pid: int) -> Optional[tuple[str, int]]:
  """(state, start time in clock ticks since boot) of `pid` from /proc, or None."""
  try:
    with open(f"/proc/{pid}/stat", "rb") as f:
      data = f.read()
    # After the command name (which may hold spaces and parentheses), state is
    # the first field and starttime the 20th.
    fields = data[data.rindex(b")") + 2:].split()
    return fields[0].decode(), int(fields[19])
  except (OSError, ValueError, IndexError):
    return None


def _machine() -> dict:
  """Host name, boot id and PID namespace: where a pid means this process."""
  def attempt(read, *args):
    try:
      return read(*args).strip()
    except OSError:
      return None
  return {"host": socket.gethostname(),
          "boot_id": attempt(Path("/proc/sys/kernel/random/boot_id").read_text),
          "pid_namespace": attempt(os.readlink, "/proc/self/ns/pid")}


def _holder_info(run_id: str, heartbeat_every: float = DEFAULT_HEARTBEAT_EVERY) -> dict:
  """The lock file's content for this process."""
  stat = _proc_stat(os.getpid())
  return {"run_id": run_id, "token": uuid.uuid4().hex, **_machine(), "pid": os.getpid(),
          "pid_start_ticks": stat[1] if stat else None,
          "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
          "command": shlex.join(sys.orig_argv), "heartbeat_every": heartbeat_every}


def _read_lock(path: Path) -> tuple[Optional[dict], os.stat_result]:
  """(content, or None if unreadable, and stat) of the lock file; FileNotFoundError if none.

  An unreadable file is read again for half a second: where there are no hard
  links a lock is created empty and then written."""
  for attempt in range(5):
    with open(path, "rb") as f:
      st, raw = os.fstat(f.fileno()), f.read()
    try:
      holder = json.loads(raw)
      if isinstance(holder, dict) and "token" in holder:
        return holder, st
    except ValueError:
      pass
    if attempt < 4:
      time.sleep(0.1)
  return None, st


def _identity(holder: Optional[dict], st: os.stat_result) -> str:
  """Which lock a lock file is (for the takeover marker's name)."""
  if holder is not None:
    return "".join(c for c in str(holder["token"]) if c.isalnum())[:64]
  return f"unreadable-{st.st_ino}-{st.st_mtime_ns}-{st.st_size}"


def _local_holder_gone(holder: dict) -> Optional[str]:
  """Why a holder on this machine is gone, or None while its process runs."""
  pid = holder.get("pid")
  if not isinstance(pid, int) or pid <= 0:
    return f"its pid {pid!r} is not a process id"
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return f"no process has pid {pid}"
  except PermissionError:
    pass  # exists, owned by another user
  stat = _proc_stat(pid)
  if stat is not None and stat[0] in ("Z", "X"):
    return f"process {pid} has exited"
  if stat is not None and holder.get("pid_start_ticks") not in (None, stat[1]):
    return f"pid {pid} now belongs to another process (started at another time)"
  return None


def describe(holder: Optional[dict]) -> str:
  """The holder of a lock in words: pid, host, start time, command, run id."""
  if holder is None:
    return "an unreadable lock file"
  return (f"pid {holder.get('pid')} on host {holder.get('host')}, started "
          f"{holder.get('started')}, command `{holder.get('command')}`, "
          f"run id {holder.get('run_id')}")


class _Verdict(NamedTuple):
  stale: bool
  reason: str


def _assess(holder: Optional[dict], st: os.stat_result, now: float,
            stale_after: float) -> _Verdict:
  """Whether a lock is stale, and why (or why it is live); `now` on the filesystem's clock."""
  here = _machine()
  if holder is not None and holder.get("host") == here["host"] and all(
      None in (holder.get(key), here[key]) or holder[key] == here[key]
      for key in ("boot_id", "pid_namespace")):
    gone = _local_holder_gone(holder)
    if gone is not None:
      return _Verdict(True, gone)
    pid = holder["pid"]
    mine = (" (this very process: an earlier lock of this workdir was not released)"
            if pid == os.getpid() else "")
    return _Verdict(False, f"process {pid} is running on this host{mine}")
  every = holder.get("heartbeat_every") if holder is not None else None
  if isinstance(every, (int, float)):
    stale_after = max(stale_after, 3 * every)
  what = ("a lock whose holder is on another host" if holder is not None else
          "a lock that is unreadable")
  age = now - st.st_mtime
  if age > stale_after:
    return _Verdict(True, f"{what}, last refreshed {age:.0f} s ago (stale after "
                          f"{stale_after:.0f} s)")
  return _Verdict(False, f"{what}, refreshed {age:.0f} s ago; it is taken over only once "
                         f"not refreshed for {stale_after:.0f} s")


def _locked_error(path: Path, holder: Optional[dict], reason: str) -> WorkdirLocked:
  return WorkdirLocked(
      f"{path.parent} is in use by another run: {describe(holder)} ({reason}). Two runs in "
      "one workdir overwrite each other's checkpoints and logs. Wait for that run to finish, "
      "stop it, or start this one with another --workdir. If you are sure it is no longer "
      f"running (e.g. its host is down), delete {path} and rerun.", path, holder)


class WorkdirLock:
  """A held (owner) or, in a non-main process, joined workdir lock.

  A context manager; `release()` is idempotent. The owner refreshes the
  heartbeat from a daemon thread until released; a joined lock holds nothing.
  """

  def __init__(self, path: Path, info: dict, owner: bool):
    self.path, self.info, self.run_id, self.owner = path, info, info["run_id"], owner
    self._released = False
    self._stop = threading.Event()
    self._thread = None
    if owner:
      self._thread = threading.Thread(target=self._heartbeat, name=f"workdir-lock {path}",
                                      args=(info["heartbeat_every"],), daemon=True)
      self._thread.start()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.release()

  def _lost(self) -> Optional[str]:
    """Why the lock file no longer holds this lock (this run's, if joined), or None."""
    try:
      holder, _ = _read_lock(self.path)
    except FileNotFoundError:
      return "it was deleted"
    key = "token" if self.owner else "run_id"
    if holder is not None and holder.get(key) == self.info[key]:
      return None
    return f"it now holds {describe(holder)}"

  def _message(self, lost: str) -> str:
    return (f"this run's workdir lock {self.path} is no longer ours: {lost}. Another run "
            "may be writing to the same workdir.")

  def _heartbeat(self, every: float) -> None:
    """Touches the lock file every `every` s while it is still ours."""
    while not self._stop.wait(every):
      try:
        lost = self._lost()
        if lost is None:
          os.utime(self.path)
          continue
      except OSError as e:  # a passing filesystem error: try again next beat
        print(f"WARNING: could not refresh the workdir lock {self.path}: {e}", file=sys.stderr)
        continue
      print(f"WARNING: {self._message(lost)}", file=sys.stderr)
      return

  def check(self) -> None:
    """Raises WorkdirLockLost unless the lock file still holds this lock (one small read)."""
    lost = "it was released" if self._released else self._lost()
    if lost is not None:
      raise WorkdirLockLost(self._message(lost))

  def release(self) -> None:
    """Stops the heartbeat and removes the lock file if it still holds this lock:
    a lock another run took after ours was deleted is left alone."""
    if self._released:
      return
    self._released = True
    self._stop.set()
    if self._thread is not None:
      self._thread.join(timeout=10)
      if self._lost() is None:
        self.path.unlink(missing_ok=True)


def _publish(tmp: Path, path: Path, payload: bytes) -> bool:
  """Makes `path` a complete copy of `tmp` unless a `path` exists; True if done."""
  try:
    os.link(tmp, path)
    return True
  except FileExistsError:
    return os.stat(tmp).st_nlink == 2  # NFS: the reply to a link that succeeded was lost
  except OSError:
    pass  # no hard links on this filesystem
  try:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
  except FileExistsError:
    return False
  with os.fdopen(fd, "wb") as f:
    f.write(payload)
    f.flush()
    os.fsync(fd)
  return True


def _take_over(path: Path, tmp: Path, stale_id: str, now: float) -> bool:
  """Replaces the stale lock `stale_id` by `tmp` if this process wins the takeover.

  False: another process is taking it over or took it (look again). Raises
  WorkdirLocked if a process died in a takeover, leaving its marker."""
  marker = path.with_name(f".lock.takeover.{stale_id}")
  try:
    fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
  except FileExistsError:
    try:
      age = now - os.stat(marker).st_mtime
    except FileNotFoundError:
      return False
    if age > TAKEOVER_GRACE:
      raise WorkdirLocked(
          f"{path} holds a stale lock, but a process that was taking it over left {marker} "
          f"{age:.0f} s ago and is presumably gone. If no run is using {path.parent}, "
          f"delete {path} and {marker} and rerun.", path, None) from None
    return False
  os.close(fd)
  try:
    if _identity(*_read_lock(path)) != stale_id:
      return False  # replaced by an earlier takeover
    os.replace(tmp, path)
    return True
  except FileNotFoundError:
    return False
  finally:
    marker.unlink(missing_ok=True)


def _join(path: Path, run_id: str, join_timeout: float) -> WorkdirLock:
  """Waits until the lock file holds `run_id` (taken by the run's process 0)."""
  deadline = time.monotonic() + join_timeout
  while True:
    try:
      holder, _ = _read_lock(path)
    except FileNotFoundError:
      holder = None
    if holder is not None and holder.get("run_id") == run_id:
      return WorkdirLock(path, holder, owner=False)
    if time.monotonic() > deadline:
      if holder is None:
        raise WorkdirLocked(f"Process 0 of this run (run id {run_id}) did not lock "
                            f"{path.parent} within {join_timeout:.0f} s; see its error.",
                            path, None)
      raise _locked_error(path, holder, f"process 0 of this process's run (run id {run_id}) "
                          f"did not get the lock within {join_timeout:.0f} s")
    time.sleep(0.2)


def acquire(workdir, *, run_id: Optional[str] = None, is_main: bool = True,
            stale_after: float = DEFAULT_STALE_AFTER,
            heartbeat_every: float = DEFAULT_HEARTBEAT_EVERY,
            join_timeout: float = DEFAULT_JOIN_TIMEOUT) -> WorkdirLock:
  """Locks `workdir` (created if missing) for this run; raises WorkdirLocked if
  another live run holds it.

  run_id: the run's id (default a fresh one); the same in all processes of a
  multi-process run. is_main: True in a single-process run and in process 0;
  False in the other processes, which wait up to `join_timeout` s for the lock
  to hold `run_id` and take nothing. stale_after, heartbeat_every: see the
  module docstring. Release the returned lock (or leave its `with` block) when
  the run ends.
  """
  path = lock_path(workdir)
  if not is_main:
    if run_id is None:
      raise ValueError("a non-main process joins its run's lock by run id: pass the run id "
                       "that process 0 acquired with (the same in all processes).")
    _check_lock_file(path)
    return _join(path, run_id, join_timeout)
  _prepare_workdir(path.parent)
  _check_lock_file(path)
  info = _holder_info(run_id or uuid.uuid4().hex, heartbeat_every)
  payload = (json.dumps(info, indent=2) + "\n").encode()
  tmp = path.with_name(f".lock.{info['token']}.tmp")
  try:
    with open(tmp, "wb") as f:
      f.write(payload)
      f.flush()
      os.fsync(f.fileno())
  except OSError as e:  # read-only folder or filesystem, or a full disk
    with contextlib.suppress(OSError):  # a partly written file, where one was created
      tmp.unlink(missing_ok=True)
    raise WorkdirUnusable(
        f"cannot write in the workdir {path.parent} ({e.strerror or e}): make it writable "
        "for this user (or free space on its disk), or name another --workdir.") from None
  deadline = time.monotonic() + 2 * TAKEOVER_GRACE  # only a lock that keeps changing needs it
  try:
    while time.monotonic() < deadline:
      if _publish(tmp, path, payload):
        return WorkdirLock(path, info, owner=True)
      try:
        holder, st = _read_lock(path)
      except FileNotFoundError:
        continue  # released in the meantime
      os.utime(tmp)
      now = os.stat(tmp).st_mtime  # the filesystem's clock
      verdict = _assess(holder, st, now, stale_after)
      if not verdict.stale:
        raise _locked_error(path, holder, verdict.reason)
      if _take_over(path, tmp, _identity(holder, st), now):
        print(f"Taking over the stale workdir lock {path}: its holder is gone "
              f"({verdict.reason}). It was {describe(holder)}.", file=sys.stderr)
        return WorkdirLock(path, info, owner=True)
      time.sleep(0.05)
    raise WorkdirLocked(f"Could not lock {path.parent}: {path} kept changing for "
                        f"{2 * TAKEOVER_GRACE:.0f} s.", path, read(path.parent))
  finally:
    tmp.unlink(missing_ok=True)


def read(workdir) -> Optional[dict]:
  """The content of `workdir`'s lock file, or None when there is none."""
  try:
    return _read_lock(lock_path(workdir))[0]
  except FileNotFoundError:
    return None
