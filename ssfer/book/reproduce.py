"""Re-run every notebook of the book with one profile of parameters, then build it.

``ssfer reproduce [--profile smoke|book|full] [--only NAME ...] [--no-book]
[--set [NB.]PARAM=VALUE ...] [--with-solutions]``

1. Reads ``_toc.yml`` for the book's pages and notebooks.
2. Resolves each notebook's parameters: the profile's ``defaults`` (for the
   notebooks that declare them), the profile's entry for the notebook, then
   ``--set``; every value is checked against the notebook's parameters cell
   before any kernel starts (papermill itself only warns).
3. Stages the book into ``<build_dir>/src/``: ``_config.yml`` (with execution
   off — papermill already ran the notebooks), ``_toc.yml``, ``book/``, the
   executed notebooks and the labs' student versions. The committed sources
   are never written. Every lab's solution (its nbgrader source) is executed
   too, so the solutions are checked on every build, but it is published only
   with ``--with-solutions`` (the teacher's book: a "Solutions to the labs" part
   is added to the staged ``_toc.yml``); otherwise it lands in
   ``<build_dir>/solutions/``, outside the book.
4. Runs each notebook with papermill (cwd = repository root, env
   ``SSFER_PROFILE``), unless the staged copy already carries the same key:
   sha256 of the notebook source, profile, parameters, the code of the
   ``ssfer`` modules it imports (transitively) and the repository files its
   parameters name (``job_key``). That key is what makes a warm rebuild take seconds. Several
   notebooks run side by side (``--jobs``) on an embedded Dask cluster, or on
   any cluster (``--scheduler``) whose workers share this checkout's path and
   the run cache (``ssfer.book.engine``); a training run two of them need is
   trained once (``ssfer.train.run`` locks it) and read by the other.
5. Runs ``jupyter-book build``; the HTML lands in ``_build/html``.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import nbformat
import yaml

from ssfer import codegraph
from ssfer.book.engine import RETRIES, Engine, EngineError, Task, add_flags, scheduler_address
from ssfer.book.teaching import labs
from ssfer.config import ConfigError, load_yaml, parse_assignments
from ssfer.book.params import (ParameterError, check_parameters, declared_parameters, parameters_cell,
                          parse_parameters)

KEY_VERSION = "ssfer-reproduce-2"
SOLUTION_SUFFIX = "_solution"
SOLUTIONS_CAPTION = "Solutions to the labs"


class ReproduceError(RuntimeError):
    """The book's sources, a profile or an override is inconsistent."""


@dataclass
class Job:
    """One toc entry backed by a notebook."""
    docname: str                  # toc path without suffix: notebooks/00_quickstart
    source: Path                  # committed notebook it comes from
    kind: str                     # "notebook" | "lab_solution" | "lab_student"
    params: dict[str, Any] = field(default_factory=dict)
    published: bool = True        # a lab solution outside the public book: False
    status: str = "pending"
    seconds: float = 0.0
    cpu: float = 0.0              # CPU seconds of the run: papermill and the kernel it started
    error: str = ""

    @property
    def name(self) -> str:
        return Path(self.docname).name

    @property
    def profile_key(self) -> str:
        return self.source.stem

    @property
    def executes(self) -> bool:
        return self.kind != "lab_student"


# ------------------------------------------------------------------ the toc
def toc_docnames(toc_path: Path, root: Path) -> list[str]:
    """Every page of a jupyter-book 1.x ``_toc.yml`` (root, files, globs), in
    reading order, as Jupyter Book's own reader (``sphinx_external_toc``) sees it."""
    from sphinx_external_toc.api import FileItem, GlobItem
    from sphinx_external_toc.parsing import MalformedError, parse_toc_yaml

    try:
        site = parse_toc_yaml(toc_path)
    except (OSError, MalformedError, yaml.YAMLError) as e:
        raise ReproduceError(f"{toc_path}: cannot read the table of contents: {e}") from e
    found: list[str] = []

    def walk(docname: str) -> None:
        # outside Sphinx the reader does not know the source suffixes, so a
        # "file: x.ipynb" entry keeps its suffix
        p = Path(docname)
        found.append(str(p.with_suffix("")) if p.suffix in (".ipynb", ".md") else docname)
        for tree in site[docname].subtrees:
            for item in tree.items:
                if isinstance(item, GlobItem):
                    found.extend(sorted({str(p.relative_to(root).with_suffix("")) for ext in ("ipynb", "md")
                                         for p in root.glob(f"{item}.{ext}")}))
                elif isinstance(item, FileItem):
                    walk(str(item))

    walk(site.root.docname)
    return list(dict.fromkeys(found))


