"""The import rules between packages (docs/ARCHITECTURE.md §1), checked on the source itself.

- `evaluator` imports nothing of `challenges` or `marketplace`; `hub` imports none of the three;
- `challenges` reaches the evaluator only through `evaluator.contract` and `evaluator.api`;
- `client/` (the teams' `hub-submit`) imports nothing of the server;
- `evaluator.contract` imports only pydantic, blinker and the standard library;
- no import hides inside a function (the way a cycle is usually dodged), except the optional modules below;
- the package graph has no cycle.
The lists of known violations are what the issue-10 move has not reached yet: they may only shrink. A
violation that is gone must leave its list too, so the lists always say exactly what is left.
"""
from __future__ import annotations

import ast
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("hub", "marketplace", "challenges", "evaluator")
# Modules a function may import lazily on purpose: optional, or heavy and needed by one rare path (zxcvbn's
# frequency lists take a second to load: only a password change needs them).
OPTIONAL = {"docker", "playwright", "sklearn", "psycopg", "gunicorn", "zxcvbn"}
FORBIDDEN = {"hub": {"marketplace", "challenges", "evaluator"}, "evaluator": {"challenges", "marketplace"}}
CHALLENGES_MAY_USE = {"evaluator.contract", "evaluator.api"}

# (file, imported module): evaluator → challenges imports still to remove (the Run table and the node move).
KNOWN_CROSSINGS: Counter[tuple[str, str]] = Counter({
    ('evaluator/demo.py', 'challenges.demo'): 1,
    ('evaluator/demo.py', 'challenges.models'): 1,
    ('evaluator/dispatch.py', 'challenges.models'): 1,
    ('evaluator/jobs.py', 'challenges.models'): 1,
    ('evaluator/jobs.py', 'challenges.scoring'): 1,
    ('evaluator/quota/demo.py', 'challenges.models'): 1,
    ('evaluator/quota/ledger.py', 'challenges.models'): 1,
    ('evaluator/quota/reservations.py', 'challenges.models'): 1,
    ('evaluator/quota/statements.py', 'challenges.models'): 1,
    ('evaluator/quota/team_quota.py', 'challenges.models'): 1,
    ('evaluator/quota/views.py', 'challenges.models'): 1,
    ('evaluator/reaper.py', 'challenges.models'): 1,
    ('evaluator/seams.py', 'challenges.challenges'): 2,
    ('evaluator/seams.py', 'challenges.datasets'): 1,
    ('evaluator/seams.py', 'challenges.models'): 1,
    ('evaluator/seams.py', 'challenges.outcomes'): 1,
    ('evaluator/seams.py', 'challenges.retention'): 1,
    ('evaluator/seams.py', 'challenges.submissions'): 6,
    ('evaluator/seams.py', 'challenges.teams'): 1,
    ('evaluator/state.py', 'challenges.models'): 1,
    ('evaluator/submit.py', 'challenges.challenges'): 1,
    ('evaluator/submit.py', 'challenges.models'): 1,
    ('evaluator/submit.py', 'challenges.submissions'): 1,
    ('evaluator/views.py', 'challenges.api'): 1,
    ('evaluator/views.py', 'challenges.models'): 1,
})
# (file, function-level import count): imports inside functions still to move to the top of their module.
KNOWN_HIDDEN: dict[str, int] = {
    'challenges/demo.py': 1,
    'evaluator/commands.py': 2,
    'evaluator/demo.py': 2,
    'evaluator/embedded.py': 3,
    'evaluator/seams.py': 13,
    'evaluator/submit.py': 8,
}


def _modules() -> list[Path]:
    files = [ROOT / "app.py"]
    for package in PACKAGES:
        files += sorted((ROOT / package).rglob("*.py"))
    return files


