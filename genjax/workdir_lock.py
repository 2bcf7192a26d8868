"""One run per workdir: a lock file that a second run finds and is refused by.

Two training runs started in the same workdir both restore nothing, both
save to `checkpoints/`, and the checkpoints end up holding whichever run
saved last, with neither run failing. The run's first process therefore
creates `<workdir>/lock` before it touches anything else in the workdir, and
removes it when it ends; a run that finds a live lock stops with
`WorkdirLocked`, naming the holder.

The lock file is JSON, one object:

  run_id          the run's id (shared by all processes of a multi-process run)
  token           random, new for every acquire: which lock this file is
  host, pid       where the holder runs
  pid_start_ticks the holder's start time from /proc/<pid>/stat (clock ticks
                  since boot; null off Linux), against pid reuse
  boot_id         /proc/sys/kernel/random/boot_id of the holder's machine
  pid_namespace   the holder's PID namespace (/proc/self/ns/pid)
  started         start time of the lock, ISO 8601 with the local offset
  started_epoch   the same in seconds since the epoch
  command         the holder's command line
  cwd             the holder's working directory
  heartbeat_every seconds between the holder's heartbeats

The heartbeat is the file's mtime: a daemon thread of the holder touches the
file every `heartbeat_every` seconds (30 by default), so rewriting the file,
which other processes may be reading, is never needed.

A lock is stale, and is taken over with a message on stderr naming the old
holder, when
  * its holder ran on this machine (same host name, boot id and PID
    namespace) and that process is gone: no process with its pid, or one
    that started at another time (the pid was reused), or a zombie; or
  * its holder ran elsewhere (another host on a shared filesystem, another
    container) and its heartbeat is older than `stale_after` seconds (300 by
    default, and never less than 3 heartbeats of the holder). Ages are read
    on the filesystem's clock: "now" is the mtime of a file this process
    has just written beside the lock, so hosts whose clocks disagree still
    agree on ages where the file server sets mtimes (NFS).

Every step is atomic on local filesystems and NFS:
  * A lock is published with os.link of a complete temporary file
    (`<workdir>/.lock.<token>.tmp`, removed right after), so a lock file is
    never seen half written, and link fails if one exists (O_CREAT|O_EXCL
    where a filesystem has no hard links).
  * A stale lock is replaced only by the process that creates the takeover
    marker `<workdir>/.lock.takeover.<token of the stale lock>` with
    O_CREAT|O_EXCL; it checks that the lock still holds that token, renames
    its own file over it and removes the marker. Of several processes that
    find the same stale lock one wins; the others then find its live lock
    and are refused.

Multi-process runs (jax.distributed: several processes of one run, possibly
on several hosts sharing the workdir): process 0 acquires, with a run id
that all processes share (`is_main=True`); the other processes pass
`is_main=False` and the same run id, which waits until the lock holds that
run id and takes nothing, so they are never refused by their own run's lock
and are refused, like process 0, when another run holds it. The module uses
only the standard library; the caller passes `is_main` and the shared id.
"""

import atexit
import datetime
import errno
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
TAKEOVER_PREFIX = ".lock.takeover."
DEFAULT_HEARTBEAT_EVERY = 30.0  # seconds between the holder's touches of the lock file
DEFAULT_STALE_AFTER = 300.0  # seconds without a heartbeat after which a remote holder is gone
DEFAULT_JOIN_TIMEOUT = 120.0  # seconds a non-main process waits for process 0's lock
# A takeover marker lives for the milliseconds of one takeover; one older than
# this was left by a process that died in the middle of a takeover.
TAKEOVER_GRACE = 60.0
FORMAT = 1


class WorkdirLocked(RuntimeError):
  """The workdir is held by another live run (or could not be locked).

  `path` is the lock file, `holder` its content (None if unreadable)."""

  def __init__(self, message: str, path: Path, holder: Optional[dict]):
    super().__init__(message)
    self.path = path
    self.holder = holder


