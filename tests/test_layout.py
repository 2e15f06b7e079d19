"""The project's shape: imports form a DAG (lazy imports inside functions
included), the formatter and the linter pass (ruff, settings in ruff.toml), no
statement packs several side effects into a tuple, and every docstring opens
with its paper map, symbols, deviations or choices, and run commands."""

import ast
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULES = sorted(f[:-3] for f in os.listdir(ROOT) if f.endswith(".py"))


def project_imports(module):
    """Every project module `module` imports, at the top or inside a function."""
    tree = ast.parse(open(os.path.join(ROOT, module + ".py")).read())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return sorted(found & set(MODULES) - {module})


def find_cycle(graph):
    """A list of modules forming an import cycle, or None (depth-first search)."""
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for n in graph[m]:
            if state.get(n) == "open":
                return stack[stack.index(n) :] + [n]
            if n not in state:
                cycle = visit(n)
                if cycle:
                    return cycle
        state[m] = "done"
        stack.pop()
        return None

    for m in graph:
        if m not in state:
            cycle = visit(m)
            if cycle:
                return cycle
    return None


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": ["b", "c"], "b": ["c"], "c": []}) is None


def test_imports_form_a_dag():
    graph = {m: project_imports(m) for m in MODULES}
    assert "grpo" in graph and "engines" in graph["thought_mdp"], "the parser sees the project's modules"
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_floors_of_the_layout():
    """The bottom floors import no one above them, and training never imports evaluation."""
    graph = {m: set(project_imports(m)) for m in MODULES}
    assert graph["cpi_toy"] == {"tabular_mdp"} and graph["tabular_mdp"] == set()  # the theory stands alone
    assert graph["sandbox"] == set() and graph["rewards"] == {"sandbox"}
    assert graph["models"] == set() and graph["llama_decode"] == set() and graph["kv_cache"] == set()
    assert graph["compare_results"] == set()  # the comparison's results only read run histories
    assert graph["cpu_share"] == {"models"}  # sharing the cores: machinery beside the model loader
    assert graph["engines"] == {"models", "llama_decode", "kv_cache", "cpu_share"}
    assert graph["release_graders"] == {"rewards"}  # the second verifier sits beside the first
    assert graph["thought_mdp"] <= {"models", "engines", "rewards", "release_graders", "cpu_share"}
    assert graph["tiny_world"] <= {"models", "thought_mdp"}  # the world alone; warm_start.py builds its model
    assert not graph["warm_start"] & {
        "grpo",
        "rrpo",
        "srpo",
        "thought_ics",
        "evaluate",
        "compare_resets",
        "compare_results",
        "benchmarks",
    }
    for trainer in ("grpo", "rrpo", "srpo"):
        assert not graph[trainer] & {"evaluate", "compare_resets", "compare_results", "thought_ics"}, trainer


@pytest.mark.parametrize("module", MODULES)
def test_files_open_with_their_contract(module):
    text = open(os.path.join(ROOT, module + ".py")).read()
    doc = ast.get_docstring(ast.parse(text))
    assert doc and doc.startswith(module + ".py"), f"{module}.py opens with its docstring"
    for section in ("Paper map", "Symbols", "Run it"):
        assert section in doc, f"{module}.py's docstring has no '{section}' section"
    assert any(s in doc for s in ("Deviation", "Choices", "Design")), (
        f"{module}.py says where it departs or chooses"
    )


@pytest.mark.parametrize("module", MODULES)
def test_the_project_speaks_of_itself(module):
    """No pointer a user who clones the project could not follow."""
    text = open(os.path.join(ROOT, module + ".py")).read()
    for outside in ("../shared", "REFERENCE-apis", "issue tracker", "issue 7", "issue 6", "issue 8"):
        assert outside not in text, f"{module}.py mentions {outside!r}"


@pytest.mark.parametrize("check", [["format", "--check", "--diff"], ["check"]])
def test_ruff_passes(check):
    """The formatter decides the layout and the linter finds nothing (E, F, W, I):
    unformatted code, an unused import or a lambda assignment fails the suite."""
    done = subprocess.run([sys.executable, "-m", "ruff", *check, ROOT], capture_output=True, text=True)
    assert done.returncode == 0, f"ruff {' '.join(check)}:\n{done.stdout}{done.stderr}"


def packed_statements(text):
    """Line numbers of statements that are a bare tuple of expressions, such as
    `a.append(x), b.append(y)`: side effects squeezed onto one line."""
    return [
        node.lineno
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Tuple)
    ]


def test_the_packed_statement_finder_finds_them():
    assert packed_statements("a = []\nb = []\na.append(1), b.append(2)\n") == [3]
    assert packed_statements("x = (1, 2)\nf(x)\n") == []


@pytest.mark.parametrize("module", MODULES)
def test_no_statement_packs_side_effects_into_a_tuple(module):
    assert packed_statements(open(os.path.join(ROOT, module + ".py")).read()) == [], module
