"""`nagios-nsca`: each result to a Nagios server as a passive check result, over NSCA.

The protocol is spoken here (see `nsca_packet`): no send_nsca binary, no client package.
Each record becomes one packet: host = the record's `node`, service = its check `name` (both
mapped through the `hosts` and `services` tables when they name it), return code from its
status (OK 0, WARNING 1, CRITICAL 2, UNKNOWN 3), plugin output = the `nagios-stdout`
rendering of the record without its final newline, cut to `max_output - 1` bytes (the field
ends with a NUL) on a UTF-8 character boundary. Newlines go as real newlines: the daemon escapes
them for Nagios, which splits output, performance data and long output as for an active check.

A host or service name that does not fit its field (63 and 127 bytes) or holds a `;` or a
line break is refused (REJECTED, with the reason): cut short or split, it would name another
host or service, or none, and Nagios would drop the result without a word.

NSCA has no acknowledgement: a packet fully written counts as delivered. The packet carries
the record's own time (its `date`), capped at the daemon's clock (NSCA 2.7 drops packets from
its future). A result older than `max_age` (25 s) is EXPIRED instead of sent: the daemon
stamps what it writes for Nagios with its own clock, so a late result would show as the
service's current state; and the daemons that check a packet's age (before 2.9.1) drop one
older than their `max_packet_age` (30 s) without a word. A batch is sent oldest first, so an
older result never lands after a newer one.

With `max_output = 4096` a batch goes over one connection (the daemon reads packets until
the client closes); with 512 each packet needs a connection of its own, as the daemon tells
the short packet from the long one only by the client closing after it.
"""

from __future__ import annotations

import socket
import time

from accre_monitor import log
from accre_monitor.dates import epoch_seconds
from accre_monitor.outcome import DELIVERED, EXPIRED, RETRY, Outcome, StoreUnavailable
from accre_monitor.outputs import nsca_packet as wire
from accre_monitor.outputs.base import describe_error
from accre_monitor.outputs.remote import RemoteOutput
from accre_monitor.status import EXITCODE_MAPS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

RETURN_CODES = EXITCODE_MAPS["nagios"]
# characters that would break the external command `...;HOST;SERVICE;CODE;OUTPUT`
FORBIDDEN_IN_NAMES = (";", "\n", "\r", "\0")


class Result:
    """One record, ready for the wire but for the daemon's IV and clock. (A plain class: a
    NamedTuple would import typing, and with it re, on every run that sends one result.)"""

    __slots__ = ("time", "code", "host", "service", "output")

    def __init__(self, time: float, code: int, host: bytes, service: bytes, output: bytes):
        self.time = time  # the record's date, epoch seconds
        self.code = code
        self.host = host
        self.service = service
        self.output = output


