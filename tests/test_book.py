"""The smoke book that `make test` builds before pytest: executed notebooks with
figures, rendered pages linking to them. Skips (saying so) when it was not built."""
import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HTML = Path(os.environ.get("SSFER_BOOK_HTML") or REPO / "_build" / "html")
# reproduce stages sources in <build_dir>/src; the HTML lands in <build_dir>/_build/html,
# or in _build/html when build_dir is _build itself
SRC = next((p for p in (HTML.parents[1] / "src", HTML.parent / "src") if p.exists()), HTML.parent / "src")


def needs_book(test):
    """Reads the rendered book (marker ``book``); skipped, saying so, where none is built."""
    return pytest.mark.book(pytest.mark.skipif(
        not (HTML / "index.html").exists(),
        reason=f"no built book at {HTML} (make test builds one; or set SSFER_BOOK_HTML)")(test))


@needs_book
def test_quickstart_was_executed_with_figures_and_glue():
    nb = json.loads((SRC / "notebooks" / "00_quickstart.ipynb").read_text())
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    pngs = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(pngs) >= 4, "face grid, class frequencies, learning curves, confusion matrix"
    glued = {o["metadata"]["scrapbook"]["name"] for o in outputs
             if "scrapbook" in o.get("metadata", {})}
    assert {"acc_sup_small", "acc_fixmatch", "acc_sup_all"} <= glued


@needs_book
def test_index_links_to_the_executed_quickstart():
    index = (HTML / "index.html").read_text()
    intro = HTML / "book" / "intro.html"
    page = HTML / "notebooks" / "00_quickstart.html"
    assert page.exists()
    assert "00_quickstart.html" in (intro.read_text() if intro.exists() else index)
    html = page.read_text()
    assert html.count("<img") >= 4
    # glued numbers were substituted into the prose, not left as roles
    assert "glue:text" not in html and "test accuracy" in html


def _executed():
    """Executed chapters, and lab solutions wherever they lie (outside the public
    book in <build_dir>/solutions, in src after --with-solutions)."""
    return [p for root in (SRC, SRC.parent / "solutions") for p in sorted((root / "notebooks").rglob("*.ipynb"))
            if json.loads(p.read_text()).get("metadata", {}).get("ssfer", {}).get("reproduce")]


@needs_book
def test_the_public_book_shows_student_labs_and_no_solution():
    """Answers do not leak: the lab pages are the student versions, no solution page
    is built, and the solutions were still executed, outside the book."""
    import yaml

    captions = [part.get("caption") for part in yaml.safe_load((SRC / "_toc.yml").read_text())["parts"]]
    if "Solutions to the labs" in captions:
        pytest.skip("a teacher's build (--with-solutions)")
    labs_html = HTML / "notebooks" / "labs"
    assert not list(labs_html.glob("*_solution.html")), "a solution page is in the public book"
    sources = sorted((REPO / "notebooks" / "labs").glob("*.ipynb"))
    for src in sources:
        page = (labs_html / f"{src.stem}.html").read_text()
        assert "YOUR CODE HERE" in page and "BEGIN SOLUTION" not in page and "HIDDEN TESTS" not in page
        assert "Rubric" not in page
        solution = SRC.parent / "solutions" / "notebooks" / "labs" / f"{src.stem}_solution.ipynb"
        assert json.loads(solution.read_text())["metadata"]["ssfer"]["reproduce"]["key"], solution
    assert (HTML / "book" / "teaching.html").exists()


