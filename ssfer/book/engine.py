"""The one engine of the grid and the book build: a Dask cluster (``distributed``).

``ssfer results record`` and ``ssfer reproduce`` hand their runs to a Dask
``Client`` as tasks. By default the command starts an embedded ``LocalCluster``
(``--jobs N`` worker processes, one task slot each; a run computes on its
config's ``train.threads``) and stops it when it ends; with
``--scheduler tcp://HOST:8786`` (or ``$SSFER_SCHEDULER``, or
``--scheduler-file F``) the same tasks go to any cluster: one started with
``dask scheduler`` and ``dask worker``, or by ``dask-jobqueue`` on SLURM
(``book/reproducing.md``, "On a cluster"). ``Engine()`` with no client runs the
tasks here, one after the other, by the same rules.

The engine keeps no more tasks in flight than the cluster has threads, and hands
the next one, in the order given, to whichever worker is free.

A task returns data; the submitting command writes it. Faults:

- a task that raises in its own code comes back once, as its traceback's last
  line and the worker it ran on: a run's error repeats with the same config and
  code, so running it again would only repeat it;
- a task whose worker died (SIGKILL, the OOM killer) is not covered by Dask's
  ``retries=``, which is for tasks that raise: the scheduler re-runs it up to its
  ``allowed-failures`` and then gives up with ``KilledWorker``. The engine then
  submits it again under a new key (the scheduler's count is per key), at most
  ``retries`` times, naming the worker that died and the attempt. The embedded
  cluster allows no failures, so there every death is counted here;
- a lost scheduler ends the command with ``EngineError`` once every finished
  task has been handed over; Ctrl-C likewise (``KeyboardInterrupt``).
"""
from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import socket
import sys
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from ssfer.errors import ConfigError, SsferError

SCHEDULER_ENV = "SSFER_SCHEDULER"
RETRIES = 2          # a task whose worker died is submitted again at most this many times
TOPIC = "ssfer-attempt"  # the event each attempt logs when it starts on a worker
POLL_SECONDS = 5     # how often the engine looks for workers that joined while every task ran

# The embedded cluster's settings, each for a reason:
LOCAL_CONFIG = {
    # a run may start multiprocessing children (the data set decoder's pool), which
    # a daemonic process may not; a worker the nanny restarts reads this again
    "distributed.worker.daemon": False,
    # every worker death comes back as KilledWorker, so --retries counts them all
    "distributed.scheduler.allowed-failures": 0,
    # one task per worker thread: a dying worker takes one run with it, not a queued one too
    "distributed.scheduler.worker-saturation": 1.0,
}


class EngineError(SsferError):
    """The cluster cannot be reached or went away, or its options disagree."""

    kind = "engine error"


@dataclass(frozen=True)
class Task:
    """One unit of work: ``fn(*args)`` on a worker, under a name the logs use."""

    name: str
    fn: Callable[..., Any]
    args: tuple = ()


@dataclass
class Outcome:
    """What came back for one task: its value, or its error as one line."""

    name: str
    value: Any = None
    error: str = ""
    worker: str = ""     # where the last attempt ran
    attempts: int = 1    # submissions of the task, the first included


def here() -> str:
    """The worker this code runs on (its address), or this process."""
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):  # ValueError: not inside a Dask worker
        return f"this process on {socket.gethostname()}"


def last_line(e: BaseException) -> str:
    """An exception as the last line of its traceback, on one line: ``DataError: ...``
    (the class's own name, as ``ssfer`` reports its errors)."""
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def check_worker(where: str, does: str, theirs: str, ours: str) -> None:
    """A worker must run the submitting checkout's code (``theirs`` against ``ours``,
    the digests), else what it makes would be keyed and recorded as another code's;
    and it must be free to start child processes (the data set decoder's pool).
    ``does``: what the code does there ("trains", "pretrains")."""
    if theirs != ours:
        raise ConfigError(f"{where} {does} with code {theirs[:8]}, the submitting checkout with {ours[:8]}: "
                          "install the same commit on every worker")
    if multiprocessing.current_process().daemon:
        raise ConfigError(f"{where} is a daemonic process, which cannot start the data decoder's processes: "
                          "start its workers with DASK_DISTRIBUTED__WORKER__DAEMON=False")