class WorkdirLockLost(RuntimeError):
  """This run's lock file was removed or replaced while the run was going."""


def new_run_id() -> str:
  """A fresh random run id (32 hex digits)."""
  return uuid.uuid4().hex


def lock_path(workdir) -> Path:
  return Path(workdir) / LOCK_NAME


def _read_text(path: str) -> Optional[str]:
  try:
    with open(path) as f:
      return f.read().strip()
  except OSError:
    return None


def _proc_stat(pid: int) -> Optional[tuple[str, int]]:
  """(state, start time in clock ticks since boot) of `pid` from /proc, or None."""
  try:
    with open(f"/proc/{pid}/stat", "rb") as f:
      data = f.read()
    # Fields after the command name (which may hold spaces and parentheses):
    # field 3 (state) is the first, field 22 (starttime) the 20th.
    fields = data[data.rindex(b")") + 2:].split()
    return fields[0].decode(), int(fields[19])
  except (OSError, ValueError, IndexError):
    return None


def _pid_namespace() -> Optional[str]:
  try:
    return os.readlink("/proc/self/ns/pid")
  except OSError:
    return None


def _command_line() -> str:
  try:
    with open("/proc/self/cmdline", "rb") as f:
      args = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    if args:
      return shlex.join(args)
  except OSError:
    pass
  return shlex.join([sys.executable, *sys.argv])


def _holder_info(run_id: str) -> dict:
  """The lock file's content for this process."""
  now = time.time()
  stat = _proc_stat(os.getpid())
  return {
      "format": FORMAT,
      "run_id": run_id,
      "token": uuid.uuid4().hex,
      "host": socket.gethostname(),
      "pid": os.getpid(),
      "pid_start_ticks": stat[1] if stat else None,
      "boot_id": _read_text("/proc/sys/kernel/random/boot_id"),
      "pid_namespace": _pid_namespace(),
      "started": datetime.datetime.fromtimestamp(now).astimezone().isoformat(timespec="seconds"),
      "started_epoch": now,
      "command": _command_line(),
      "cwd": os.getcwd(),
  }


def _read_lock(path: Path) -> tuple[Optional[dict], os.stat_result]:
  """(content or None if unreadable, stat) of the lock file; FileNotFoundError if none.

  An unparseable file is read again a few times over half a second: on a
  filesystem without hard links a lock is created empty and then written.
  """
  for attempt in range(5):
    with open(path, "rb") as f:
      st = os.fstat(f.fileno())
      raw = f.read()
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
  """Which lock a lock file is: its token, or for an unreadable file its inode and times."""
  if holder is not None:
    return "".join(c for c in str(holder["token"]) if c.isalnum())[:64]
  return f"unreadable-{st.st_dev}-{st.st_ino}-{st.st_mtime_ns}-{st.st_size}"


def _on_this_machine(holder: dict) -> bool:
  """Whether the holder's pid can be checked here: same host name, boot and
  PID namespace (where known). A host name alone may repeat across machines
  and containers, so differing boot ids or namespaces count as elsewhere."""
  if holder.get("host") != socket.gethostname():
    return False
  for key, mine in (("boot_id", _read_text("/proc/sys/kernel/random/boot_id")),
                    ("pid_namespace", _pid_namespace())):
    if holder.get(key) is not None and mine is not None and holder[key] != mine:
      return False
  return True


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
  if stat is not None:
    state, start = stat
    if state in ("Z", "X"):
      return f"process {pid} has exited"
    recorded = holder.get("pid_start_ticks")
    if recorded is not None and recorded != start:
      return f"pid {pid} now belongs to another process (started at another time)"
  return None


