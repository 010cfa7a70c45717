"""The package's shape: few loose modules, and imports that point one way (down the layers)."""

import ast
from pathlib import Path

SEQBENCH = Path(__file__).resolve().parents[1] / "seqbench"
# bottom to top: a module may import from its own layer's package and from the ones before it
LAYERS = [
    ["__init__", "errors", "io"],
    ["models"],
    ["data"],
    ["spec"],
    ["metrics", "baselines"],
    ["training"],
    ["artifacts"],
    ["tasks"],
    ["checks", "run"],
    ["trained", "results", "convert"],
    ["sweeps", "ci"],
    ["report"],
    ["commands"],
    ["cli_syntax"],
    ["cli", "__main__"],
]
LEVEL = {name: level for level, names in enumerate(LAYERS) for name in names}


def imports_of(path: Path) -> list[tuple[str, int]]:
    """The seqbench modules `path` imports at run time (`if TYPE_CHECKING:` blocks left out)."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(child)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING"
        for child in ast.walk(node)
    }
    found = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("seqbench."):
            found.append((node.module, node.lineno))
        elif isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names if alias.name.startswith("seqbench.")]
    return found


def package_of(module: str) -> str:
    """seqbench.run.experiment -> run; seqbench.spec -> spec."""
    return module.split(".")[1]


def test_at_most_ten_modules_are_loose():
    loose = sorted(path.stem for path in SEQBENCH.glob("*.py"))
    assert len(loose) <= 10, loose
    packages = {path.name for path in SEQBENCH.iterdir() if path.is_dir() and path.name != "__pycache__"}
    assert packages <= set(LEVEL)


def test_every_package_is_in_a_layer_and_says_what_lives_there():
    for folder in SEQBENCH.iterdir():
        if folder.is_dir() and folder.name != "__pycache__":
            assert folder.name in LEVEL, folder
            docstring = ast.get_docstring(ast.parse((folder / "__init__.py").read_text()))
            assert docstring and "Imports" in docstring, folder


def test_imports_point_down_the_layers():
    upward = []
    for path in SEQBENCH.rglob("*.py"):
        here = package_of(".".join(path.relative_to(SEQBENCH.parent).with_suffix("").parts))
        for module, line in imports_of(path):
            there = package_of(module)
            if there != here and LEVEL[there] > LEVEL[here]:
                upward.append(f"{path.relative_to(SEQBENCH.parent)}:{line} imports {module}")
    assert not upward, "\n".join(upward)


def test_the_checker_sees_an_upward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from seqbench.cli import app\nif TYPE_CHECKING:\n    from seqbench.report import write\n")
    assert imports_of(bad) == [("seqbench.cli", 1)]
