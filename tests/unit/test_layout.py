"""The house's shape, checked: no import cycle between the modules of Relay, the bench
and the tests' shared helpers, the media plane never imports the control plane, and no
file is too long to read.

Every import counts, also the ones inside functions and under ``TYPE_CHECKING``: a
cycle that is only postponed to run time is still one a newcomer has to untangle.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "relay"
STUDIO = ROOT / "studio"
# where an import cycle is looked for: the product, the studio harness, the bench, the tests' helpers
CHECKED = (PACKAGE, STUDIO, ROOT / "bench", ROOT / "tests" / "support")
MEDIA = ("relay.ingest", "relay.watch", "relay.switch", "relay.push", "relay.codec", "relay.media",
         "relay.graph")
CONTROL = ("relay.control", "relay.daemon", "relay.cli", "relay.preflight")
MAX_LINES = 700


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for root in CHECKED for p in root.rglob("*.py")}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The checked modules ``name`` imports, anywhere in the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from relay.control import commands` imports the module relay.control.commands
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


@functools.cache  # parsed once for the three tests that read it (none changes it)
def import_graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports_of(name, path, known) for name, path in mods.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle() -> None:
    graph = import_graph()
    assert "relay.graph" in graph and "relay.control.commands" in graph["relay.control.api"]
    assert "bench.sweep" in graph and "tests.support.studio" in graph
    assert cycles(graph) == []


def test_the_cycle_finder_finds_one() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_media_plane_never_imports_the_control_plane() -> None:
    graph = import_graph()
    wrong = {name: sorted(t for t in targets if t.startswith(CONTROL))
             for name, targets in graph.items() if name.startswith(MEDIA)}
    assert {name: targets for name, targets in wrong.items() if targets} == {}


def test_the_product_holds_only_the_product() -> None:
    """The studio harness (studio/: the demo's, the tests' and the bench's local studio)
    lives outside the relay package, which is what a studio PC installs: relay/ imports
    it in one place only, `relay demo` in cli.py, which says what to do where it is
    missing; the harness imports neither the tests nor the bench (which import it); and
    no product code reads the test runner's variables."""
    graph = import_graph()
    assert not (PACKAGE / "studio").exists() and not (PACKAGE / "demo.py").exists()
    assert {name: sorted(t for t in targets if t.startswith("studio"))
            for name, targets in graph.items()
            if name.startswith("relay") and any(t.startswith("studio") for t in targets)} == {
        "relay.cli": ["studio.demo"]}
    outside = set()
    for path in STUDIO.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            outside |= {f"{path.name}: {n}" for n in names if n.split(".")[0] in ("tests", "bench")}
    assert outside == set()
    assert [str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py") if "PYTEST" in p.read_text()] == []


def test_no_file_is_over_700_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for p in [*PACKAGE.rglob("*.py"), *STUDIO.rglob("*.py"),
                                                   *(ROOT / "bench").rglob("*.py")]
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}, long