def classify(docnames: list[str], root: Path, with_solutions: bool = False) -> tuple[list[Job], list[Path]]:
    """Notebook jobs and static pages (files to copy) of the toc, plus a solution
    job for every lab whose solution the toc does not list (published only
    ``with_solutions``)."""
    jobs, pages = [], []
    for doc in docnames:
        nb, md = root / f"{doc}.ipynb", root / f"{doc}.md"
        is_lab_dir = Path(doc).parent.name == "labs"
        if nb.exists():
            jobs.append(Job(doc, nb, "lab_student" if is_lab_dir and labs.is_lab(nb) else "notebook"))
        elif md.exists():
            pages.append(md)
        elif is_lab_dir and doc.endswith(SOLUTION_SUFFIX) and \
                (src := root / f"{doc[:-len(SOLUTION_SUFFIX)]}.ipynb").exists():
            jobs.append(Job(doc, src, "lab_solution"))
        else:
            raise ReproduceError(f"_toc.yml lists {doc!r}, but neither {doc}.ipynb nor {doc}.md exists")
    listed = {j.docname for j in jobs}
    jobs += [Job(f"{j.docname}{SOLUTION_SUFFIX}", j.source, "lab_solution", published=with_solutions)
             for j in list(jobs) if j.kind == "lab_student" and f"{j.docname}{SOLUTION_SUFFIX}" not in listed]
    return jobs, pages


