"""Rooms depend downward only: every import, at module level or inside a function, obeys docs/architecture.md.

Each Python file of the product rooms is parsed with `ast`; every Import and
ImportFrom wherever it stands (a function-local import breaks a cycle, it
does not make the arrow go away) and every `importlib.import_module("...")`
with a literal name is an arrow from the file's room to the imported room.
An arrow is allowed when it points to a lower layer, stays in its room, is
one of the few sideways arrows listed, or is a known exception listed by
file and module with its reason. tests/, bench/, tools/, sdk/ and examples/
are outside the rooms. The same imports, module by module, show the import
cycles: only those listed in CYCLES, with their reasons, may exist.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Lowest first; a room may import any room of a lower layer. Rooms of one layer
# may not read each other unless SIDEWAYS says so: `simulator` (a standalone
# upstream that tests, the demo and replays drive) sits beside `beastflow` and
# so depends on no room of ours.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"beastflow", "simulator"}),
    frozenset({"tenants"}),
    frozenset({"scheduling"}),
    frozenset({"engines"}),
    frozenset({"healing", "callbacks", "retention"}),
    frozenset({"observability"}),
    frozenset({"strategies"}),
    frozenset({"console"}),
)
LAYER = {room: level for level, rooms in enumerate(LAYERS) for room in rooms}
ROOMS = frozenset(LAYER)

# Rooms of one layer that may read each other, and why.
SIDEWAYS = {
    ("callbacks", "healing"): "a delivery endpoint that keeps failing is a failure for RCA",
    ("healing", "callbacks"): "healing's notifications are signed like deliveries (callbacks.signing)",
    ("retention", "callbacks"): "retention deletes old deliveries with the rest of a tenant's history",
}

# The composition roots wire every room together.
COMPOSITION_ROOTS = frozenset({"beastflow/asgi.py", "beastflow/urls.py"})

# Upward arrows that exist today, by file and imported module (issue 14 lists them as left to do).
EXCEPTIONS = {
    ("beastflow/health_checks.py", "tenants.models"): "the readiness check counts tenants",
    ("beastflow/probes.py", "scheduling.beat"): "the beat probe reads the leader lock",
    ("beastflow/probes.py", "tenants.schema_migrations"): "the readiness probe checks tenant migrations",
    ("beastflow/tasks.py", "tenants.selectors"): "the tenant-aware task base finds a tenant's schema",
    ("beastflow/tenancy.py", "tenants.models"): "current_tenant() returns the Tenant row",
    ("tenants/management/commands/bootstrap.py", "engines"): "the bootstrap command seeds the demo's sources",
}


@dataclass(frozen=True)
class Arrow:
    path: str
    line: int
    module: str

    @property
    def source_room(self) -> str:
        return self.path.split("/", 1)[0]

    @property
    def target_room(self) -> str:
        return self.module.split(".", 1)[0]

    def __str__(self) -> str:
        return (
            f"{self.path}:{self.line} imports {self.module} ({self.source_room} may not depend on {self.target_room})"
        )


def _package(path: str) -> list[str]:
    """The package a relative import starts from: the folder (of a module and of an __init__.py alike)."""
    return path.split("/")[:-1]


def _imports(path: str, source: str) -> Iterator[tuple[int, str, tuple[str, ...]]]:
    """Every import in `source`, wherever it stands: its line, the module, the names a `from` import takes."""
    for node in ast.walk(ast.parse(source, filename=path)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            names = tuple(alias.name for alias in node.names)
            if node.level:  # relative: resolved against the file's package
                package = _package(path)
                base = package[: len(package) - node.level + 1]
                yield node.lineno, ".".join([*base, node.module] if node.module else base), names
            elif node.module:
                yield node.lineno, node.module, names
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.lineno, node.args[0].value, ()  # a string import hides an arrow from grep, not from this test


def arrows(path: str, source: str) -> list[Arrow]:
    """Every import of another room in `source` (the file at `path`, relative to the repository)."""
    return [
        Arrow(path=path, line=line, module=module)
        for line, module, _ in _imports(path, source)
        if module.split(".", 1)[0] in ROOMS
    ]


def _allowed(arrow: Arrow) -> bool:
    source, target = arrow.source_room, arrow.target_room
    if source == target or LAYER[target] < LAYER[source]:
        return True
    if arrow.path in COMPOSITION_ROOTS or (source, target) in SIDEWAYS:
        return True
    return any(
        arrow.path == path and (arrow.module == module or arrow.module.startswith(module + "."))
        for path, module in EXCEPTIONS
    )


def forbidden(path: str, source: str) -> list[str]:
    """The arrows of `source` that point the wrong way, as `file:line imports module (why not)`."""
    return [str(arrow) for arrow in arrows(path, source) if not _allowed(arrow)]


def _product_files() -> list[Path]:
    return sorted(file for room in ROOMS for file in (ROOT / room).rglob("*.py") if "migrations" not in file.parts)


def test_every_import_of_the_product_points_downward() -> None:
    # given
    files = _product_files()
    # when
    wrong = [line for file in files for line in forbidden(file.relative_to(ROOT).as_posix(), file.read_text())]
    # then
    assert len(files) > 200  # the walk found the rooms
    assert wrong == []


def test_engines_import_nothing_from_the_rooms_above_them() -> None:
    above = {"healing", "callbacks", "console", "observability", "strategies", "retention"}
    files = [file for file in _product_files() if file.relative_to(ROOT).parts[0] == "engines"]
    upward = [
        str(arrow)
        for file in files
        for arrow in arrows(file.relative_to(ROOT).as_posix(), file.read_text())
        if arrow.target_room in above
    ]
    assert upward == []


def test_the_simulator_imports_no_room_of_ours() -> None:
    # given: the simulator's files, and one that would read the settings helpers of beastflow
    files = [file for file in _product_files() if file.relative_to(ROOT).parts[0] == "simulator"]
    # when
    imported = {
        arrow.target_room
        for file in files
        for arrow in arrows(file.relative_to(ROOT).as_posix(), file.read_text())
        if arrow.target_room != "simulator"
    }
    # then: not even beastflow, which shares its layer
    assert len(files) > 10
    assert imported == set()
    assert forbidden("simulator/example.py", "from beastflow.env import env_int\n") == [
        "simulator/example.py:1 imports beastflow.env (simulator may not depend on beastflow)"
    ]


# What the connectors (engines/connectors/) may read of the rest of the engines: the
# sources' configuration, the poll policy's Retry-After parser, and the ingest path's
# validation and planning (a polled page is validated and hashed like a push).
CONNECTORS_READ = ("engines.connectors", "engines.schemas", "engines.polling_policy", "engines.ingest")


def test_the_connectors_read_no_model_and_none_of_the_engines_that_use_them() -> None:
    # given
    files = [file for file in _product_files() if file.relative_to(ROOT).parts[:2] == ("engines", "connectors")]
    # when
    wrong = [
        str(arrow)
        for file in files
        for arrow in arrows(file.relative_to(ROOT).as_posix(), file.read_text())
        if arrow.target_room == "engines"
        and not any(arrow.module == name or arrow.module.startswith(name + ".") for name in CONNECTORS_READ)
    ]
    # then: no engines.models, polling, reconcile, sources, monitor, tasks
    assert len(files) >= 8
    assert wrong == []


def test_a_function_local_import_of_a_room_above_is_named_with_its_file_and_line() -> None:
    # given: an engine that calls healing from inside a function, the way engines/ once did
    source = '''"""An engine."""

from engines.models import Source


def judge(source: Source) -> None:
    if source.paused:
        from healing.services import failure_report  # breaks a cycle, still an arrow

        failure_report(kind="paused", source_id=source.pk)
'''
    # when
    wrong = forbidden("engines/judge_example.py", source)
    # then
    assert wrong == ["engines/judge_example.py:8 imports healing.services (engines may not depend on healing)"]


def test_a_module_level_import_of_the_console_from_healing_is_refused() -> None:
    wrong = forbidden("healing/example.py", "from console.live import sources_changed\n")
    assert wrong == ["healing/example.py:1 imports console.live (healing may not depend on console)"]


def test_a_string_import_is_an_arrow_too() -> None:
    source = 'import importlib\n\n\ndef handler():\n    return importlib.import_module("healing.actions")\n'
    assert forbidden("engines/reconcile/example.py", source) == [
        "engines/reconcile/example.py:5 imports healing.actions (engines may not depend on healing)"
    ]


def test_a_relative_import_is_resolved_against_its_package() -> None:
    # given: engines/reconcile/x.py importing `..models` means engines.models (down), `...console` would be up
    assert arrows("engines/reconcile/example.py", "from ..models import Source\n")[0].module == "engines.models"
    assert forbidden("engines/reconcile/example.py", "from ..models import Source\n") == []
    assert forbidden("engines/reconcile/example.py", "from ...console import live\n") == [
        "engines/reconcile/example.py:1 imports console (engines may not depend on console)"
    ]


def test_downward_sideways_and_listed_arrows_pass() -> None:
    assert forbidden("console/views.py", "from engines.models import Source\nfrom healing import services\n") == []
    assert forbidden("callbacks/services.py", "from healing.services import failure_report\n") == []
    assert forbidden("beastflow/asgi.py", "from console.routing import websocket_urlpatterns\n") == []
    assert forbidden("beastflow/tenancy.py", "from engines.models import Source\n") == [
        "beastflow/tenancy.py:1 imports engines.models (beastflow may not depend on engines)"
    ]


# -- import cycles between modules -----------------------------------------------------

# The groups of modules that import each other, function-local imports counted
# (a local import keeps a cycle from failing at import time; the modules still
# depend on each other), each with why it stays. docs/architecture.md names them.
CYCLES = {
    frozenset(
        {
            "simulator.profiles",
            "simulator.profiles.base",
            "simulator.profiles.beastflow",
            "simulator.profiles.github",
            "simulator.profiles.shopify",
            "simulator.profiles.stripe",
            "simulator.state",
        }
    ): "the simulator's state builds a profile, which names the Simulator in type hints only (TYPE_CHECKING)",
}


def module_of(path: str) -> str:
    """The dotted name of the module at `path` (a package's __init__.py is the package)."""
    parts = path.removesuffix(".py").split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_graph(files: Mapping[str, str]) -> dict[str, set[str]]:
    """Each module of `files` (path -> text) with the modules of `files` it imports, named as precisely as
    the import allows: `from engines import outbound` is engines.outbound, `from engines.models import
    Source` engines.models."""
    paths = {module_of(path): path for path in files}
    graph: dict[str, set[str]] = {}
    for module, path in paths.items():
        targets: set[str] = set()
        for _, imported, names in _imports(path, files[path]):
            for name in [f"{imported}.{taken}" for taken in names] or [imported]:
                while name and name not in paths:  # a name in a module, or a module outside the files
                    name = name.rpartition(".")[0]
                if name and name != module:
                    targets.add(name)
        graph[module] = targets
    return graph


def cycles(graph: Mapping[str, set[str]]) -> list[frozenset[str]]:
    """The groups of two or more modules that reach each other through their imports (Tarjan's strongly
    connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[frozenset[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = {stack.pop()}
            while module not in group:
                group.add(stack.pop())
            if len(group) > 1:
                found.append(frozenset(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_modules_import_each_other_only_in_the_listed_cycles() -> None:
    # given
    files = {file.relative_to(ROOT).as_posix(): file.read_text() for file in _product_files()}
    # when
    found = cycles(module_graph(files))
    # then: no other cycle, and none listed that is gone (the list is what docs/architecture.md says)
    assert [sorted(group) for group in found if group not in CYCLES] == []
    assert [sorted(group) for group in CYCLES if group not in found] == []


def test_a_function_local_import_that_closes_a_loop_is_a_cycle() -> None:
    # given: the judge and the monitor as they were: the judge read the monitor's helpers, and the
    # monitor's entry point called the judge from inside a function
    files = {
        "engines/judge.py": "from engines.monitor import signals_for\n",
        "engines/monitor.py": (
            "from engines import outbound\n\n\ndef monitor_source():\n    from engines.judge import judge_sources\n"
        ),
        "engines/outbound.py": "",
    }
    # when
    graph = module_graph(files)
    # then
    assert graph == {
        "engines.judge": {"engines.monitor"},
        "engines.monitor": {"engines.outbound", "engines.judge"},
        "engines.outbound": set(),
    }
    assert cycles(graph) == [frozenset({"engines.judge", "engines.monitor"})]
