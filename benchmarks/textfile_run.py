#!/usr/bin/env python3
"""What writing node_exporter's textfile costs a check run.

Times, interleaved in one run (median wall and CPU time, ratios against stdout only):

  python -c pass                                the reference
  loadavg, stdout only                          no file written
  loadavg, stdout + prometheus-textfile         the run replaces its lines in a file that
                                                already holds 30 other checks (lock, read,
                                                write, fsync, rename)

The file lives in a temporary directory on the file system of --dir (default: the system's
temporary directory); fsync costs what that file system makes it cost.

Usage: python benchmarks/textfile_run.py [--runs N] [--venv DIR] [--dir DIR]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cli_startup import make_venv, time_runs  # noqa: E402

OTHER_CHECKS = 30

# Fills the file as 30 other checks of a node would have, with the install being timed.
FILL = """
import sys
from accre_monitor.outputs import create_output
from accre_monitor.record import build_record

out = create_output("prometheus-textfile", {"path": sys.argv[1]})
for n in range(int(sys.argv[2])):
    data = {"mounts": [{"mount": f"/m{m}", "used_percent": 40.5, "free_bytes": 10**9}
                       for m in range(3)], "count": n}
    perf = {"mounts": {"labels": "mount"}, "mounts.*.used_percent": {"uom": "%"},
            "mounts.*.free_bytes": {"uom": "B"}}
    out.emit(build_record(f"site_check_{n:02d}", "OK", data, perf=perf, runtime=0.01))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--venv", help="reuse this virtualenv instead of building one")
    parser.add_argument("--dir", help="where the textfile's directory is made")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="accre-bench-textfile-"))
    textdir = Path(tempfile.mkdtemp(prefix="accre-bench-prom-", dir=args.dir))
    try:
        bindir = Path(args.venv) / "bin" if args.venv else make_venv(work / "venv")
        python, monitor = str(bindir / "python"), str(bindir / "accre-monitor")
        base = {k: v for k, v in os.environ.items() if not k.startswith("ACCRE_MONITOR_")}
        base.pop("PYTHONDONTWRITEBYTECODE", None)
        base["HOME"] = str(work)
        prom = textdir / "accre_monitor.prom"
        configs = {
            "loadavg, stdout only": '[monitoring]\noutputs = ["stdout"]\n',
            "loadavg, stdout + prometheus-textfile": (
                '[monitoring]\noutputs = ["stdout", "prometheus-textfile"]\n'
                f'[outputs.prometheus-textfile]\npath = "{prom}"\n'
            ),
        }
        commands = {"python -c pass": ([python, "-P", "-c", "pass"], base)}
        for number, (label, text) in enumerate(configs.items()):
            path = work / f"config-{number}.toml"
            path.write_text(text)
            commands[label] = ([monitor, "loadavg"], dict(base, ACCRE_MONITOR_CONFIG=str(path)))
        subprocess.run([python, "-P", "-c", FILL, str(prom), str(OTHER_CHECKS)], check=True)
        for argv, env in commands.values():  # warm the caches, cache the parsed configs
            for _ in range(3):
                subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall, cpu = time_runs(commands, args.runs)
        checks = prom.read_text().count("accre_monitor_check_status{")
        size = prom.stat().st_size
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(textdir, ignore_errors=True)

    reference, plain = wall["python -c pass"], wall["loadavg, stdout only"]
    cpu_plain = cpu["loadavg, stdout only"]
    print(
        f"{'run':<40} {'median ms':>10} {'x python':>9} {'x stdout':>9}"
        f" {'cpu ms':>7} {'cpu x stdout':>13}"
    )
    for label, value in wall.items():
        print(
            f"{label:<40} {value * 1000:10.1f} {value / reference:9.2f} {value / plain:9.2f}"
            f" {cpu[label] * 1000:7.1f} {cpu[label] / cpu_plain:13.2f}"
        )
    print(
        f"\n{args.runs} interleaved runs each; the file held {checks} checks ({size} bytes) "
        f"in {textdir.parent}"
    )


if __name__ == "__main__":
    main()
