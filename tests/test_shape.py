"""The tree keeps the shape the house rules ask for: files a sitting can read, handlers a screen can hold, and imports
that run one way."""

import ast
import fnmatch
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HELIOS = ROOT / "helios"


def modules() -> dict[str, ast.Module]:
    found = {}
    for path in HELIOS.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = ast.parse(path.read_text(encoding="utf-8"))
    return found


def runtime_imports(name: str, tree: ast.Module, known: set[str]) -> set[str]:
    """The helios modules `name` imports when it runs (what `if TYPE_CHECKING:` guards is not run)."""
    package = name if (HELIOS.parent / name.replace(".", "/") / "__init__.py").exists() else name.rpartition(".")[0]
    guarded = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    found = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or id(node) in guarded:
            continue
        base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
        target = ".".join(base + ([node.module] if node.module else []))
        found |= {t for t in (target, *(f"{target}.{a.name}" for a in node.names)) if t in known}
    return found


def test_no_product_file_is_over_350_lines():
    long = {str(p.relative_to(ROOT)): n for p in [*HELIOS.rglob("*.py"), ROOT / "app.py"]
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 350}
    assert not long, long


def test_no_function_of_the_app_is_over_60_lines():
    long = [f"{path.name}:{node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path in (HELIOS / "studio").glob("*.py")
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60]
    assert not long, long


def test_imports_run_one_way():
    """No module imports one that imports it back, and no folder of helios imports a folder that imports it."""
    trees = modules()
    edges = {name: runtime_imports(name, tree, set(trees)) for name, tree in trees.items()}

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            for nxt in edges[todo.pop()] - seen:
                if nxt == goal:
                    return True
                seen.add(nxt)
                todo.append(nxt)
        return False

    circles = sorted(f"{a} <-> {b}" for a in edges for b in edges[a] if a < b and reaches(b, a))
    assert not circles, circles

    def folder(name: str) -> str | None:
        parts = name.split(".")
        return parts[1] if len(parts) > 2 else None

    pairs = {
        (folder(a), folder(b)) for a in edges for b in edges[a] if folder(a) and folder(b) and folder(a) != folder(b)
    }
    assert not {p for p in pairs if p[::-1] in pairs}, pairs


def test_every_result_kept_is_cited_by_a_readme():
    """benchmarks/results holds what the READMEs cite, by name or by a pattern like `results/h100-profile-*.txt`; the
    rest lives in git's history, named by commit (benchmarks/README.md)."""
    texts = "".join((ROOT / p).read_text(encoding="utf-8")
                    for p in ("README.md", "benchmarks/README.md", "tests/results/README.md"))
    patterns = [m for m in re.findall(r"results/([\w.*-]+)", texts) if "*" in m]
    uncited = [p.name for p in (ROOT / "benchmarks" / "results").iterdir()
               if p.name.rsplit(".", 1)[0] not in texts and not any(fnmatch.fnmatch(p.name, m) for m in patterns)]
    assert not uncited, uncited