def _age(seconds: float) -> str:
  seconds = max(0.0, seconds)
  if seconds < 120:
    return f"{seconds:.0f} s"
  if seconds < 7200:
    return f"{seconds / 60:.0f} min"
  return f"{seconds / 3600:.1f} h"


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
  """Whether a lock is stale, and why (or why it counts as live).

  `now` is on the filesystem's clock (see the module docstring)."""
  heartbeat_age = now - st.st_mtime
  if holder is not None and _on_this_machine(holder):
    gone = _local_holder_gone(holder)
    if gone is not None:
      return _Verdict(True, gone)
    if holder["pid"] == os.getpid():
      return _Verdict(False, "this very process holds it: an earlier lock of this "
                             "workdir was not released")
    return _Verdict(False, f"process {holder['pid']} is running on this host")
  if holder is not None:
    every = holder.get("heartbeat_every")
    if isinstance(every, (int, float)):
      stale_after = max(stale_after, 3 * every)
  where = "whose holder is on another host" if holder is not None else "that is unreadable"
  if heartbeat_age > stale_after:
    return _Verdict(True, f"a lock {where}, last refreshed {_age(heartbeat_age)} ago "
                          f"(stale after {_age(stale_after)})")
  return _Verdict(False, f"a lock {where}, refreshed {_age(heartbeat_age)} ago; it is taken "
                         f"over only once not refreshed for {_age(stale_after)}")


def _locked_error(path: Path, holder: Optional[dict], reason: str, prefix: str = "") -> WorkdirLocked:
  workdir = path.parent
  who = describe(holder)
  return WorkdirLocked(
      f"{prefix}{workdir} is in use by another run: {who} ({reason}). Two runs in one "
      "workdir overwrite each other's checkpoints and logs. Wait for that run to finish, "
      "stop it, or start this one with another --workdir. If you are sure it is no longer "
      f"running (e.g. its host is down), delete {path} and rerun.",
      path, holder)


class WorkdirLock:
  """A held (or, for a non-main process, joined) workdir lock.

  Use as a context manager or call `release()`; both are idempotent. The
  owner (is_main) refreshes the lock's heartbeat from a daemon thread until
  released; a joined lock holds nothing and its release does nothing.
  """

  def __init__(self, path: Path, info: dict, owner: bool, heartbeat_every: float):
    self.path = path
    self.info = info
    self.run_id = info["run_id"]
    self.owner = owner
    self.heartbeat_every = heartbeat_every
    self._pid = os.getpid()
    self._stop = threading.Event()
    self._lost: Optional[str] = None
    self._released = False
    self._thread = None
    if owner:
      self._thread = threading.Thread(target=self._heartbeat, name=f"workdir-lock {path}",
                                      daemon=True)
      self._thread.start()
      atexit.register(self.release)

  def __repr__(self):
    state = "released" if self._released else ("held" if self.owner else "joined")
    return f"WorkdirLock({str(self.path)!r}, run_id={self.run_id!r}, {state})"

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.release()

  def _ours(self) -> tuple[bool, Optional[dict]]:
    holder, _ = _read_lock(self.path)
    if holder is None:
      return False, None
    if self.owner:
      return holder.get("token") == self.info["token"], holder
    return holder.get("run_id") == self.run_id, holder

  def _heartbeat(self) -> None:
    """Touches the lock file every `heartbeat_every` s while it is still ours."""
    while not self._stop.wait(self.heartbeat_every):
      try:
        ours, holder = self._ours()
        if ours:
          os.utime(self.path)
          continue
        self._lost = f"it now holds {describe(holder)}"
      except FileNotFoundError:
        self._lost = "it was deleted"
      except OSError as e:  # a passing filesystem error: try again next beat
        print(f"WARNING: could not refresh the workdir lock {self.path}: {e}", file=sys.stderr)
        continue
      print(f"WARNING: this run's workdir lock {self.path} is no longer ours: {self._lost}. "
            "Another run may be writing to the same workdir.", file=sys.stderr)
      return

  def check(self) -> None:
    """Raises WorkdirLockLost unless the lock file still holds this run's lock."""
    if self._released:
      raise WorkdirLockLost(f"the workdir lock {self.path} was released")
    try:
      ours, holder = self._ours()
      lost = f"it now holds {describe(holder)}"
    except FileNotFoundError:
      ours, lost = False, "it was deleted"
    if not ours:
      raise WorkdirLockLost(
          f"this run's workdir lock {self.path} is no longer ours: {lost}. Another run "
          "may be writing to the same workdir.")

  def release(self) -> None:
    """Stops the heartbeat and removes the lock file if it is still this run's.

    A lock file that now holds another lock (ours was deleted and another run
    took the workdir) is left alone. A forked child never removes its
    parent's lock.
    """
    if self._released or os.getpid() != self._pid:
      return
    self._released = True
    self._stop.set()
    if self._thread is not None and self._thread is not threading.current_thread():
      self._thread.join(timeout=10)
    if not self.owner:
      return
    atexit.unregister(self.release)
    try:
      holder, _ = _read_lock(self.path)
      if holder is not None and holder.get("token") == self.info["token"]:
        os.unlink(self.path)
    except FileNotFoundError:
      pass


