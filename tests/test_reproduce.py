"""ssfer.book.reproduce on a tiny throwaway book (two notebooks and a lab)."""
from __future__ import annotations

import re
import shutil
import textwrap
from pathlib import Path

import nbformat
import pytest

from ssfer.book import reproduce as rp

REPO = Path(__file__).resolve().parents[1]


def _nb(*cells) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for kind, src, *tags in cells:
        cell = (nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell)(src)
        if "SOLUTION" in src:  # an nbgrader solution cell, as in the real labs
            cell.metadata["nbgrader"] = {"grade": False, "grade_id": "ex1", "locked": False, "schema_version": 3,
                                         "solution": True, "task": False}
        if tags:
            cell.metadata["tags"] = list(tags)
        nb.cells.append(cell)
    return nb


CHECK = ("code", "import os, ssfer.book.params\nP = ssfer.book.params.check(globals())")


def make_book(root: Path) -> Path:
    """A book with the layout of the real one, small enough to build in seconds."""
    (root / "book").mkdir(parents=True)
    (root / "notebooks" / "labs").mkdir(parents=True)
    (root / "profiles").mkdir()
    # the notebooks import ssfer from the book's root, as the real ones do
    shutil.copytree(REPO / "ssfer", root / "ssfer", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "_config.yml").write_text(textwrap.dedent("""\
        title: Tiny book
        author: tests
        only_build_toc_files: true
        execute:
          execute_notebooks: force
          timeout: 60
        """))
    (root / "_toc.yml").write_text(textwrap.dedent("""\
        format: jb-book
        root: book/intro
        parts:
          - caption: Chapters
            chapters:
              - file: notebooks/a
              - file: notebooks/b.ipynb
          - caption: Labs
            chapters:
              - file: notebooks/labs/lab
              - file: notebooks/labs/lab_solution
        """))
    (root / "book" / "intro.md").write_text("# Tiny book\n\nSee [chapter A](../notebooks/a.ipynb).\n")
    nbformat.write(_nb(("markdown", "# Chapter A"),
                       ("code", "n: int = 2  # count\nlabel: str = 'x'  # a name", "parameters"), CHECK,
                       ("code", "print('n2', P.n * 2, P.label, os.environ['SSFER_PROFILE'])")),
                   root / "notebooks" / "a.ipynb")
    nbformat.write(_nb(("markdown", "# Chapter B"),
                       ("code", "fail: bool = False  # raise on purpose", "parameters"), CHECK,
                       ("code", "if P.fail:\n    raise RuntimeError('boom')\nprint('fine')")),
                   root / "notebooks" / "b.ipynb")
    nbformat.write(_nb(("markdown", "# Lab"),
                       ("code", "k: int = 3  # exponent", "parameters"), CHECK,
                       ("code", "def power(x):\n    ### BEGIN SOLUTION\n    return x ** P.k\n    ### END SOLUTION"),
                       ("code", "print('lab', power(2))")),
                   root / "notebooks" / "labs" / "lab.ipynb")
    (root / "profiles" / "smoke.yaml").write_text("defaults:\n  n: 3\nb: {}\n")
    (root / "profiles" / "book.yaml").write_text("{}\n")
    return root


