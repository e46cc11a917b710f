#!/usr/bin/env python3
"""Start-up cost of `accre-monitor`, as a ratio against bare `python -c pass` in the same run.

Builds a fresh virtualenv with a regular (non-editable) install of this checkout, so
the figures are what a node sees, then times, interleaved to share the machine's noise
(median wall time, and median CPU time, which other load on the machine barely moves):

  python -c pass                               the reference
  accre-monitor --outputs stdout loadavg       the default configuration
  check_load -w 5,5,5 -c 10,10,10              the C reference plugin, when installed
  loadavg with the built-in set (config)        baseline for the scaling rows
  loadavg with 300 site checks in 30 modules    must stay within 1.2x of the baseline
  a site check in the last of those modules    likewise
  loadavg and disk_usage to nagios-stdout,      payload = "perfdata" must stay within
    with payload = "json", then "perfdata"      1.05x of payload = "json"

Usage: python benchmarks/cli_startup.py [--runs N] [--venv DIR]
"""

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHECK_LOAD = "/usr/lib/nagios/plugins/check_load"
PAYLOADS = ("json", "perfdata")
PAYLOAD_CHECKS = (["loadavg", "--warning", "1000"], ["disk_usage", "--mounts", "/"])


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


def time_runs(
    commands: dict[str, tuple[list[str], dict]], runs: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Median wall time and median CPU time (user + system, the forked check included).

    CPU time barely moves when other processes share the machine; wall time does.
    """
    wall: dict[str, list[float]] = {label: [] for label in commands}
    cpu: dict[str, list[float]] = {label: [] for label in commands}
    for _ in range(runs):
        for label, (argv, env) in commands.items():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            wall[label].append(time.perf_counter() - started)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[label].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
            if done.returncode not in (0, 1, 2):
                raise SystemExit(f"{label} failed ({done.returncode}): {done.stderr.decode()}")
    return (
        {label: statistics.median(values) for label, values in wall.items()},
        {label: statistics.median(values) for label, values in cpu.items()},
    )


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
        payload_env = {}
        for payload in PAYLOADS:
            config = work / f"nagios-{payload}.toml"
            config.write_text(
                '[monitoring]\noutputs = ["nagios-stdout"]\n'
                f'[outputs.nagios-stdout]\npayload = "{payload}"\n'
            )
            payload_env[payload] = dict(base_env, ACCRE_MONITOR_CONFIG=str(config))
        commands = {
            "python -c pass": ([python, "-P", "-c", "pass"], plain),
            # `--outputs` before the check name: after it, it would be an option of loadavg
            "accre-monitor --outputs stdout loadavg": (
                [monitor, "--outputs", "stdout", "loadavg"],
                plain,
            ),
            "loadavg, built-in checks (config)": ([monitor, "loadavg"], builtin),
            "loadavg, 300 site checks in 30 modules": ([monitor, "loadavg"], site),
            "site_29_09, 300 site checks in 30 modules": ([monitor, "site_29_09"], site),
        }
        for check in PAYLOAD_CHECKS:
            for payload in PAYLOADS:
                commands[f"{check[0]}, nagios-stdout, payload {payload}"] = (
                    [monitor, *check],
                    payload_env[payload],
                )
        if os.path.exists(CHECK_LOAD):
            commands["check_load (C plugin)"] = (
                [CHECK_LOAD, "-w", "5,5,5", "-c", "10,10,10"],
                plain,
            )
        for argv, env in commands.values():  # warm the page cache and bytecode
            subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        medians, cpu = time_runs(commands, args.runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    reference = medians["python -c pass"]
    cpu_reference = cpu["python -c pass"]
    scaling_base = medians["loadavg, built-in checks (config)"]
    print(
        f"{'command':<44} {'median ms':>10} {'x python':>9} {'x built-in':>11}"
        f" {'cpu ms':>7} {'cpu x python':>13} {'x json':>7} {'cpu x json':>11}"
    )
    for label, value in medians.items():
        scaled = f"{value / scaling_base:.2f}" if "site" in label or "built-in" in label else ""
        over_json = cpu_over_json = ""
        if label.endswith("payload perfdata"):
            json_label = label.removesuffix("perfdata") + "json"
            over_json = f"{value / medians[json_label]:.3f}"
            cpu_over_json = f"{cpu[label] / cpu[json_label]:.3f}"
        print(
            f"{label:<44} {value * 1000:10.1f} {value / reference:9.2f} {scaled:>11}"
            f" {cpu[label] * 1000:7.1f} {cpu[label] / cpu_reference:13.2f}"
            f" {over_json:>7} {cpu_over_json:>11}"
        )
    print(
        f"\n{args.runs} interleaved runs each; targets: accre-monitor <= 3.0x python, "
        "300 site checks <= 1.2x built-in, payload perfdata <= 1.05x json"
    )


if __name__ == "__main__":
    main()