def _attempt(key: str, fn: Callable[..., Any], *args: Any) -> tuple[str, Any, str]:
    """One attempt of a task where it landed: ("ok", value, worker) or ("error",
    last line, worker). The error travels as data, so Dask never re-runs it."""
    worker = here()
    with contextlib.suppress(ImportError, ValueError):
        from distributed import get_worker

        get_worker().log_event(TOPIC, {"key": key, "worker": worker})
    try:
        return "ok", fn(*args), worker
    except Exception as e:  # noqa: BLE001 - reported by name; one task must not stop the others
        return "error", last_line(e), worker


def scheduler_address(scheduler: str | None, scheduler_file: str | Path | None) -> str | Path | None:
    """The cluster the user named: ``--scheduler``, else ``--scheduler-file``, else
    ``$SSFER_SCHEDULER``; None for the embedded cluster."""
    if scheduler and scheduler_file:
        raise EngineError("give --scheduler or --scheduler-file, not both")
    if scheduler_file:
        path = Path(scheduler_file)
        if not path.is_file():
            raise EngineError(f"--scheduler-file {path}: no such file (the scheduler writes it: "
                              f"dask scheduler --scheduler-file {path})")
        return path
    return scheduler or os.environ.get(SCHEDULER_ENV) or None


def add_flags(p, cluster_needs: str, unit: str = "run", instead: str = "an embedded cluster") -> None:
    """``--scheduler``, ``--scheduler-file`` and ``--retries`` on a command's parser;
    ``cluster_needs`` says what a cluster's workers must have for that command,
    ``unit`` names what it runs and ``instead`` where it runs without a scheduler."""
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT", default=None,
                   help=f"send the {unit}s to this Dask scheduler instead of {instead} (default "
                        f"${SCHEDULER_ENV}); {cluster_needs}")
    p.add_argument("--scheduler-file", metavar="FILE", default=None,
                   help="the scheduler's address from the file `dask scheduler --scheduler-file FILE` writes")
    p.add_argument("--retries", type=int, default=RETRIES, metavar="N",
                   help=f"a {unit} whose worker died (killed, out of memory) is submitted again at most N "
                        f"times (default {RETRIES}); a {unit} that fails in its own code is reported, not run again")