def _fs_now(probe: Path) -> float:
  """Now on the clock that stamps mtimes in the probe's directory."""
  os.utime(probe)
  return os.stat(probe).st_mtime


def _publish(tmp: Path, path: Path, payload: bytes, use_link: list) -> bool:
  """Makes `path` a complete copy of `tmp` if no `path` exists; True if done.

  NFS may report a failed link whose reply was lost after it succeeded, so
  success is read from the temporary file's link count."""
  if use_link[0]:
    try:
      os.link(tmp, path)
      return True
    except FileExistsError:
      return os.stat(tmp).st_nlink == 2
    except OSError as e:
      if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS,
                         errno.EMLINK, errno.EACCES):
        if os.stat(tmp).st_nlink == 2:
          return True
        raise
      use_link[0] = False  # no hard links here: create with O_EXCL instead
  try:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
  except FileExistsError:
    return False
  try:
    os.write(fd, payload)
    os.fsync(fd)
  finally:
    os.close(fd)
  return True


def _take_over(path: Path, tmp: Path, stale_id: str, now: float) -> bool:
  """Replaces the stale lock `stale_id` by `tmp` if this process wins the takeover.

  True: replaced. False: another process is taking it over or took it (look
  again). Raises WorkdirLocked if a dead process left its takeover marker.
  """
  marker = path.parent / f"{TAKEOVER_PREFIX}{stale_id}"
  try:
    fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
  except FileExistsError:
    try:
      age = now - os.stat(marker).st_mtime
    except FileNotFoundError:
      return False
    if age > TAKEOVER_GRACE:
      raise WorkdirLocked(
          f"{path} holds a stale lock, but a process that was taking it over left "
          f"{marker} {_age(age)} ago and is presumably gone. If no run is using "
          f"{path.parent}, delete {path} and {marker} and rerun.", path, None) from None
    return False
  try:
    os.write(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid()}).encode())
    os.close(fd)
    try:
      holder, st = _read_lock(path)
    except FileNotFoundError:
      return False
    if _identity(holder, st) != stale_id:
      return False  # replaced by an earlier takeover
    os.replace(tmp, path)
    return True
  finally:
    try:
      os.unlink(marker)
    except FileNotFoundError:
      pass


def _join(path: Path, run_id: str, join_timeout: float) -> WorkdirLock:
  """Waits until the lock file holds `run_id` (taken by the run's process 0)."""
  deadline = time.monotonic() + join_timeout
  while True:
    holder = None
    try:
      holder, _ = _read_lock(path)
    except FileNotFoundError:
      pass
    if holder is not None and holder.get("run_id") == run_id:
      return WorkdirLock(path, holder, owner=False, heartbeat_every=0.0)
    if time.monotonic() > deadline:
      if holder is None:
        raise WorkdirLocked(
            f"Process 0 of this run (run id {run_id}) did not lock {path.parent} within "
            f"{join_timeout:.0f} s (the lock file {path} is missing or unreadable); see "
            "process 0's error.", path, None)
      raise _locked_error(path, holder, f"process 0 of this run (run id {run_id}) did not "
                          f"take the lock within {join_timeout:.0f} s",
                          prefix="This process belongs to a run whose process 0 could "
                                 "not lock the workdir. ")
    time.sleep(0.2)