# ------------------------------------------------------------------ parameters
def load_profile(profile: str, root: Path) -> dict[str, dict[str, Any]]:
    path = Path(profile) if profile.endswith((".yaml", ".yml")) else root / "profiles" / f"{profile}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in (root / "profiles").glob("*.yaml"))
        raise ReproduceError(f"no profile {profile!r} ({path} does not exist; known: {', '.join(known)})")
    try:
        data = load_yaml(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ReproduceError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(data, dict) or not all(isinstance(v, dict) or v is None for v in data.values()):
        raise ReproduceError(f"{path}: expected {{notebook: {{parameter: value}}}}")
    return {str(k): dict(v or {}) for k, v in data.items()}


def parse_overrides(items: list[str] | dict[str, Any] | None) -> dict[str, Any]:
    """``["01_backbone.steps=10", "device=cpu"]`` -> ``{"01_backbone.steps": 10, "device": "cpu"}``,
    values read as YAML by the one KEY=VALUE reader (``ssfer.config.parse_assignments``)."""
    if not items:
        return {}
    if isinstance(items, dict):
        return dict(items)
    try:
        out = parse_assignments(items)
    except ConfigError as e:
        raise ReproduceError(f"--set: {e} (expected NOTEBOOK.PARAM=VALUE or PARAM=VALUE)") from None
    empty = [k for k in out if not k]
    if empty:
        raise ReproduceError("--set: expected NOTEBOOK.PARAM=VALUE or PARAM=VALUE, got an empty name")
    return out


def resolve_parameters(jobs: list[Job], profile: dict[str, dict[str, Any]], profile_name: str,
                       overrides: dict[str, Any], other_notebooks: set[str] = frozenset()) -> None:
    """Fill ``job.params``; raise listing every bad name or value at once.

    ``other_notebooks``: stems of notebooks outside the toc; a profile may hold
    entries for them (a chapter not yet listed), any other unknown entry is a typo.
    """
    runnable = [j for j in jobs if j.executes]
    declared = {j.profile_key: declared_parameters(j.source) for j in runnable}
    errors = []
    known = set(declared)
    for key in profile:
        if key != "defaults" and key not in known | set(other_notebooks):
            errors.append(f"profile {profile_name!r} has an entry for {key!r}, which is not a notebook "
                          f"of the book (notebooks: {', '.join(sorted(known))})")
    generic = dict(profile.get("defaults", {}))
    per_nb: dict[str, dict[str, Any]] = {k: dict(v) for k, v in profile.items() if k != "defaults"}
    for key, value in overrides.items():
        nb, dot, param = key.rpartition(".")
        if not dot:
            generic[param] = value
        elif nb not in known:
            errors.append(f"--set {key}: no notebook {nb!r} (notebooks: {', '.join(sorted(known))})")
        else:
            per_nb.setdefault(nb, {})[param] = value
    for name in generic:
        if not any(name in d for d in declared.values()):
            errors.append(f"parameter {name!r} (profile defaults or --set) is declared by no notebook")
    for job in runnable:
        decl = declared[job.profile_key]
        values = {k: v for k, v in generic.items() if k in decl}
        values.update(per_nb.get(job.profile_key, {}))
        try:
            job.params = check_parameters(decl, values, where=str(job.source))
        except ParameterError as e:
            errors.append(str(e))
    if errors:
        raise ParameterError("\n".join(errors))


# ------------------------------------------------------------------ caching
def notebook_code(job: Job, nb: nbformat.NotebookNode, package_dir: Path) -> list[str]:
    """The ``ssfer`` modules a notebook's run can depend on: what its code cells
    import, followed through the package's imports (so a chapter that trains
    covers the training code), plus the lab tooling that writes a solution."""
    roots = set(codegraph.imports_of_cells([c.source for c in nb.cells if c.cell_type == "code"], package_dir))
    if job.kind == "lab_solution":
        roots.add("ssfer.book.teaching.labs")
    return codegraph.closure(roots, package_dir) if roots else []


def _package_dir(root: Path) -> Path:
    # the book's notebooks import the checkout's ssfer (PYTHONPATH=root), or an installed one
    return root / "ssfer" if (root / "ssfer").is_dir() else codegraph.PACKAGE_DIR


def input_files(params: dict[str, Any], root: Path) -> list[Path]:
    """Files inside the repository that a parameter names (say ``results_dir:
    results``): a notebook that reads them must run again when they change.
    Paths outside the repository (a data set's folder) are the user's to track."""
    found = set()
    for value in params.values():
        if not isinstance(value, str) or not value:
            continue
        p = (root / value).resolve()
        if not p.is_relative_to(root) or p == root or not p.exists():
            continue
        found.update(f for f in ([p] if p.is_file() else p.rglob("*"))
                     if f.is_file() and not any(part.startswith(".") for part in f.relative_to(root).parts))
    return sorted(found)


def job_key(job: Job, profile_name: str, root: Path, kernel: str | None) -> str:
    """What a notebook's output depends on: its source, its parameters, the code
    of the modules it imports (``notebook_code``) and the repository files its
    parameters name. Editing the CLI or the book tooling reruns no notebook."""
    source = job.source.read_bytes()
    nb = nbformat.reads(source.decode(), as_version=4)
    h = hashlib.sha256(KEY_VERSION.encode())
    h.update(source)
    blob = {"kind": job.kind, "profile": profile_name, "kernel": kernel, "params": job.params}
    h.update(json.dumps(blob, sort_keys=True, default=str).encode())
    package_dir = _package_dir(root)
    h.update(codegraph.code_digest(notebook_code(job, nb, package_dir), package_dir).encode())
    cell = parameters_cell(nb)
    defaults = {name: default for name, (_, default) in parse_parameters(cell[1]).items()} if cell else {}
    for f in input_files(defaults | job.params, root):
        h.update(str(f.relative_to(root)).encode() + b"\0" + hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def stored_key(path: Path) -> str | None:
    try:
        return nbformat.read(path, as_version=4).metadata.get("ssfer", {}).get("reproduce", {}).get("key")
    except (OSError, ValueError, KeyError):
        return None


# ------------------------------------------------------------------ staging
def _write_if_changed(path: Path, data: bytes) -> None:
    # unchanged files keep their mtime, so Sphinx does not re-render them
    if path.exists() and path.read_bytes() == data:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _copy_if_changed(src: Path, dst: Path) -> None:
    if src.is_dir():
        for p in src.rglob("*"):
            if p.is_file() and "__pycache__" not in p.parts and ".ipynb_checkpoints" not in p.parts:
                _copy_if_changed(p, dst / p.relative_to(src))
    elif not dst.exists() or dst.read_bytes() != src.read_bytes():
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)


def _nb_bytes(nb: nbformat.NotebookNode) -> bytes:
    return (nbformat.writes(nb) + "\n").encode()


def stage_sources(root: Path, src: Path, pages: list[Path], solutions: list[str] = ()) -> None:
    """Everything but the notebooks: config (execution off), toc (with a part for
    the ``solutions`` docnames, if any), pages, assets."""
    cfg_path = root / "_config.yml"
    try:
        cfg = yaml.safe_load(cfg_path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ReproduceError(f"{cfg_path}: cannot read the book configuration: {e}") from e
    cfg.setdefault("execute", {})["execute_notebooks"] = "off"  # papermill already ran them
    _write_if_changed(src / "_config.yml", yaml.safe_dump(cfg, sort_keys=False).encode())
    if solutions:
        toc = yaml.safe_load((root / "_toc.yml").read_text())
        toc.setdefault("parts", []).append({"caption": SOLUTIONS_CAPTION,
                                            "chapters": [{"file": doc} for doc in solutions]})
        _write_if_changed(src / "_toc.yml", yaml.safe_dump(toc, sort_keys=False).encode())
    else:
        _copy_if_changed(root / "_toc.yml", src / "_toc.yml")
    if (root / "book").is_dir():
        _copy_if_changed(root / "book", src / "book")
    referenced = [cfg.get("logo"), (cfg.get("html") or {}).get("favicon"), *(cfg.get("bibtex_bibfiles") or [])]
    for rel in [*(p.relative_to(root) for p in pages), *(r for r in referenced if isinstance(r, str))]:
        if (root / rel).is_file():
            _copy_if_changed(root / rel, src / rel)
    # images and other assets the notebooks refer to by relative path
    nbdir = root / "notebooks"
    if nbdir.is_dir():
        for p in nbdir.rglob("*"):
            if p.is_file() and p.suffix != ".ipynb" and ".ipynb_checkpoints" not in p.parts:
                _copy_if_changed(p, src / p.relative_to(root))


def stage_labs(root: Path, src: Path) -> None:
    """Student versions of every lab next to where the book expects them."""
    lab_dir = root / "notebooks" / "labs"
    for path in sorted(lab_dir.glob("*.ipynb")) if lab_dir.is_dir() else []:
        _write_if_changed(src / path.relative_to(root), _nb_bytes(labs.student_version(path)))


def output_path(job: Job, src: Path, build_dir: Path) -> Path:
    """Where a job's executed notebook goes: the staged book, or, for a solution
    the public book leaves out, ``<build_dir>/solutions/``."""
    return (src if job.published else build_dir / "solutions") / f"{job.docname}.ipynb"


def unpublish_stale_solutions(jobs: list[Job], src: Path, build_dir: Path) -> None:
    """A teacher's build in the same folder left solution pages behind: remove them
    from the staged sources and the HTML, so the public book never shows one."""
    for job in jobs:
        if job.kind == "lab_solution" and not job.published:
            (src / f"{job.docname}.ipynb").unlink(missing_ok=True)
            (html_dir(build_dir) / f"{job.docname}.html").unlink(missing_ok=True)


# ------------------------------------------------------------------ running
@contextlib.contextmanager
def temporary_env(**values: str | None) -> Iterator[None]:
    """Set environment variables (None: unset) for the ``with`` block, then restore
    them (unset ones unset again)."""
    old = {k: os.environ.get(k) for k in values}
    for k, v in values.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class _CheckedParameters(logging.Filter):
    """Drops papermill's warnings about parameters it cannot read: its pattern
    does not parse annotations such as ``Literal[...]``, ``str | None`` or
    ``Annotated[...]``, so it calls such a parameter unknown. ``ssfer
    reproduce`` has already checked every value against the notebook's
    declarations (``resolve_parameters``), and refuses a truly unknown one."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not msg.startswith(("Passed unknown parameter:", "Unable to parse line"))


def _quiet_papermill() -> None:
    # a logger's filters see only its own records, not its children's
    for name in ("papermill", "papermill.translators"):
        log = logging.getLogger(name)
        if not any(isinstance(f, _CheckedParameters) for f in log.filters):
            log.addFilter(_CheckedParameters())


def execute(job: Job, out: Path, root: Path, build_dir: Path, profile_name: str, key: str,
            kernel: str | None) -> None:
    """Run one notebook with papermill into ``out``; on failure keep the partial run."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    _quiet_papermill()

    if job.kind == "lab_solution":
        input_path = build_dir / "labs" / "solution" / job.source.name
        _write_if_changed(input_path, _nb_bytes(labs.solution_version(job.source)))
    else:
        input_path = job.source
    partial = build_dir / "running" / f"{job.name}.ipynb"
    partial.parent.mkdir(parents=True, exist_ok=True)
    pythonpath = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)
    # a notebook saved without kernel metadata would make papermill give up
    kernel = kernel or nbformat.read(input_path, as_version=4).metadata.get("kernelspec", {}).get("name") \
        or "python3"
    try:
        with temporary_env(SSFER_PROFILE=profile_name, PYTHONPATH=pythonpath):
            pm.execute_notebook(str(input_path), str(partial), parameters=job.params, cwd=str(root),
                                kernel_name=kernel, progress_bar=False, log_output=False)
    except PapermillExecutionError as e:
        failed = build_dir / "failed" / f"{job.name}.ipynb"
        failed.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(partial), failed)
        head = "\n    ".join(e.source.strip().splitlines()[:6])
        # papermill's index counts its injected cell; report the committed notebook's
        ran = nbformat.read(failed, as_version=4).cells[:e.cell_index]
        index = e.cell_index - sum("injected-parameters" in c.metadata.get("tags", []) for c in ran)
        job.error = (f"{job.name}: cell {index} raised {e.ename}: {e.evalue}\n"
                     f"    {head}\n  partial run kept in {failed}")
        raise
    nb = nbformat.read(partial, as_version=4)
    nb.metadata.setdefault("ssfer", {})["reproduce"] = {
        "key": key, "profile": profile_name, "parameters": job.params, "source": str(job.source.relative_to(root)),
    }
    _write_if_changed(out, _nb_bytes(nb))
    partial.unlink()
    (build_dir / "failed" / f"{job.name}.ipynb").unlink(missing_ok=True)