def _imports(tree: ast.AST) -> list[tuple[list[str], bool]]:
    """(modules named, inside a function) per import statement; `from pkg import mod` names `pkg.mod`."""
    found: list[tuple[list[str], bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.append(([alias.name for alias in child.names], inside))
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                names = ([f"{child.module}.{alias.name}" for alias in child.names] if "." not in child.module
                         and child.module in PACKAGES else [child.module])
                found.append((names, inside))
            visit(child, inside)

    visit(tree, False)
    return found


def _scan() -> tuple[Counter[tuple[str, str]], dict[str, int], dict[str, set[str]], list[str]]:
    crossings: Counter[tuple[str, str]] = Counter()
    hidden: dict[str, int] = {}
    graph: dict[str, set[str]] = {p: set() for p in PACKAGES}
    contract_imports: list[str] = []
    for path in _modules():
        rel = path.relative_to(ROOT).as_posix()
        package = rel.split("/", 1)[0] if "/" in rel else ""
        tree = ast.parse(path.read_text(encoding="utf-8"), rel)
        for modules, inside in _imports(tree):
            tops = {m.split(".", 1)[0] for m in modules}
            if inside and not tops <= OPTIONAL and not set(modules) <= OPTIONAL:
                hidden[rel] = hidden.get(rel, 0) + 1
            for module in modules:
                top = module.split(".", 1)[0]
                two = ".".join(module.split(".")[:2])
                if package in PACKAGES and top in PACKAGES and top != package:
                    graph[package].add(top)
                    forbidden = top in FORBIDDEN.get(package, ())
                    narrow = package == "challenges" and top == "evaluator" and not any(
                        module == m or module.startswith(m + ".") for m in CHALLENGES_MAY_USE)
                    if forbidden or narrow:
                        crossings[(rel, two)] += 1
                if rel == "evaluator/contract.py" and top not in ("pydantic", "blinker", "__future__") and \
                        top not in sys.stdlib_module_names:
                    contract_imports.append(module)
    hidden = {k: v for k, v in hidden.items() if v}
    return crossings, hidden, graph, contract_imports


def test_no_new_crossing_between_packages() -> None:
    crossings, _hidden, _graph, _ = _scan()
    new = {k: v for k, v in crossings.items() if k not in KNOWN_CROSSINGS}
    assert not new, f"imports across a package boundary the architecture forbids: {sorted(new)}"
    gone = sorted(set(KNOWN_CROSSINGS) - set(crossings))
    assert not gone, f"these crossings are gone: take them out of KNOWN_CROSSINGS: {gone}"


def test_no_new_import_hidden_in_a_function() -> None:
    _crossings, hidden, _graph, _ = _scan()
    grown = {f: n for f, n in hidden.items() if n > KNOWN_HIDDEN.get(f, 0)}
    assert not grown, f"imports inside functions (move them to the top of the module): {grown}"
    shrunk = {f: (KNOWN_HIDDEN[f], hidden.get(f, 0)) for f in KNOWN_HIDDEN if hidden.get(f, 0) < KNOWN_HIDDEN[f]}
    assert not shrunk, f"fewer hidden imports than listed: update KNOWN_HIDDEN (was, now): {shrunk}"


def test_the_team_client_imports_nothing_of_the_server() -> None:
    bad = []
    for path in sorted((ROOT / "client").rglob("*.py")):
        for modules, _inside in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            bad += [(path.relative_to(ROOT).as_posix(), m) for m in modules if m.split(".", 1)[0] in PACKAGES]
    assert not bad, f"client/ is installed on teams' machines alone: {bad}"


def test_the_contract_stands_alone() -> None:
    *_rest, contract_imports = _scan()
    assert contract_imports == [], "evaluator.contract must import only pydantic, blinker and the standard library"


def test_the_package_graph_has_no_cycle_once_the_known_crossings_are_gone() -> None:
    crossings, _hidden, graph, _ = _scan()
    # The known crossings are the cycle being taken apart; without them the graph must be acyclic.
    if any(package.startswith("evaluator/") for package, _m in crossings):
        graph["evaluator"] -= {"challenges", "marketplace"}
    seen: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        if seen.get(node) == 1:
            raise AssertionError("import cycle between packages: " + " → ".join(path + [node]))
        if seen.get(node) == 2:
            return
        seen[node] = 1
        for nxt in sorted(graph.get(node, ())):
            visit(nxt, path + [node])
        seen[node] = 2

    for package in PACKAGES:
        visit(package, [])
