#!/usr/bin/env python3
"""Start-up cost of `accre-monitor`, as a ratio against bare `python -c pass` in the same run.

Builds a fresh virtualenv with a regular (non-editable) install of this checkout, so
the figures are what a node sees, then times, interleaved to share the machine's noise:

  python -c pass                               the reference
  accre-monitor loadavg --outputs stdout       the default configuration
  check_load -w 5,5,5 -c 10,10,10              the C reference plugin, when installed
  loadavg with the built-in set (config)        baseline for the scaling rows
  loadavg with 300 site checks in 30 modules    must stay within 1.2x of the baseline
  a site check in the last of those modules    likewise

Usage: python benchmarks/cli_startup.py [--runs N] [--venv DIR]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHECK_LOAD = "/usr/lib/nagios/plugins/check_load"


def make_venv(directory: Path, extras: str = "") -> Path:
    """A virtualenv holding a regular install of this checkout (with `extras`, e.g. "redis")."""
    target = f"{REPO}[{extras}]" if extras else str(REPO)
    subprocess.run([sys.executable, "-m", "venv", str(directory)], check=True)
    subprocess.run(
        [str(directory / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", target],
        check=True,
    )
    return directory / "bin"


def make_site(directory: Path, modules: int = 30, per_module: int = 10) -> None:
    package = directory / "benchsite"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for m in range(modules):
        lines = ["import os", "from accre_monitor import monitor_command", ""]
        for c in range(per_module):
            lines += [
                "@monitor_command",
                f"def site_{m:02d}_{c:02d}(opts):",
                f'    """Site check {m}/{c}."""',
                "    return 'OK', os.getloadavg()",
                "",
            ]
        (package / f"mod_{m:02d}.py").write_text("\n".join(lines))


def time_runs(commands: dict[str, tuple[list[str], dict]], runs: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {label: [] for label in commands}
    for _ in range(runs):
        for label, (argv, env) in commands.items():
            started = time.perf_counter()
            done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            samples[label].append(time.perf_counter() - started)
            if done.returncode not in (0, 1, 2):
                raise SystemExit(f"{label} failed ({done.returncode}): {done.stderr.decode()}")
    return {label: statistics.median(values) for label, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--venv", help="reuse this virtualenv instead of building one")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="accre-bench-"))
    try:
        bindir = Path(args.venv) / "bin" if args.venv else make_venv(work / "venv")
        python, monitor = str(bindir / "python"), str(bindir / "accre-monitor")
        make_site(work / "site")
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("ACCRE_MONITOR_")}
        base_env.pop("PYTHONDONTWRITEBYTECODE", None)  # a node keeps its bytecode cache
        base_env["HOME"] = str(work)
        builtin_cfg, site_cfg = work / "builtin.toml", work / "site.toml"
        builtin_cfg.write_text('[monitoring]\noutputs = ["stdout"]\n')
        site_cfg.write_text('[monitoring]\noutputs = ["stdout"]\ncheck_modules = ["benchsite"]\n')
        plain = dict(base_env)
        builtin = dict(base_env, ACCRE_MONITOR_CONFIG=str(builtin_cfg))
        site = dict(base_env, ACCRE_MONITOR_CONFIG=str(site_cfg), PYTHONPATH=str(work / "site"))
        commands = {
            "python -c pass": ([python, "-c", "pass"], plain),
            "accre-monitor loadavg --outputs stdout": (
                [monitor, "loadavg", "--outputs", "stdout"],
                plain,
            ),
            "loadavg, built-in checks (config)": ([monitor, "loadavg"], builtin),
            "loadavg, 300 site checks in 30 modules": ([monitor, "loadavg"], site),
            "site_29_09, 300 site checks in 30 modules": ([monitor, "site_29_09"], site),
        }
        if os.path.exists(CHECK_LOAD):
            commands["check_load (C plugin)"] = (
                [CHECK_LOAD, "-w", "5,5,5", "-c", "10,10,10"],
                plain,
            )
        for argv, env in commands.values():  # warm the page cache and bytecode
            subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        medians = time_runs(commands, args.runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    reference = medians["python -c pass"]
    scaling_base = medians["loadavg, built-in checks (config)"]
    print(f"{'command':<44} {'median ms':>10} {'x python':>9} {'x built-in':>11}")
    for label, value in medians.items():
        scaled = f"{value / scaling_base:11.2f}" if "site" in label or "built-in" in label else ""
        print(f"{label:<44} {value * 1000:10.1f} {value / reference:9.2f} {scaled}")
    print(
        f"\n{args.runs} interleaved runs each; targets: accre-monitor <= 3.0x python, "
        "300 site checks <= 1.2x built-in"
    )


if __name__ == "__main__":
    main()
