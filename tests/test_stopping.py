"""The shipper stops on SIGTERM whenever it comes, even in the middle of writing a log line."""

from __future__ import annotations

import subprocess
import sys

# SIGTERM arrives while the main thread writes a log line (holding the logger's lock),
# as it does when a supervisor stops the shipper just as a batch is logged.
SIGTERM_MID_LINE = """
import os, signal, sys
from accre_monitor import log
from accre_monitor.pipeline.daemon import Stopping

stopping = Stopping()
stopping.install()

class Stderr:
    def __init__(self, real):
        self.real, self.sent = real, False

    def write(self, text):
        if not self.sent:
            self.sent = True
            os.kill(os.getpid(), signal.SIGTERM)
        self.real.write(text)

    def flush(self):
        self.real.flush()

sys.stderr = Stderr(sys.stderr)
log.info("batch", delivered=500)
print("stopping set:", stopping.wait(10), file=sys.__stderr__)
"""


def test_sigterm_while_a_log_line_is_written_stops_the_shipper_instead_of_hanging_it():
    done = subprocess.run(
        [sys.executable, "-P", "-c", SIGTERM_MID_LINE],
        capture_output=True,
        text=True,
        timeout=30,  # hung, it is killed and the test fails
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines[-1] == "stopping set: True", done.stderr
    assert "accre-monitor: info: batch (delivered=500)" in lines
    assert "accre-monitor: info: stopping (signal='SIGTERM')" in lines
