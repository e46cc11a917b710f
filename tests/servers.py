"""Real servers for the integration tests, each a child process on 127.0.0.1.

Every class owns one ``subprocess.Popen`` child (RabbitMQ: two, the node and its own epmd) that
listens on 127.0.0.1 on a free port and keeps its data in a private temporary directory.
``docs/development.md`` ("Test servers") tells how each server is installed and run.

Common API (``_Server``)::

    srv = RedisServer()          # picks a free port and makes a temp dir; nothing runs yet
    srv.start()                  # spawn + wait until it answers (bounded); raises ServerError
    srv.host, srv.port, srv.url  # 127.0.0.1, the port, a URL for clients
    srv.pause() / srv.resume()   # SIGSTOP / SIGCONT: connections queue in the kernel backlog
    srv.restart()                # stop + start on the same port and data directory
    srv.stop()                   # terminate, wait, kill if needed (data directory kept)
    srv.close()                  # stop + remove the data directory
    with RedisServer() as srv:   # start() ... close()

``missing_reason(kind)`` tells why a kind of server cannot run here (``None`` when it can), for
``pytest.skip``. This module does not import pytest.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
INSTALL_HINT = "run .ci/install-servers"

POUCHDB_ENV = "ACCRE_MONITOR_POUCHDB"
POUCHDB_LOCAL = REPO / ".test-servers" / "node_modules" / ".bin" / "pouchdb-server"
RABBIT_BIN_DIR = Path("/usr/lib/rabbitmq/bin")
# rabbitmqctl and friends use 35672-35682 for their own distribution port.
RABBIT_CTL_DIST_PORTS = range(35672, 35683)

_SBIN_PATH = os.pathsep.join(["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin"])


class ServerError(RuntimeError):
    """A server did not start, or did not stop, in time."""


# --------------------------------------------------------------------------------------------
# helpers


def free_port(exclude: range | None = None) -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (outside ``exclude``)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        if exclude is None or port not in exclude:
            return port
    raise ServerError("no free port found")


def _which(name: str) -> str | None:
    """``shutil.which`` that also looks in the sbin directories (not on every user's PATH)."""
    found = shutil.which(name)
    if found:
        return found
    return shutil.which(name, path=_SBIN_PATH)


def pouchdb_binary() -> str | None:
    """The pouchdb-server executable: $ACCRE_MONITOR_POUCHDB, <repo>/.test-servers, or PATH."""
    env = os.environ.get(POUCHDB_ENV)
    if env:
        return env if os.access(env, os.X_OK) else None
    if os.access(POUCHDB_LOCAL, os.X_OK):
        return str(POUCHDB_LOCAL)
    return shutil.which("pouchdb-server")


def chromium_binary() -> str | None:
    """Debian's chromium (`apt-get install chromium`), which the browser tests drive."""
    return _which("chromium")


def _epmd_binary() -> str | None:
    found = _which("epmd")
    if found:
        return found
    candidates = sorted(Path("/usr/lib/erlang").glob("erts-*/bin/epmd"))
    return str(candidates[-1]) if candidates else None


def missing_reason(kind: str) -> str | None:
    """Why servers of ``kind`` cannot run here, naming what to install; ``None`` if they can.

    Kinds: ``redis``, ``couch``, ``rabbit``, ``nsca`` (the daemon), ``send_nsca`` (the client),
    ``nagios``, ``chromium`` (the browser the status page is tested in).
    """
    if kind == "redis":
        if not _which("redis-server"):
            return f"redis-server not found: apt-get install redis-server, or {INSTALL_HINT}"
    elif kind == "couch":
        if pouchdb_binary() is None:
            where = os.environ.get(POUCHDB_ENV) or POUCHDB_LOCAL
            return (
                f"pouchdb-server not found (looked at {where} and PATH): "
                f"npm install --prefix .test-servers pouchdb-server@4.2.0, or {INSTALL_HINT}"
            )
    elif kind == "rabbit":
        if not os.access(RABBIT_BIN_DIR / "rabbitmq-server", os.X_OK):
            return (
                f"{RABBIT_BIN_DIR}/rabbitmq-server not found: apt-get install rabbitmq-server, "
                f"or {INSTALL_HINT}"
            )
        if _epmd_binary() is None:
            return f"epmd not found: apt-get install rabbitmq-server, or {INSTALL_HINT}"
    elif kind == "nsca":
        if not _which("nsca"):
            return f"nsca not found: apt-get install nsca, or {INSTALL_HINT}"
    elif kind == "send_nsca":
        if not _which("send_nsca"):
            return f"send_nsca not found: apt-get install nsca-client, or {INSTALL_HINT}"
    elif kind == "nagios":
        if not _which("nagios4"):
            return (
                "nagios4 not found: apt-get install --no-install-recommends nagios4-core, "
                f"or {INSTALL_HINT}"
            )
    elif kind == "chromium":
        if chromium_binary() is None:
            return f"chromium not found: apt-get install chromium, or {INSTALL_HINT}"
    else:
        raise ValueError(f"unknown server kind {kind!r}")
    return None


# What `.ci/install-servers NAME...` installs, each with the kinds of server it gives.
INSTALLABLE = {
    "redis-server": ("redis",),
    "rabbitmq-server": ("rabbit",),
    "nsca": ("nsca", "send_nsca"),
    "nagios4": ("nagios",),
    "pouchdb-server": ("couch",),
    "chromium": ("chromium",),
}


def missing_servers() -> list[str]:
    """The names `.ci/install-servers` takes for what this machine lacks: the servers whose
    tests would be skipped here (`missing_reason`)."""
    return [name for name, kinds in INSTALLABLE.items() if any(map(missing_reason, kinds))]


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no {path.name})"
    return "\n".join(text.splitlines()[-lines:])


