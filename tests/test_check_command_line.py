"""The command line of a check: options given without a value, `-w`/`-c`, accre-monitor's own
options after the check name, declared options of a site check, and unknown check names."""

import pytest

SITE = '''
from accre_monitor import Option, Range, monitor_command

@monitor_command(
    label="QUEUE",
    options=[
        Option("path", str, "/var/spool/myjob", "the queue directory"),
        Option("warning", Range, 50, "WARNING outside this range of files"),
        Option("critical", Range, 100, "CRITICAL outside this range of files"),
        Option("verbose", bool, help="list the files in the long text"),
    ],
)
def queue(opts):
    """Files waiting in a queue directory.

    Counts the entries of --path.
    """
    import os
    count = len(os.listdir(opts["path"]))
    status = "CRITICAL" if opts["critical"].alerts(count) else "OK"
    status = "WARNING" if status == "OK" and opts["warning"].alerts(count) else status
    return status, count, f"QUEUE {status} - {count} files"
'''


@pytest.fixture
def site(cli):
    cli.write_module("mysite.checks", SITE)
    cli.write_config(
        '[monitoring]\ncheck_modules = ["mysite.checks"]\noutputs = ["nagios-stdout"]\n'
    )
    (cli.tmp / "queue").mkdir()
    for name in "abc":
        (cli.tmp / "queue" / name).touch()
    return cli


def short_of(result):
    return result.stdout.partition(" | ")[0].strip()


def test_a_site_checks_typo_is_refused_instead_of_ignored(site):
    result = site.run("queue", "--pth", "/tmp")
    assert result.returncode == 3, result.stderr
    assert short_of(result) == "QUEUE UNKNOWN - unknown option pth (known: path, warning, " + (
        "critical, verbose)"
    )


def test_a_site_checks_thresholds_take_w_and_c(site):
    path = str(site.tmp / "queue")
    assert site.run("queue", "--path", path).returncode == 0
    assert site.run("queue", "--path", path, "-w", "2").returncode == 1
    assert site.run("queue", "--path", path, "-w", "2", "-c", "1").returncode == 2
    assert site.run("queue", "--path", path, "-w2", "-c1").returncode == 2


def test_a_site_checks_help_shows_its_declared_options(site):
    result = site.run("queue", "-h")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith("usage: accre-monitor [OPTIONS] queue [CHECK OPTIONS]\n")
    assert "Files waiting in a queue directory." in text
    assert "Counts the entries of --path." in text
    for invocation, help_line in (
        ("--path TEXT", "the queue directory (default: /var/spool/myjob)"),
        ("-w, --warning RANGE", "WARNING outside this range of files (default: 50)"),
        ("-c, --critical RANGE", "CRITICAL outside this range of files (default: 100)"),
        ("--verbose", "list the files in the long text"),
    ):
        assert f"  {invocation:<20}  {help_line}" in text.splitlines(), text
    # the summary, then the options, then the rest of the docstring
    assert text.index("Files waiting") < text.index("--path TEXT") < text.index("Counts the")


@pytest.mark.parametrize(
    "args",
    [
        ["--warning"],
        ["--warning", "--critical", "30"],
        ["--critical", "30", "--warning"],
        ["-w"],
        ["-w", "-c", "30"],
        ["--warning", ""],
        ["--warning="],
    ],
)
def test_loadavg_with_a_threshold_option_but_no_value_is_unknown_naming_it(cli, args):
    result = cli.run("--outputs", "nagios-stdout", "loadavg", *args)
    assert result.returncode == 3, result.stdout
    assert short_of(result) == "LOAD UNKNOWN - option warning needs a value"


@pytest.mark.parametrize(
    ("check", "option", "label"),
    [
        ("disk_usage", "critical", "DISK"),
        ("memory", "swap_warning", "MEMORY"),
        ("file_age", "warning", "FILE_AGE"),
    ],
)
def test_a_threshold_with_a_default_given_no_value_is_unknown_not_the_default(
    cli, check, option, label
):
    extra = ["--path", "/"] if check == "file_age" else []
    result = cli.run("--outputs", "nagios-stdout", check, *extra, f"--{option}")
    assert result.returncode == 3, result.stdout
    assert short_of(result) == f"{label} UNKNOWN - option {option} needs a value"


def test_loadavg_takes_w_and_c_as_check_load_does(cli):
    assert cli.run("loadavg", "-w", "1000,1000,1000", "-c", "2000,2000,2000").returncode == 0
    assert cli.run("loadavg", "-w", "-1,-1,-1", "-c", "1000,1000,1000").returncode == 1
    assert cli.run("loadavg", "-w", "-1", "-c", "-1").returncode == 2
    assert cli.run("loadavg", "-c-1").returncode == 2


@pytest.mark.parametrize(
    ("option", "value"),
    [("outputs", "stdout"), ("config", "/etc/x.toml"), ("timeout", "5"), ("options", "{}")],
)
def test_an_accre_monitor_option_after_the_check_name_is_unknown_saying_where_it_goes(
    cli, option, value
):
    result = cli.run("--outputs", "nagios-stdout", "loadavg", f"--{option}", value)
    assert result.returncode == 3
    assert short_of(result) == (
        f"LOAD UNKNOWN - --{option} is an accre-monitor option: it goes before the check name "
        f"(accre-monitor --{option} ... loadavg)"
    )


def test_a_check_option_named_like_an_accre_monitor_option_is_the_checks(cli):
    result = cli.run("--outputs", "nagios-stdout", "tcp_port", "--port", "1", "--timeout", "0.5")
    assert short_of(result).startswith("TCP CRITICAL - "), result.stdout


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("disk_usag", "did you mean disk_usage?"),
        ("disk-usge", "did you mean disk_usage?"),
        ("memroy", "did you mean memory?"),
        ("queu", "did you mean queue?"),
        ("zzzzzz", "run `accre-monitor -h` for the list"),
    ],
)
def test_an_unknown_check_name_suggests_the_nearest_ones(site, name, hint):
    result = site.run(name)
    assert result.returncode == 3
    assert short_of(result) == f"UNKNOWN - unknown check {name!r}; {hint}"


def test_builtin_help_shows_each_option_with_its_default(cli):
    text = cli.run("disk_usage", "-h").stdout
    assert "  --mounts PATHS" in text
    assert "-w, --warning PCT" in text and "(default: 80)" in text
    text = cli.run("loadavg", "-h").stdout
    assert "  -w, --warning W1,W5,W15" in text and "  -c, --critical C1,C5,C15" in text
