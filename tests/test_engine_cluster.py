"""`ssfer results record --scheduler` on a real cluster: a `dask scheduler` process
and two `dask worker` processes on this machine, each worker with its own run
cache (no filesystem shared for runs or results), as on two machines.

The scheduler allows no failures (DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=0),
so a killed worker's run reaches the engine as KilledWorker at once, the path a
scheduler's default count (3) ends in too."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ssfer.book import engine, recording
from ssfer.cli import main
from ssfer.config import Config
from ssfer.record import run_key
from test_engine import assert_same_record, complete_folders, grid_file, recorded_lines, synth_group

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # starts a scheduler and workers, and trains


@dataclass
class Cluster:
    address: str
    scheduler_file: Path
    caches: dict[str, Path]                   # worker name -> its run cache
    procs: list = field(default_factory=list)  # [scheduler, worker, ...]

    def client(self):
        from distributed import Client

        return Client(self.address, timeout="30s")

    def worker_pid(self, name: str) -> tuple[str, int]:
        """The address and pid of the worker process (not its nanny) called ``name``."""
        with self.client() as c:
            ids = c.run(lambda: (os.environ["SSFER_WORKER"], os.getpid()))
        return next((addr, pid) for addr, (n, pid) in ids.items() if n == name)


def _start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    # its own session: the cleanup stops it with every process it started (a nanny's worker)
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "dask", *args], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 20)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
            proc.wait(wait)
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def _env(**extra) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **extra}
    env.pop(engine.SCHEDULER_ENV, None)
    env.pop(recording.DATA_ROOT_ENV, None)
    return env


def start_cluster(folder: Path) -> Cluster:
    """A scheduler on a port it picks free and two workers of one thread each;
    returns once both have joined. The caller stops it (``stop_cluster``)."""
    folder.mkdir(parents=True, exist_ok=True)
    sfile = folder / "scheduler.json"
    cl = Cluster("", sfile, {n: folder / f"cache-{n}" for n in ("w1", "w2")})
    try:
        cl.procs.append(_start(["scheduler", "--port", "0", "--dashboard-address", ":0", "--scheduler-file",
                                str(sfile)], _env(DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES="0"),
                               folder / "scheduler.log"))
        deadline = time.monotonic() + 120
        while not sfile.is_file():
            assert cl.procs[0].poll() is None and time.monotonic() < deadline, (folder / "scheduler.log").read_text()
            time.sleep(0.1)
        time.sleep(0.2)  # the file is written whole, but give the writer its moment
        cl.address = json.loads(sfile.read_text())["address"]
        for name, cache in cl.caches.items():
            cl.procs.append(_start(["worker", cl.address, "--nthreads", "1", "--nworkers", "1", "--name", name,
                                    "--no-dashboard", "--local-directory", str(folder / name),
                                    "--death-timeout", "30"],
                                   _env(SSFER_CACHE=str(cache), SSFER_WORKER=name,
                                        DASK_DISTRIBUTED__WORKER__DAEMON="False"), folder / f"{name}.log"))
        with cl.client() as c:
            c.wait_for_workers(2, timeout=180)
    except BaseException:
        stop_cluster(cl)
        raise
    return cl


def stop_cluster(cl: Cluster) -> None:
    for p in reversed(cl.procs):
        _stop(p)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cl = start_cluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield cl
    finally:
        stop_cluster(cl)


@pytest.fixture
def here(tmp_path, monkeypatch):
    """This process records in ``tmp_path`` with a cache of its own."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SSFER_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(engine.SCHEDULER_ENV, raising=False)
    monkeypatch.delenv(recording.DATA_ROOT_ENV, raising=False)
    return tmp_path


def _in_process(folder: Path, results: str) -> None:
    grid = recording.load_grid(folder / "grid.yaml")
    assert set(recording.record_grid(grid, folder, folder / results, {}).values()) == {""}


