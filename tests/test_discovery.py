import sys
import textwrap

import pytest

from accre_monitor.discovery import all_checks, declared_checks, find_check
from accre_monitor.registry import REGISTRY


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A package `sitechecks` of check modules on sys.path, forgotten afterwards."""
    package = tmp_path / "sitechecks"
    package.mkdir()
    (package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield package
    for name in list(sys.modules):
        if name.startswith("sitechecks"):
            del sys.modules[name]
    for name in ("site_one", "site_two", "auditor_site", "hidden_check"):
        REGISTRY.pop(name, None)


def write(package, module, source):
    (package / f"{module}.py").write_text(textwrap.dedent(source))


def test_decorated_functions_are_found_in_source():
    source = textwrap.dedent(
        """
        import accre_monitor
        @monitor_command
        def one(opts): pass
        @accre_monitor.monitor_command
        @other
        def two(opts): pass
        def three(opts): pass
        """
    )
    path = __import__("pathlib").Path(__file__).parent / "_scan_probe.py"
    try:
        path.write_text(source)
        assert declared_checks(str(path)) == ["one", "two"]
    finally:
        path.unlink()


def test_only_the_module_defining_the_check_is_imported(site):
    write(
        site,
        "a",
        "from accre_monitor import monitor_command\n"
        "@monitor_command\ndef site_one(opts):\n    return 'OK', 1\n",
    )
    write(site, "b", "raise RuntimeError('must not be imported')\n")
    func = find_check("site_one", ["sitechecks"])
    assert func is REGISTRY["site_one"]
    assert "sitechecks.a" in sys.modules
    assert "sitechecks.b" not in sys.modules


def test_dashes_in_a_check_name_mean_underscores(site):
    write(
        site,
        "a",
        "from accre_monitor import monitor_command\n"
        "@monitor_command\ndef site_two(opts):\n    return 'OK', 1\n",
    )
    assert find_check("site-two", ["sitechecks"]) is REGISTRY["site_two"]


def test_a_module_without_readable_source_is_imported_as_a_last_resort(site):
    write(
        site,
        "dyn",
        "from accre_monitor import monitor_command\n"
        "def hidden_check(opts):\n    return 'OK', 1\nmonitor_command(hidden_check)\n",
    )
    (site / "dyn.py").rename(site / "dyn_tmp.py")
    import py_compile

    py_compile.compile(str(site / "dyn_tmp.py"), cfile=str(site / "dyn.pyc"))
    (site / "dyn_tmp.py").unlink()
    import importlib

    importlib.invalidate_caches()
    assert find_check("hidden_check", ["sitechecks.dyn"]) is REGISTRY["hidden_check"]


def test_a_module_whose_decorator_use_the_scan_misreads_is_imported_as_a_last_resort(site):
    write(
        site,
        "odd",
        "from accre_monitor import monitor_command\n"
        "def odd_check(opts):\n    return 'OK', 1\nmonitor_command(odd_check)\n",
    )
    write(site, "other", "raise RuntimeError('must not be imported')\n")
    assert find_check("odd_check", ["sitechecks"]) is REGISTRY["odd_check"]
    assert "sitechecks.other" not in sys.modules


def test_a_decorator_whose_arguments_span_lines_is_found_by_the_scan(site):
    write(
        site,
        "multi",
        "from accre_monitor import Option, monitor_command\n\n"
        "@monitor_command(\n    label='M',\n    options=[\n"
        "        Option('path', str, '/x', 'a path (brackets [] too)'),\n    ],\n)\n"
        "def multi_line(opts):\n    return 'OK', opts['path']\n",
    )
    from accre_monitor.discovery import declared_checks

    assert declared_checks(str(site / "multi.py")) == ["multi_line"]
    assert find_check("multi_line", ["sitechecks"]) is REGISTRY["multi_line"]


def test_auditor_checks_exist_only_when_enabled(site):
    write(
        site,
        "aud",
        "from accre_monitor import monitor_command\n"
        "@monitor_command\ndef auditor_site(opts):\n    return 'OK', 1\n",
    )
    assert find_check("auditor_site", ["sitechecks"], auditor=False) is None
    assert find_check("auditor_site", ["sitechecks"], auditor=True) is REGISTRY["auditor_site"]
    assert "auditor_site" not in all_checks(["sitechecks"], auditor=False)[0]
    assert "auditor_site" in all_checks(["sitechecks"], auditor=True)[0]


def test_a_broken_module_is_reported_by_the_listing_not_fatal(site):
    write(site, "broken", "import not_a_module_anywhere\n")
    checks, problems = all_checks(["sitechecks"])
    assert "loadavg" in checks
    assert any("sitechecks.broken" in problem for problem in problems)


def test_builtin_checks_are_found():
    assert find_check("loadavg", []) is REGISTRY["loadavg"]
    assert find_check("no_such_check", []) is None
