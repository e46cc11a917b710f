"""The one redactor: passwords in URLs, taken as text, and every secret the process knows."""

import subprocess
import sys

import pytest

from accre_monitor import redaction
from accre_monitor.config import Config
from accre_monitor.redaction import redact_url, remember, scrub, split_credentials

# what operators write in URLs without escaping it, and what urllib misreads
PASSWORDS = ["s3cr#t-word", "s3/cr3t-word", "p@ss@word-1", "50%off-word", "20250417"]


@pytest.mark.parametrize("password", PASSWORDS)
@pytest.mark.parametrize(
    ("scheme", "tail"),
    [
        ("amqp", "mq1:5672/%2F"),
        ("redis", "127.0.0.1:6379/0"),
        ("http", "couch.example:5984"),
        ("https", "es.example:9200/prefix"),
    ],
)
def test_a_url_is_shown_with_its_whole_password_masked(password, scheme, tail):
    url = f"{scheme}://monitor:{password}@{tail}"
    assert redact_url(url) == f"{scheme}://monitor:***@{tail}"


@pytest.mark.parametrize("password", PASSWORDS)
def test_the_credentials_are_split_off_before_anything_parses_the_url(password):
    assert split_credentials(f"amqp://monitor:{password}@mq1:5672/prod") == (
        "amqp://mq1:5672/prod",
        "monitor",
        password,
    )


def test_escaped_credentials_are_decoded_and_an_empty_user_is_kept_empty():
    assert split_credentials("redis://:p%40ss%2Fw@h:6379/0") == ("redis://h:6379/0", "", "p@ss/w")
    assert split_credentials("amqp://monitor@mq1/") == ("amqp://mq1/", "monitor", None)
    assert split_credentials("http://es:9200/a") == ("http://es:9200/a", None, None)


def test_a_url_without_a_password_is_shown_as_it_is():
    for url in ("amqp://mq1/vhost", "amqp://monitor@mq1/", "unix:///run/redis.sock", "x"):
        assert redact_url(url) == url


def test_every_url_with_credentials_inside_a_message_is_masked():
    text = (
        "broker ['amqp://mon:s3cr#t@mq1:5672/%2F', 'amqp://mon:p@ss/w@mq2/'],"
        "http://es:9200 and redis://:20250417@h:1/0: refused"
    )
    assert scrub(text) == (
        "broker ['amqp://mon:***@mq1:5672/%2F', 'amqp://mon:***@mq2/'],"
        "http://es:9200 and redis://:***@h:1/0: refused"
    )


def test_a_known_secret_is_masked_wherever_a_client_quotes_it():
    remember("s3cr#t-word")
    text = scrub("AUTH failed for s3cr#t-word (sent as s3cr%23t-word)")
    assert text == "AUTH failed for *** (sent as ***)"


def test_the_secrets_of_a_config_are_known_once_it_is_loaded(monkeypatch):
    monkeypatch.setenv("ACCRE_MONITOR_REDIS_PASSWORD", "from-the-environment")
    Config(
        None,
        {
            "bus": {"url": "amqp://mon:in-the-url@mq1/", "password": 20250417},
            "outputs": {
                "elasticsearch": {"api_key": "id:the-api-key"},
                "slack": {"webhook_url": "https://hooks.slack.com/services/T0/B0/tokentoken"},
            },
        },
    )
    text = scrub(
        "in-the-url 20250417 id:the-api-key from-the-environment "
        "https://hooks.slack.com/services/T0/B0/tokentoken tokentoken"
    )
    assert text == "*** *** *** *** https://hooks.slack.com/*** ***"


def test_short_secrets_are_left_to_the_url_rule():
    remember("ab1")
    assert scrub("ab1 and amqp://u:ab1@h/") == "ab1 and amqp://u:***@h/"


@pytest.mark.parametrize(
    "key",
    ["password", "api_key", "webhook_url", "token", "auth_token", "tls_key", "client_secret"],
)
def test_keys_named_like_secrets_are_secrets(key):
    assert redaction.is_secret_key(key)


@pytest.mark.parametrize("key", ["url", "username", "timeout", "tls_ca_file", "hosts"])
def test_other_keys_are_not(key):
    assert not redaction.is_secret_key(key)


@pytest.mark.parametrize("value", [20250417, 2025.0417, ["s3cr#t-word"]])
def test_a_bad_value_of_a_secret_key_is_never_quoted(value, capsys):
    config = Config("/etc/x.toml", {"bus": {"password": value}})
    assert config.bus["password"] is None
    (problem,) = config.problems
    assert problem.startswith("bus.password must be a non-empty string, not a")
    assert "(the value is not shown: it is a secret); using the default" in problem
    shown = problem + capsys.readouterr().err
    assert "20250417" not in shown and "2025.0417" not in shown and "s3cr" not in shown


def test_a_bad_url_with_credentials_is_quoted_without_its_password(capsys):
    config = Config(None, {"bus": {"url": "http://monitor:s3cr#t@mq1/"}})
    (problem,) = config.problems
    assert "'http://monitor:***@mq1/'" in problem
    assert "s3cr" not in problem + capsys.readouterr().err


def test_the_redactor_imports_neither_re_nor_urllib():
    code = (  # (an editable install's import hook loads both at start-up: dropped first)
        "import sys; [sys.modules.pop(n, None) for n in ('re', 'urllib.parse')];"
        "import accre_monitor.redaction as r;"
        "r.scrub(r.redact_url('amqp://u:p#w@h/'));"
        "print(sorted({'re', 'urllib.parse'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stderr


def test_a_log_line_is_scrubbed_in_either_format(capsys):
    from accre_monitor import log

    remember("s3cr#t-word")
    for fmt in ("console", "json"):
        log.configure(fmt)
        log.warning("store down", error="AUTH s3cr#t-word refused", urls=("amqp://u:x#y@h/",))
        err = capsys.readouterr().err
        assert "s3cr" not in err and "x#y" not in err and "***" in err
    log.configure("console")
