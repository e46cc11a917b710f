"""The `nagios-nsca` output against the real NSCA daemon (and a real Nagios 4 behind it)."""

from __future__ import annotations

import socket
import struct
import threading
import time
from datetime import datetime

import pytest
from servers import NagiosServer, NscaServer, missing_reason

from accre_monitor.errors import ConfigError
from accre_monitor.outcome import DELIVERED, EXPIRED, REJECTED, RETRY, StoreUnavailable
from accre_monitor.outputs import create_output
from accre_monitor.outputs.nagios import render
from accre_monitor.record import build_record, iso_now

pytestmark = pytest.mark.integration

PASSWORD = "n5ca-s3cret"
ENV_PASSWORD = "ACCRE_MONITOR_NAGIOS_NSCA_PASSWORD"


def need(*kinds: str) -> None:
    for kind in kinds:
        reason = missing_reason(kind)
        if reason:
            pytest.skip(reason)


@pytest.fixture(params=[0, 1], ids=["plain", "xor"])
def daemon(request):
    """The daemon with encryption method 0 (none) or 1 (XOR with a password)."""
    need("nsca")
    with NscaServer(password=PASSWORD if request.param else None) as srv:
        yield srv


@pytest.fixture
def plain_daemon():
    need("nsca")
    with NscaServer() as srv:
        yield srv


@pytest.fixture
def make_output(monkeypatch):
    monkeypatch.delenv(ENV_PASSWORD, raising=False)
    made = []

    def make(srv=None, **settings):
        if srv is not None:
            settings = {"port": srv.port, "password": srv.password, **settings}
        output = create_output("nagios-nsca", settings)
        made.append(output)
        return output

    yield make
    for output in made:
        output.close()


def record(name="disk", status="WARNING", node="web01", age=0.0, **extra):
    rec = build_record(
        name,
        status,
        {"/": 85},
        short=f"DISK {status} - / 85%",
        node=node,
        date=iso_now(time.time() - age),
    )
    rec.update(extra)
    return rec


def flushed(srv: NscaServer) -> list[tuple]:
    """Every result the daemon took so far (it never answers: wait until it has read all)."""
    srv.flush()
    return srv.results()


