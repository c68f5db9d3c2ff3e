"""Mutation testing of the pure modules against the fast tier (`make mutate`).

mutmut (configured in setup.cfg ``[mutmut]``) copies the packages into ``mutants/`` and makes small changes to the
modules listed in ``only_mutate`` (``<=`` to ``<``, a constant to another, an argument dropped); each change is run
against the fast tier's tests that reach its function. A change no test notices "survives": it points at behaviour
no test pins down, unless it is equivalent (the program cannot tell it from the original)::

    python bench/mutation.py run [--max-children N]   # a fresh mutmut run, then the report
    python bench/mutation.py report                   # the last run's scores and survivors

The score of a module is killed / (killed + survived): mutants that no fast test reaches ("no tests") and timeouts
are left out, as mutmut counts them. ``mutmut show <id>`` prints a survivor's change.
"""

from __future__ import annotations

import argparse
import configparser
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = 0.85  # the score each module must reach (issue 18)


def modules() -> list[str]:
    """The mutated modules: setup.cfg's ``[mutmut] only_mutate``."""
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    return parser.get("mutmut", "only_mutate").split()


def results(paths: list[str]) -> dict[str, dict[str, list[str]]]:
    """``{module: {status: [mutant ids]}}`` from the ``.meta`` files mutmut writes beside each mutated module."""
    from mutmut.stats import status_by_exit_code

    found: dict[str, dict[str, list[str]]] = {}
    for path in paths:
        meta = ROOT / "mutants" / f"{path}.meta"
        by_status: dict[str, list[str]] = {}
        if meta.exists():
            for mutant, code in json.loads(meta.read_text())["exit_code_by_key"].items():
                by_status.setdefault(status_by_exit_code[code], []).append(mutant)
        found[path] = by_status
    return found


def report(paths: list[str]) -> int:
    """Prints the score per module and the surviving mutants; 1 when a module is below the target or not run."""
    print(f"{'module':<30} {'killed':>6} {'survived':>8} {'no tests':>8} {'timeout':>7} {'score':>6}")
    below, survivors = [], []
    for path, by_status in results(paths).items():
        n = Counter({status: len(ids) for status, ids in by_status.items()})
        scored = n["killed"] + n["survived"]
        score = n["killed"] / scored if scored else float("nan")
        print(f"{path:<30} {n['killed']:>6} {n['survived']:>8} {n['no tests']:>8} {n['timeout']:>7} {score:>6.1%}")
        if not score >= TARGET:
            below.append(path)
        survivors += sorted(by_status.get("survived", []))
    print(f"\n{len(survivors)} survivors (`mutmut show <id>` prints the change):")
    for mutant in survivors:
        print(f"  {mutant}")
    if below:
        print(f"\nbelow {TARGET:.0%} or not run: {', '.join(below)}", file=sys.stderr)
    return 1 if below else 0


def run(max_children: int) -> int:
    """A fresh ``mutmut run`` (old results and test maps removed), then the report."""
    shutil.rmtree(ROOT / "mutants", ignore_errors=True)
    done = subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children)], cwd=ROOT)
    if done.returncode:
        print(f"mutmut run failed (exit code {done.returncode})", file=sys.stderr)
        return done.returncode
    return report(modules())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="a fresh mutmut run over setup.cfg's only_mutate, then the report")
    run_parser.add_argument("--max-children", type=int, default=1, help="mutants tested at once (default 1)")
    sub.add_parser("report", help="the last run's score per module and its survivors")
    args = parser.parse_args(argv)
    return run(args.max_children) if args.command == "run" else report(modules())


if __name__ == "__main__":
    sys.exit(main())
