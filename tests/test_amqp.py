"""Connection settings for the broker: URLs in turn, secrets out of sight, a cheap import."""

import subprocess
import sys

import pytest

from accre_monitor.config import Config
from accre_monitor.pipeline.amqp import PASSWORD_VARIABLE, describe_urls, parameters


def bus(**values):
    return Config(None, {"bus": {"kind": "rabbitmq", **values}}).bus


def test_the_urls_are_shown_without_their_passwords_only():
    settings = {"url": ["amqp://mon:S3cret@mq1:5672/%2F", "amqp://mq1/vhost", "amqp://mon:pw@[::1"]}
    assert describe_urls(settings) == (
        "amqp://mon:***@mq1:5672/%2F, amqp://mq1/vhost, amqp://mon:***@[::1"
    )


@pytest.mark.parametrize("password", ["s3cr#t", "s3/cr3t", "p@ss@word", "50%off", "20250417"])
def test_a_password_unescaped_in_the_url_is_the_one_the_broker_gets(password):
    (found,) = parameters(bus(url=f"amqp://mon:{password}@mq1:5673/prod"))
    assert (found.host, found.port, found.virtual_host) == ("mq1", 5673, "prod")
    assert (found.credentials.username, found.credentials.password) == ("mon", password)


def test_every_url_of_a_cluster_becomes_parameters_in_order():
    found = parameters(bus(url=["amqp://a:1@mq1:5673/prod", "amqp://a:1@mq2/%2F"]))
    assert [(p.host, p.port, p.virtual_host) for p in found] == [
        ("mq1", 5673, "prod"),
        ("mq2", 5672, "/"),
    ]


def test_the_password_from_the_environment_wins(monkeypatch):
    monkeypatch.setenv(PASSWORD_VARIABLE, "from-env")
    (found,) = parameters(bus(url="amqp://mon:in-url@mq1/%2F"))
    assert (found.credentials.username, found.credentials.password) == ("mon", "from-env")


def test_timeouts_and_heartbeat_come_from_the_settings():
    (found,) = parameters(bus(url="amqp://mq1/%2F", connect_timeout=1.5, heartbeat=7))
    assert found.socket_timeout == found.stack_timeout == found.blocked_connection_timeout == 1.5
    assert found.heartbeat == 7 and found.connection_attempts == 1


def test_amqps_verifies_the_broker_with_the_given_ca(tmp_path):
    import ssl

    (found,) = parameters(bus(url="amqps://mq1/%2F"))
    assert found.port == 5671
    assert found.ssl_options.context.verify_mode == ssl.CERT_REQUIRED
    assert found.ssl_options.server_hostname == "mq1"


@pytest.mark.parametrize("url", ["http://mq1/", "amqp://", "amqp://mq1:port/"])
def test_a_bad_url_is_a_problem_and_never_a_guess(url, capsys):
    config = Config(None, {"bus": {"kind": "rabbitmq", "url": url}})
    assert config.bus["url"] == []
    assert "bus.url must be an amqp:// or amqps:// URL" in capsys.readouterr().err


def printed_by_a_python_of_its_own(*lines: str) -> str:
    """What `lines` print run in a new interpreter: which pika adapter a process imported
    stays for its life, so each case needs a process of its own."""
    code = "\n".join(["import sys", *lines])
    result = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_loading_pika_for_a_publish_leaves_asyncio_alone():
    printed = printed_by_a_python_of_its_own(
        "from accre_monitor.pipeline.amqp import load_pika",
        "pika = load_pika()",
        "assert pika.BlockingConnection and pika.BasicProperties",
        "print('asyncio' in sys.modules)",
    )
    assert printed == "False"


def test_connecting_outside_a_run_imports_pika_as_it_is():
    # the placeholder for pika's asyncio adapter belongs to a run's publish path alone: the
    # shipper and accre-pipeline (connect, parameters) get the real adapter
    printed = printed_by_a_python_of_its_own(
        "from accre_monitor.config import Config",
        "from accre_monitor.pipeline.amqp import parameters",
        "parameters(Config(None, {'bus': {'kind': 'rabbitmq', 'url': 'amqp://mq1/'}}).bus)",
        "print(sys.modules['pika.adapters.asyncio_connection'].AsyncioConnection is not None)",
    )
    assert printed == "True"