@needs_book
def test_every_glued_value_is_defined_once_and_renders_as_text():
    """A glued numpy scalar (repr "np.float64(...)") cannot be formatted by
    {glue:text}`key:.1f` and silently renders nothing; a key glued twice or never
    glued leaves a sentence with a hole."""
    import ast
    import re

    notebooks = _executed()
    assert len(notebooks) >= 8, notebooks
    for path in notebooks:
        nb = json.loads(path.read_text())
        glued: dict[str, str] = {}
        for cell in nb["cells"]:
            for out in cell.get("outputs", []) if cell["cell_type"] == "code" else []:
                name = out.get("metadata", {}).get("scrapbook", {}).get("name")
                if name:
                    assert name not in glued, f"{path.name}: {name!r} glued twice"
                    glued[name] = "".join(out["data"].get("application/papermill.record/text/plain", ""))
        for name, text in glued.items():
            try:
                ast.literal_eval(text)
            except (ValueError, SyntaxError):
                raise AssertionError(f"{path.name}: glued {name!r} = {text} is not a plain number or string")
        used = {m for c in nb["cells"] if c["cell_type"] == "markdown"
                for m in re.findall(r"\{glue:text\}`([^`:]+)", "".join(c["source"]))}
        assert used <= set(glued), f"{path.name}: prose uses unglued {sorted(used - set(glued))}"


@needs_book
def test_no_sentence_of_the_chapters_is_assembled_in_code():
    """Prose lives in markdown cells with glued values; a code cell glues numbers
    and short verdict phrases, not sentences (chapters 0 and 2 to 5, the labs)."""
    import re

    mine = ["00_quickstart", "02_thresholds", "03_negative_learning", "04_rafdb", "05_affectnet"]
    for path in _executed():
        if path.stem not in mine and "labs" not in path.parts:
            continue
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            for out in cell.get("outputs", []) if cell["cell_type"] == "code" else []:
                text = "".join(out.get("data", {}).get("application/papermill.record/text/plain", ""))
                words = len(text.split())
                assert words <= 16 and not re.search(r"[a-z]\. [A-Z]", text), \
                    f"{path.name}: a glued value reads like a sentence: {text[:120]}"


REPO = Path(__file__).resolve().parents[1]
# pages whose prose cites chapters (the lead's 01 and 06 are not checked here)
CITING = [*sorted((REPO / "book").glob("*.md")),
          *(REPO / "notebooks" / f"{n}.ipynb" for n in ("00_quickstart", "02_thresholds", "03_negative_learning",
                                                        "04_rafdb", "05_affectnet")),
          *sorted((REPO / "notebooks" / "labs").glob("*.ipynb"))]


def test_chapter_numbers_in_the_prose_come_from_the_table_of_contents():
    """The sidebar numbers the chapters; prose cites them with {numref} to a
    chapter's label, so a number typed by hand can never disagree with it."""
    import re

    typed = []
    for path in CITING:
        text = path.read_text() if path.suffix == ".md" else "\n".join(
            "".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "markdown")
        text = re.sub(r"\{numref\}`[^`]*`", "", text)
        typed += [f"{path.name}: {m}" for m in re.findall(r"\b[Cc]hapters? \d[^\n]{0,20}", text)]
    assert typed == [], typed


@needs_book
def test_pages_glue_from_chapters_with_keys_that_exist_and_render():
    """``{glue:text}`nb.ipynb::key``` on a page: myst-nb splits the role's text at
    its last colon into key and format, so without a format (``::key:s``) it looks
    for a key named "nb.ipynb:" and renders nothing, with only a build warning."""
    import re

    pages = sorted((REPO / "book").glob("*.md"))
    found = 0
    for page in pages:
        for path, key, fmt in re.findall(r"\{glue:text\}`([^`:]+\.ipynb)::([^`:]+)(:[^`]*)?`", page.read_text()):
            found += 1
            assert fmt, f"{page.name}: {{glue:text}}`{path}::{key}` needs a format (`{path}::{key}:s`)"
            nb = json.loads((SRC / "book" / path).resolve().read_text())
            names = {o.get("metadata", {}).get("scrapbook", {}).get("name")
                     for c in nb["cells"] for o in c.get("outputs", [])}
            assert key in names, f"{page.name}: {path} glues no {key!r}"
    assert found, "no page glues from a chapter: the Findings section lost its numbers"
    intro = (HTML / "book" / "intro.html").read_text()
    # the bottom line is glued, and an interval never renders empty ("[ , ]")
    assert "read family-wise (Holm at 0.05" in intro and "DTA+SNL − FixMatch:" in intro
    assert not re.search(r"\[\s*,", intro)


