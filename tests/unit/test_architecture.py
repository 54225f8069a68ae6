"""The house's rules, read from the source: the library never reaches up into the Prefect layer, the
gate stays a pure function, the imports form no cycle, modules stay small, and the CLI starts light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "sentinel"


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function (a lazy import is an import too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            if node.module == "sentinel":  # `from sentinel import drift` imports sentinel.drift
                found |= {f"sentinel.{alias.name}" for alias in node.names}
    return found


def library_graph() -> dict[str, set[str]]:
    """sentinel.X -> the sentinel modules it imports."""
    modules = {f"sentinel.{p.stem}": p for p in LIBRARY.glob("*.py") if p.stem != "__init__"}
    return {name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()}


def test_the_library_never_imports_flows_or_deployments():
    offenders = {
        str(path.relative_to(ROOT)): sorted(m for m in imports_of(path) if m.split(".")[0] in ("flows", "deployments"))
        for path in LIBRARY.glob("*.py")
    }
    assert not {k: v for k, v in offenders.items() if v}


def test_the_gate_is_a_pure_function_of_its_inputs():
    graph = library_graph()
    reached, frontier = set(), ["sentinel.gate"]
    while frontier:  # everything the gate imports, directly or through other sentinel modules
        module = frontier.pop()
        reached.add(module)
        frontier += [m for m in graph[module] if m not in reached]
    external = set().union(*(imports_of(LIBRARY / f"{m.removeprefix('sentinel.')}.py") for m in reached))
    assert not reached & {"sentinel.registry", "sentinel.ledger", "sentinel.context"}, reached
    assert not {m.split(".")[0] for m in external} & {"mlflow", "sqlalchemy", "prefect", "evidently"}


def test_the_library_imports_form_no_cycle():
    graph = library_graph()
    state: dict[str, str] = {}

    def visit(module: str, stack: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                pytest.fail("import cycle: " + " -> ".join(stack[stack.index(target) :] + [target]))
            if target not in state:
                visit(target, stack + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_no_library_module_is_over_500_lines():
    long = {p.name: n for p in LIBRARY.glob("*.py") if (n := len(p.read_text().splitlines())) > 500}
    assert not long


def test_importing_the_cli_pulls_in_no_heavy_library():
    """`sentinel --help` and the ledger's read commands must not pay for Evidently, MLflow, Prefect or
    scikit-learn; each command imports what it uses."""
    probe = "import sys, sentinel.cli; print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    loaded = set(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT).stdout.split())
    assert not loaded & {"evidently", "mlflow", "prefect", "sklearn", "pandas", "sqlalchemy"}


def test_the_process_serving_the_deployments_loads_no_data_library():
    """`sentinel up` keeps the process that serves the deployments for as long as it runs; each flow run is
    a process of its own that imports what it uses, so the server needs only Prefect and the flows."""
    probe = "import sys, deployments.serve; print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    loaded = set(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT).stdout.split())
    assert "prefect" in loaded and not loaded & {"evidently", "mlflow", "sklearn", "pandas", "sqlalchemy"}


def test_the_checked_in_prefect_yaml_is_the_generated_one():
    from deployments.declared import prefect_yaml

    checked_in = (ROOT / "deployments" / "prefect.yaml").read_text()
    assert checked_in == prefect_yaml(), (
        "deployments/prefect.yaml is stale: run `python -m deployments.declared > deployments/prefect.yaml`"
    )


def test_served_deployments_follow_the_declaration():
    """serve.py builds exactly the declared deployments, with the declared triggers and schedules."""
    from deployments import serve
    from deployments.declared import declared
    from sentinel.settings import Settings

    settings = Settings(up={"reconcile_seconds": 45, "report_cron": "5 4 * * *", "retrain_quiet_seconds": 7})
    built = {d.name: d for d in serve.deployments(settings)}
    assert set(built) == {d.name for d in declared(settings.up)}
    assert built["retrain"].triggers[0].within.total_seconds() == 21
    assert built["drift-check"].triggers[0].match.root == {"sentinel.check": "deployment"}
    assert built["reconcile"].schedules[0].schedule.interval.total_seconds() == 45
    assert built["drift-report"].schedules[0].schedule.cron == "5 4 * * *"


@pytest.mark.parametrize("command", [["batches", "--json"], ["history", "--json"], ["batches", "--quarantined"]])
def test_the_ledgers_read_commands_load_no_heavy_library(tmp_path, command):
    """What reads only the ledger imports only SQLAlchemy: no MLflow, Evidently, Prefect, scikit-learn or pandas."""
    probe = (
        "import sys\nfrom sentinel.cli import app\ntry:\n    app(sys.argv[1:])\nexcept SystemExit as exit:\n    assert not exit.code, exit.code\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})), file=sys.stderr)"
    )
    env = {"SENTINEL_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    ran = subprocess.run([sys.executable, "-c", probe, *command], capture_output=True, text=True, env=env, timeout=60)
    assert ran.returncode == 0, ran.stderr
    loaded = set(ran.stderr.split())
    assert not loaded & {"evidently", "mlflow", "prefect", "sklearn", "pandas", "scipy"}
