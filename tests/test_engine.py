"""The engine of the grid and the book build (ssfer.book.engine): which cluster,
faults, the per-run lock, data on workers, and the embedded cluster's records
equal to in-process ones. tests/test_engine_cluster.py runs a real scheduler."""
from __future__ import annotations

import json
import multiprocessing
import os
import re
import shutil
import signal
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from ssfer.book import engine, recording
from ssfer.book.engine import Engine, EngineError, Task
from ssfer.cli import main
from ssfer.config import ConfigError
from ssfer.data import DataError
from child_signals import default_sigint

REPO = Path(__file__).resolve().parents[1]
TIMING = ("train_seconds",)  # the only fields two runs of one config may differ in


# ------------------------------------------------------------------ helpers (test_engine_cluster uses them too)
def grid_file(folder: Path, groups: list[dict]) -> Path:
    """``folder/grid.yaml`` over a copy of the SynthFER and FERPlus configs."""
    shutil.copy(REPO / "configs" / "synthfer_dta_snl.yaml", folder / "synth.yaml")
    shutil.copy(REPO / "configs" / "ferplus_fraction_10_cpu.yaml", folder / "ferplus.yaml")
    (folder / "grid.yaml").write_text(json.dumps({"groups": groups}))
    return folder / "grid.yaml"


def synth_group(overrides: dict, name: str = "synth", algorithms=("supervised", "fixmatch"), seeds=(0,)) -> dict:
    # one thread, set in the config: a run is bit-identical only at one thread count
    return {"name": name + "_{algorithm}_s{seed}", "config": "synth.yaml", "algorithms": list(algorithms),
            "seeds": list(seeds), "set": {**overrides, "train.threads": 1}}


def _timeless(text: str, lines: bool) -> object:
    rows = [json.loads(line) for line in text.splitlines() if line.strip()] if lines else [json.loads(text)]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def assert_same_record(a: Path, b: Path) -> None:
    """Two run folders hold the same record, row for row, timing apart."""
    assert sorted(p.name for p in a.iterdir()) == sorted(recording.ARTIFACTS)
    assert sorted(p.name for p in b.iterdir()) == sorted(recording.ARTIFACTS)
    for f in recording.ARTIFACTS:
        x, y = (a / f).read_text(), (b / f).read_text()
        if f.endswith((".json", ".jsonl")):
            x, y = _timeless(x, f.endswith("l")), _timeless(y, f.endswith("l"))
        assert x == y, f"{a.name}/{f} differs"


def complete_folders(results: Path) -> list[str]:
    """The run folders of ``results``, each asserted complete (no half-written one)."""
    names = sorted(d.name for d in results.iterdir() if d.is_dir() and not d.name.startswith("."))
    for n in names:
        assert recording.is_recorded(results, n), f"{n} is half-written"
    return names


def recorded_lines(err: str) -> list[str]:
    return sorted(re.findall(r"^(\S+): recorded$", err, flags=re.M))


# ------------------------------------------------------------------ which cluster
def test_the_cluster_is_named_by_flag_file_or_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(engine.SCHEDULER_ENV, raising=False)
    assert engine.scheduler_address(None, None) is None          # the embedded cluster
    monkeypatch.setenv(engine.SCHEDULER_ENV, "tcp://alpha:8786")
    assert engine.scheduler_address(None, None) == "tcp://alpha:8786"
    assert engine.scheduler_address("tcp://beta:8786", None) == "tcp://beta:8786"
    f = tmp_path / "scheduler.json"
    f.write_text("{}")
    assert engine.scheduler_address(None, f) == f                 # a file given beats the environment
    with pytest.raises(EngineError, match="not both"):
        engine.scheduler_address("tcp://beta:8786", f)
    with pytest.raises(EngineError, match="no such file"):
        engine.scheduler_address(None, tmp_path / "none.json")


def test_an_unreachable_scheduler_is_one_line(tmp_path, monkeypatch, capsys, two_step_overrides):
    import dask
    import distributed  # noqa: F401 - its defaults first: a set() before them would remove them on exit

    monkeypatch.chdir(tmp_path)
    grid_file(tmp_path, [synth_group(two_step_overrides)])
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        rc = main(["results", "record", "--grid", "grid.yaml", "--results-dir", "r",
                   "--scheduler", "tcp://127.0.0.1:9"])
    assert rc != 0
    assert "engine error: cannot reach the Dask scheduler at tcp://127.0.0.1:9" in capsys.readouterr().err
    assert not (tmp_path / "r").exists() or complete_folders(tmp_path / "r") == []