def escaped(text: str) -> str:
    """Plugin output as the daemon writes it to the command file."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def unescaped(text: str) -> str:
    out, chars = [], iter(text)
    for char in chars:
        if char == "\\":
            nxt = next(chars, "")
            out.append("\n" if nxt == "n" else nxt)
        else:
            out.append(char)
    return "".join(out)


# -- what arrives ----------------------------------------------------------------------------


def test_the_command_file_line_is_exactly_what_was_sent(daemon, make_output):
    output = make_output(daemon)
    assert output.encryption == (1 if daemon.password else 0)
    rec = record(long="first line\nsecond line, C:\\path")
    before = int(time.time())
    assert output.deliver([rec], 2.0)[0].state == DELIVERED
    [(stamp, host, service, code, text)] = flushed(daemon)
    assert (host, service, code) == ("web01", "disk", 1)
    # real newlines were sent: the daemon escapes them (and backslashes) once
    assert text == escaped(render(rec).rstrip("\n"))
    assert text.endswith("}\\nfirst line\\nsecond line, C:\\\\path")
    # NSCA 2.10 writes its own clock there, not the packet's (the packet's time is checked
    # on the wire below)
    assert before <= stamp <= time.time() + 1


@pytest.mark.parametrize(
    "status, code", [("OK", 0), ("WARNING", 1), ("CRITICAL", 2), ("UNKNOWN", 3)]
)
def test_the_return_code_follows_the_status(plain_daemon, make_output, status, code):
    make_output(plain_daemon).deliver([record(status=status)], 2.0)
    assert flushed(plain_daemon)[0][3] == code


def test_hosts_and_services_can_be_renamed(plain_daemon, make_output):
    output = make_output(
        plain_daemon, hosts={"n0123": "n0123.cluster"}, services={"disk": "Disk usage"}
    )
    output.deliver([record(node="n0123"), record(node="n0124", name="memory")], 2.0)
    got = [(host, service) for _t, host, service, _c, _o in flushed(plain_daemon)]
    assert got == [("n0123.cluster", "Disk usage"), ("n0124", "memory")]


@pytest.mark.parametrize("max_output", [512, 4096])
@pytest.mark.parametrize("char", ["é", "€", "😀"])
def test_output_is_cut_at_the_packet_limit_on_a_character_boundary(
    plain_daemon, make_output, max_output, char
):
    output = make_output(plain_daemon, max_output=max_output)
    rec = record(long="x" + char * 3000)
    assert output.deliver([rec], 2.0)[0].state == DELIVERED
    text = unescaped(flushed(plain_daemon)[0][4])
    sent = text.encode()
    assert "\ufffd" not in text  # no character was split
    assert max_output - 1 - len(char.encode()) < len(sent) <= max_output - 1
    assert render(rec).startswith(text)


def test_a_batch_arrives_in_time_order_and_answers_in_the_callers_order(plain_daemon, make_output):
    for max_output in (4096, 512):  # one connection per batch; one per packet
        plain_daemon.clear()
        output = make_output(plain_daemon, max_output=max_output)
        records = [record(name="newest", age=1), record(name="oldest", age=5)]
        records.insert(1, record(name="middle", age=3))
        outcomes = output.deliver(records, 2.0)
        assert [o.state for o in outcomes] == [DELIVERED] * 3
        got = [service for _t, _h, service, _c, _o in flushed(plain_daemon)]
        assert got == ["oldest", "middle", "newest"]


def test_short_packets_never_stall_the_daemon(plain_daemon, make_output):
    """The daemon sleeps a second when it finds a packet but not yet the end of a connection
    it reads on to recognise a 720-byte packet: the end goes in the packet's segment."""
    records = [record(name=f"check{i}") for i in range(300)]
    assert {o.state for o in make_output(plain_daemon).deliver(records, 5.0)} == {DELIVERED}
    plain_daemon.flush()
    started = time.monotonic()
    outcomes = make_output(plain_daemon, max_output=512).deliver(records, 3.0)
    assert [o.state for o in outcomes] == [DELIVERED] * 300
    assert time.monotonic() - started < 3
    assert len(flushed(plain_daemon)) == 600


# -- the packet's timestamp, seen on the wire ------------------------------------------------


class Capture:
    """A listener that plays the daemon's side of one connection: it sends an IV and a clock,
    then keeps what the client sends until it closes."""

    def __init__(self, clock: int) -> None:
        self.clock = clock
        self.iv = bytes((5 * i + 1) % 256 for i in range(128))
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.received = b""
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            conn.sendall(self.iv + struct.pack("!I", self.clock))
            while chunk := conn.recv(65536):
                self.received += chunk

    def packets(self) -> list[tuple]:
        self.thread.join(5)
        self.sock.close()
        layout = struct.Struct("!hxxIIh64s128s4096sxx")
        data = self.received
        return [layout.unpack(data[i : i + layout.size]) for i in range(0, len(data), 4304)]


def test_the_packet_carries_the_records_own_time(make_output):
    capture = Capture(clock=int(time.time()) + 3600)  # a daemon whose clock is ahead
    output = make_output(port=capture.port)
    rec = record(age=12.5)
    assert output.deliver([rec], 2.0)[0].state == DELIVERED
    [packet] = capture.packets()
    recorded = datetime.fromisoformat(rec["date"]).timestamp()
    assert recorded < time.time() - 12
    assert (packet[0], packet[2], packet[4].rstrip(b"\0")) == (3, int(recorded), b"web01")


