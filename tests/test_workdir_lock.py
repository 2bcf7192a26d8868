"""One run per workdir: a second run (another process) is refused while the
first lives, a dead or silent holder's lock is taken over by exactly one of
several racing processes, and the processes of one multi-process run share
the lock."""

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from genjax import workdir_lock

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT))

# Acquires the lock of argv[1] (with keyword arguments from argv[2] as JSON);
# prints ACQUIRED/JOINED and holds it until stdin closes, or prints LOCKED and
# the message. With "exit" in the arguments it exits at once without
# releasing, as a killed run does.
ACQUIRE_SCRIPT = textwrap.dedent("""
    import json, os, sys
    from genjax import workdir_lock
    kwargs = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    crash = kwargs.pop("exit", False)
    try:
      lock = workdir_lock.acquire(sys.argv[1], **kwargs)
    except workdir_lock.WorkdirLocked as e:
      print("LOCKED", e, flush=True)
      sys.exit(3)
    print("ACQUIRED" if lock.owner else "JOINED", os.getpid(), flush=True)
    if crash:
      os._exit(0)
    sys.stdin.read()
    lock.release()
""")


def _acquire_in_subprocess(workdir, **kwargs) -> subprocess.CompletedProcess:
  """Runs ACQUIRE_SCRIPT to the end (stdin closed: an acquired lock is released)."""
  return subprocess.run([sys.executable, "-c", ACQUIRE_SCRIPT, str(workdir), json.dumps(kwargs)],
                        input="", capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=120)


def _dead_holder_lock(workdir) -> int:
  """A lock left in `workdir` by a process that exited without releasing it; its pid."""
  proc = _acquire_in_subprocess(workdir, exit=True)
  assert proc.returncode == 0 and proc.stdout.startswith("ACQUIRED"), proc.stdout + proc.stderr
  pid = int(proc.stdout.split()[1])
  assert workdir_lock.read(workdir)["pid"] == pid
  return pid


def _other_host_lock(workdir, heartbeat_age: float, **fields) -> dict:
  """A lock file as a run on another host writes it, last refreshed `heartbeat_age` s ago."""
  Path(workdir).mkdir(parents=True, exist_ok=True)
  holder = {"format": 1, "run_id": "remote-run", "token": "0123abcd" * 4,
            "host": "elsewhere.invalid", "pid": 4242, "pid_start_ticks": 1, "boot_id": "x",
            "pid_namespace": "pid:[1]", "started": "2024-01-02T03:04:05+00:00",
            "started_epoch": 1704164645.0, "command": "python -m experiments.gan_mnist",
            "cwd": "/elsewhere", "heartbeat_every": 30.0, **fields}
  path = workdir_lock.lock_path(workdir)
  path.write_text(json.dumps(holder))
  then = time.time() - heartbeat_age
  os.utime(path, (then, then))
  return holder


def test_second_process_is_refused_naming_the_holder(tmp_path):
  workdir = tmp_path / "run"
  lock = workdir_lock.acquire(workdir)
  path = workdir / "lock"
  before = path.read_bytes()
  holder = json.loads(before)
  assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
  assert holder["run_id"] == lock.run_id and "started" in holder and "command" in holder

  proc = _acquire_in_subprocess(workdir)
  assert proc.returncode == 3, proc.stdout + proc.stderr
  message = proc.stdout
  assert f"pid {os.getpid()} on host {socket.gethostname()}" in message
  assert holder["started"] in message and "--workdir" in message and str(path) in message
  # The holder's lock is untouched and still its own.
  assert path.read_bytes() == before
  lock.check()
  lock.release()
  assert not path.exists()


def test_lock_of_a_dead_process_is_taken_over(tmp_path, capsys):
  workdir = tmp_path / "run"
  dead_pid = _dead_holder_lock(workdir)
  with workdir_lock.acquire(workdir) as lock:
    err = capsys.readouterr().err
    assert "Taking over the stale workdir lock" in err
    assert f"pid {dead_pid} on host {socket.gethostname()}" in err
    assert f"no process has pid {dead_pid}" in err
    assert workdir_lock.read(workdir)["token"] == lock.info["token"]
  assert sorted(os.listdir(workdir)) == []  # no lock, temporary file or marker left