def resolve_jobs(n_jobs: int | None) -> int:
    """Notebooks executed side by side; ``None`` or 0: one per CPU core up to 4
    on a CPU-only machine (the book's small runs use a core each far better than
    they share two), one where CUDA is available (the runs share the GPU)."""
    if n_jobs:
        return n_jobs
    import torch

    return 1 if torch.cuda.is_available() else max(1, min(4, _cpus()))


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _threads_per_kernel(workers: int) -> int | None:
    """Intra-op threads for each kernel when several run at once (None: torch's
    default). An OMP_NUM_THREADS set by the user wins."""
    if workers == 1 or "OMP_NUM_THREADS" in os.environ:
        return None
    return max(1, _cpus() // workers)


THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _thread_env(threads: int | None, embedded: bool) -> dict[str, str | None]:
    """The thread variables each kernel starts with. On the embedded cluster
    this process's values, or none (unset: torch's default), exactly as a kernel
    started here would see them: Dask's workers set their own. A cluster's
    workers keep theirs, unless ``threads`` is set."""
    if threads:
        return dict.fromkeys(THREAD_VARS, str(threads))
    return {k: os.environ.get(k) for k in THREAD_VARS} if embedded else {}


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (a notebook's kernel
    is a child of the process that ran it, and is waited for when it shuts down)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None


def _execute_task(task: tuple) -> tuple[str, float, float, str, dict[str, bytes | None]]:
    """Run one notebook; (status, seconds, CPU seconds, error, files), never raising
    (it may run on a worker, which runs one notebook at a time). ``files``: the
    executed notebook and, on failure, the partial run, as data, so a worker
    whose build folder is not this one's hands them back."""
    job, out, root, build_dir, profile, key, kernel, env = task
    failed = build_dir / "failed" / f"{job.name}.ipynb"
    t0, c0 = time.perf_counter(), _cpu_seconds()
    try:
        with temporary_env(**env):
            execute(job, out, root, build_dir, profile, key, kernel)
        return "ran", time.perf_counter() - t0, _cpu_seconds() - c0, "", {"out": _read(out)}
    except Exception as e:  # noqa: BLE001 - report every notebook's failure, then stop
        return ("FAILED", time.perf_counter() - t0, _cpu_seconds() - c0,
                job.error or f"{job.name}: {type(e).__name__}: {e}", {"failed": _read(failed)})


def _keep(files: dict[str, bytes | None], out: Path, build_dir: Path, job: Job) -> None:
    """Write what a worker handed back where this build keeps it (unchanged files
    stay untouched: on a shared or local build folder the worker wrote them)."""
    if files.get("out") is not None:
        _write_if_changed(out, files["out"])
        (build_dir / "failed" / f"{job.name}.ipynb").unlink(missing_ok=True)
    if files.get("failed") is not None:
        _write_if_changed(build_dir / "failed" / f"{job.name}.ipynb", files["failed"])


def _run_tasks(tasks: list[tuple], engine: Engine) -> Iterator[tuple[Job, tuple[str, float, float, str]]]:
    """Each task's job and result, in the order they finish."""
    jobs = {task[0].name: task for task in tasks}
    for out in engine.run([Task(task[0].name, _execute_task, (task,)) for task in tasks], unit="notebook"):
        job, path, _, build_dir = jobs[out.name][:4]
        if out.error:  # its worker died past --retries, or Dask failed around the task
            yield job, ("FAILED", 0.0, 0.0, f"{job.name}: on {out.worker}: {out.error}")
            continue
        status, seconds, cpu, error, files = out.value
        _keep(files, path, build_dir, job)
        yield job, (status, seconds, cpu, error)


@contextlib.contextmanager
def _engine(workers: int, scheduler: str | None, scheduler_file: str | None,
            retries: int | None) -> Iterator[Engine]:
    """The engine the notebooks run on: here, one at a time, for one worker and no
    cluster (no cluster to start for it); else a Dask cluster."""
    retries = RETRIES if retries is None else retries
    if workers == 1 and scheduler_address(scheduler, scheduler_file) is None:
        yield Engine(retries=retries)
        return
    with Engine.open(workers, scheduler, scheduler_file, retries) as engine:
        yield engine


def _execute_pending(pending: list[tuple[Job, Path, str]], root: Path, build_dir: Path, profile: str,
                     kernel: str | None, n_jobs: int | None, scheduler: str | None, scheduler_file: str | None,
                     retries: int | None) -> bool:
    """Execute the notebooks to run, printing a line per notebook; True if one failed."""
    if not pending:
        return False
    remote = scheduler_address(scheduler, scheduler_file) is not None
    workers = 1 if remote or len(pending) == 1 else min(resolve_jobs(n_jobs), len(pending))
    threads = _threads_per_kernel(workers)
    if workers > 1:
        print(f"running {len(pending)} notebooks, {workers} at a time"
              + (f", {threads} thread(s) each" if threads else ""), flush=True)
    for job, _, _ in pending:
        print(f"[run]    {job.name} {job.params or ''}", flush=True)
    failed = False
    env = _thread_env(threads, embedded=not remote)
    tasks = [(job, out, root, build_dir, profile, key, kernel, env) for job, out, key in pending]
    t0 = time.perf_counter()
    with _engine(workers, scheduler, scheduler_file, retries) as engine:
        for job, (status, seconds, cpu, error) in _run_tasks(tasks, engine):
            job.status, job.seconds, job.cpu, job.error = status, seconds, cpu, error
            if status == "FAILED":
                failed = True
                engine.say(f"error: {job.error}")
            engine.say(f"         {job.name}: {job.status} in {job.seconds:.1f} s ({job.cpu:.1f} CPU s)",
                       file=sys.stdout)
    print(f"executed {len(pending)} notebook(s) in {time.perf_counter() - t0:.1f} s wall", flush=True)
    return failed


def html_dir(build_dir: Path) -> Path:
    """Where jupyter-book 1.x writes the HTML: ``<path-output>/_build/html``."""
    return (build_dir.parent if build_dir.name == "_build" else build_dir) / "_build" / "html"


def build_html(src: Path, build_dir: Path, strict: bool = False) -> int:
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe) if exe.exists() else shutil.which("jupyter-book") or "jupyter-book", "build", str(src),
           "--path-output", str(html_dir(build_dir).parent.parent), "-q"]
    if strict:
        cmd += ["-W", "--keep-going"]
    print("$ " + " ".join(cmd), flush=True)
    rc = subprocess.run(cmd).returncode
    index = html_dir(build_dir) / "index.html"
    if rc == 0 and not index.exists():
        print(f"error: jupyter-book finished but wrote no {index}", file=sys.stderr)
        return 1
    return rc