def outputs(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    root = make_book(tmp_path_factory.mktemp("tiny"))
    sources = {p: p.read_bytes() for p in (root / "notebooks").rglob("*.ipynb")}
    return root, sources


@pytest.fixture(scope="module")
def built(book):
    """The tiny book executed with the smoke profile and built once per session."""
    root, _ = book
    rc = rp.reproduce(profile="smoke", root=root, build_dir="_build")
    return root, rc


def test_unknown_or_ill_typed_parameter_is_rejected_before_anything_runs(book, capsys):
    root, _ = book
    assert rp.reproduce(profile="smoke", root=root, build_dir="early", overrides=["a.nn=5"]) == 2
    err = capsys.readouterr().err
    assert "unknown parameter(s) nn" in err and "a.ipynb" in err
    assert rp.reproduce(profile="smoke", root=root, build_dir="early", overrides=["a.n=five"]) == 2
    assert "parameter 'n' expects int, got 'five' (str)" in capsys.readouterr().err
    assert rp.reproduce(profile="smoke", root=root, build_dir="early", overrides=["c.n=1"]) == 2
    assert "no notebook 'c'" in capsys.readouterr().err
    assert not (root / "early").exists()  # nothing staged, nothing executed


@pytest.mark.slow  # executes notebooks and builds a book
def test_build_executes_into_the_build_folder_and_not_over_sources(built, book):
    root, rc = built
    _, sources = book
    assert rc == 0
    src = root / "_build" / "src"
    # smoke profile: defaults.n = 3 reaches `a` (which declares n) only
    assert "n2 6 x smoke" in outputs(src / "notebooks" / "a.ipynb")
    assert "fine" in outputs(src / "notebooks" / "b.ipynb")
    meta = nbformat.read(src / "notebooks" / "a.ipynb", as_version=4).metadata["ssfer"]["reproduce"]
    assert meta["parameters"] == {"n": 3} and meta["profile"] == "smoke" and len(meta["key"]) == 64
    assert "execute_notebooks: 'off'" in (src / "_config.yml").read_text()
    # committed sources untouched
    assert {p: p.read_bytes() for p in sources} == sources
    assert (root / "_build" / "html" / "index.html").exists()
    assert (root / "_build" / "html" / "notebooks" / "a.html").exists()


@pytest.mark.slow  # executes notebooks and builds a book
def test_labs_are_staged_as_student_and_executed_as_solution(built):
    root, rc = built
    assert rc == 0
    src = root / "_build" / "src" / "notebooks" / "labs"
    student = (src / "lab.ipynb").read_text()
    assert "raise NotImplementedError" in student and "x ** P.k" not in student
    assert outputs(src / "lab.ipynb") == ""  # staged, not run
    assert "lab 8" in outputs(src / "lab_solution.ipynb")
    assert "# Lab (solution)" in (src / "lab_solution.ipynb").read_text()
    assert (root / "_build" / "html" / "notebooks" / "labs" / "lab_solution.html").exists()


@pytest.mark.slow  # executes notebooks in kernels
def test_a_solution_the_toc_leaves_out_is_executed_but_published_only_for_teachers(book, capsys):
    root, _ = book
    toc = (root / "_toc.yml").read_text().replace("      - file: notebooks/labs/lab_solution\n", "")
    original = (root / "_toc.yml").read_text()
    (root / "_toc.yml").write_text(toc)
    try:
        assert rp.reproduce(profile="smoke", root=root, build_dir="pub") == 0
        html = root / "pub" / "_build" / "html" / "notebooks" / "labs"
        assert (html / "lab.html").exists() and not (html / "lab_solution.html").exists()
        assert not (root / "pub" / "src" / "notebooks" / "labs" / "lab_solution.ipynb").exists()
        assert "lab 8" in outputs(root / "pub" / "solutions" / "notebooks" / "labs" / "lab_solution.ipynb")
        assert "Solutions to the labs" not in (root / "pub" / "src" / "_toc.yml").read_text()
        # the teacher's build, in the same folder: the solution is published and reused from the run
        capsys.readouterr()
        assert rp.reproduce(profile="smoke", root=root, build_dir="pub", with_solutions=True) == 0
        assert (html / "lab_solution.html").exists()
        assert "Solutions to the labs" in (root / "pub" / "src" / "_toc.yml").read_text()
        # and a public build after it takes the solution page down again
        assert rp.reproduce(profile="smoke", root=root, build_dir="pub") == 0
        assert not (html / "lab_solution.html").exists()
    finally:
        (root / "_toc.yml").write_text(original)


@pytest.mark.slow  # executes notebooks in kernels
def test_second_run_is_cached_and_library_change_reruns(built, capsys):
    root, rc = built
    assert rc == 0
    a = root / "_build" / "src" / "notebooks" / "a.ipynb"
    before = a.stat().st_mtime_ns
    capsys.readouterr()
    assert rp.reproduce(profile="smoke", root=root, build_book=False) == 0
    out = capsys.readouterr().out
    assert "[cached] a" in out and "[cached] b" in out and "[cached] lab_solution" in out
    assert "[run]" not in out and a.stat().st_mtime_ns == before
    # a changed parameter reruns only that notebook
    assert rp.reproduce(profile="smoke", root=root, build_book=False, overrides=["a.label=y"]) == 0
    out = capsys.readouterr().out
    assert "[run]    a" in out and "[cached] b" in out
    assert "n2 6 y smoke" in outputs(a)
    # so does a change to the code of a module the notebooks import
    typecheck = root / "ssfer" / "typecheck.py"  # ssfer.book.params imports it
    original = typecheck.read_text()
    typecheck.write_text(original + "\n\ndef _added_by_a_test():\n    return 1\n")
    try:
        assert rp.reproduce(profile="smoke", root=root, build_book=False, only=["b"]) == 0
        out = capsys.readouterr().out
        assert "[run]    b" in out and "[run]    a" not in out
    finally:
        typecheck.write_text(original)


@pytest.mark.slow  # executes notebooks in kernels, two at a time
def test_notebooks_run_side_by_side_with_a_thread_each(book, capsys, monkeypatch):
    root, _ = book
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(rp, "_cpus", lambda: 2)
    assert rp.reproduce(profile="smoke", root=root, build_dir="side", build_book=False, n_jobs=2) == 0
    out = capsys.readouterr().out
    assert "running 3 notebooks, 2 at a time, 1 thread(s) each" in out
    # wall and CPU seconds per notebook (a kernel's CPU is counted in its worker)
    cpu = [float(m) for m in re.findall(r"ran in [\d.]+ s \(([\d.]+) CPU s\)", out)]
    assert len(cpu) == 3 and all(c > 0.1 for c in cpu), out
    src = root / "side" / "src" / "notebooks"
    assert "n2 6 x smoke" in outputs(src / "a.ipynb") and "fine" in outputs(src / "b.ipynb")
    assert "lab 8" in outputs(src / "labs" / "lab_solution.ipynb")
    assert rp.reproduce(profile="smoke", root=root, build_dir="side", n_jobs=-1) == 2
    assert "--jobs -1" in capsys.readouterr().err


@pytest.mark.slow  # executes a notebook in a kernel
def test_failing_notebook_exits_nonzero_naming_it_and_its_error(built, capsys):
    root, _ = built
    rc = rp.reproduce(profile="smoke", root=root, only=["b"], overrides=["b.fail=true"])
    assert rc == 1
    cap = capsys.readouterr()
    assert "b: cell 3 raised RuntimeError: boom" in cap.err
    assert "FAILED" in cap.out and "jupyter-book build" not in cap.out
    assert "boom" in (root / "_build" / "failed" / "b.ipynb").read_text()
    # the last good run stays in the book folder
    assert "fine" in outputs(root / "_build" / "src" / "notebooks" / "b.ipynb")


def test_toc_docnames_root_files_globs_and_missing_pages(tmp_path):
    (tmp_path / "nb").mkdir()
    for name in ("x.ipynb", "y.md", "z.txt"):
        (tmp_path / "nb" / name).write_text("{}")
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nchapters:\n- file: nb/x.ipynb\n  sections:\n  - glob: nb/*\n"
        "- url: https://example.org\n")
    assert rp.toc_docnames(tmp_path / "_toc.yml", tmp_path) == ["intro", "nb/x", "nb/y"]
    with pytest.raises(rp.ReproduceError, match="lists 'intro', but neither intro.ipynb nor intro.md"):
        rp.classify(["intro"], tmp_path)


def test_profile_errors_name_the_problem(book):
    root, _ = book
    jobs, _ = rp.classify(rp.toc_docnames(root / "_toc.yml", root), root)
    with pytest.raises(rp.ParameterError, match="profile 'p' has an entry for 'zz'"):
        rp.resolve_parameters(jobs, {"zz": {}}, "p", {})
    # a notebook that exists but is not (yet) in the toc may have an entry
    rp.resolve_parameters(jobs, {"c_draft": {"x": 1}}, "p", {}, other_notebooks={"c_draft"})
    with pytest.raises(rp.ParameterError, match="'device' .* is declared by no notebook"):
        rp.resolve_parameters(jobs, {"defaults": {"device": "cpu"}}, "p", {})
    rp.resolve_parameters(jobs, {"defaults": {"n": 4}}, "p", {"k": 2, "b.fail": False})
    assert {j.name: j.params for j in jobs if j.executes} == {
        "a": {"n": 4}, "b": {"fail": False}, "lab_solution": {"k": 2}}
    assert rp.parse_overrides(["a.ids=[1, 2]", "root="]) == {"a.ids": [1, 2], "root": ""}
    with pytest.raises(rp.ReproduceError, match="expected NOTEBOOK.PARAM=VALUE"):
        rp.parse_overrides(["a.n"])


def _keys(root: Path) -> dict[str, str]:
    jobs, _ = rp.classify(rp.toc_docnames(root / "_toc.yml", root), root)
    return {j.name: rp.job_key(j, "smoke", root, None) for j in jobs if j.executes}


@pytest.mark.parametrize("path, edit, changes", [
    ("ssfer/cli/__init__.py", lambda s: s + "\n\ndef _added():\n    return 1\n", False),
    ("ssfer/book/reproduce.py", lambda s: s + "\n\ndef _added():\n    return 1\n", False),
    ("ssfer/book/params.py", lambda s: s.replace('"""Typed notebook parameters.', '"""Notebook parameters, typed.', 1), False),
    ("ssfer/typecheck.py", lambda s: s + "\n\ndef _added():\n    return 1\n", True),
    ("ssfer/book/teaching/labs.py", lambda s: s + "\n\ndef _added():\n    return 1\n", "lab_solution"),
], ids=["cli", "reproduce", "docstring", "imported module", "lab tooling"])
def test_notebook_keys_follow_the_code_the_notebooks_import(tmp_path, path, edit, changes):
    root = make_book(tmp_path)
    before = _keys(root)
    f = root / path
    text = f.read_text()
    assert edit(text) != text, "the edit changed nothing: the test would prove nothing"
    f.write_text(edit(text))
    after = _keys(root)
    changed = {n for n in before if before[n] != after[n]}
    expected = set(before) if changes is True else {changes} if changes else set()
    assert changed == expected


def test_notebook_key_covers_the_repository_files_its_parameters_name(tmp_path):
    root = make_book(tmp_path)
    (root / "results").mkdir()
    (root / "results" / "run.json").write_text('{"accuracy": 50}')
    nb = nbformat.read(root / "notebooks" / "a.ipynb", as_version=4)
    nb.cells[1].source += '\nresults_dir: str = "results"  # recorded runs'
    nbformat.write(nb, root / "notebooks" / "a.ipynb")
    outside = tmp_path.parent / f"{tmp_path.name}_data"
    outside.mkdir()
    (outside / "x").write_text("1")
    job = next(j for j in rp.classify(rp.toc_docnames(root / "_toc.yml", root), root)[0] if j.name == "a")
    key = rp.job_key(job, "smoke", root, None)
    (root / "results" / "run.json").write_text('{"accuracy": 51}')
    assert rp.job_key(job, "smoke", root, None) != key
    key = rp.job_key(job, "smoke", root, None)
    job.params = {"results_dir": str(outside)}  # outside the repository: not followed
    k_out = rp.job_key(job, "smoke", root, None)
    (outside / "x").write_text("2")
    assert rp.job_key(job, "smoke", root, None) == k_out


@pytest.mark.slow  # executes a notebook in a kernel
def test_parameters_papermill_cannot_parse_raise_no_warning(tmp_path, caplog, capsys):
    root = make_book(tmp_path)
    nb = nbformat.read(root / "notebooks" / "a.ipynb", as_version=4)
    nb.cells[1].source = ("from typing import Literal\n" + nb.cells[1].source
                          + "\nmode: Literal['p', 'q'] = 'p'  # papermill's pattern cannot read this annotation")
    nb.cells[3].source += "\nprint('mode', P.mode)"
    nbformat.write(nb, root / "notebooks" / "a.ipynb")
    with caplog.at_level("WARNING"):
        assert rp.reproduce(profile="smoke", root=root, build_book=False, only=["a"], overrides=["a.mode=q"]) == 0
    assert "mode q" in outputs(root / "_build" / "src" / "notebooks" / "a.ipynb")
    said = caplog.text + capsys.readouterr().err
    assert "unknown parameter" not in said and "Unable to parse" not in said
