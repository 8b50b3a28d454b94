"""The built book, as a reader's browser sees it.

Serves the HTML (``$SSFER_BOOK_HTML``, else ``_build/html``) on localhost,
loads the index and one chapter in headless Chromium, and checks that every
internal link, image, stylesheet and script the pages refer to is served, and
that every ``#fragment`` names an element of its target page. Every page of the
book is then loaded at 1280 px with a checker script injected
(``tests/browser/layout_check.js``): no element of the main column is wider than
the column (a table or an equation scrolls inside its own box, or fits), every
``<img>`` loaded with a natural size above 0, and no table cell reads "nan".
Screenshots go to ``_build/screenshots/``. The book is built by ``make book`` (or
``ssfer reproduce``) before this runs; without it, or without
``/usr/bin/chromium``, the book tests skip and say why. The checker itself is
tested on a small hand-written site either way.
"""
from __future__ import annotations

import base64
import functools
import html as html_lib
import http.server
import io
import json
import os
import re
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlsplit

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-sync",
                  "--hide-scrollbars", "--window-size=1280,1600"]
REFS = {"a": "href", "link": "href", "img": "src", "script": "src", "source": "src", "iframe": "src"}


def book_html() -> Path:
    return Path(os.environ.get("SSFER_BOOK_HTML") or REPO / "_build" / "html")


def chromium_path() -> str | None:
    return next((p for p in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser"))
                 if p and Path(p).exists()), None)