def test_reused_pid_is_stale_and_a_running_holder_is_not(tmp_path, capsys):
  """A live process with the recorded pid holds the lock only if it also
  started when the holder did; otherwise the pid was reused."""
  workdir = tmp_path / "run"
  workdir.mkdir()
  sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
  try:
    holder = workdir_lock._holder_info("old-run")
    ticks = workdir_lock._proc_stat(sleeper.pid)[1]
    holder.update(pid=sleeper.pid, pid_start_ticks=ticks)
    (workdir / "lock").write_text(json.dumps(holder))
    with pytest.raises(workdir_lock.WorkdirLocked, match=f"pid {sleeper.pid} on host"):
      workdir_lock.acquire(workdir)

    holder.update(pid_start_ticks=ticks - 1)
    (workdir / "lock").write_text(json.dumps(holder))
    with workdir_lock.acquire(workdir):
      err = capsys.readouterr().err
      assert f"pid {sleeper.pid} now belongs to another process" in err
  finally:
    sleeper.kill()
    sleeper.wait()


def test_other_host_lock_is_taken_over_only_when_its_heartbeat_is_old(tmp_path, capsys):
  workdir = tmp_path / "run"
  _other_host_lock(workdir, heartbeat_age=10)
  with pytest.raises(workdir_lock.WorkdirLocked) as refused:
    workdir_lock.acquire(workdir)
  message = str(refused.value)
  assert "pid 4242 on host elsewhere.invalid" in message
  assert "python -m experiments.gan_mnist" in message and "2024-01-02T03:04:05" in message
  assert refused.value.holder["run_id"] == "remote-run"
  assert workdir_lock.read(workdir)["host"] == "elsewhere.invalid"

  # The timeout is configurable, but never below 3 of the holder's heartbeats.
  _other_host_lock(workdir, heartbeat_age=100, heartbeat_every=60.0)
  with pytest.raises(workdir_lock.WorkdirLocked):
    workdir_lock.acquire(workdir, stale_after=50)
  _other_host_lock(workdir, heartbeat_age=100)
  with workdir_lock.acquire(workdir, stale_after=50):
    assert "pid 4242 on host elsewhere.invalid" in capsys.readouterr().err

  _other_host_lock(workdir, heartbeat_age=400)  # past the default 300 s
  with workdir_lock.acquire(workdir) as lock:
    err = capsys.readouterr().err
    assert "Taking over" in err and "pid 4242 on host elsewhere.invalid" in err
    assert workdir_lock.read(workdir)["token"] == lock.info["token"]


def test_unreadable_lock_is_refused_until_old(tmp_path, capsys):
  workdir = tmp_path / "run"
  workdir.mkdir()
  (workdir / "lock").write_text("{not json")
  with pytest.raises(workdir_lock.WorkdirLocked, match="unreadable"):
    workdir_lock.acquire(workdir)
  then = time.time() - 400
  os.utime(workdir / "lock", (then, then))
  with workdir_lock.acquire(workdir):
    assert "unreadable" in capsys.readouterr().err


# Waits for a go file, then acquires argv[1]; the stale-lock check is slowed
# down so that every racer has judged the lock stale before any replaces it.
RACE_SCRIPT = textwrap.dedent("""
    import os, sys, time
    from genjax import workdir_lock
    workdir, go = sys.argv[1:3]
    assess, saw_stale = workdir_lock._assess, []
    def slow_assess(*args, **kwargs):
      verdict = assess(*args, **kwargs)
      if verdict.stale:
        saw_stale.append(True)
        time.sleep(0.5)
      return verdict
    workdir_lock._assess = slow_assess
    print("READY", flush=True)
    while not os.path.exists(go):
      time.sleep(0.001)
    try:
      lock = workdir_lock.acquire(workdir)
    except workdir_lock.WorkdirLocked as e:
      print("LOCKED", bool(saw_stale), e, flush=True)
      sys.exit(0)
    print("WON", bool(saw_stale), os.getpid(), flush=True)
    sys.stdin.read()
    lock.release()
""")