def test_a_grid_recorded_through_a_scheduler_equals_the_in_process_records(cluster, here, capsys,
                                                                             two_step_overrides):
    grid_file(here, [synth_group(two_step_overrides, seeds=(0, 1))])
    assert main(["results", "record", "--grid", "grid.yaml", "--results-dir", "cl", "--scheduler",
                 cluster.address]) == 0
    err = capsys.readouterr().err
    assert f"engine: the Dask cluster at {cluster.address} (2 workers, 2 threads now)" in err
    # trained on the workers, in their own caches: none through this machine's
    assert not list(here.glob("cache/runs/*/summary.json"))
    _in_process(here, "local")
    names = complete_folders(here / "cl")
    assert names == complete_folders(here / "local") and len(names) == 4 and recorded_lines(err) == names
    for name in names:
        assert_same_record(here / "cl" / name, here / "local" / name)


def _kill_when_it_trains(cl: Cluster, killed: dict) -> None:
    """SIGKILL the worker whose cache shows the run's first checkpoint, as the
    OOM killer would: mid-run."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        for name, cache in cl.caches.items():
            if any(cache.glob("runs/*/checkpoint.pt")):
                killed["name"], (killed["address"], pid) = name, cl.worker_pid(name)
                os.kill(pid, signal.SIGKILL)
                return
        time.sleep(0.02)


def test_a_worker_killed_while_it_trains_loses_nothing(cluster, here, capsys, two_step_overrides):
    long = {**two_step_overrides, "train.steps": 120, "train.ckpt_every": 4}
    grid_file(here, [synth_group(long, name="long", algorithms=("supervised",))])
    killed: dict = {}
    killer = threading.Thread(target=_kill_when_it_trains, args=(cluster, killed))
    killer.start()
    try:
        rc = main(["results", "record", "--grid", "grid.yaml", "--results-dir", "cl",
                   "--scheduler-file", str(cluster.scheduler_file)])
    finally:
        killer.join()
    err = capsys.readouterr().err
    assert killed, "the run finished before a checkpoint showed: make it longer"
    assert rc == 0, err
    assert (f"long_supervised_s0: worker {killed['address']} died during attempt 1; submitting it again "
            "(attempt 2 of at most 3)") in err
    assert re.search(r"long_supervised_s0: attempt 2 started on worker tcp://\S+ \(attempt 1 ran on "
                     + re.escape(killed["address"]) + r"\)", err), err
    # trained to the end by the other worker; the killed one kept only its checkpoint
    key = run_key(Config.from_yaml(here / "cl" / "long_supervised_s0" / "config.yaml"))
    other = next(n for n in cluster.caches if n != killed["name"])
    assert (cluster.caches[other] / "runs" / key / "summary.json").is_file()
    assert not (cluster.caches[killed["name"]] / "runs" / key / "summary.json").exists()
    # recorded once, whole, as this process records it
    assert sorted(p.name for p in (here / "cl").iterdir()) == [recording.LOCKS, "long_supervised_s0"]
    _in_process(here, "local")
    assert_same_record(here / "cl" / "long_supervised_s0", here / "local" / "long_supervised_s0")


def test_a_run_failing_in_its_own_code_is_named_and_not_run_again(cluster, here, capsys, two_step_overrides):
    missing = {"name": "fp_{algorithm}_s{seed}", "config": "ferplus.yaml", "algorithms": ["supervised"],
               "seeds": [0]}
    grid_file(here, [missing, synth_group({**two_step_overrides, "train.steps": 3}, algorithms=("supervised",))])
    rc = main(["results", "record", "--grid", "grid.yaml", "--results-dir", "cl", "--scheduler", cluster.address,
               "--root", "ferplus=/nonexistent/ferplus"])
    err = capsys.readouterr().err
    assert rc == 1
    # named, with the worker, the data set and the path, in its traceback's last line
    line = re.search(r"^fp_supervised_s0: on (tcp://\S+): DataError: (.*)$", err, flags=re.M)
    assert line, err
    assert line[2].startswith(f"{line[1]} has no data set 'ferplus' at /nonexistent/ferplus (from --root ferplus)")
    assert "attempt 2" not in err and "submitting it again" not in err  # ran once
    assert "ssfer: run fp_supervised_s0 failed: on tcp://" in err
    assert complete_folders(here / "cl") == ["synth_supervised_s0"]


def test_a_lost_scheduler_keeps_what_finished_and_the_same_command_records_the_rest(tmp_path_factory, here,
                                                                                    capsys, two_step_overrides):
    import dask
    import distributed  # noqa: F401 - its defaults first: a set() before them would remove them on exit

    grid_file(here, [synth_group({**two_step_overrides, "train.steps": 12}, seeds=(0, 1))])
    names = sorted(f"synth_{a}_s{s}" for a in ("supervised", "fixmatch") for s in range(2))
    cl = start_cluster(tmp_path_factory.mktemp("doomed"))
    lost: list = []

    def kill_scheduler_after_the_first_record():
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not lost:
            if (here / "cl").is_dir() and complete_folders(here / "cl"):
                os.killpg(cl.procs[0].pid, signal.SIGKILL)
                lost.append(complete_folders(here / "cl"))
            time.sleep(0.02)

    killer = threading.Thread(target=kill_scheduler_after_the_first_record)
    killer.start()
    try:
        # the client gives up on a lost scheduler after the connect timeout
        with dask.config.set({"distributed.comm.timeouts.connect": "5s"}):
            rc = main(["results", "record", "--grid", "grid.yaml", "--results-dir", "cl",
                       "--scheduler", cl.address])
    finally:
        lost.append(None)  # stops the killer if the command ended first
        killer.join()
        stop_cluster(cl)
    err = capsys.readouterr().err
    assert rc == 1 and "engine error: the Dask cluster at" in err and "went away" in err, err
    first = complete_folders(here / "cl")
    assert lost[0] is not None and 1 <= len(first) < len(names), err
    assert main(["results", "record", "--grid", "grid.yaml", "--results-dir", "cl", "--jobs", "2"]) == 0
    assert recorded_lines(capsys.readouterr().err) == sorted(set(names) - set(first))
    assert complete_folders(here / "cl") == names


def test_a_pretraining_sent_to_a_scheduler_equals_the_in_process_one(cluster, here, capsys, monkeypatch):
    from test_pretrain import CONFIG, TINY, tiny

    from ssfer.io import file_sha256
    from ssfer.pretrain import record as pretrain_record
    from ssfer.pretrain.run import pretrain

    sets = [f"--set={k}={json.dumps(v)}" for k, v in TINY.items()]
    assert main(["pretrain", "--config", str(CONFIG), *sets, "--scheduler", cluster.address]) == 0
    out, err = capsys.readouterr()
    shown = json.loads(out)
    weights = Path(shown["fine_tune_with"].split("=", 1)[1])
    # trained on a worker, into that worker's own run cache, and named with it
    assert any(weights.is_relative_to(c) for c in cluster.caches.values()), weights
    assert re.search(r"^run directory \(on the worker tcp://\S+\): ", err, flags=re.M), err
    import torch

    threads = torch.get_num_threads()
    try:
        local = pretrain(tiny(), cache_dir=here / "local")
    finally:
        torch.set_num_threads(threads)  # the config's one thread, for this test alone
    assert file_sha256(weights) == file_sha256(local.weights)
    assert shown["probe_accuracy"] == local.summary["probe_accuracy"]

    # a worker with other pretraining code refuses, in one line naming it
    monkeypatch.setattr(pretrain_record, "pretraining_code_digest", lambda: "0" * 64)
    assert main(["pretrain", "--config", str(CONFIG), *sets, "--scheduler", cluster.address]) == 1
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.fullmatch(r"ssfer: pretraining failed: on (tcp://\S+): ConfigError: \1 pretrains with code \w{8}, "
                        r"the submitting checkout with 00000000: install the same commit on every worker", line), line