# ------------------------------------------------------------------ faults, in this process
_CALLS: list[str] = []


def _double(x):
    _CALLS.append(f"double {x}")
    return 2 * x


def _fails(x):
    _CALLS.append(f"fails {x}")
    raise ValueError(f"bad value {x}")


def test_a_task_that_raises_is_reported_by_name_once_and_the_others_finish():
    _CALLS.clear()
    out = {o.name: o for o in Engine().run([Task("a", _double, (2,)), Task("b", _fails, (3,)),
                                            Task("c", _double, (4,))])}
    assert (out["a"].value, out["c"].value, out["a"].error) == (4, 8, "")
    assert out["b"].error == "ValueError: bad value 3" and out["b"].attempts == 1
    assert out["b"].worker.startswith("this process on ")
    assert _CALLS == ["double 2", "fails 3", "double 4"]  # b ran once: its own error is not retried
    with pytest.raises(EngineError, match="--retries -1"):
        Engine(retries=-1)


def test_a_scheduler_lost_between_a_finish_and_its_fetch_is_one_engine_error():
    # the race test_engine_cluster's killed scheduler can hit: the future says
    # "finished", but fetching its outcome from the worker finds the scheduler gone
    from distributed.comm.core import CommClosedError

    class Fetched:
        status = "finished"

        def result(self):
            raise CommClosedError("in <TCP (closed) ConnectionPool.gather>: Stream is closed")

    eng = Engine(where="the Dask cluster at tcp://10.0.0.1:8786")
    with pytest.raises(EngineError, match=r"^the Dask cluster at tcp://10.0.0.1:8786 went away while a's outcome "
                                          r"was fetched \(CommClosedError: .*Stream is closed\); what finished is kept"):
        eng._finished(Fetched(), Task("a", _double, (2,)), 1)


# ------------------------------------------------------------------ workers: data, code, daemon
def test_a_worker_finds_the_data_at_root_or_under_its_own_data_root(tmp_path, monkeypatch):
    from ssfer.config import Config

    monkeypatch.delenv(recording.DATA_ROOT_ENV, raising=False)
    cfg = Config.from_yaml(REPO / "configs" / "ferplus_fraction_10_cpu.yaml").with_overrides(
        {"data.root": str(tmp_path / "nowhere")})
    with pytest.raises(DataError, match=re.escape(f"tcp://w:1 has no data set 'ferplus' at {tmp_path / 'nowhere'} "
                                                  "(from --root ferplus): pass --root ferplus=PATH")):
        recording.data_here(cfg, "tcp://w:1")
    (tmp_path / "mine" / "ferplus").mkdir(parents=True)
    monkeypatch.setenv(recording.DATA_ROOT_ENV, str(tmp_path / "mine"))
    assert recording.data_here(cfg, "tcp://w:1").data.root == str(tmp_path / "mine" / "ferplus")
    monkeypatch.setenv(recording.DATA_ROOT_ENV, str(tmp_path / "other"))
    with pytest.raises(DataError, match=r"at .*other/ferplus \(from \$SSFER_DATA_ROOT/ferplus\)"):
        recording.data_here(cfg, "tcp://w:1")
    synth = Config.default()
    assert recording.data_here(synth, "tcp://w:1") is synth


def test_a_worker_with_other_code_or_daemonic_refuses_runs(monkeypatch):
    from ssfer.config import Config

    engine.check_worker("tcp://w:1", "trains", "ab" * 32, "ab" * 32)
    with pytest.raises(ConfigError, match="tcp://w:1 trains with code abababab, the submitting checkout with 00000000"):
        engine.check_worker("tcp://w:1", "trains", "ab" * 32, "0" * 64)
    # recording's task checks its worker's training code against the one it was given
    with pytest.raises(ConfigError, match=r"trains with code \w{8}, the submitting checkout with 00000000"):
        recording.train_run(Config.default().to_dict(), None, ["ssfer"], "0" * 64)
    # Dask's default worker process: a daemon, which could not start the data decoder's pool
    monkeypatch.setitem(multiprocessing.current_process()._config, "daemon", True)
    with pytest.raises(ConfigError, match="DASK_DISTRIBUTED__WORKER__DAEMON=False"):
        engine.check_worker("tcp://w:1", "trains", "ab" * 32, "ab" * 32)