class NscaOutput(RemoteOutput):
    settings_keys: dict[str, Any] = {
        **RemoteOutput.settings_keys,
        "host": "127.0.0.1",
        "port": 5667,
        "password": None,
        "encryption": None,  # 1 (XOR) when a password is set, else 0
        "max_output": 4096,
        "max_age": 25.0,
        "hosts": {},
        "services": {},
        "payload": "json",  # after the `|`: the record as JSON, or "perfdata" for graphs
    }

    ordered = True
    # a service has one current state in Nagios: an older result would put it back in time
    newest_only = True

    def __init__(self, name: str, settings: dict[str, Any] | None = None, **kw: Any) -> None:
        super().__init__(name, settings, **kw)
        self.host = self.setting_text("host")
        self.port = self.setting_int("port", 1, 65535)
        self.max_age = self.setting_seconds("max_age", maximum=86400.0)
        max_output = self.settings.get("max_output")
        if type(max_output) is not int or max_output not in wire.OUTPUT_SIZES:
            raise self._bad(
                "max_output",
                f"must be 4096 (NSCA 2.9 and later) or 512 (NSCA 2.7), not {max_output!r}",
            )
        self.max_output: int = max_output
        password = self.secret("password")
        if password is not None and not isinstance(password, str):
            raise self._bad("password", "must be a string")
        self._password = (password or "").encode()
        self.encryption = self._encryption(bool(password))
        self.hosts = self._names("hosts", wire.HOST_SIZE)
        self.services = self._names("services", wire.SERVICE_SIZE)
        from accre_monitor.outputs.nagios import PAYLOADS

        self.payload = self.settings.get("payload")
        if self.payload not in PAYLOADS:
            raise self._bad("payload", 'must be "json" or "perfdata"')

    def _encryption(self, has_password: bool) -> int:
        value = self.settings.get("encryption")
        if value is None:
            return wire.XOR if has_password else wire.NONE
        supported = ", ".join(f"{number} ({name})" for number, name in wire.METHODS.items())
        if isinstance(value, bool) or value not in wire.METHODS:
            raise self._bad(
                "encryption", f"must be one of the supported methods {supported}, not {value!r}"
            )
        if value == wire.XOR and not has_password:
            variable = f"ACCRE_MONITOR_{self.section}_PASSWORD".upper().replace("-", "_")
            raise self._bad(
                "encryption", f"1 (XOR) needs outputs.{self.section}.password (or ${variable})"
            )
        return value

    def _names(self, key: str, field: int) -> dict[str, str]:
        table = self.settings.get(key)
        if not isinstance(table, dict):
            raise self._bad(key, 'must be a table of names, e.g. {"n0123" = "n0123.cluster"}')
        for source, target in table.items():
            if not isinstance(target, str):
                raise self._bad(key, f"entry {source!r} must be a string")
            problem = name_problem(target, field)
            if problem:
                raise self._bad(key, f"value {target!r} for {source!r} {problem}")
        return dict(table)

    # -- delivery --------------------------------------------------------------------------

    def prepare(self, record: dict[str, Any]) -> Result:
        from accre_monitor.outputs.nagios import render

        status = record.get("status")
        if status not in RETURN_CODES:
            raise ValueError(f"record status {status!r} is not one of {', '.join(RETURN_CODES)}")
        node, check = record.get("node"), record.get("name")
        if not isinstance(node, str) or not isinstance(check, str):
            raise ValueError("record has no node or name string")
        host = checked_name("host", self.hosts.get(node, node), wire.HOST_SIZE)
        service = checked_name("service", self.services.get(check, check), wire.SERVICE_SIZE)
        # a plugin's final newline ends its output, it is not part of it; a NUL would end
        # the daemon's copy of the field early
        text = render(record, payload=self.payload).rstrip("\n").replace("\0", "")
        output = wire.cut_utf8(text.encode("utf-8", "replace"), self.max_output - 1)
        return Result(record_time(record), RETURN_CODES[status], host, service, output)

    def write_batch(self, items: list[Result], timeout: float) -> list[Outcome]:
        deadline = time.monotonic() + timeout
        outcomes: list[Outcome | None] = [None] * len(items)
        now = time.time()
        sending: list[int] = []
        for index in sorted(range(len(items)), key=lambda index: items[index].time):
            age = now - items[index].time
            if age > self.max_age:
                message = f"{age:.1f} s old, older than max_age ({self.max_age:g} s)"
                outcomes[index] = Outcome(EXPIRED, message)
            else:
                sending.append(index)
        expired = len(items) - len(sending)
        if expired:
            log.warning(
                "results older than max_age expired instead of being sent",
                output=self.name,
                expired=expired,
                max_age=self.max_age,
            )
        connection = _Connection(self.host, self.port, self.encryption, self._password)
        send = connection.send_one_each if self.max_output == 512 else connection.send_together
        sent, error = send([items[index] for index in sending], self.max_output, deadline)
        if error and not sent and not expired:
            raise StoreUnavailable(f"NSCA at {self.host}:{self.port}: {error}")
        for position, index in enumerate(sending):
            outcomes[index] = (
                Outcome(DELIVERED)
                if position < sent
                else Outcome(RETRY, f"NSCA at {self.host}:{self.port}: {error}")
            )
        return outcomes  # type: ignore[return-value]


