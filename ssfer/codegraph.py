"""The package's import graph and a digest of its code, read from source with ``ast``.

Run keys hash the code that can change a run's numbers (``ssfer.record``): the
modules the trainer imports, followed through every ``ssfer`` import, at module
level or inside a function. A module counts by its code, not its text: its
docstrings and comments are left out of the digest, so editing them changes no
key. The layering test reads the same graph.
"""
from __future__ import annotations

import ast
import functools
import hashlib
from collections.abc import Iterable
from pathlib import Path

PACKAGE = "ssfer"
PACKAGE_DIR = Path(__file__).resolve().parent


def read_source(path: Path) -> str:
    """A module file's text (tests replace it to edit code without touching files)."""
    return path.read_text(encoding="utf-8")


def module_files(package_dir: Path = PACKAGE_DIR) -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its ``__init__.py``);
    ``package_dir``: another copy of the package (a book's own checkout)."""
    out = {}
    for p in sorted(package_dir.rglob("*.py")):
        parts = p.relative_to(package_dir).with_suffix("").parts
        out[".".join((PACKAGE, *(parts[:-1] if parts[-1] == "__init__" else parts)))] = p
    return out


def _strip_docstrings(tree: ast.Module) -> ast.Module:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                node.body = node.body[1:]
    return tree


def _canonical(node: object) -> str:
    # ast.dump's text varies between Python versions (3.13 drops empty fields);
    # this form always drops them, so one source gives one digest everywhere
    if isinstance(node, ast.AST):
        fields = (f"{k}={_canonical(v)}" for k, v in ast.iter_fields(node) if v is not None and v != [])
        return f"{type(node).__name__}({','.join(fields)})"
    if isinstance(node, list):
        return f"[{','.join(_canonical(v) for v in node)}]"
    return repr(node)


def _imported(tree: ast.Module, name: str, is_package: bool, known: frozenset[str]) -> frozenset[str]:
    """The package's modules that ``import`` and ``from ... import`` statements
    anywhere in ``tree`` name: ``from m import x`` counts as importing ``m.x``
    where that is a module, else ``m``."""
    here = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = here.split(".")[:len(here.split(".")) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known]
            found.update(subs)
            if len(subs) < len(node.names):
                found.add(base)
    return frozenset(m for m in found if m in known)


@functools.lru_cache(maxsize=512)
def _analyse(name: str, is_package: bool, source: str, known: frozenset[str]) -> tuple[frozenset[str], str]:
    tree = ast.parse(source, filename=name)
    imports = _imported(tree, name, is_package, known)
    code = hashlib.sha256(_canonical(_strip_docstrings(tree)).encode()).hexdigest()
    return imports, code


def _analysis(name: str, files: dict[str, Path]) -> tuple[frozenset[str], str]:
    path = files[name]
    return _analyse(name, path.name == "__init__.py", read_source(path), frozenset(files))


def import_graph(package_dir: Path = PACKAGE_DIR) -> dict[str, frozenset[str]]:
    """Each module of the package -> the package's modules it imports (anywhere in it)."""
    files = module_files(package_dir)
    return {m: _analysis(m, files)[0] for m in files}


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def closure(roots: Iterable[str], package_dir: Path = PACKAGE_DIR) -> list[str]:
    """``roots`` and every module of the package they import, transitively,
    with the packages above each (whose ``__init__`` runs first), sorted."""
    files = module_files(package_dir)
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        if m not in files:
            raise KeyError(f"no module {m!r} in {package_dir}")
        seen.add(m)
        todo += [*_analysis(m, files)[0], *_parents(m)]
    return sorted(seen)


def code_digest(names: Iterable[str], package_dir: Path = PACKAGE_DIR) -> str:
    """sha256 over the named modules' code, docstrings and comments left out."""
    files = module_files(package_dir)
    h = hashlib.sha256()
    for m in sorted(names):
        h.update(f"{m}\0{_analysis(m, files)[1]}\n".encode())
    return h.hexdigest()


def _python_lines(cell: str) -> str:
    # IPython's magics and shell escapes are not Python; they import nothing of ours
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in cell.splitlines())


def imports_of_cells(cells: Iterable[str], package_dir: Path = PACKAGE_DIR) -> frozenset[str]:
    """The package's modules that a notebook's code cells import (directly)."""
    known = frozenset(module_files(package_dir))
    found: set[str] = set()
    for i, cell in enumerate(cells):
        try:
            tree = ast.parse(_python_lines(cell), filename=f"<cell {i}>")
        except SyntaxError:
            continue  # a cell that does not parse cannot import anything when run either
        found |= _imported(tree, "__main__", False, known)
    return frozenset(found)