# ------------------------------------------------------------------ the lock
def test_a_run_another_command_holds_is_left_to_it(tmp_path, monkeypatch, capsys, two_step_overrides):
    from filelock import FileLock

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SSFER_CACHE", str(tmp_path / "cache"))
    grid = recording.load_grid(grid_file(tmp_path, [synth_group(two_step_overrides)]))
    (tmp_path / "r" / recording.LOCKS).mkdir(parents=True)
    other = FileLock(tmp_path / "r" / recording.LOCKS / "synth_supervised_s0.lock")
    other.acquire()  # another `record` command, recording that run now
    try:
        out = recording.record_grid(grid, tmp_path, tmp_path / "r", {})
    finally:
        other.release()
    assert out == {"synth_fixmatch_s0": ""}
    assert "synth_supervised_s0: being recorded by another `ssfer results record`; left to it" in \
        capsys.readouterr().err
    assert complete_folders(tmp_path / "r") == ["synth_fixmatch_s0"]
    # once it lets go, the run is this command's; a recorded one is nobody's
    assert recording.record_grid(grid, tmp_path, tmp_path / "r", {}) == {"synth_supervised_s0": ""}
    assert recording.record_grid(grid, tmp_path, tmp_path / "r", {}) == {}


# ------------------------------------------------------------------ the SLURM recipe
@pytest.fixture
def own_sigint():
    """dask_jobqueue's runner module replaces the process's SIGINT handler when it
    is imported (with sys.exit); give the test process its own handler back, or
    every later test that sends itself a real Ctrl-C sees SystemExit instead."""
    before = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, before)


def test_the_slurm_recipe_retires_workers_before_the_walltime(own_sigint):
    pytest.importorskip("dask_jobqueue")
    text = (REPO / "book" / "reproducing.md").read_text()
    recipe = next(b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "SLURMCluster(" in b)
    ns: dict = {}
    exec(recipe, ns)  # builds the cluster object and its scheduler; submits no job
    try:
        script = ns["cluster"].job_script()
    finally:
        ns["cluster"].close()
    assert "#SBATCH -t 12:00:00" in script
    assert "export DASK_DISTRIBUTED__WORKER__DAEMON=False" in script and "export SSFER_DATA_ROOT=" in script
    worker = next(line for line in script.splitlines() if "distributed.cli.dask_worker" in line)
    for flag in ("--nthreads 1", "--nworkers 8", "--lifetime 11h30m", "--lifetime-stagger 15m"):
        assert flag in worker


# ------------------------------------------------------------------ the embedded cluster
def _square_in_a_child(x: int) -> tuple[bool, int]:
    # what the data decoder does: a pool of child processes, refused to a daemon
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return multiprocessing.current_process().daemon, pool.submit(pow, x, 2).result()


def _kill_my_worker() -> None:
    os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer would


@pytest.mark.slow  # starts a local Dask cluster, whose workers die and come back
def test_embedded_workers_start_children_and_a_dying_run_stops_at_the_stated_count(capsys):
    with Engine.open(jobs=1, retries=1) as eng:
        # one worker takes the tasks in the order given (--seed-major's order)
        assert [o.name for o in eng.run([Task(n, _double, (1,)) for n in "edcba"])] == list("edcba")
        out = {o.name: o for o in eng.run([Task("child", _square_in_a_child, (3,)),
                                           Task("dies", _kill_my_worker)])}
    assert out["child"].value == (False, 9)  # not a daemon: its child ran
    dies = out["dies"]
    assert dies.attempts == 2 and dies.value is None
    assert dies.error.startswith("its worker died during each of its 2 attempt(s) (the last on tcp://")
    assert dies.error.endswith("not run again (--retries 1)")
    err = capsys.readouterr().err
    assert ("engine: an embedded Dask cluster of 1 worker process(es), one run at a time each (a run computes on "
            "its config's train.threads); dashboard ") in err
    assert re.search(r"dies: worker tcp://\S+ died during attempt 1; submitting it again "
                     r"\(attempt 2 of at most 2\)", err), err


def _long_until(flag: str) -> tuple[str, int]:
    # runs until the last short task has run, so it outlasts them whatever the load;
    # returns its worker and the most tasks seen waiting on that worker meanwhile
    import time
    from distributed import get_worker

    worker, queued = get_worker(), 0
    for _ in range(600):
        queued = max(queued, len(worker.state.ready))
        if Path(flag).exists():
            return worker.address, queued
        time.sleep(0.05)
    raise TimeoutError(f"{flag} never appeared: the short tasks waited behind this one")