class Engine:
    """Runs tasks and hands back their outcomes in the order they finish."""

    def __init__(self, client=None, retries: int = RETRIES, where: str = "this process"):
        if retries < 0:
            raise EngineError(f"--retries {retries}: expected 0 or more")
        self.client = client
        self.retries = retries
        self.where = where
        self._names: dict[str, str] = {}      # task key -> task name (keys of this engine only)
        self._starts: dict[str, list[str]] = {}  # task name -> the workers its attempts started on
        self._priority: dict[str, int] = {}      # task name -> its rank, the first highest
        self._lock = threading.Lock()

    # ---- opening -------------------------------------------------------
    @classmethod
    @contextlib.contextmanager
    def open(cls, jobs: int = 1, scheduler: str | None = None, scheduler_file: str | Path | None = None,
             retries: int = RETRIES) -> Iterator["Engine"]:
        """An engine on the named cluster, or on an embedded ``LocalCluster`` of
        ``jobs`` worker processes of one task slot each, started now and stopped when
        the block ends. Prints where the runs go and the dashboard's address."""
        address = scheduler_address(scheduler, scheduler_file)
        if jobs < 1:
            raise EngineError(f"--jobs {jobs}: expected 1 or more")
        with contextlib.ExitStack() as stack:
            if address is None:
                client = stack.enter_context(_local_client(jobs))
                where = (f"an embedded Dask cluster of {jobs} worker process(es), one run at a time each "
                         "(a run computes on its config's train.threads)")
            else:
                client = stack.enter_context(_remote_client(address))
                threads = client.nthreads()
                where = (f"the Dask cluster at {client.scheduler.address} ({len(threads)} workers, "
                         f"{sum(threads.values())} threads now)")
            print(f"engine: {where}; dashboard {_dashboard(client)}", file=sys.stderr, flush=True)
            yield cls(client, retries, where)

    # ---- running -------------------------------------------------------
    def say(self, line: str, file=None) -> None:
        """Print a line without tearing the progress bar."""
        from tqdm import tqdm

        tqdm.write(line, file=file or sys.stderr)
        (file or sys.stderr).flush()

    def run(self, tasks: list[Task], unit: str = "run") -> Iterator[Outcome]:
        """Each task's outcome, as it finishes, under a progress bar (on a terminal)."""
        from tqdm import tqdm

        with tqdm(total=len(tasks), unit=unit, disable=None, file=sys.stderr, leave=False) as bar:
            for out in (self._in_process(tasks) if self.client is None else self._on_cluster(tasks)):
                bar.update()
                yield out

    def _in_process(self, tasks: list[Task]) -> Iterator[Outcome]:
        for t in tasks:
            status, value, worker = _attempt(t.name, t.fn, *t.args)
            yield _outcome(t.name, status, value, worker, 1)

    def _on_cluster(self, tasks: list[Task]) -> Iterator[Outcome]:
        from distributed import wait
        from distributed.client import FuturesCancelledError

        submitted: dict[Any, tuple[Task, int]] = {}
        # the tasks start in the order given (the scheduler's own order is not
        # submission order): --seed-major's whole seeds first
        self._priority = {t.name: len(tasks) - i for i, t in enumerate(tasks)}
        waiting = list(tasks)
        self.client.subscribe_topic(TOPIC, self._started)
        try:
            while waiting or submitted:
                # No more in flight than the cluster has threads. Submitted all at
                # once, each task its own task group, the scheduler placed them on
                # workers at once, and a worker whose queue ran dry sat idle for the
                # length of a run while another worker held two. Checked again every
                # POLL_SECONDS, so that workers which join (dask-jobqueue) get work.
                while waiting and len(submitted) < self._slots():
                    self._submit(waiting.pop(0), 1, submitted)
                try:
                    finished = wait(list(submitted), timeout=POLL_SECONDS, return_when="FIRST_COMPLETED").done
                except TimeoutError:
                    continue
                except FuturesCancelledError:  # the scheduler went away: each future says how it ended
                    finished = {f for f in submitted if f.done()}
                    if not finished:
                        raise EngineError(f"{self.where} went away; what finished is kept: run the same command "
                                          "again for the rest") from None
                # what finished is handed over before a cancelled task ends the command
                for fut in sorted(finished, key=lambda f: (f.status != "finished",
                                                           -self._priority[submitted[f][0].name])):
                    task, attempt = submitted.pop(fut)
                    out = self._finished(fut, task, attempt)
                    if out is None:  # its worker died: submitted again
                        self._submit(task, attempt + 1, submitted)
                    else:
                        yield out
        finally:
            with contextlib.suppress(Exception):  # the scheduler may be gone
                self.client.unsubscribe_topic(TOPIC)

    def _slots(self) -> int:
        """How many tasks may be in flight: the cluster's threads now, at least one."""
        try:
            return max(1, sum(self.client.nthreads().values()))
        except (OSError, TimeoutError):  # the scheduler is gone: what is in flight tells
            return 1

    def _submit(self, task: Task, attempt: int, submitted: dict) -> Any:
        # a fresh key per submission: the scheduler's failure count is per key, and two
        # commands sharing a scheduler must not merge their tasks
        key = f"{task.name}-{attempt}-{uuid.uuid4().hex[:8]}"
        with self._lock:
            self._names[key] = task.name
        fut = self.client.submit(_attempt, key, task.fn, *task.args, key=key, pure=False,
                                 priority=self._priority[task.name])
        submitted[fut] = (task, attempt)
        return fut

    def _finished(self, fut, task: Task, attempt: int) -> Outcome | None:
        """The outcome of a finished future, or None when it was submitted again."""
        try:
            return self._read(fut, task, attempt)
        except (OSError, TimeoutError) as e:
            # the task finished, but its result lives on a worker reached through the
            # scheduler: a scheduler lost in between fails the fetch (CommClosedError)
            raise EngineError(f"{self.where} went away while {task.name}'s outcome was fetched ({last_line(e)}); "
                              "what finished is kept: run the same command again for the rest") from None

    def _read(self, fut, task: Task, attempt: int) -> Outcome | None:
        from distributed import KilledWorker

        if fut.status == "finished":
            status, value, worker = fut.result()
            return _outcome(task.name, status, value, worker, attempt)
        if fut.status != "error":  # cancelled: the client lost its scheduler
            raise EngineError(f"{self.where} went away while {task.name} ran ({fut.status}); what finished is "
                              "kept: run the same command again for the rest")
        exc = fut.exception()
        if not isinstance(exc, KilledWorker):  # Dask's own failure around the task (say, its arguments)
            return Outcome(task.name, error=last_line(exc), worker=self._last_start(task.name), attempts=attempt)
        dead = getattr(getattr(exc, "last_worker", None), "address", None) or self._last_start(task.name)
        if attempt > self.retries:
            return Outcome(task.name, error=f"its worker died during each of its {attempt} attempt(s) (the last on "
                                            f"{dead}); not run again (--retries {self.retries})",
                           worker=dead, attempts=attempt)
        self.say(f"{task.name}: worker {dead} died during attempt {attempt}; submitting it again "
                 f"(attempt {attempt + 1} of at most {self.retries + 1})")
        return None

    def _started(self, event: tuple) -> None:
        """An attempt started (an event from the worker): log every start after the
        first, where the scheduler's own re-runs show too."""
        _, msg = event
        with self._lock:
            name = self._names.get(msg.get("key"))
            if name is None:  # another command's task on a shared scheduler
                return
            workers = self._starts.setdefault(name, [])
            workers.append(msg.get("worker", "?"))
            n, last = len(workers), workers[-2:]
        if n > 1:
            self.say(f"{name}: attempt {n} started on worker {last[1]} (attempt {n - 1} ran on {last[0]})")

    def _last_start(self, name: str) -> str:
        with self._lock:
            return (self._starts.get(name) or ["an unknown worker"])[-1]


