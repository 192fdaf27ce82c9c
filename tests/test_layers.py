"""The package's import graph, read from the source (ast): no import circles, and every import
points down the layers: names, checks <- settings, text <- nn <- models <- diffusion, parallel,
checkpoints, data <- eval <- train <- pipeline <- cli, main."""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = "lumiere_jax"

# Lowest first. A unit (a subpackage or a top-level module) imports only its own modules and
# units of lower layers; units that share a layer do not import each other.
LAYERS = (
    ("names", "checks"),                                  # axis names; user-input checks
    ("settings", "text"),                                 # typed config helpers; the tokenizer
    ("nn",),                                              # layers
    ("models",),                                          # pure modules and their configs
    ("diffusion", "parallel", "checkpoints", "data", "applications"),
    ("eval",),
    ("train",),
    ("pipeline",),
    ("cli_applications", "cli_checks", "cli_data"),       # app and data commands; flag checks
    ("cli", "main"),
)
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, pathlib.Path]:
    return {module_name(path): path for path in sorted((ROOT / PACKAGE).rglob("*.py"))}


def imported(node, module: str, modules) -> list[str]:
    """The package modules an import statement loads (a `from package import submodule` loads
    the submodule; a module of another package also loads that package's __init__)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:  # relative: resolve against this module's package
            base = module.rsplit(".", node.level)[0] if module in modules else module
            target = ".".join(filter(None, [base, node.module]))
        else:
            target = node.module or ""
        names = [f"{target}.{alias.name}" if f"{target}.{alias.name}" in modules else target
                 for alias in node.names]
    found = set()
    for name in names:
        if not name.startswith(PACKAGE):
            continue
        while name not in modules and "." in name:
            name = name.rsplit(".", 1)[0]
        found.add(name)
        parent = name.rsplit(".", 1)[0]
        if parent != PACKAGE and parent in modules and not module.startswith(parent + "."):
            found.add(parent)
    found.discard(module)
    return sorted(found)


def import_graph(local: bool):
    """module -> the package modules it imports: at module level, or (local=True) anywhere."""
    modules = all_modules()
    graph = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        nodes = ast.walk(tree) if local else tree.body
        graph[module] = sorted({name for node in nodes if isinstance(node, (ast.Import, ast.ImportFrom))
                                for name in imported(node, module, modules)})
    return graph


def unit(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def find_cycle(graph) -> list[str] | None:
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for successor in graph.get(node, ()):
            if state.get(successor) == "open":
                return stack[stack.index(successor):] + [successor]
            if successor not in state:
                cycle = visit(successor)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in graph:
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def layer_violations(graph) -> list[str]:
    bad = []
    for module, targets in graph.items():
        source = unit(module)
        for target in targets:
            other = unit(target)
            if source is None or other is None or other == source:
                continue
            if RANK[other] >= RANK[source]:
                bad.append(f"{module} imports {target} ({source} is not above {other})")
    return bad


def test_every_unit_of_the_package_has_a_layer():
    units = {unit(module) for module in all_modules()} - {None}
    assert units - set(RANK) == set(), "place new packages in LAYERS"


def test_the_import_graph_has_no_circles():
    assert find_cycle(import_graph(local=False)) is None
    assert find_cycle(import_graph(local=True)) is None


def test_imports_point_down_the_layers():
    assert layer_violations(import_graph(local=True)) == []


def test_no_function_local_imports_of_the_package():
    everywhere, top = import_graph(local=True), import_graph(local=False)
    hidden = {module: sorted(set(everywhere[module]) - set(top[module])) for module in everywhere}
    assert {module: names for module, names in hidden.items() if names} == {}


def test_the_checks_catch_circles_and_upward_imports():
    """The helpers above find what they are meant to find (so the tests above can fail)."""
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": ["b"], "b": []}) is None
    assert layer_violations({"lumiere_jax.models.stunet": ["lumiere_jax.train.loop"]}) == [
        "lumiere_jax.models.stunet imports lumiere_jax.train.loop (models is not above train)"]
    assert layer_violations({"lumiere_jax.nn.attention": ["lumiere_jax.names"],
                             "lumiere_jax.train.loop": ["lumiere_jax.models.build"]}) == []
    with pytest.raises(KeyError):
        layer_violations({"lumiere_jax.newpackage.x": ["lumiere_jax.nn.attention"]})
