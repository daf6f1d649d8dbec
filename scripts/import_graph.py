"""The package's import graph between modules (from ``ast``): prints cycles, upward imports and private names
imported across subpackages; exits 1 if any.

    python scripts/import_graph.py
"""

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "tl_neuronprobe"
#: the pipeline's order: a subpackage may import only those before it (core first); None: anything
ORDER = ["core", "data", "probes", "rankers", "interventions", "evaluation", "textualization", "descriptions",
         "reporting", "export", "workflows", "cli"]
FREE = {"testbeds", "testing", "models", "__init__"}  # testbeds/tests helpers and the root


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[str, list[str]]]:
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
            submodules = [a.name for a in node.names if _exists(f"{target}.{a.name}")]
            for sub in submodules:  # ``from . import x`` imports the module x, not its package
                out.append((f"{target}.{sub}", []))
            rest = [a.name for a in node.names if a.name not in submodules]
            if rest:
                out.append((target, rest))
    return out


def _exists(module: str) -> bool:
    path = ROOT.parent.joinpath(*module.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def main() -> int:
    graph: dict[str, set[str]] = {}
    problems = []
    for path in sorted(ROOT.rglob("*.py")):
        src = module_name(path)
        for target, names in imports(path):
            graph.setdefault(src, set()).add(target)
            a, b = stage(src), stage(target)
            if a in ORDER and b in ORDER and ORDER.index(b) > ORDER.index(a):
                problems.append(f"upward import: {src} -> {target}")
            if a in ORDER and b in FREE - {"__init__"} and b != "models":
                problems.append(f"a stage imports a testbed: {src} -> {target}")
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            private += [part for part in target.split(".")[2:] if part.startswith("_") and not part.startswith("__")]
            if private and a != b:
                problems.append(f"private names across subpackages: {src} -> {target}: {private}")
    # module-level cycles (Tarjan)
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in list(graph):
        if v not in index:
            visit(v)
    for c in cycles:
        problems.append("cycle: " + " -> ".join(c))
    edges = sum(len(v) for v in graph.values())
    print(f"{len(graph)} modules, {edges} import edges; {len(cycles)} cycles")
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