def _short(flag: str | None = None) -> str:
    from distributed import get_worker

    if flag:
        Path(flag).write_text("done")
    return get_worker().address


@pytest.mark.slow  # starts a local Dask cluster of two workers
def test_a_worker_that_finishes_takes_the_next_task_while_another_runs_a_long_one(tmp_path):
    """The grid's failure: every task submitted at once was placed on a worker at
    once, and a worker whose queue ran dry sat idle while another held a run and
    the next one behind it. Here the long task runs until the last short one has
    run: each short one must go to the free worker, never queue behind it."""
    flag = str(tmp_path / "last_short_ran")
    tasks = [Task("long", _long_until, (flag,)), *[Task(f"short{i}", _short) for i in range(3)],
             Task("short3", _short, (flag,))]
    with Engine.open(jobs=2) as eng:
        out = {o.name: o for o in eng.run(tasks)}
    assert all(not o.error for o in out.values()), {n: o.error for n, o in out.items()}
    worker, queued = out["long"].value
    assert all(out[f"short{i}"].value != worker for i in range(4))
    assert queued == 0, f"{queued} task(s) waited on the long task's worker"


@pytest.mark.slow  # trains four short runs in this process and on a local Dask cluster
def test_embedded_cluster_records_synthfer_and_ferplus_as_in_process(tmp_path, monkeypatch, two_step_overrides):
    sys.path.insert(0, str(REPO / "tests" / "data"))
    import fixtures_data as fx

    fx.build_ferplus(tmp_path / "ferplus")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SSFER_CACHE", str(tmp_path / "cache"))  # decoded data; the workers inherit it
    monkeypatch.delenv(recording.DATA_ROOT_ENV, raising=False)
    ferplus = {"name": "fp_{algorithm}_s{seed}", "config": "ferplus.yaml", "algorithms": ["supervised", "fixmatch"],
               "seeds": [0], "set": {"split.fraction": 0.5, "train.steps": 3, "train.batch_size": 2, "train.mu": 1,
                                     "train.eval_every": 0, "train.log_every": 1}}
    grid = recording.load_grid(grid_file(tmp_path, [synth_group(two_step_overrides), ferplus]))
    roots = {"ferplus": str(tmp_path / "ferplus")}
    here = recording.record_grid(grid, tmp_path, tmp_path / "here", roots, cache_dir=str(tmp_path / "c1"))
    with Engine.open(jobs=2) as eng:
        there = recording.record_grid(grid, tmp_path, tmp_path / "there", roots, cache_dir=str(tmp_path / "c2"),
                                      engine=eng)
    assert here == there == {p.name: "" for p in grid}
    for p in grid:
        assert_same_record(tmp_path / "here" / p.name, tmp_path / "there" / p.name)


@pytest.mark.slow  # a `ssfer results record` process, interrupted, and the same command again
def test_ctrl_c_keeps_what_finished_and_the_same_command_records_the_rest(tmp_path, two_step_overrides):
    import subprocess
    import time

    grid_file(tmp_path, [synth_group({**two_step_overrides, "train.steps": 12}, seeds=(0, 1))])
    env = {**os.environ, "SSFER_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(REPO)}
    env.pop(engine.SCHEDULER_ENV, None)
    cmd = [sys.executable, "-m", "ssfer", "results", "record", "--grid", "grid.yaml", "--results-dir", "r",
           "--jobs", "1"]
    # its own session, so that Ctrl-C (SIGINT to the terminal's process group) reaches it and its workers only
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, start_new_session=True, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)
    try:
        deadline = time.monotonic() + 300
        while not (tmp_path / "r").is_dir() or not complete_folders(tmp_path / "r"):
            assert proc.poll() is None and time.monotonic() < deadline, "no run was recorded"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err
    first = complete_folders(tmp_path / "r")
    assert 1 <= len(first) < 4, err
    assert set(recorded_lines(err)) <= set(first)
    again = subprocess.run(cmd, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    names = [f"synth_{a}_s{s}" for a in ("supervised", "fixmatch") for s in range(2)]
    assert recorded_lines(again.stderr) == sorted(set(names) - set(first))
    assert complete_folders(tmp_path / "r") == sorted(names)
