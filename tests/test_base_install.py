"""A base install, without the book and test extras, trains: nothing on the way to
``ssfer train`` imports the notebook tooling's packages."""
import json
import subprocess
import sys

import pytest

BOOK_ONLY = ("nbformat", "papermill", "jupyter_book", "myst_nb")

# In a fresh interpreter, make the book extra's packages unimportable (a None in
# sys.modules turns `import x` into ImportError), then use the command line.
SCRIPT = """
import json, sys
hidden, cache, sets = json.loads(sys.argv[1])
for name in hidden:
    sys.modules[name] = None
from ssfer.cli import build_parser, main
assert build_parser().parse_args(["train", "--set", "train.steps=2"]).command == "train"
argv = ["train", "--cache-dir", cache]
for kv in sets:
    argv += ["--set", kv]
assert main(argv) == 0
assert main(["reproduce", "--profile", "smoke"]) == 2
"""


@pytest.mark.slow  # trains in a subprocess
def test_train_runs_without_the_book_extra(tiny_overrides, tmp_path):
    sets = [f"{k}={json.dumps(v)}" for k, v in {**tiny_overrides, "algo.name": "fixmatch"}.items()]
    out = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps([BOOK_ONLY, str(tmp_path), sets])],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout[out.stdout.index("{"):out.stdout.rindex("}") + 1])
    assert summary["algorithm"] == "fixmatch" and 0 <= summary["accuracy"] <= 1
    assert (tmp_path / "runs").is_dir()
    # the tooling's command says what is missing instead of a traceback
    assert "ssfer: ssfer reproduce needs the book extra (pip install 'ssfer[book]')" in out.stderr
