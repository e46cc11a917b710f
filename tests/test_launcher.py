"""The installed `accre-monitor` command is the project's plain script, not a generated
entry-point launcher (which, up to pip 25.1, imports `re` on every run)."""

from pathlib import Path

from conftest import REPO, console_script


def test_the_installed_command_is_the_plain_script():
    installed = Path(console_script("accre-monitor")).read_text().splitlines()
    ours = (REPO / "bin" / "accre-monitor").read_text().splitlines()
    assert installed[0].startswith("#!") and "python" in installed[0]
    assert installed[1:] == ours[1:]
    assert not any(line.startswith(("import re", "from re ")) for line in installed)
