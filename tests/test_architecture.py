"""The layout's rules, checked on the source: data flows one way between packages (no
package imports one that imports it back, function-level imports included), and a config
validates without importing torch."""
import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "ptft_ray"
PACKAGES = {p.name for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}


def _unit(path: Path) -> str:
    rel = path.relative_to(PKG).parts
    return rel[0] if len(rel) > 1 else rel[0].removesuffix(".py")


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for f in PKG.rglob("*.py"):
        me = _unit(f)
        depth = len(f.relative_to(PKG).parts) - 1   # 0: ptft_ray/x.py, 1: ptft_ray/pkg/x.py
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                up = node.level - 1                 # levels above this file's package
                if up > depth:
                    continue
                parts = (list(f.relative_to(PKG).parts[:depth - up]) + (node.module or "").split("."))
                parts = [p for p in parts if p]
                names = [parts[0]] if parts else [a.name for a in node.names]
                for target in names:
                    target = target.removesuffix(".py")
                    if target != me and (target in PACKAGES or (PKG / f"{target}.py").is_file()):
                        graph[me].add(target)
    return graph


def test_no_import_cycle_between_packages_and_modules():
    graph = import_graph()
    cycles = []
    for a in list(graph):
        for b in graph[a]:
            if a in _reach(graph, b):
                cycles.append(f"{a} -> {b} -> ... -> {a}")
    assert not cycles, cycles


def _reach(graph, start):
    seen, todo = set(), [start]
    while todo:
        n = todo.pop()
        for m in graph[n]:
            if m not in seen:
                seen.add(m)
                todo.append(m)
    return seen


def test_the_layers_point_one_way():
    """config < data < models < train < finetune < planner < serve < compress < report (each
    uses only those before it)."""
    order = ["data", "models", "train", "finetune", "planner", "serve", "compress", "report"]
    graph = import_graph()
    for i, a in enumerate(order):
        for b in order[i + 1:]:
            assert b not in graph[a], f"{a} imports {b}, a later stage"


def test_config_validates_without_importing_torch():
    code = ("import sys; from ptft_ray.config import load_config; "
            "load_config('jobs/configs/debug_sweep.yaml', ['sweep.strategies=[full,lora]']); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PKG.parent).stdout.strip()
    assert out == "False"