def test_a_daemon_clock_behind_the_record_caps_the_timestamp(make_output):
    """NSCA 2.7 drops packets from its future: the daemon's clock is the latest time sent."""
    clock = int(time.time()) - 60
    capture = Capture(clock=clock)
    output = make_output(port=capture.port)
    assert output.deliver([record()], 2.0)[0].state == DELIVERED
    assert capture.packets()[0][2] == clock


# -- what is refused, expired, or kept for later ---------------------------------------------


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"node": "n" * 64}, "64 bytes long, longer than NSCA's 63"),
        ({"name": "s" * 128}, "128 bytes long, longer than NSCA's 127"),
        ({"name": "disk;usage"}, "holds ';'"),
        ({"date": "yesterday"}, "not ISO 8601"),
    ],
)
def test_a_record_nsca_cannot_carry_is_rejected_with_the_reason(
    plain_daemon, make_output, change, reason
):
    output = make_output(plain_daemon)
    bad = record(**change)
    outcomes = output.deliver([bad, record(name="fine")], 2.0)
    assert outcomes[0].state == REJECTED
    assert reason in outcomes[0].error
    assert outcomes[1].state == DELIVERED
    assert [r[2] for r in flushed(plain_daemon)] == ["fine"]


def test_a_name_of_63_bytes_fits(plain_daemon, make_output):
    name = "é" * 31 + "x"  # 63 bytes
    make_output(plain_daemon).deliver([record(node=name)], 2.0)
    assert flushed(plain_daemon)[0][1] == name


def test_results_older_than_max_age_expire_instead_of_being_sent(plain_daemon, make_output, capsys):
    output = make_output(plain_daemon, max_age=10)
    records = [record(name="stale", age=11), record(name="fresh"), record(name="old", age=60)]
    outcomes = output.deliver(records, 2.0)
    assert [o.state for o in outcomes] == [EXPIRED, DELIVERED, EXPIRED]
    assert "older than max_age (10 s)" in outcomes[0].error
    assert [r[2] for r in flushed(plain_daemon)] == ["fresh"]
    err = capsys.readouterr().err
    assert err.count("expired instead of being sent") == 1
    assert "expired=2" in err


def test_expired_results_leave_even_while_the_daemon_is_down(plain_daemon, make_output):
    output = make_output(plain_daemon)
    plain_daemon.stop()
    assert [o.state for o in output.deliver([record(age=30)], 2.0)] == [EXPIRED]
    with pytest.raises(StoreUnavailable, match="Connection refused"):
        output.deliver([record()], 2.0)
    outcomes = output.deliver([record(age=30), record()], 2.0)
    assert [o.state for o in outcomes] == [EXPIRED, RETRY]


def test_a_daemon_down_is_store_unavailable(plain_daemon, make_output):
    output = make_output(plain_daemon, password="never-shown", encryption=1)
    plain_daemon.stop()
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        output.deliver([record()], 2.0)
    assert time.monotonic() - started < 1
    assert f"127.0.0.1:{plain_daemon.port}" in str(caught.value)
    assert "never-shown" not in str(caught.value)


def test_a_daemon_closing_before_its_init_packet_is_store_unavailable(make_output):
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def close_at_once() -> None:
            conn, _ = listener.accept()
            conn.close()

        closer = threading.Thread(target=close_at_once, daemon=True)
        closer.start()
        with pytest.raises(StoreUnavailable, match="before its initialisation"):
            make_output(port=port).deliver([record()], 2.0)
        closer.join(5)


def test_a_hanging_daemon_is_store_unavailable_within_the_timeout(plain_daemon, make_output):
    output = make_output(plain_daemon)
    with plain_daemon.paused_for():
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="timed out"):
            output.deliver([record()], 0.5)
        assert time.monotonic() - started < 1.5
    assert output.deliver([record(name="after")], 2.0)[0].state == DELIVERED
    assert [r[2] for r in flushed(plain_daemon)] == ["after"]