class _Connection:
    """Sends packets so that the daemon's single-process mode never stalls: finding part of
    a packet and nothing more to read yet, it sleeps a whole second while every client waits.
    So a batch is written at once, and a 720-byte packet leaves in one segment with the end of
    its connection (the daemon tells it from a long one only by that end)."""

    def __init__(self, host: str, port: int, method: int, password: bytes) -> None:
        # an ASCII name as bytes: given text, getaddrinfo imports the idna codec to encode it
        self.address = (host.encode() if host.isascii() else host, port)
        self.method = method
        self.password = password

    def send_together(
        self, results: list[Result], max_output: int, deadline: float
    ) -> tuple[int, str | None]:
        """All packets over one connection: (how many were fully written, error or None)."""
        if not results:
            return 0, None
        size = wire.packet_size(max_output)
        written = 0
        try:
            sock, cipher, clock = self._open(deadline)
            with sock:
                data = b"".join(
                    cipher.encrypt(_packet(result, clock, max_output)) for result in results
                )
                view = memoryview(data)
                while written < len(data):
                    sock.settimeout(_left(deadline))
                    written += sock.send(view[written:])
                _end_writing(sock)
        except OSError as exc:
            return written // size, describe_error(exc)
        return len(results), None

    def send_one_each(
        self, results: list[Result], max_output: int, deadline: float
    ) -> tuple[int, str | None]:
        """One connection per packet: (how many were fully written, error or None)."""
        sent = 0
        for result in results:
            try:
                sock, cipher, clock = self._open(deadline)
                with sock:
                    sock.settimeout(_left(deadline))
                    if hasattr(socket, "TCP_CORK"):  # Linux: the data waits for the FIN
                        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
                    sock.sendall(cipher.encrypt(_packet(result, clock, max_output)))
                    sent += 1
                    _end_writing(sock)
            except OSError as exc:
                return sent, describe_error(exc)
        return sent, None

    def _open(self, deadline: float) -> tuple[socket.socket, wire.Cipher, int]:
        """A connection whose initialisation packet was read: (socket, cipher, daemon clock);
        the caller closes the socket."""
        sock = socket.create_connection(self.address, timeout=_left(deadline))
        try:
            init = b""
            while len(init) < wire.INIT_SIZE:
                sock.settimeout(_left(deadline))
                chunk = sock.recv(wire.INIT_SIZE - len(init))
                if not chunk:
                    raise ConnectionError("closed the connection before its initialisation")
                init += chunk
            iv, clock = wire.parse_init(init)
            return sock, wire.Cipher(self.method, iv, self.password), clock
        except BaseException:
            sock.close()
            raise


def _end_writing(sock: socket.socket) -> None:
    """Tell the daemon the data is complete; the packets were written in full, so a failure
    here changes nothing about what was delivered."""
    try:  # noqa: SIM105 (contextlib.suppress would cost the run an import)
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def _packet(result: Result, clock: int, max_output: int) -> bytes:
    # the record's time, capped at the daemon's clock: NSCA 2.7 drops packets from its
    # future (send_nsca always sends the daemon's clock back)
    timestamp = min(int(result.time), clock)
    return wire.data_packet(
        timestamp, result.code, result.host, result.service, result.output, max_output
    )


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("deadline passed before sending")
    return left


def record_time(record: dict[str, Any]) -> float:
    """The record's `date` as epoch seconds (a date without an offset is taken as UTC)."""
    return epoch_seconds(record.get("date"))


def checked_name(kind: str, name: str, field: int) -> bytes:
    """`name` as the bytes of its packet field; ValueError when it cannot be one."""
    problem = name_problem(name, field)
    if problem:
        raise ValueError(f"NSCA {kind} name {name!r} {problem}")
    return name.encode()


def name_problem(name: str, field: int) -> str | None:
    """Why `name` cannot be an NSCA host or service name in a field of `field` bytes."""
    if not name.strip():
        return "is empty"
    size = len(name.encode("utf-8", "replace"))
    if size > field - 1:
        return f"is {size} bytes long, longer than NSCA's {field - 1}"
    for char in FORBIDDEN_IN_NAMES:
        if char in name:
            return f"holds {char!r}, which Nagios cannot take in a name"
    return None
