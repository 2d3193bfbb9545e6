"""The shape of the code, checked from its own imports: stages import only earlier stages, no import cycle,
one door to the video decoder, no printing or pyplot in library modules, modules of a readable size."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "vidseq"

#: The stages of the flow, in order: a module may import from its own stage and the ones before it.
STAGES = [
    {"vidseq", "vidseq.errors", "vidseq.files", "vidseq.progress"},
    {"vidseq.io"},
    {"vidseq.sampling", "vidseq.scores", "vidseq.datasets", "vidseq.extract"},
    {"vidseq.clips"},
    {"vidseq.models"},
    {"vidseq.runs"},
    {"vidseq.train"},
    {"vidseq.evaluate", "vidseq.predict", "vidseq.timeline"},
    {"vidseq.export"},
    {"vidseq.serve"},
    {"vidseq.demo", "vidseq.cli", "vidseq.__main__"},
]
LIBRARY_EXEMPT = ("vidseq.cli", "vidseq.demo", "vidseq.__main__")  # the only places that print
DECODERS = {"av", "torchcodec"}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def resolve(name: str) -> str:
    """The module that an import of `name` loads (a name imported from a module resolves to the module)."""
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def imports(mod: str) -> list[tuple[str, int]]:
    """(imported name, line) of every import in module `mod`, at top level or inside functions."""
    tree = ast.parse(MODULES[mod].read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module if not node.level else ".".join(mod.split(".")[: -node.level] + [node.module])
            out += [(f"{base}.{a.name}", node.lineno) for a in node.names]
    return out


def vidseq_edges(mod: str) -> set[str]:
    return {resolve(name) for name, _ in imports(mod) if name.split(".")[0] == "vidseq"} - {mod}


def stage_of(mod: str) -> int:
    for i, stage in enumerate(STAGES):
        if any(mod == s or mod.startswith(s + ".") for s in stage if s != "vidseq") or mod in stage:
            return i
    raise AssertionError(f"{mod} belongs to no stage: add it to STAGES")


def test_every_module_belongs_to_a_stage():
    for mod in MODULES:
        stage_of(mod)


def test_stages_import_only_earlier_stages():
    wrong = [f"{mod} (stage {stage_of(mod)}) imports {dep} (stage {stage_of(dep)})"
             for mod in MODULES for dep in vidseq_edges(mod) if stage_of(dep) > stage_of(mod)]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle():
    graph = {mod: {d for d in vidseq_edges(mod) if not mod.startswith(d + ".")} for mod in MODULES}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(mod: str, path: list[str]) -> None:
        state[mod] = 1
        for dep in sorted(graph[mod]):
            if state.get(dep) == 1:
                cycle = path[path.index(dep):] + [dep]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep, path + [dep])
        state[mod] = 2

    for mod in MODULES:
        if mod not in state:
            visit(mod, [mod])


def test_only_the_io_package_imports_a_decoder():
    found = [f"{mod}:{line} imports {name}" for mod in MODULES if not mod.startswith("vidseq.io")
             for name, line in imports(mod) if name.split(".")[0] in DECODERS]
    assert not found, "\n".join(found)
    assert any(name.split(".")[0] == "av" for name, _ in imports("vidseq.io.video"))


def test_library_modules_neither_print_nor_use_pyplot():
    found = []
    for mod, path in MODULES.items():
        if mod.startswith(LIBRARY_EXEMPT):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                found.append(f"{mod}:{node.lineno} calls print")
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "use"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "matplotlib"):
                found.append(f"{mod}:{node.lineno} switches matplotlib's backend")
        found += [f"{mod}:{line} imports pyplot" for name, line in imports(mod) if name.startswith("matplotlib.pyplot")]
    assert not found, "\n".join(found)


def test_modules_stay_readable_in_size():
    long = {mod: n for mod, p in MODULES.items() if (n := len(p.read_text().splitlines())) > 420}
    assert not long, f"modules over about 400 lines: {long}"
