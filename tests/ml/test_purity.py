"""app/ml is the pure core: torch, numpy and pydantic (sklearn lazily, for the builtins), no other
part of app, never worker, and no import cycle among its modules."""
import ast
import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ML = ROOT / "app" / "ml"
THIRD_PARTY = {"torch", "numpy", "pydantic", "pydantic_core"}
LAZY = {"sklearn": "app.ml.builtin_datasets"}  # a root imported on use, by this module only


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(ML.rglob("*.py"))}


def imports(path: Path) -> list[tuple[str, bool]]:
    """(imported module, inside a function) for every import statement of the file."""
    tree = ast.parse(path.read_text())
    in_function = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                   for n in ast.walk(f)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, id(node) in in_function) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            # `from app.ml import spec` imports the module app.ml.spec
            subs = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in MODULES]
            found += [(m, id(node) in in_function) for m in subs or [node.module]]
    return found


def test_app_ml_imports_only_the_allowed_libraries_and_itself():
    allowed = set(sys.stdlib_module_names) | THIRD_PARTY | set(LAZY)
    for name, path in MODULES.items():
        for imported, in_function in imports(path):
            root = imported.split(".")[0]
            if root == "app":
                assert imported.startswith("app.ml"), f"{name} imports {imported}: app.ml imports no other part of app"
                assert not in_function, f"{name} imports {imported} inside a function: break the cycle by structure"
                continue
            assert root in allowed, f"{name} imports {imported}: app/ml uses torch, numpy and pydantic only"
            if root in LAZY:
                assert name == LAZY[root] and in_function, f"{name} imports {root}: only {LAZY[root]}, on use"
            else:
                assert not in_function, f"{name} imports {imported} inside a function"


def test_no_import_after_the_first_definition():
    for name, path in MODULES.items():
        seen_definition = False
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                seen_definition = True
            assert not (seen_definition and isinstance(node, (ast.Import, ast.ImportFrom))), \
                f"{name} line {node.lineno}: an import in the middle of the module"


def test_the_import_graph_of_app_ml_has_no_cycle():
    graph = {name: {m for m, _ in imports(path) if m in MODULES and m != name} for name, path in MODULES.items()}
    done, on_path = set(), []

    def visit(name):
        if name in on_path:
            cycle = on_path[on_path.index(name):] + [name]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if name in done:
            return
        on_path.append(name)
        for dep in sorted(graph[name]):
            visit(dep)
        on_path.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)
    assert graph["app.ml.shapes"] >= {"app.ml.layers.registry", "app.ml.layers.residual"}  # the graph is real


def loaded_by_importing(modules) -> set[str]:
    """The modules a fresh interpreter has loaded after importing ``modules``."""
    code = f"import json, sys\nimport {', '.join(modules)}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.splitlines()[-1]))


def canonical(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def distributions_of_the_allowed_libraries() -> set[str]:
    """torch, numpy, pydantic and every distribution they require (recursively): what they may load."""
    todo, seen = ["torch", "numpy", "pydantic"], set()
    while todo:
        name = canonical(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requirements = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo += [re.split(r"[\s;<>=!~\[(]", r, maxsplit=1)[0] for r in requirements if "extra ==" not in r]
    return seen


def test_importing_app_ml_loads_no_other_part_of_app_and_no_other_library():
    """Every app.ml module, imported in a fresh interpreter, loads app.ml, the standard library, and
    torch, numpy and pydantic with what they require or load themselves (torch.hub's optional
    tqdm): no other part of app, no worker, no sklearn."""
    loaded = loaded_by_importing(MODULES)
    assert set(MODULES) <= loaded  # the imports really ran
    assert not {m for m in loaded if m.split(".")[0] == "app" and m != "app" and not m.startswith("app.ml")}
    allowed = distributions_of_the_allowed_libraries()
    owners = metadata.packages_distributions()
    on_their_own = {m.split(".")[0] for m in loaded_by_importing(sorted(THIRD_PARTY))}
    stdlib = set(sys.stdlib_module_names)
    others = {root for root in {m.split(".")[0] for m in loaded} - stdlib - on_their_own - {"app"}
              if not root.startswith("_sysconfigdata")  # the interpreter's own build settings
              and not any(canonical(d) in allowed for d in owners.get(root, []))}
    assert not others, f"importing app.ml loads {sorted(others)}"