def acquire(workdir, *, run_id: Optional[str] = None, is_main: bool = True,
            stale_after: float = DEFAULT_STALE_AFTER,
            heartbeat_every: float = DEFAULT_HEARTBEAT_EVERY,
            join_timeout: float = DEFAULT_JOIN_TIMEOUT) -> WorkdirLock:
  """Locks `workdir` for this run; raises WorkdirLocked if another live run holds it.

  Args:
    workdir: the run directory; created if missing (by the main process).
    run_id: the run's id; default a fresh one. Every process of a
      multi-process run must pass the same id.
    is_main: True in a single-process run and in process 0 of a
      multi-process run: creates the lock. False in the other processes:
      waits up to `join_timeout` s for the lock to hold `run_id`, takes nothing.
    stale_after: seconds without a heartbeat after which a lock held on
      another machine counts as abandoned (at least 3 of its holder's heartbeats).
    heartbeat_every: seconds between this holder's refreshes of the lock.
    join_timeout: see is_main.

  Returns:
    A WorkdirLock; release it (or leave its `with` block) when the run ends.
  """
  workdir = Path(workdir)
  path = lock_path(workdir)
  if not is_main:
    if run_id is None:
      raise ValueError("a non-main process joins its run's lock by run id: pass the run id "
                       "that process 0 acquired with (the same in all processes).")
    return _join(path, run_id, join_timeout)
  if heartbeat_every <= 0 or stale_after <= 0:
    raise ValueError("heartbeat_every and stale_after must be positive.")

  workdir.mkdir(parents=True, exist_ok=True)
  info = _holder_info(run_id or new_run_id())
  info["heartbeat_every"] = heartbeat_every
  payload = (json.dumps(info, indent=2) + "\n").encode()
  tmp = workdir / f".lock.{info['token']}.tmp"
  with open(tmp, "wb") as f:
    f.write(payload)
    f.flush()
    os.fsync(f.fileno())
  use_link = [True]
  deadline = time.monotonic() + 2 * TAKEOVER_GRACE
  try:
    while True:
      if time.monotonic() > deadline:  # only a lock file that keeps changing gets here
        raise WorkdirLocked(f"Could not lock {workdir}: {path} kept changing for "
                            f"{2 * TAKEOVER_GRACE:.0f} s.", path, read(workdir))
      if _publish(tmp, path, payload, use_link):
        return WorkdirLock(path, info, owner=True, heartbeat_every=heartbeat_every)
      try:
        holder, st = _read_lock(path)
      except FileNotFoundError:
        continue  # released in the meantime
      now = _fs_now(tmp)
      verdict = _assess(holder, st, now, stale_after)
      if not verdict.stale:
        raise _locked_error(path, holder, verdict.reason)
      won = _take_over(path, tmp, _identity(holder, st), now)
      if won:
        print(f"Taking over the stale workdir lock {path}: its holder is gone "
              f"({verdict.reason}). It was {describe(holder)}.", file=sys.stderr)
        return WorkdirLock(path, info, owner=True, heartbeat_every=heartbeat_every)
      time.sleep(0.05)
  finally:
    try:
      os.unlink(tmp)
    except FileNotFoundError:
      pass


def read(workdir) -> Optional[dict]:
  """The content of `workdir`'s lock file, or None when there is none."""
  try:
    return _read_lock(lock_path(workdir))[0]
  except FileNotFoundError:
    return None