def _outcome(name: str, status: str, value: Any, worker: str, attempts: int) -> Outcome:
    if status == "ok":
        return Outcome(name, value=value, worker=worker, attempts=attempts)
    return Outcome(name, error=value, worker=worker, attempts=attempts)


@contextlib.contextmanager
def _local_client(jobs: int):
    import dask
    from distributed import Client, LocalCluster

    # the settings hold for the cluster's whole life: a worker the nanny restarts reads them again
    with dask.config.set(LOCAL_CONFIG):
        # no memory policing by the nanny, as a process pool had none: a run that
        # outgrows the machine meets the OOM killer, and --retries
        cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True, memory_limit=0)
        try:
            with Client(cluster) as client:
                yield client
        finally:
            # a non-daemonic worker that loaded torch can take seconds to exit; its
            # nanny then kills it with a warning, about nothing: its work is handed over
            with _quiet("distributed.nanny"):
                cluster.close()


@contextlib.contextmanager
def _quiet(logger: str):
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


@contextlib.contextmanager
def _remote_client(address: str | Path):
    from distributed import Client

    try:
        client = Client(scheduler_file=str(address)) if isinstance(address, Path) else Client(address)
    except (OSError, TimeoutError, ValueError) as e:
        raise EngineError(f"cannot reach the Dask scheduler at {address}: {last_line(e)}") from None
    with client:
        yield client


def _dashboard(client) -> str:
    try:
        link = client.dashboard_link
    except (KeyError, AttributeError):
        return "none (the scheduler serves no dashboard)"
    try:
        import bokeh  # noqa: F401 - the dashboard's pages need it
    except ImportError:
        return f"{link} (its pages need bokeh: pip install 'bokeh>=3.1')"
    return link
