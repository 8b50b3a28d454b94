"""The package's layers: every import points down (or within its layer), and no
import cycle exists, read from the source with ``ast`` (``ssfer.codegraph``).

Imports inside functions count like those at the top of a module: a lazy
import only defers the dependency, it does not remove it. The implicit import
of a module's enclosing package (``a/__init__.py`` runs before ``a.b``) does
not count as an edge.
"""
from fnmatch import fnmatch

from ssfer.codegraph import import_graph

# Lowest first. A module may import modules of its own layer and of the layers
# below it, never of a layer above. "ssfer.data.*" is every module inside ssfer.data.
LAYERS = [
    ("basics", ["ssfer", "ssfer.errors", "ssfer.classes", "ssfer.io", "ssfer.codegraph", "ssfer.tone", "ssfer.typecheck",
                "ssfer.metrics", "ssfer.stats"]),
    ("data", ["ssfer.data", "ssfer.data.*"]),
    ("views", ["ssfer.views"]),
    ("model", ["ssfer.model", "ssfer.model.*"]),
    ("algo", ["ssfer.algo", "ssfer.algo.*", "ssfer.diagnostics"]),
    ("config", ["ssfer.config"]),           # validates against the registries of data, model and algo
    ("record", ["ssfer.record"]),           # run records and run keys, which the trainer writes
    ("train", ["ssfer.predict", "ssfer.train", "ssfer.train.*"]),
    ("pretrain", ["ssfer.pretrain", "ssfer.pretrain.*"]),   # self-supervised BYOL: weights for fine-tuning
    ("runs", ["ssfer.evaluate", "ssfer.bench"]),
    # the book's wing: what the notebooks, the recorded grid and the labs need; the
    # library above never imports it
    ("book", ["ssfer.book", "ssfer.book.*"]),
    ("command line", ["ssfer.cli", "ssfer.cli.*", "ssfer.__main__"]),
]


def _layer(module: str) -> int:
    found = [i for i, (_, patterns) in enumerate(LAYERS) if any(fnmatch(module, p) for p in patterns)]
    assert len(found) == 1, (f"{module} is in {len(found)} layers; put it in exactly one of LAYERS "
                             f"({[LAYERS[i][0] for i in found]})")
    return found[0]


def _cycle(graph: dict[str, frozenset[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (its modules in order, the first repeated), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(m: str, path: list[str]) -> list[str] | None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return path[path.index(n):] + [n]
            if n not in state and (found := visit(n, path + [n])):
                return found
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m, [m])):
            return found
    return None


def _upward(graph: dict[str, frozenset[str]]) -> list[str]:
    return [f"{m} ({LAYERS[_layer(m)][0]}) imports {n} ({LAYERS[_layer(n)][0]})"
            for m in sorted(graph) for n in sorted(graph[m]) if _layer(n) > _layer(m)]


def test_every_import_points_to_its_own_layer_or_one_below():
    upward = _upward(import_graph())
    assert not upward, "imports against the layers:\n" + "\n".join(upward)


def test_no_import_cycle():
    cycle = _cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_graph_sees_lazy_and_relative_imports():
    graph = import_graph()
    assert "ssfer.data.synthfer" in graph["ssfer.data.registry"]   # inside a function
    assert "ssfer.data.decode" in graph["ssfer.data.cache"]        # from . import decode
    assert "ssfer.classes" in graph["ssfer.data.rafdb"]            # from ..classes import ...
    assert "ssfer.train.loop" in graph["ssfer.train"]              # inside run()
    assert "ssfer.book.reproduce" in graph["ssfer.cli"]                 # only when the command is given


def test_the_old_cycle_and_wrong_way_import_would_be_caught():
    graph = dict(import_graph())
    graph["ssfer.algo.compose"] |= {"ssfer.config"}       # compose read AlgoConfig from config
    graph["ssfer.data.preprocess"] |= {"ssfer.views"}     # the data layer took tone ops from augmentation
    cycle = _cycle(graph)
    assert cycle[0] == cycle[-1] and {"ssfer.algo.compose", "ssfer.config"} <= set(cycle), cycle
    assert _upward(graph) == ["ssfer.algo.compose (algo) imports ssfer.config (config)",
                              "ssfer.data.preprocess (data) imports ssfer.views (views)"]


def _map_rooms() -> set[str]:
    """The rooms ``ssfer/README.md`` names in its tables' first column and in its
    ``cli/`` heading: ``data/`` (a package), ``book/tables`` (a module)."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "ssfer" / "README.md").read_text(encoding="utf-8")
    rooms = set(re.findall(r"^\| `([\w/]+)` \|", text, flags=re.M))
    rooms |= set(re.findall(r"^## On top: `([\w/]+)`", text, flags=re.M))
    return rooms


def _room_of(module: str, rooms: set[str]) -> str | None:
    path = module.split(".")[1:]
    for i in range(len(path), 0, -1):
        name = "/".join(path[:i])
        if name in rooms or name + "/" in rooms:
            return name
    return None


def test_every_module_is_on_the_map_and_every_room_on_it_exists():
    rooms = _map_rooms()
    graph = import_graph()
    # the package's own __init__ and __main__ are the doors, and a wing package's
    # __init__ (ssfer.book) is named by its rooms
    doors = {"ssfer", "ssfer.__main__"} | {m for m in graph if any(r.startswith(m.split(".", 1)[-1].replace(".", "/") + "/")
                                                                   for r in rooms)}
    missing = sorted(m for m in graph if m not in doors and _room_of(m, rooms) is None)
    assert not missing, f"modules missing from ssfer/README.md's map: {missing}"
    names = {m.split(".", 1)[1].replace(".", "/") for m in graph if "." in m}
    gone = sorted(r for r in rooms if r.rstrip("/") not in names)
    assert not gone, f"ssfer/README.md names rooms that do not exist: {gone}"


def test_the_map_check_would_catch_a_module_left_off_it():
    rooms = _map_rooms()
    assert _room_of("ssfer.book.tables", rooms) == "book/tables"
    assert _room_of("ssfer.data.registry", rooms) == "data"
    assert _room_of("ssfer.book.teaching.grading", rooms) == "book/teaching"
    assert _room_of("ssfer.book.ch09_unwritten", rooms) is None
    assert _room_of("ssfer.newroom", rooms) is None


def test_the_library_never_imports_the_wing_or_the_command_line():
    graph = import_graph()
    wing = [f"{m} imports {n}" for m in sorted(graph) if _layer(m) < _layer("ssfer.book")
            for n in sorted(graph[m]) if n == "ssfer.book" or n.startswith(("ssfer.book.", "ssfer.cli"))]
    assert not wing, "the library imports the wing:\n" + "\n".join(wing)