# -- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"encryption": 2}, "encryption must be one of the supported methods 0 (none), 1 (XOR)"),
        ({"encryption": True}, "encryption must be one of the supported methods"),
        ({"encryption": 1}, f"needs outputs.nagios-nsca.password (or ${ENV_PASSWORD})"),
        ({"max_output": 1024}, "max_output must be 4096 (NSCA 2.9 and later) or 512"),
        ({"max_output": 512.0}, "max_output must be 4096"),
        ({"max_age": 0}, "max_age must be a number of seconds above 0 and at most 86400, not 0"),
        ({"port": 0}, "port must be an integer from 1 to 65535, not 0"),
        ({"port": 70000}, "port must be an integer from 1 to 65535, not 70000"),
        ({"host": ""}, "host must be a non-empty string"),
        ({"timeout": -1}, "timeout must be a number of seconds above 0"),
        ({"hosts": ["n0123"]}, "hosts must be a table of names"),
        ({"hosts": {"n1": "h" * 64}}, "hosts value 'hhhh"),
        ({"services": {"disk": "a;b"}}, "services value 'a;b' for 'disk' holds ';'"),
        ({"services": {"disk": 3}}, "services entry 'disk' must be a string"),
    ],
)
def test_a_bad_setting_is_one_clear_error_naming_its_key(make_output, settings, message):
    with pytest.raises(ConfigError) as caught:
        make_output(**settings)
    assert str(caught.value).startswith("outputs.nagios-nsca.")
    assert message in str(caught.value)


def test_the_password_comes_from_the_environment_and_turns_xor_on(make_output, monkeypatch):
    need("nsca")
    with NscaServer(password=PASSWORD) as srv:
        monkeypatch.setenv(ENV_PASSWORD, PASSWORD)
        output = make_output(port=srv.port)  # no password, no encryption in the settings
        assert output.encryption == 1
        output.deliver([record()], 2.0)
        assert [r[1] for r in flushed(srv)] == ["web01"]


def test_defaults(make_output):
    output = make_output()
    assert (output.host, output.port, output.max_output, output.max_age) == (
        "127.0.0.1",
        5667,
        4096,
        25.0,
    )
    assert output.encryption == 0
    assert output.ordered is True


# -- end to end: Nagios takes the result -----------------------------------------------------


def test_nagios_shows_the_passive_result_in_its_status_file(make_output):
    need("nsca", "nagios")
    with (
        NagiosServer(services={"n0123.cluster": ["Disk"]}) as nagios,
        NscaServer(password=PASSWORD, command_file=nagios.command_file) as daemon,
    ):
        output = make_output(
            daemon, hosts={"n0123": "n0123.cluster"}, services={"disk_usage": "Disk"}
        )
        rec = record(
            name="disk_usage", status="CRITICAL", node="n0123", long="/scratch 99%\n/home 97%"
        )
        assert output.deliver([rec], 2.0)[0].state == DELIVERED
        fields = nagios.wait_for_service(
            "n0123.cluster", "Disk", lambda f: f.get("current_state") == "2"
        )
        assert fields is not None and fields["current_state"] == "2", nagios.log_tail()
        assert fields["plugin_output"] == "DISK CRITICAL - / 85%"
        assert rec["id"] in fields["performance_data"]
        assert fields["long_plugin_output"] == "/scratch 99%\\n/home 97%"


def test_performance_data_can_follow_the_pipe_instead_of_the_record(plain_daemon, make_output):
    output = make_output(plain_daemon, payload="perfdata")
    rec = record(perf={"/": {"uom": "%", "warn": "80", "crit": "90"}})
    assert output.deliver([rec], 2.0)[0].state == DELIVERED
    [(_, _, _, _, text)] = flushed(plain_daemon)
    assert text == escaped(render(rec, payload="perfdata").rstrip("\n"))
    assert text.endswith("| /=85%;80;90")


def test_an_unknown_payload_is_a_clear_setting_error(make_output):
    with pytest.raises(
        ConfigError, match='outputs.nagios-nsca.payload must be "json" or "perfdata"'
    ):
        make_output(payload="xml")