# ------------------------------------------------------------------ helpers
class Page(HTMLParser):
    """References (tag, url) and element ids of one HTML document."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.refs: list[tuple[str, str]] = []
        self.ids: set[str] = set()
        self.redirect: str | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("id", "name"):
            if a.get(key):
                self.ids.add(a[key])
        if tag in REFS and a.get(REFS[tag]):
            self.refs.append((tag, a[REFS[tag]]))
        if tag == "meta" and (a.get("http-equiv") or "").lower() == "refresh":
            url = (a.get("content") or "").partition("url=")[2].strip()
            if url:
                self.redirect = url
                self.refs.append(("meta", url))


@functools.lru_cache(maxsize=None)
def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, b""


def problems(page_url: str, dom: str) -> list[str]:
    """Every broken internal reference of a page, as readable lines."""
    origin = urlsplit(page_url)[:2]
    page = Page(dom)
    found = []
    for tag, ref in page.refs:
        if ref.startswith(("data:", "mailto:", "javascript:", "tel:")):
            if tag == "img" and ref.startswith("data:") and not _data_image_ok(ref):
                found.append(f"{page_url}: <img> with an empty or undecodable data URI")
            continue
        url, frag = urldefrag(urljoin(page_url, ref))
        if urlsplit(url)[:2] != origin:
            continue  # external: not ours to check, and the test runs offline
        status, body = fetch(url)
        if status != 200:
            found.append(f"{page_url}: <{tag}> {ref!r} -> HTTP {status}")
            continue
        if tag == "img" and not _image_ok(url, body):
            found.append(f"{page_url}: <img> {ref!r} is not a readable image")
        if frag and tag == "a" and url.endswith(".html"):
            ids = page.ids if url == urldefrag(page_url)[0] else Page(body.decode("utf-8", "replace")).ids
            if frag not in ids:
                found.append(f"{page_url}: <a> {ref!r} -> no element with id {frag!r}")
    return found


def _image_ok(url: str, body: bytes) -> bool:
    if not body:
        return False
    if url.lower().endswith(".svg"):
        return b"<svg" in body[:2000]
    from PIL import Image
    try:
        Image.open(io.BytesIO(body)).verify()
        return True
    except Exception:  # noqa: BLE001 - any decoding failure means a broken image
        return False


def _data_image_ok(uri: str) -> bool:
    head, _, data = uri.partition(",")
    if ";base64" not in head:
        return bool(data)
    try:
        return _image_ok("x.svg" if "svg" in head else "x.png", base64.b64decode(data))
    except ValueError:
        return False


@pytest.fixture(scope="module")
def serve():
    """Start a static server for a folder; returns its base URL."""
    servers = []

    def start(folder: Path) -> str:
        handler = functools.partial(_QuietHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        fetch.cache_clear()
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output readable
        pass


CHECKER = REPO / "tests" / "browser" / "layout_check.js"
CHECKER_URL = "/__ssfer_layout_check.js"


class _CheckingHandler(_QuietHandler):
    """Serves the site, with the layout checker injected into every HTML page
    (a copy as served: the built files are never touched)."""

    def do_GET(self):  # noqa: N802 - http.server's name
        path = urlsplit(self.path).path
        if path == CHECKER_URL:
            return self._send(CHECKER.read_bytes(), "application/javascript")
        local = Path(self.translate_path(path))
        if local.is_dir():
            local = local / "index.html"
        if local.suffix == ".html" and local.is_file():
            page = local.read_text("utf-8", "replace")
            tag = f'<script src="{CHECKER_URL}"></script>'
            page = page.replace("</body>", tag + "</body>", 1) if "</body>" in page else page + tag
            return self._send(page.encode(), "text/html; charset=utf-8")
        return super().do_GET()

    def _send(self, body: bytes, ctype: str):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def serve_checked():
    """Like ``serve``, with the layout checker injected into every page."""
    servers = []

    def start(folder: Path) -> str:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                 functools.partial(_CheckingHandler, directory=str(folder)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def layout_findings(url: str, profile_dir: Path, screenshot: Path | None = None) -> dict:
    """What the injected checker found on one page (loaded at 1280 px). On a busy
    machine a page may not finish loading within Chromium's time budget: one more
    try with a longer budget before calling it a failure."""
    for budget in (15000, 45000):
        dom = browse(url, profile_dir, screenshot, budget_ms=budget)
        m = re.search(r'<pre id="ssfer-layout-check">(.*?)</pre>', dom, re.S)
        if m:
            return json.loads(html_lib.unescape(m.group(1)))
    raise AssertionError(f"the layout checker did not report on {url} (the page never finished loading)")


def layout_problems(url: str, found: dict) -> list[str]:
    out = [f"{url}: wider than the column {found['column']}: {o}" for o in found["overflow"]]
    out += [f"{url}: image not loaded: {i}" for i in found["images"]]
    out += [f"{url}: table cell {n}" for n in found["nan"]]
    out += [f"{url}: figure too small to read: {s}" for s in found["small"]]
    out += [f"{url}: table clipped (scrolls sideways): {c}" for c in found["clipped"]]
    return out


def browse(url: str, profile_dir: Path, screenshot: Path | None = None, budget_ms: int = 3000) -> str:
    """The DOM after Chromium loaded ``url`` and ran its scripts (and a screenshot, same launch)."""
    cmd = [chromium_path(), *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}", f"--virtual-time-budget={budget_ms}"]
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        screenshot.unlink(missing_ok=True)
        cmd.append(f"--screenshot={screenshot}")
    dom = subprocess.run([*cmd, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0 and "<html" in dom.stdout, f"chromium could not load {url}: {dom.stderr[-2000:]}"
    if screenshot is not None:
        assert screenshot.exists() and screenshot.stat().st_size > 0, f"no screenshot of {url}"
    return dom.stdout


def needs_chromium(test):
    """Starts a browser: slow, so outside ``make unit``; skipped, saying so, without Chromium."""
    return pytest.mark.slow(pytest.mark.skipif(
        chromium_path() is None, reason="no Chromium at /usr/bin/chromium (apt-get install chromium)")(test))


def needs_book(test):
    """Reads the rendered book (marker ``book``); skipped, saying so, where none is built."""
    return pytest.mark.book(pytest.mark.skipif(
        not (book_html() / "index.html").exists(),
        reason=f"the book is not built: no {book_html() / 'index.html'} "
               "(run `make book` first, or set SSFER_BOOK_HTML)")(test))


# ------------------------------------------------------------------ the checker itself
@pytest.fixture
def site(tmp_path):
    from PIL import Image
    (tmp_path / "img").mkdir()
    Image.new("RGB", (4, 4), "red").save(tmp_path / "img" / "ok.png")
    (tmp_path / "img" / "bad.png").write_bytes(b"not a png")
    (tmp_path / "index.html").write_text('<meta http-equiv="Refresh" content="0; url=page.html" />')
    (tmp_path / "page.html").write_text(
        '<html><body><h1 id="top">t</h1>'
        '<a href="#top">ok</a> <a href="other.html#sec">ok</a> <a href="https://example.org/x">ext</a>'
        '<a href="missing.html">broken</a> <a href="other.html#nope">bad fragment</a>'
        '<img src="img/ok.png"> <img src="img/gone.png"> <img src="img/bad.png">'
        '<script>document.body.insertAdjacentHTML("beforeend", \'<img src="img/js.png">\')</script>'
        '</body></html>')
    (tmp_path / "other.html").write_text('<html><body><h2 id="sec">s</h2></body></html>')
    return tmp_path


def test_checker_finds_broken_links_images_and_fragments(site, serve):
    base = serve(site)
    assert problems(base + "index.html", fetch(base + "index.html")[1].decode()) == []
    found = problems(base + "page.html", fetch(base + "page.html")[1].decode())
    assert found == [
        f"{base}page.html: <a> 'missing.html' -> HTTP 404",
        f"{base}page.html: <a> 'other.html#nope' -> no element with id 'nope'",
        f"{base}page.html: <img> 'img/gone.png' -> HTTP 404",
        f"{base}page.html: <img> 'img/bad.png' is not a readable image",
    ]


@needs_chromium
def test_checker_sees_what_scripts_add_in_chromium(site, serve, tmp_path):
    base = serve(site)
    dom = browse(base + "page.html", tmp_path / "chromium", screenshot=tmp_path / "page.png")
    assert f"{base}page.html: <img> 'img/js.png' -> HTTP 404" in problems(base + "page.html", dom)
    assert (tmp_path / "page.png").read_bytes()[:4] == b"\x89PNG"


@needs_chromium
def test_layout_checker_finds_overflow_clipped_tables_small_figures_broken_images_and_nan_cells(tmp_path, serve_checked):
    from PIL import Image
    Image.new("RGB", (4, 4), "red").save(tmp_path / "ok.png")
    wide = "<table><tr>" + "<td>wide&nbsp;column&nbsp;of&nbsp;numbers</td>" * 20 + "</tr></table>"
    (tmp_path / "bad.html").write_text(
        '<html><body><article style="width:600px">'
        f'{wide}<div style="overflow-x:auto">{wide}</div>'
        '<table><tr><td>NaN</td><td>1.0</td></tr></table>'
        '<img src="ok.png"><img src="missing.png"></article></body></html>')
    # a table in its own scrolling box that fits it: nothing to scroll, nothing clipped
    (tmp_path / "good.html").write_text(
        '<html><body><article style="width:600px">'
        '<div style="overflow-x:auto"><table><tr><td>1.0</td><td>2.0</td></tr></table></div>'
        '<img src="ok.png"><p>fits</p></article></body></html>')
    # a 1200 px figure in a 600 px column shows at half its size: its text is too small
    Image.new("RGB", (1200, 300), "blue").save(tmp_path / "wide.png")
    (tmp_path / "bad.html").write_text((tmp_path / "bad.html").read_text().replace(
        "</article>", '<img src="wide.png" style="max-width:100%"></article>'))
    base = serve_checked(tmp_path)
    bad = layout_findings(base + "bad.html", tmp_path / "chromium")
    assert len(bad["overflow"]) == 1 and bad["overflow"][0].startswith("table"), bad["overflow"]
    assert bad["images"] == ["missing.png"] and bad["nan"] == ['table "NaN1.0": NaN']
    assert bad["small"] == ["wide.png shown at 50 % of its 1200 px"], bad["small"]
    # the wide table in its own scrolling box stays in the column, but the reader must scroll sideways
    assert len(bad["clipped"]) == 1 and bad["clipped"][0].endswith("px in a 600 px box"), bad["clipped"]
    good = layout_findings(base + "good.html", tmp_path / "chromium")
    assert layout_problems("good", good) == [] and good["checked"] > 3 and good["small"] == []


# ------------------------------------------------------------------ the book
def _internal_pages(base: str, start: str) -> list[str]:
    """Every HTML page of the site reachable from ``start`` (static crawl)."""
    seen, queue = [], deque([start])
    while queue:
        url = queue.popleft()
        if url in seen:
            continue
        seen.append(url)
        status, body = fetch(url)
        if status != 200:
            continue
        for tag, ref in Page(body.decode("utf-8", "replace")).refs:
            target = urldefrag(urljoin(url, ref))[0]
            if tag in ("a", "meta") and target.startswith(base) and target.endswith(".html") \
                    and "/_sources/" not in target and target not in seen:
                queue.append(target)
    return seen


@needs_book
@needs_chromium
def test_index_and_a_chapter_render_without_missing_images_or_broken_links(serve, tmp_path):
    html = book_html()
    base = serve(html)
    shots = html.parent / "screenshots"
    # index.html is a redirect to the root page; check it as served, then open its target
    index = fetch(base + "index.html")[1].decode("utf-8", "replace")
    assert problems(base + "index.html", index) == []
    landing = Page(index).redirect
    start = urljoin(base + "index.html", landing) if landing else base + "index.html"
    start_dom = browse(start, tmp_path / "chromium", shots / "index.png")
    assert problems(start, start_dom) == []
    chapters = [urljoin(start, ref) for tag, ref in Page(start_dom).refs
                if tag == "a" and "notebooks/" in ref and ref.split("#")[0].endswith(".html")]
    assert chapters, f"no chapter (notebooks/*.html) linked from {start}"
    chapter = urldefrag(chapters[0])[0]
    dom = browse(chapter, tmp_path / "chromium", shots / (Path(urlsplit(chapter).path).stem + ".png"))
    assert problems(chapter, dom) == []
    assert "<article" in dom, f"{chapter} has no article body"


@needs_book
def test_every_page_of_the_book_has_working_links_and_images(serve):
    base = serve(book_html())
    pages = _internal_pages(base, base + "index.html")
    assert len(pages) > 2, f"only {pages} reachable from the index"
    found = [p for url in pages for p in problems(url, fetch(url)[1].decode("utf-8", "replace"))]
    assert found == [], "\n".join(found)


@needs_book
@needs_chromium
def test_equations_are_typeset_by_the_books_own_mathjax(serve, tmp_path):
    """MathJax is served from the book (no CDN), so the method page's equations
    render on a machine without network, like this one and a reader's train seat."""
    html = book_html()
    page = html / "book" / "method.html"
    assert page.exists(), f"no {page}"
    text = page.read_text()
    scripts = [ref for tag, ref in Page(text).refs if tag == "script"]
    mathjax = [s for s in scripts if "mathjax" in s.lower()]
    assert mathjax and all("://" not in s for s in mathjax), f"MathJax not served locally: {mathjax}"
    base = serve(html)
    dom = browse(base + "book/method.html", tmp_path / "chromium", html.parent / "screenshots" / "method.png")
    assert "<mjx-container" in dom, "MathJax did not typeset the equations of book/method.html"


@needs_book
@needs_chromium
def test_every_page_fits_the_column_with_readable_figures_and_no_nan(serve, serve_checked, tmp_path):
    """At 1280 px, on every page of the book (chapters, labs, solutions, the
    other pages): nothing wider than the main column, no table that must be
    scrolled sideways, no figure shrunk below 60 % of its width, every image
    loaded, no "nan" in a table."""
    html = book_html()
    plain = serve(html)
    pages = [p for p in _internal_pages(plain, plain + "index.html") if "/notebooks/" in p or "/book/" in p]
    assert len(pages) >= 10, pages
    base = serve_checked(html)
    shots = html.parent / "screenshots"

    def one(i_url):
        i, url = i_url
        local = base + url[len(plain):]
        name = Path(urlsplit(url).path).stem
        return layout_problems(local, layout_findings(local, tmp_path / f"chromium{i}", shots / f"{name}.png"))

    with ThreadPoolExecutor(max_workers=2) as pool:
        found = [p for problems_of_page in pool.map(one, enumerate(pages)) for p in problems_of_page]
    assert found == [], "\n".join(found)
