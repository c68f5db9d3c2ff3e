"""Mutation testing of the pure modules against the fast tier (`make mutate`).

mutmut (setup.cfg ``[mutmut]``) copies the packages into ``mutants/`` and makes small changes to the code (``<=`` to
``<``, a constant to another, a call dropped); a change that no test notices "survives", and points at behaviour no
test pins down. This script mutates only the modules below (the rest is copied unchanged, so the copy imports), runs
each mutant against the fast tier's tests that reach its function, and prints the score per module::

    python bench/mutation.py run [--max-children N] [MODULE ...]   # mutmut run, then the report
    python bench/mutation.py report [MODULE ...]                    # the last run's scores and survivors

The score is killed / (killed + survived): mutants no fast test reaches ("no tests") and timeouts are left out, as
mutmut reports them. ``mutmut show <id>`` prints a survivor's change.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAST_TIER = "not slow and not server and not container"  # `make test-fast`'s marker expression
# The pure modules, and for a module with impure parts the functions that count (None: the whole module).
MODULES: dict[str, tuple[str, ...] | None] = {
    "boston_model/card.py": None,
    "components/evaluate/core.py": None,
    "components/deploy/serving.py": None,
    "pipeline/submit/package.py": None,
    "pipeline/submit/submission.py": ("validate_cron",),  # the cron check; the rest talks to the KFP API
}
TARGET = 0.85


def module_name(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def mutant_globs(modules: dict[str, tuple[str, ...] | None]) -> list[str]:
    """mutmut's names for the mutants to run: ``pkg.mod.*``, or ``pkg.mod.x_<function>__mutmut_*`` per function."""
    globs = []
    for path, functions in modules.items():
        name = module_name(path)
        globs += [f"{name}.*"] if functions is None else [f"{name}.x_{f}__mutmut_*" for f in functions]
    return globs


def counts(function: str, functions: tuple[str, ...] | None) -> bool:
    """Whether a mutant of ``function`` (mutmut's mangled name, e.g. ``x_read_card``) counts for its module."""
    return functions is None or any(function == f"x_{f}" for f in functions)


def results(modules: dict[str, tuple[str, ...] | None]) -> dict[str, dict[str, list[str]]]:
    """``{module path: {status: [mutant ids]}}`` from the ``.meta`` files of the last run."""
    from mutmut.__main__ import status_by_exit_code

    found: dict[str, dict[str, list[str]]] = {}
    for path, functions in modules.items():
        meta = ROOT / "mutants" / f"{path}.meta"
        by_status: dict[str, list[str]] = {}
        if meta.exists():
            for mutant, code in json.loads(meta.read_text())["exit_code_by_key"].items():
                function = mutant.rpartition(".")[2].partition("__mutmut_")[0]
                if counts(function, functions):
                    by_status.setdefault(status_by_exit_code.get(code, str(code)), []).append(mutant)
        found[path] = by_status
    return found


def report(modules: dict[str, tuple[str, ...] | None]) -> int:
    """Prints the score table and the survivors; 1 when a module is below the target or was not run."""
    table = results(modules)
    print(f"{'module':<34} {'killed':>6} {'survived':>8} {'no tests':>8} {'timeout':>7} {'score':>6}")
    below = []
    for path, by_status in table.items():
        n = Counter({status: len(ids) for status, ids in by_status.items()})
        scored = n["killed"] + n["survived"]
        score = n["killed"] / scored if scored else float("nan")
        label = path if modules[path] is None else f"{path} ({', '.join(modules[path])})"
        print(f"{label:<34} {n['killed']:>6} {n['survived']:>8} {n['no tests']:>8} {n['timeout']:>7} {score:>6.1%}")
        if not score >= TARGET:
            below.append(path)
    survivors = [m for by_status in table.values() for m in sorted(by_status.get("survived", []))]
    print(f"\n{len(survivors)} survivors (`mutmut show <id>` prints the change):")
    for mutant in survivors:
        print(f"  {mutant}")
    if below:
        print(f"\nbelow {TARGET:.0%} (or not run): {', '.join(below)}", file=sys.stderr)
    return 1 if below else 0


def run(modules: dict[str, tuple[str, ...] | None], max_children: int) -> int:
    """Runs mutmut over ``modules`` (a fresh ``mutants/``), the fast tier as the tests, then reports."""
    import mutmut
    from mutmut.__main__ import cli, load_config

    os.chdir(ROOT)
    shutil.rmtree("mutants", ignore_errors=True)  # mutmut keeps old results and test maps: start clean
    os.environ["PYTEST_ADDOPTS"] = f'{os.environ.get("PYTEST_ADDOPTS", "")} -m "{FAST_TIER}" -p no:cacheprovider'
    config = load_config()
    chosen = {Path(p) for p in modules}
    config.do_not_mutate = [str(p) for top in config.paths_to_mutate for p in sorted(Path(top).rglob("*.py"))
                            if p not in chosen]
    mutmut.config = config
    try:
        cli(["run", "--max-children", str(max_children), *mutant_globs(modules)], standalone_mode=False)
    except SystemExit as exc:
        if exc.code:
            return int(exc.code)
    return report(modules)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for command in ("run", "report"):
        p = sub.add_parser(command)
        p.add_argument("modules", nargs="*", help=f"module paths (default: {', '.join(MODULES)})")
        if command == "run":
            p.add_argument("--max-children", type=int, default=1, help="mutants tested at once (default 1)")
    args = parser.parse_args(argv)
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        parser.error(f"not a module of the mutation run: {', '.join(unknown)} (choose from {', '.join(MODULES)})")
    modules = {m: MODULES[m] for m in args.modules} if args.modules else MODULES
    return run(modules, args.max_children) if args.command == "run" else report(modules)


if __name__ == "__main__":
    sys.exit(main())
