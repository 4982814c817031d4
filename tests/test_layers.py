"""The layers' direction: a module imports only its own layer or lower ones.

models <- exporters <- runners <- measurement and store <- scheduling <- pipeline
<- fleet <- reports and gate <- commands <- tools. The code in `common` (errors, file
writing) serves every layer. Imports inside functions count too: hiding one in a
function does not change which layer depends on which. And an import inside a
function says why it is there (a comment on its line or the line above), since
the top of the module is where a reader looks for what a module needs."""
from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The import name of each folder of the checkout (pyproject's package-dir: bench/ is
# `modbench`, models/ is `modbench.models`, ...); tools/ is imported from the checkout.
PACKAGE_DIR = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
FOLDER_NAME = {folder: name for name, folder in PACKAGE_DIR.items()} | {"tools": "tools"}
PACKAGES = ("modbench", "tools")

# Bottom to top; a module belongs to the first layer whose prefix names it.
LAYERS = [
    ("foundation", ("modbench.common", "modbench.vocab", "modbench.env", "modbench.stats",
                    "modbench.textable", "modbench.progress", "modbench.gpu_env")),
    ("models", ("modbench.models",)),
    ("exporters", ("modbench.exporters",)),
    ("runners", ("modbench.runners",)),
    ("measurement and store", ("modbench.busy", "modbench.machine_ref", "modbench.measurement",
                               "modbench.schema", "modbench.store")),
    ("scheduling", ("modbench.schedule",)),
    ("pipeline", ("modbench.pipeline", "modbench.specs", "modbench.catalog", "modbench.profiling")),
    ("fleet", ("modbench.fleet",)),
    ("reports and gate", ("modbench.report", "modbench.gate", "modbench.history")),
    ("commands", ("modbench.commands", "modbench.api", "modbench.cli", "modbench.__main__", "modbench")),
    # Self-benchmarks, demos and scripts: above the product, never imported by it.
    ("tools", ("tools",)),
]


def layer_of(module: str) -> int:
    for i, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    raise KeyError(module)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([FOLDER_NAME[parts[0]], *parts[1:]])


def module_path(name: str) -> Path:
    """The file or folder of an import name, through the longest package-dir entry."""
    for prefix in sorted(PACKAGE_DIR, key=len, reverse=True) + ["tools"]:
        if name == prefix or name.startswith(prefix + "."):
            folder = PACKAGE_DIR.get(prefix, prefix)
            return ROOT.joinpath(folder, *name[len(prefix):].split(".")[1:])
    return ROOT.joinpath(*name.split("."))


def is_module(name: str) -> bool:
    path = module_path(name)
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def project_modules() -> list[Path]:
    return sorted(p for folder in FOLDER_NAME for p in (ROOT / folder).rglob("*.py"))


def imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported project module, line, inside a function) for every import statement."""
    tree = ast.parse(path.read_text(), str(path))
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                out.extend((a.name, child.lineno, in_function) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[:len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                # `from . import store` imports the module modbench.store, not the package.
                subs = [f"{target}.{a.name}" for a in child.names if is_module(f"{target}.{a.name}")]
                out.extend((t, child.lineno, in_function) for t in (subs or [target]))
            visit(child, inside)
    visit(tree, False)
    return [(m, line, f) for m, line, f in out if m.split(".")[0] in PACKAGES]


@pytest.mark.parametrize("path", project_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_a_module_imports_only_its_layer_or_lower(path):
    me = module_name(path)
    mine = layer_of(me)
    upward = [f"{path.relative_to(ROOT)}:{line} imports {m} ({LAYERS[layer_of(m)][0]}) "
              f"from the {LAYERS[mine][0]} layer"
              for m, line, _ in imports(path) if layer_of(m) > mine]
    assert not upward, "\n".join(upward)


def _comment_above(lines: list[str], i: int) -> bool:
    """A comment right above line i, or above the run of imports (and blank lines) it
    belongs to: one comment may speak for a group of imports."""
    for line in reversed(lines[:i]):
        text = line.strip()
        if text.startswith("#") or (text.startswith(("import ", "from ")) and "#" in text):
            return True
        if text and not text.startswith(("import ", "from ")) and not text.endswith(",") \
                and not text.endswith(")"):
            return False
    return False


@pytest.mark.parametrize("path", project_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_an_import_inside_a_function_says_why(path):
    lines = path.read_text().splitlines()
    tree = ast.parse("\n".join(lines))
    silent = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for inner in ast.walk(node):
            if isinstance(inner, (ast.Import, ast.ImportFrom)):
                here = lines[inner.lineno - 1]
                if "#" not in here and not _comment_above(lines, inner.lineno - 1):
                    silent.append(f"{path.relative_to(ROOT)}:{inner.lineno}: {here.strip()}")
    assert not silent, "imports inside functions without a comment saying why:\n" + "\n".join(sorted(set(silent)))


def test_every_module_has_a_layer():
    for path in project_modules():
        layer_of(module_name(path))
