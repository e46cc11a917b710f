#!/usr/bin/env python3
"""What keeping the cluster state costs a check run on the in-process bus.

Times, interleaved in one run (median wall and CPU time, ratios against the first rows):

  python -c pass                                  the reference
  loadavg, stdout only                            no state kept
  loadavg, stdout + [state] (SQLite, state.db)    the run takes its record into the state
  loadavg, stdout + [state] + a ttl               the same, with freshness on

Usage: python benchmarks/state_run.py [--runs N] [--venv DIR]
"""

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cli_startup import make_venv, time_runs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--venv", help="reuse this virtualenv instead of building one")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="accre-bench-state-"))
    try:
        bindir = Path(args.venv) / "bin" if args.venv else make_venv(work / "venv")
        python, monitor = str(bindir / "python"), str(bindir / "accre-monitor")
        base = {k: v for k, v in os.environ.items() if not k.startswith("ACCRE_MONITOR_")}
        base.pop("PYTHONDONTWRITEBYTECODE", None)
        base["HOME"] = str(work)
        configs = {
            "loadavg, stdout only": "",
            "loadavg, stdout + [state] (SQLite)": "[state]\n",
            "loadavg, stdout + [state] + ttl": "[state]\n[checks.loadavg]\nttl = 300\n",
        }
        commands = {"python -c pass": ([python, "-P", "-c", "pass"], base)}
        for number, (label, extra) in enumerate(configs.items()):
            path = work / f"config-{number}.toml"
            path.write_text(
                '[monitoring]\noutputs = ["stdout"]\n'
                f'[spool]\npath = "{work / f"spool-{number}" / "spool.db"}"\n{extra}'
            )
            commands[label] = ([monitor, "loadavg"], dict(base, ACCRE_MONITOR_CONFIG=str(path)))
        for argv, env in commands.values():  # warm the caches, create the state files
            for _ in range(3):
                subprocess_run(argv, env)
        wall, cpu = time_runs(commands, args.runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    reference, plain = wall["python -c pass"], wall["loadavg, stdout only"]
    cpu_plain = cpu["loadavg, stdout only"]
    print(
        f"{'run':<38} {'median ms':>10} {'x python':>9} {'x no state':>11} {'cpu x no state':>15}"
    )
    for label, value in wall.items():
        print(
            f"{label:<38} {value * 1000:10.1f} {value / reference:9.2f}"
            f" {value / plain:11.2f} {cpu[label] / cpu_plain:15.2f}"
        )
    print(f"\n{args.runs} interleaved runs each")


def subprocess_run(argv: list[str], env: dict) -> None:
    import subprocess

    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