def _summary(jobs: list[Job]) -> str:
    width = max([len(j.name) for j in jobs] + [8])
    lines = [f"{'notebook':<{width}}  {'status':<8}  {'seconds':>8}  {'CPU s':>8}", "-" * (width + 30)]
    lines += [f"{j.name:<{width}}  {j.status:<8}  {j.seconds:>8.1f}  {j.cpu:>8.1f}" for j in jobs]
    lines.append(f"{'total':<{width}}  {'':<8}  {sum(j.seconds for j in jobs):>8.1f}  {sum(j.cpu for j in jobs):>8.1f}")
    return "\n".join(lines)


def reproduce(profile: str = "book", only: list[str] | None = None, build_dir: str | Path = "_build",
              build_book: bool = True, overrides: list[str] | dict[str, Any] | None = None,
              kernel: str | None = None, root: str | Path | None = None, strict: bool = False,
              n_jobs: int | None = None, with_solutions: bool = False, scheduler: str | None = None,
              scheduler_file: str | None = None, retries: int | None = None) -> int:
    """Execute the book's notebooks with a profile and build the book; 0 on success.
    ``n_jobs`` notebooks side by side on an embedded Dask cluster, or on the
    cluster of ``scheduler`` (``scheduler_file``, ``$SSFER_SCHEDULER``)."""
    root = Path(root or Path.cwd()).resolve()
    build_dir = (root / build_dir).resolve()
    src = build_dir / "src"
    try:
        if n_jobs is not None and n_jobs < 0:
            raise ReproduceError(f"--jobs {n_jobs}: expected 0 (auto) or a positive number")
        docnames = toc_docnames(root / "_toc.yml", root)
        jobs, pages = classify(docnames, root, with_solutions)
        others = {p.stem for p in (root / "notebooks").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts}
        resolve_parameters(jobs, load_profile(profile, root), profile, parse_overrides(overrides), others)
        selected = set(only or [])
        unknown = selected - {n for j in jobs for n in (j.name, j.profile_key, j.docname)}
        if unknown:
            raise ReproduceError(f"--only {', '.join(sorted(unknown))}: not a notebook of the book "
                                 f"(notebooks: {', '.join(j.name for j in jobs)})")
        listed = set(docnames)
        stage_sources(root, src, pages, [j.docname for j in jobs if j.kind == "lab_solution" and j.published
                                         and j.docname not in listed])
        stage_labs(root, src)
        unpublish_stale_solutions(jobs, src, build_dir)
    except (ReproduceError, ParameterError, labs.LabError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ImportError as e:  # the labs' student versions are nbgrader's
        print(f"error: the labs need nbgrader, part of the book extra (pip install 'ssfer[book]'): {e}",
              file=sys.stderr)
        return 2

    pending: list[tuple[Job, Path, str]] = []
    for job in jobs:
        out = output_path(job, src, build_dir)
        if not job.executes:
            job.status = "staged"
            continue
        if selected and not selected & {job.name, job.profile_key, job.docname}:
            if stored_key(out) is None:  # never executed: show the current unexecuted source
                _write_if_changed(out, _nb_bytes(labs.solution_version(job.source)) if job.kind == "lab_solution"
                                  else job.source.read_bytes())
            job.status = "skipped"
            continue
        key = job_key(job, profile, root, kernel)
        if stored_key(out) == key:
            job.status = "cached"
            print(f"[cached] {job.name}", flush=True)
            continue
        pending.append((job, out, key))

    try:
        failed = _execute_pending(pending, root, build_dir, profile, kernel, n_jobs, scheduler, scheduler_file,
                                  retries)
    except EngineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    print(_summary(jobs), flush=True)
    if failed:
        print("failed notebooks:\n" + "\n".join(j.error for j in jobs if j.status == "FAILED"), file=sys.stderr)
        return 1
    if build_book:
        t0 = time.perf_counter()
        rc = build_html(src, build_dir, strict)
        print(f"jupyter-book build: {'ok' if rc == 0 else f'exit {rc}'} in {time.perf_counter() - t0:.1f} s; "
              f"open {html_dir(build_dir) / 'index.html'}", flush=True)
        return rc
    return 0



# ------------------------------------------------------------------ command line
def add_cli(subparsers) -> argparse.ArgumentParser:
    """Register ``ssfer reproduce`` on an argparse subparsers object."""
    p = subparsers.add_parser("reproduce", help="re-run the book's notebooks with a profile and build it",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default="book",
                   help="smoke (CI, seconds), book (cell defaults), full (paper scale, GPU) or a .yaml path")
    p.add_argument("--only", nargs="+", metavar="NAME", help="run only these notebooks (stem or toc path)")
    p.add_argument("--no-book", action="store_true", help="execute notebooks but skip jupyter-book build")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="[NB.]PARAM=VALUE",
                   help="override a parameter (VALUE read as YAML); without NB. it applies to every "
                        "notebook that declares PARAM")
    p.add_argument("--build-dir", default="_build")
    p.add_argument("--jobs", "-j", type=int, default=0, metavar="N",
                   help="notebooks executed side by side, by the worker processes of an embedded Dask "
                        "cluster (default 0: auto, one per core up to 4 on a CPU, 1 with a GPU; 1: here, "
                        "one at a time); ignored with --scheduler")
    p.add_argument("--kernel", default=None, help="Jupyter kernel name (default: the notebook's)")
    p.add_argument("--strict", action="store_true", help="turn jupyter-book warnings into errors")
    p.add_argument("--with-solutions", action="store_true",
                   help="the teacher's book: publish the labs' solutions (always executed and checked; "
                        "without this flag they stay in BUILD_DIR/solutions/)")
    add_flags(p, "its workers must see this checkout at the same path, with the book's packages "
                 "installed, and share the run cache ($SSFER_CACHE) with each other", unit="notebook")
    p.set_defaults(func=_run_cli)
    return p


def _run_cli(args: argparse.Namespace) -> int:
    return reproduce(profile=args.profile, only=args.only, build_dir=args.build_dir,
                     build_book=not args.no_book, overrides=args.overrides, kernel=args.kernel,
                     strict=args.strict, n_jobs=args.jobs, with_solutions=args.with_solutions,
                     scheduler=args.scheduler, scheduler_file=args.scheduler_file, retries=args.retries)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ssfer.book.reproduce")
    sub = ap.add_subparsers(dest="command", required=True)
    add_cli(sub)
    args = ap.parse_args(["reproduce", *(argv if argv is not None else sys.argv[1:])])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