FIGURE_CHECK = Path(os.environ.get("SSFER_FIGURE_CHECK") or REPO / "_build" / "smoke" / "figure_check.txt")


@pytest.mark.book
@pytest.mark.skipif(not FIGURE_CHECK.is_file() or "checked:" not in FIGURE_CHECK.read_text(),
                    reason=f"no figure check at {FIGURE_CHECK}: `make test` writes it while its kernels run "
                           "(none when every notebook came from the cache)")
def test_no_figure_of_the_book_has_a_legend_over_axis_text():
    """Every figure the smoke book's kernels showed was checked before it was shown
    (tests/figure_check_startup.py): no legend covers an axis label, tick label or title."""
    lines = FIGURE_CHECK.read_text().splitlines()
    checked = sum(int(line.split()[1]) for line in lines if line.startswith("checked:"))
    assert checked >= 20, lines[:5]   # the chapters and labs show dozens of figures
    collisions = [line for line in lines if line.startswith("COLLISION")]
    assert collisions == [], "\n".join(collisions)


def _resolves(key: str, plain: dict, stems: dict, suffixes: tuple) -> bool:
    stem, _, suffix = key.rpartition("_")
    return key in plain or (stem in stems and suffix in suffixes)


def _prose_keys(notebook: Path) -> set[str]:
    import re

    nb = json.loads(notebook.read_text())
    return {m for c in nb["cells"] if c["cell_type"] == "markdown"
            for m in re.findall(r"\{glue:text\}`([^`:]+)", "".join(c["source"]))}


def test_every_glue_key_of_every_chapter_is_in_its_table():
    """Each key a chapter's prose cites (and the landing page's, from chapter 06)
    is listed literally in ssfer.book.glue_keys, or is a comparison stem there
    with one of its suffixes: a key in the prose can be grepped back to the code."""
    import re

    from ssfer.book import glue_keys

    chapters = sorted((REPO / "notebooks").glob("0*.ipynb"))
    assert [p.stem for p in chapters] == list(glue_keys.KEYS) == list(glue_keys.COMPARISONS)
    for path in chapters:
        prose = _prose_keys(path)
        # the landing page cites chapters' glue too
        prose |= set(re.findall(re.escape(path.stem) + r"\.ipynb::([^`:]+)", (REPO / "book" / "intro.md").read_text()))
        plain, stems = glue_keys.KEYS[path.stem], glue_keys.COMPARISONS[path.stem]
        unknown = sorted(k for k in prose if not _resolves(k, plain, stems, glue_keys.COMPARISON_SUFFIXES))
        assert not unknown, f"{path.name}: glue keys of the prose missing from ssfer.book.glue_keys: {unknown}"
        assert not set(plain) & set(stems)


@needs_book
def test_every_chapter_glues_exactly_the_keys_of_its_table():
    from ssfer.book import glue_keys

    for path in _executed():
        if path.stem not in glue_keys.KEYS:
            continue   # the labs glue nothing the book cites
        nb = json.loads(path.read_text())
        glued = {o.get("metadata", {}).get("scrapbook", {}).get("name") for c in nb["cells"]
                 for o in c.get("outputs", [])} - {None}
        plain, stems = glue_keys.KEYS[path.stem], glue_keys.COMPARISONS[path.stem]
        stray = sorted(k for k in glued if not _resolves(k, plain, stems, glue_keys.COMPARISON_SUFFIXES))
        assert not stray, f"{path.name} glues keys its table does not list: {stray}"
        used = {k.rpartition("_")[0] for k in glued if k not in plain}
        unused = sorted((set(plain) - glued) | (set(stems) - used))
        assert not unused, f"ssfer.book.glue_keys lists keys {path.name} never glues: {unused}"