def _tcp_open(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def connected_to(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds an established TCP connection to 127.0.0.1:``port``.

    Read from /proc: the process's socket descriptors matched against the kernel's TCP
    table. Lets a test wait for a client to reach a server that never answers (paused).
    """
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    except OSError:  # the process is gone
        return False
    remote = f"0100007F:{port:04X}"  # 127.0.0.1 as /proc/net/tcp writes it
    try:
        lines = Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return False
    for line in lines:
        # sl, local address, remote address, state (01: established), ..., inode (10th)
        fields = line.split()
        if fields[2] == remote and fields[3] == "01" and fields[9] in inodes:
            return True
    return False


def wait_until_connected(pid: int, port: int, timeout: float = 30.0) -> bool:
    """Poll ``connected_to`` until it holds or ``timeout`` passes; return the last answer."""
    deadline = time.monotonic() + timeout
    while not connected_to(pid, port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


# /proc/net/tcp states of a connection the server side has not closed yet
_OPEN_TCP_STATES = {"01", "03", "08"}  # ESTABLISHED, SYN_RECV, CLOSE_WAIT


def _open_connections(port: int) -> int:
    """Connections to local ``port`` (IPv4) that the server side still holds open."""
    count = 0
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            if int(fields[1].rpartition(":")[2], 16) == port and fields[3] in _OPEN_TCP_STATES:
                count += 1
    return count


_LIVE: weakref.WeakSet[_Server] = weakref.WeakSet()


@atexit.register
def _stop_leftovers() -> None:
    """Last resort: never leave a server running after the test process exits."""
    for srv in list(_LIVE):
        with contextlib.suppress(Exception):
            srv.close()


# --------------------------------------------------------------------------------------------
# base class


class _Server:
    """One server process on 127.0.0.1 with its data in a private temporary directory."""

    kind = ""
    startup_timeout = 20.0
    stop_timeout = 10.0

    def __init__(self, port: int | None = None, *, data_dir: str | os.PathLike | None = None):
        reason = missing_reason(self.kind)
        if reason:
            raise ServerError(reason)
        self.host = HOST
        self.port = port or free_port()
        self._own_dir = data_dir is None
        self.dir = Path(data_dir or tempfile.mkdtemp(prefix=f"accre-test-{self.kind}-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen | None = None
        self.paused = False
        self.start_seconds: float | None = None
        self.stop_seconds: float | None = None
        self._out: object = None
        _LIVE.add(self)

    # -- to be provided by subclasses --------------------------------------------------------

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _env(self) -> dict[str, str] | None:
        return None

    def _prepare(self) -> None:
        """Write config files before each start."""

    def _ready(self) -> bool:
        return _tcp_open(self.port)

    @property
    def log_file(self) -> Path:
        """The server's own log (what log_tail() shows first)."""
        return self.dir / "stdout.log"

    @property
    def url(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float | None = None) -> _Server:
        """Spawn the server and wait until it answers; raise ServerError with the log tail."""
        if self.running:
            return self
        timeout = self.startup_timeout if timeout is None else timeout
        t0 = time.monotonic()
        self._prepare()
        self._spawn_main()
        deadline = t0 + timeout
        while True:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self._cleanup_after_exit()
                raise ServerError(f"{self.kind} exited with {code} at start\n{self.log_tail()}")
            try:
                # Still alive after answering: the answer came from this process, not from
                # another server already holding the port.
                if self._ready() and self.proc.poll() is None:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise ServerError(
                    f"{self.kind} not ready on port {self.port} after {timeout:.0f} s\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.02)
        self.start_seconds = time.monotonic() - t0
        return self

    def _spawn_main(self) -> None:
        out = open(self.dir / "stdout.log", "ab")  # noqa: SIM115 (closed in _cleanup_after_exit)
        try:
            self.proc = subprocess.Popen(
                self._command(),
                cwd=self.dir,
                env=self._env(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: pause() and cleanup reach children
            )
        except BaseException:
            out.close()
            raise
        self._out = out
        self.paused = False

    def _cleanup_after_exit(self) -> None:
        """After the main process was reaped: kill what is left of its process group."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        if self._out is not None:
            self._out.close()
            self._out = None

    def stop(self, timeout: float | None = None) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after ``timeout``); keep its data."""
        if self.proc is None:
            return
        timeout = self.stop_timeout if timeout is None else timeout
        t0 = time.monotonic()
        if self.proc.poll() is None:
            if self.paused:
                self.resume()  # a stopped process does not act on SIGTERM
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._cleanup_after_exit()
        self.paused = False
        self.stop_seconds = time.monotonic() - t0

    def kill(self) -> None:
        """SIGKILL the server at once (a crash); data kept."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self._cleanup_after_exit()
        self.paused = False

    def restart(self, timeout: float | None = None) -> _Server:
        """Stop and start again on the same port with the same data directory."""
        self.stop()
        return self.start(timeout)

    def close(self) -> None:
        """Stop the server and remove its data directory (if this object made it)."""
        try:
            self.stop()
        finally:
            if self._own_dir:
                shutil.rmtree(self.dir, ignore_errors=True)
            _LIVE.discard(self)

    def pause(self) -> None:
        """SIGSTOP the server: the kernel still accepts connections, nothing answers."""
        if not self.running:
            raise ServerError(f"{self.kind} is not running")
        os.killpg(self.proc.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        """SIGCONT after pause()."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGCONT)
        self.paused = False

    @contextlib.contextmanager
    def paused_for(self):
        """``with srv.paused_for(): ...`` pauses the server for the block."""
        self.pause()
        try:
            yield self
        finally:
            self.resume()

    def log_tail(self, lines: int = 30) -> str:
        parts = []
        for path in dict.fromkeys([self.log_file, self.dir / "stdout.log"]):
            parts.append(f"--- {path} ---\n{_tail(path, lines)}")
        return "\n".join(parts)

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<{type(self).__name__} {self.host}:{self.port} {state} {self.dir}>"


# --------------------------------------------------------------------------------------------
# Redis


class RedisServer(_Server):
    """redis-server with an append-only file (fsync always), so data survives restart()."""

    kind = "redis"
    startup_timeout = 10.0

    def __init__(self, port: int | None = None, *, password: str | None = None, **kw):
        super().__init__(port, **kw)
        self.password = password

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    @property
    def log_file(self) -> Path:
        return self.dir / "redis.log"

    def _command(self) -> list[str]:
        cmd = [
            _which("redis-server"),
            "--bind", HOST,
            "--port", str(self.port),
            "--dir", str(self.dir),
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--daemonize", "no",
            "--logfile", str(self.log_file),
        ]  # fmt: skip
        if self.password:
            cmd += ["--requirepass", self.password]
        return cmd

    def _ready(self) -> bool:
        # INFO's process_id proves the answer comes from our child, not another server that
        # already held the port; -LOADING (replaying the append-only file) means not yet.
        with socket.create_connection((HOST, self.port), timeout=0.5) as s:
            s.settimeout(1)
            if self.password:
                s.sendall(f"AUTH {self.password}\r\n".encode())
                if not s.recv(64).startswith(b"+OK"):
                    return False
            s.sendall(b"INFO server\r\n")
            answer = b""
            while not (m := re.search(rb"process_id:(\d+)\r\n", answer)):
                chunk = s.recv(65536)
                answer += chunk
                if not chunk or answer.startswith(b"-"):
                    return False
        return int(m.group(1)) == self.proc.pid


# --------------------------------------------------------------------------------------------
# CouchDB-compatible: pouchdb-server


class CouchServer(_Server):
    """pouchdb-server (CouchDB HTTP API) with on-disk LevelDB data (or ``in_memory=True``).

    ``admins={"name": "password"}`` configures server admins (``auth`` is then the first one).
    Beware: with admins configured, pouchdb-server 4.2.0 crashes on an unauthenticated
    ``PUT /db`` (database creation) instead of answering 401.
    """

    kind = "couch"
    startup_timeout = 20.0

    def __init__(
        self,
        port: int | None = None,
        *,
        in_memory: bool = False,
        admins: dict[str, str] | None = None,
        **kw,
    ):
        super().__init__(port, **kw)
        self.in_memory = in_memory
        self.admins = dict(admins or {})

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def auth(self) -> tuple[str, str] | None:
        return next(iter(self.admins.items()), None)

    @property
    def log_file(self) -> Path:
        return self.dir / "log.txt"

    def _prepare(self) -> None:
        config = self.dir / "config.json"
        if not config.exists():
            body = {"admins": self.admins} if self.admins else {}
            config.write_text(json.dumps(body))

    def _command(self) -> list[str]:
        cmd = [
            pouchdb_binary(),
            "--host", HOST,
            "--port", str(self.port),
            "--dir", str(self.dir),
            "--config", str(self.dir / "config.json"),
            "--no-stdout-logs",
        ]  # fmt: skip
        if self.in_memory:
            cmd.append("--in-memory")
        return cmd

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/", timeout=1) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def request(self, method: str, path: str, body: object = None, *, auth=True, timeout=5):
        """A small JSON HTTP client for tests: returns (status, decoded body)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        creds = self.auth if auth is True else auth
        if creds:
            token = base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
            req.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            with e:
                return e.code, json.loads(e.read() or b"null")


# --------------------------------------------------------------------------------------------
# RabbitMQ


class RabbitServer(_Server):
    """A private RabbitMQ node with its own epmd; guest/guest works on loopback.

    Start takes 4-6 s: start it once per test session or module and restart only where an
    outage is the point. ``pause()`` stops the whole node (its process group), not epmd.
    """

    kind = "rabbit"
    startup_timeout = 60.0
    stop_timeout = 20.0

    def __init__(
        self,
        port: int | None = None,
        *,
        dist_port: int | None = None,
        epmd_port: int | None = None,
        **kw,
    ):
        super().__init__(port, **kw)
        self.dist_port = dist_port or free_port(exclude=RABBIT_CTL_DIST_PORTS)
        self.epmd_port = epmd_port or free_port()
        if self.dist_port in RABBIT_CTL_DIST_PORTS:
            raise ValueError("dist_port must be outside 35672-35682 (rabbitmqctl uses them)")
        self.nodename = f"test-{self.port}@localhost"
        self.epmd: subprocess.Popen | None = None
        self._epmd_out: object = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@{self.host}:{self.port}/%2F"

    @property
    def log_file(self) -> Path:
        return self.dir / "log" / f"{self.nodename}.log"

    def _env(self) -> dict[str, str]:
        b = self.dir
        env = dict(os.environ)
        for key in list(env):
            if key.startswith(("RABBITMQ_", "ERL_")):
                del env[key]
        env.update(
            HOME=str(b / "home"),
            RABBITMQ_CONF_ENV_FILE="/dev/null",
            RABBITMQ_CONFIG_FILE=str(b / "rabbitmq"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(b / "advanced.config"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(b / "enabled_plugins"),
            RABBITMQ_ENABLED_PLUGINS="",
            RABBITMQ_NODENAME=self.nodename,
            RABBITMQ_NODE_IP_ADDRESS=HOST,
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(b / "mnesia"),
            RABBITMQ_LOG_BASE=str(b / "log"),
            RABBITMQ_PID_FILE=str(b / "rabbit.pid"),
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
            ERL_EPMD_PORT=str(self.epmd_port),
            ERL_EPMD_ADDRESS=HOST,
            PATH=f"{RABBIT_BIN_DIR}{os.pathsep}{env.get('PATH', _SBIN_PATH)}",
        )
        return env

    def _prepare(self) -> None:
        (self.dir / "home").mkdir(exist_ok=True)
        (self.dir / "log").mkdir(exist_ok=True)
        plugins = self.dir / "enabled_plugins"
        if not plugins.exists():
            plugins.write_text("[].\n")
        self._start_epmd()

    def _start_epmd(self) -> None:
        if self.epmd is not None and self.epmd.poll() is None:
            return
        out = open(self.dir / "epmd.log", "ab")  # noqa: SIM115 (closed in _stop_epmd)
        try:
            self.epmd = subprocess.Popen(
                [_epmd_binary(), "-port", str(self.epmd_port), "-address", HOST],
                cwd=self.dir,
                env=self._env(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except BaseException:
            out.close()
            raise
        self._epmd_out = out
        deadline = time.monotonic() + 5
        while not _tcp_open(self.epmd_port, timeout=0.2):
            if self.epmd.poll() is not None or time.monotonic() > deadline:
                self._stop_epmd()
                raise ServerError(f"epmd did not start on {self.epmd_port}\n{self.log_tail()}")
            time.sleep(0.02)

    def _stop_epmd(self) -> None:
        if self.epmd is not None and self.epmd.poll() is None:
            self.epmd.terminate()
            try:
                self.epmd.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.epmd.kill()
                self.epmd.wait(timeout=5)
        if self._epmd_out is not None:
            self._epmd_out.close()
            self._epmd_out = None

    def _command(self) -> list[str]:
        return [str(RABBIT_BIN_DIR / "rabbitmq-server")]

    def _ready(self) -> bool:
        # A TCP connect would do; the AMQP greeting proves the listener is the broker and
        # not a leftover.
        with socket.create_connection((HOST, self.port), timeout=1) as s:
            s.settimeout(2)
            s.sendall(b"AMQP\x00\x00\x09\x01")
            frame = s.recv(7)
        return len(frame) == 7 and frame[0] == 1  # a METHOD frame: connection.start

    def restart(self, timeout: float | None = None) -> RabbitServer:
        """Restart the node only; the fixture's epmd keeps running."""
        super().stop()
        return self.start(timeout)

    def stop(self, timeout: float | None = None) -> None:
        try:
            super().stop(timeout)
        finally:
            self._stop_epmd()

    def kill(self) -> None:
        super().kill()  # epmd stays, like after a crash of the node

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run ``rabbitmqctl -n NODE ARGS`` against this node (slow: about 1-2 s)."""
        return subprocess.run(
            [str(RABBIT_BIN_DIR / "rabbitmqctl"), "-n", self.nodename, *args],
            env=self._env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


# --------------------------------------------------------------------------------------------
# NSCA


_NSCA_LINE = re.compile(
    r"^\[(\d+)\] PROCESS_SERVICE_CHECK_RESULT;([^;]*);([^;]*);(-?\d+);(.*)$", re.DOTALL
)
_NSCA_HOST_LINE = re.compile(r"^\[(\d+)\] PROCESS_HOST_CHECK_RESULT;([^;]*);(-?\d+);(.*)$")


class NscaServer(_Server):
    """The NSCA 2.10 daemon in single-process foreground mode writing to a plain command file.

    ``password`` switches on XOR decryption (method 1) unless ``method`` says otherwise.
    ``command_file`` points the daemon at a running Nagios's command FIFO (``NagiosServer``'s
    ``command_file``) instead of a plain file of its own.
    ``results()`` parses the command file; ``client_config`` is a matching send_nsca config.
    Note: a wrong password or method is silently dropped by the daemon: read the results.
    """

    kind = "nsca"
    startup_timeout = 10.0

    def __init__(
        self,
        port: int | None = None,
        *,
        password: str | None = None,
        method: int | None = None,
        max_packet_age: int = 30,
        command_file: str | os.PathLike | None = None,
        **kw,
    ):
        super().__init__(port, **kw)
        self.password = password
        self.method = (1 if password else 0) if method is None else method
        self.max_packet_age = max_packet_age
        self.config = self.dir / "nsca.cfg"
        # a plain file of our own, appended to; or a running Nagios's command FIFO
        self.to_fifo = command_file is not None
        self.command_file = Path(command_file) if command_file else self.dir / "nagios.cmd"
        self.dump_file = self.dir / "nsca.dump"
        self.client_config = self.dir / "send_nsca.cfg"

    @property
    def url(self) -> str:
        return f"nsca://{self.host}:{self.port}"

    def _prepare(self) -> None:
        lines = [
            f"pid_file={self.dir / 'nsca.pid'}",
            f"server_address={HOST}",
            f"server_port={self.port}",
            f"command_file={self.command_file}",
            f"alternate_dump_file={self.dump_file}",
            f"append_to_file={0 if self.to_fifo else 1}",
            "aggregate_writes=0",
            f"max_packet_age={self.max_packet_age}",
            "debug=1",
            f"decryption_method={self.method}",
        ]
        if self.password:
            lines.append(f"password={self.password}")
        self.config.write_text("\n".join(lines) + "\n")
        client = [f"encryption_method={self.method}"]
        if self.password:
            client.append(f"password={self.password}")
        self.client_config.write_text("\n".join(client) + "\n")
        if not self.to_fifo:
            self.command_file.touch()  # else results go to the alternate dump file

    def _command(self) -> list[str]:
        return [_which("nsca"), "-f", "-c", str(self.config)]

    def results(self) -> list[tuple[int, str, str, int, str]]:
        """Service results received so far: (timestamp, host, service, code, output)."""
        out = []
        try:
            text = self.command_file.read_text(errors="replace")
        except FileNotFoundError:
            return out
        for line in text.splitlines():
            m = _NSCA_LINE.match(line)
            if m:
                ts, host, svc, code, output = m.groups()
                out.append((int(ts), host, svc, int(code), output))
        return out

    def host_results(self) -> list[tuple[int, str, int, str]]:
        """Host results received so far: (timestamp, host, code, output)."""
        out = []
        try:
            text = self.command_file.read_text(errors="replace")
        except FileNotFoundError:
            return out
        for line in text.splitlines():
            m = _NSCA_HOST_LINE.match(line)
            if m:
                ts, host, code, output = m.groups()
                out.append((int(ts), host, int(code), output))
        return out

    def wait_for_results(self, count: int, timeout: float = 5.0) -> list:
        """Poll results() until it holds at least ``count`` entries or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while True:
            res = self.results()
            if len(res) >= count or time.monotonic() > deadline:
                return res
            time.sleep(0.02)

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until the daemon has handled every connection made so far.

        NSCA never answers a result, so a client is done before the daemon is. The daemon
        closes a connection only when it reads the client's end after the last packet, and
        it writes each result before reading on: once no connection to its port is still
        open on its side (ESTABLISHED, CLOSE_WAIT or SYN_RECV in /proc/net/tcp, the accept
        backlog included), every result sent so far is in the command file."""
        deadline = time.monotonic() + timeout
        while _open_connections(self.port):
            if time.monotonic() > deadline:
                raise ServerError(f"NSCA still holds connections after {timeout} s")
            time.sleep(0.01)

    def clear(self) -> None:
        """Empty the command file (the daemon appends, so truncating in place is safe)."""
        with open(self.command_file, "w"):
            pass

    def send_nsca(self, lines: str, *, timeout: float = 10, config=None):
        """Feed ``host<TAB>svc<TAB>code<TAB>output`` lines to the real send_nsca client."""
        binary = _which("send_nsca")
        if binary is None:
            raise ServerError(missing_reason("send_nsca"))
        cfg = str(config or self.client_config)
        return subprocess.run(
            [binary, "-H", HOST, "-p", str(self.port), "-c", cfg, "-to", str(int(timeout))],
            input=lines,
            capture_output=True,
            text=True,
            timeout=timeout + 5,
        )


# --------------------------------------------------------------------------------------------
# Nagios 4


_NAGIOS_CONFIG = """\
log_file={d}/nagios.log
cfg_file={d}/objects.cfg
object_cache_file={d}/objects.cache
precached_object_file={d}/objects.precache
status_file={d}/status.dat
status_update_interval=1
command_file={d}/rw/nagios.cmd
check_external_commands=1
lock_file={d}/nagios.lock
temp_file={d}/nagios.tmp
temp_path={d}/tmp
check_result_path={d}/checkresults
query_socket={d}/rw/nagios.qh
retain_state_information=0
state_retention_file={d}/retention.dat
nagios_user=nagios
nagios_group=nagios
use_syslog=0
log_passive_checks=1
accept_passive_service_checks=1
accept_passive_host_checks=1
execute_service_checks=0
execute_host_checks=0
enable_notifications=0
enable_flap_detection=0
check_for_updates=0
"""

_NAGIOS_OBJECTS = """\
define timeperiod {{
    timeperiod_name always
    alias           always
    monday 00:00-24:00
    tuesday 00:00-24:00
    wednesday 00:00-24:00
    thursday 00:00-24:00
    friday 00:00-24:00
    saturday 00:00-24:00
    sunday 00:00-24:00
}}
define command {{
    command_name check_dummy
    command_line /usr/lib/nagios/plugins/check_dummy $ARG1$
}}
define contact {{
    contact_name                  nobody
    host_notifications_enabled    0
    service_notifications_enabled 0
    host_notification_period      always
    service_notification_period   always
    host_notification_options     n
    service_notification_options  n
    host_notification_commands    check_dummy
    service_notification_commands check_dummy
}}
{objects}"""

_NAGIOS_HOST = """\
define host {{
    host_name              {host}
    address                127.0.0.1
    check_command          check_dummy!0
    max_check_attempts     1
    check_period           always
    contacts               nobody
    notification_period    always
    active_checks_enabled  0
    passive_checks_enabled 1
}}
"""

_NAGIOS_SERVICE = """\
define service {{
    host_name              {host}
    service_description    {service}
    check_command          check_dummy!0
    max_check_attempts     1
    check_interval         5
    retry_interval         1
    check_period           always
    contacts               nobody
    notification_period    always
    active_checks_enabled  0
    passive_checks_enabled 1
    check_freshness        0
}}
"""


class NagiosServer(_Server):
    """A private Nagios 4 (``nagios4``) taking passive results for the given services.

    ``services`` maps host names to their passive service descriptions. Results go in through
    ``command_file`` (the command FIFO: point an ``NscaServer`` at it); ``service(host, name)``
    reads a service's state from ``status.dat``. Nagios drops to the ``nagios`` user, so its
    directory is handed to that user. Ready when ``status.dat`` appears (the FIFO outlives a
    stop; status.dat does not). It listens on no port: ``port`` is unused.
    """

    kind = "nagios"
    startup_timeout = 20.0

    def __init__(self, services: dict[str, list[str]] | None = None, **kw):
        super().__init__(**kw)
        self.services = services or {"web01": ["disk"]}
        self.config = self.dir / "nagios.cfg"
        self.status_file = self.dir / "status.dat"
        self.command_file = self.dir / "rw" / "nagios.cmd"

    @property
    def url(self) -> str:
        return f"file://{self.command_file}"

    @property
    def log_file(self) -> Path:
        return self.dir / "nagios.log"

    def _prepare(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.status_file.unlink()  # readiness is its (re)appearance
        self._write_config()

    def _write_config(self) -> None:
        import grp
        import pwd

        for sub in ("rw", "tmp", "checkresults"):
            (self.dir / sub).mkdir(exist_ok=True)
        objects = "".join(
            _NAGIOS_HOST.format(host=host)
            + "".join(_NAGIOS_SERVICE.format(host=host, service=s) for s in services)
            for host, services in self.services.items()
        )
        self.config.write_text(_NAGIOS_CONFIG.format(d=self.dir))
        (self.dir / "objects.cfg").write_text(_NAGIOS_OBJECTS.format(objects=objects))
        uid, gid = pwd.getpwnam("nagios").pw_uid, grp.getgrnam("nagios").gr_gid
        for path in [self.dir, *self.dir.rglob("*")]:
            os.chown(path, uid, gid)

    def _command(self) -> list[str]:
        return [_which("nagios4"), str(self.config)]

    def _ready(self) -> bool:
        return self.status_file.exists() and self.command_file.exists()

    def verify(self) -> subprocess.CompletedProcess:
        """``nagios4 -v``: the configuration check, for a start that fails."""
        self._write_config()
        return subprocess.run(
            [_which("nagios4"), "-v", str(self.config)], capture_output=True, text=True
        )

    def status(self) -> list[tuple[str, dict[str, str]]]:
        """The blocks of status.dat: (kind, fields), e.g. ("servicestatus", {...})."""
        blocks: list[tuple[str, dict[str, str]]] = []
        try:
            text = self.status_file.read_text(errors="replace")
        except FileNotFoundError:
            return blocks
        current: dict[str, str] | None = None
        for line in text.splitlines():
            line = line.strip()
            if line.endswith("{"):
                current = {}
                blocks.append((line[:-1].strip(), current))
            elif line == "}":
                current = None
            elif current is not None and "=" in line:
                key, _, value = line.partition("=")
                current[key] = value
        return blocks

    def service(self, host: str, service: str) -> dict[str, str] | None:
        """The service's fields in status.dat (``current_state``, ``plugin_output``, ...)."""
        for kind, fields in self.status():
            if (
                kind == "servicestatus"
                and fields.get("host_name") == host
                and fields.get("service_description") == service
            ):
                return fields
        return None

    def wait_for_service(self, host: str, service: str, check, timeout: float = 10.0):
        """Poll status.dat until ``check(fields)`` is true; return the last fields seen."""
        deadline = time.monotonic() + timeout
        while True:
            fields = self.service(host, service)
            if (fields is not None and check(fields)) or time.monotonic() > deadline:
                return fields
            time.sleep(0.05)


if __name__ == "__main__":
    # `python3 tests/servers.py --missing`: for ./run-tests and .ci/install-servers, which run
    # before any virtualenv exists (this module needs only the standard library).
    import sys

    if sys.argv[1:] != ["--missing"]:
        sys.exit("usage: servers.py --missing")
    print(" ".join(missing_servers()))