@pytest.mark.parametrize("stale_kind", ["dead_local_pid", "old_remote_heartbeat"])
def test_racing_takeovers_of_one_stale_lock_have_one_winner(tmp_path, stale_kind):
  num_racers, contested = 3, 0
  for round_ in range(3):
    workdir = tmp_path / f"round{round_}"
    if stale_kind == "dead_local_pid":
      _dead_holder_lock(workdir)
    else:
      _other_host_lock(workdir, heartbeat_age=1000)
    go = tmp_path / f"go{round_}"
    racers = [subprocess.Popen([sys.executable, "-c", RACE_SCRIPT, str(workdir), str(go)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=ENV, cwd=ROOT)
              for _ in range(num_racers)]
    try:
      assert [r.stdout.readline().strip() for r in racers] == ["READY"] * num_racers
      go.touch()
      outcomes = [r.stdout.readline().split(" ", 2) for r in racers]
    finally:
      for r in racers:
        r.stdin.close()
      errs = [r.stderr.read() for r in racers]
      for r in racers:
        r.wait(timeout=60)
    winners = [o for o in outcomes if o[0] == "WON"]
    assert len(winners) == 1, (outcomes, errs)
    winner_pid = winners[0][2].strip()
    for outcome in outcomes:
      if outcome[0] != "WON":
        assert outcome[0] == "LOCKED" and f"pid {winner_pid} on host" in outcome[2], outcomes
        contested += outcome[1] == "True"
    assert all(r.returncode == 0 for r in racers), errs
    assert sorted(os.listdir(workdir)) == []  # the winner released; no marker left
  # The losers had found the lock stale too, i.e. they really raced the winner.
  assert contested >= num_racers - 1, contested


def test_release_removes_only_our_own_lock(tmp_path, capsys):
  workdir = tmp_path / "run"
  path = workdir / "lock"
  first = workdir_lock.acquire(workdir)
  first.release()
  assert not path.exists()
  first.release()  # idempotent
  with workdir_lock.acquire(workdir) as second:
    assert path.exists() and workdir_lock.read(workdir)["run_id"] == second.run_id
  assert not path.exists()

  # Our lock deleted by hand and the workdir taken by another run: releasing
  # ours leaves theirs.
  ours = workdir_lock.acquire(workdir, run_id="ours", heartbeat_every=0.1)
  path.unlink()
  theirs = workdir_lock.acquire(workdir, run_id="theirs")
  with pytest.raises(workdir_lock.WorkdirLockLost, match="run id theirs"):
    ours.check()
  time.sleep(0.5)
  assert "is no longer ours" in capsys.readouterr().err  # the heartbeat noticed
  ours.release()
  assert workdir_lock.read(workdir)["run_id"] == "theirs"
  theirs.check()
  theirs.release()
  assert not path.exists()
  # After release, another process acquires.
  proc = _acquire_in_subprocess(workdir)
  assert proc.stdout.startswith("ACQUIRED"), proc.stdout + proc.stderr
  assert not path.exists()


def test_heartbeat_refreshes_the_lock_until_released(tmp_path):
  workdir = tmp_path / "run"
  lock = workdir_lock.acquire(workdir, heartbeat_every=0.1)
  path = workdir / "lock"
  old = time.time() - 1000
  os.utime(path, (old, old))
  deadline = time.time() + 10
  while path.stat().st_mtime < old + 500 and time.time() < deadline:
    time.sleep(0.05)
  assert path.stat().st_mtime > time.time() - 10
  lock.release()
  assert not lock._thread.is_alive() and not path.exists()


def test_non_main_processes_join_their_runs_lock(tmp_path):
  workdir = tmp_path / "run"
  with pytest.raises(ValueError, match="run id"):
    workdir_lock.acquire(workdir, is_main=False)

  # A non-main process that starts first waits for process 0's lock.
  early = subprocess.Popen(
      [sys.executable, "-c", ACQUIRE_SCRIPT, str(workdir),
       json.dumps({"is_main": False, "run_id": "run-1", "join_timeout": 60})],
      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
      env=ENV, cwd=ROOT)
  time.sleep(0.5)
  main = workdir_lock.acquire(workdir, run_id="run-1")
  before = (workdir / "lock").read_bytes()
  out, err = early.communicate(input="", timeout=60)
  assert early.returncode == 0 and out.startswith("JOINED"), out + err

  # Later non-main processes of the run join at once; their release leaves the lock.
  for _ in range(2):
    proc = _acquire_in_subprocess(workdir, is_main=False, run_id="run-1")
    assert proc.returncode == 0 and proc.stdout.startswith("JOINED"), proc.stdout + proc.stderr
  joined = workdir_lock.acquire(workdir, is_main=False, run_id="run-1")
  assert not joined.owner
  joined.check()
  joined.release()
  assert (workdir / "lock").read_bytes() == before

  # A process of another run is refused, naming the holder.
  proc = _acquire_in_subprocess(workdir, is_main=False, run_id="run-2", join_timeout=1)
  assert proc.returncode == 3 and f"pid {os.getpid()} on host" in proc.stdout, proc.stdout
  proc = _acquire_in_subprocess(workdir, run_id="run-1")  # even with the same run id
  assert proc.returncode == 3 and f"pid {os.getpid()} on host" in proc.stdout, proc.stdout
  assert (workdir / "lock").read_bytes() == before
  main.release()
  assert not (workdir / "lock").exists()
