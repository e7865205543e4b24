"""The shape of medcl's code, for the architecture issue's before/after figures.

    python bench/code_shape.py [--json OUT.json] [--top 10]

Prints: the largest files and functions (lines, deepest nesting), the import graph's circles
(every ``import`` of a medcl module, lazy ones inside functions included), private names used
across modules, config dataclass fields per level, and defaults written more than once (the
same parameter name with the same literal default in several places: dataclass fields,
function keywords, click options). Reads the source only (nothing is imported).
"""
from __future__ import annotations

import argparse
import ast
import json
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def sources(root: Path = ROOT) -> dict[str, Path]:
    """Module name → file, for medcl/ and cli/ (installed as medcl.cli)."""
    out = {}
    for base, prefix in ((root / "medcl", "medcl"), (root / "cli", "medcl.cli")):
        for path in sorted(base.rglob("*.py")):
            parts = path.relative_to(base).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join((prefix, *parts))] = path
    return out


def _depth(node: ast.AST, level: int = 0) -> int:
    nested = (ast.If, ast.For, ast.While, ast.With, ast.Try, ast.AsyncFor, ast.AsyncWith,
              ast.FunctionDef, ast.AsyncFunctionDef, ast.Match)
    deepest = level
    for child in ast.iter_child_nodes(node):
        deepest = max(deepest, _depth(child, level + isinstance(child, nested)))
    return deepest


def functions(mods: dict[str, Path]) -> list[dict]:
    rows = []
    for mod, path in mods.items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                rows.append({"function": f"{mod}.{node.name}", "lines": node.end_lineno - node.lineno + 1,
                             "depth": _depth(node), "closures": sum(
                                 isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) for n in ast.walk(node)) - 1})
    return sorted(rows, key=lambda r: -r["lines"])


def _resolve(mod: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
    base = package[:len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def imports(mods: dict[str, Path]) -> tuple[dict[str, set[str]], list[tuple[str, str, str]]]:
    """The import graph between medcl modules, and (importer, module, name) for private names."""
    graph: dict[str, set[str]] = defaultdict(set)
    private = []

    def target(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    for mod, path in mods.items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    t = target(a.name)
                    if t and t != mod:
                        graph[mod].add(t)
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(mod, path, node)
                if not base.startswith("medcl"):
                    continue
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    t = target(sub) if sub in mods else target(base)
                    if t and t != mod:
                        graph[mod].add(t)
                    if a.name.startswith("_") and not a.name.startswith("__") and sub not in mods:
                        private.append((mod, base, a.name))
    return graph, private


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan). A package's __init__
    importing its own submodules is not a circle unless a submodule imports the package back
    for a name it re-exports, so edges from a package to its own children are ignored."""
    def own_child(a: str, b: str) -> bool:
        return b.startswith(a + ".")

    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if own_child(v, w):
                continue
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
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def _literal(node: ast.AST):
    try:
        value = ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        return None
    if isinstance(value, bool) or value is None or value == () or value == "":
        return None  # switches and "unset" are not defaults worth counting
    return value


def defaults(mods: dict[str, Path]) -> dict[str, list[str]]:
    """'name=value' → the places it is written, for those written more than once."""
    seen: dict[str, list[str]] = defaultdict(list)
    for mod, path in mods.items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            pairs = []
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = node.args
                pos = a.posonlyargs + a.args
                pairs += list(zip([x.arg for x in pos[len(pos) - len(a.defaults):]], a.defaults))
                pairs += [(k.arg, d) for k, d in zip(a.kwonlyargs, a.kw_defaults) if d is not None]
            elif isinstance(node, ast.ClassDef):
                for stmt in node.body:
                    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value:
                        value = stmt.value
                        if isinstance(value, ast.Call) and getattr(value.func, "id", "") in ("field", "option"):
                            value = next((k.value for k in value.keywords if k.arg == "default"),
                                         value.args[0] if value.args else None)
                        if value is not None:
                            pairs.append((stmt.target.id, value))
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "option" and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    name = first.value.lstrip("-").split("/")[0].replace("-", "_")
                    pairs += [(name, k.value) for k in node.keywords if k.arg == "default"]
            for name, value_node in pairs:
                value = _literal(value_node)
                if value is not None:
                    seen[f"{name}={value!r}"].append(f"{mod}:{value_node.lineno}")
    return {k: v for k, v in sorted(seen.items(), key=lambda kv: -len(kv[1])) if len(v) > 1}


def config_levels(mods: dict[str, Path]) -> dict[str, int]:
    """Fields of each *Config dataclass."""
    out = {}
    for mod, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.name.endswith("Config"):
                n = sum(isinstance(s, ast.AnnAssign) for s in node.body)
                if n:
                    out[f"{mod}.{node.name}"] = n
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def measure(root: Path = ROOT) -> dict:
    mods = sources(root)
    graph, private = imports(mods)
    files = sorted(({"file": str(p.relative_to(root)), "lines": len(p.read_text().splitlines())}
                    for p in mods.values()), key=lambda r: -r["lines"])
    dup = defaults(mods)
    return {"files": files, "functions": functions(mods), "circles": circles(graph),
            "private_imports": [f"{a} ← {b}.{n}" for a, b, n in private],
            "configs": config_levels(mods), "repeated_defaults": dup,
            "totals": {"modules": len(mods), "lines": sum(f["lines"] for f in files),
                       "circles": len(circles(graph)), "private_imports": len(private),
                       "repeated_defaults": len(dup),
                       "extra_default_writes": sum(len(v) - 1 for v in dup.values())}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--top", type=int, default=10, help="rows per table")
    args = ap.parse_args(argv)
    m = measure()
    print("largest files:")
    for r in m["files"][:args.top]:
        print(f"  {r['lines']:5d}  {r['file']}")
    print("largest functions (lines, nesting depth, nested functions):")
    for r in m["functions"][:args.top]:
        print(f"  {r['lines']:5d}  depth {r['depth']}  closures {r['closures']}  {r['function']}")
    print(f"import circles: {len(m['circles'])}")
    for c in m["circles"]:
        print("  " + " ↔ ".join(c))
    print(f"private names imported across modules: {len(m['private_imports'])}")
    for p in m["private_imports"][:args.top]:
        print(f"  {p}")
    print("config dataclasses (fields):")
    for k, v in list(m["configs"].items())[:args.top]:
        print(f"  {v:3d}  {k}")
    t = m["totals"]
    print(f"defaults written more than once: {t['repeated_defaults']} (name, value) pairs, "
          f"{t['extra_default_writes']} extra writes")
    for k, v in list(m["repeated_defaults"].items())[:args.top]:
        print(f"  {len(v):3d}×  {k}")
    print(f"modules {t['modules']}, lines {t['lines']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(m, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
