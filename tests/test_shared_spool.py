"""One spool per node, shared by the users that run checks: a directory of their group,
setgid and group-writable (`install -d -g GROUP -m 2770`), holds files its group may write,
whoever creates them and whatever their umask; anywhere else the files stay private."""

import os
import stat

import pytest
from as_user import needs_root, run_as, shared_directory

from accre_monitor.pipeline.spool import Spool, spool_settings
from accre_monitor.pipeline.state_sqlite import SqliteState
from accre_monitor.record import build_record
from accre_monitor.sqlite_files import create_private

GROUP = 4242  # the group of the users that run checks, and of the shipper's user
FIRST, SECOND = 65534, 65533


@pytest.fixture
def shared():
    yield from shared_directory()


@pytest.fixture
def group_dir(shared, tmp_path):
    """/var/spool/accre-monitor as the deployment guide makes it: root:GROUP, mode 2770."""
    # the other users may not reach this interpreter's library: import what they run now
    spool = Spool(spool_settings({"path": str(tmp_path / "warm" / "spool.db")}))
    spool.add([("warm", "redis", b"{}")])
    spool.close()
    SqliteState(str(tmp_path / "warm" / "state.db")).take([build_record("disk", "OK", None)])
    (tmp_path / "warm" / "spool.db").write_bytes(b"not a database" * 100)
    Spool(spool_settings({"path": str(tmp_path / "warm" / "spool.db")})).add([("w", "r", b"{}")])
    directory = shared / "accre-monitor"
    directory.mkdir()
    os.chown(directory, 0, GROUP)
    directory.chmod(0o2770)
    return directory


def mode_and_group(path) -> tuple[int, int]:
    info = os.stat(path)
    return stat.S_IMODE(info.st_mode), info.st_gid


def spool_as(uid: int, path, record_id: str) -> str:
    """As `uid` in GROUP, with a strict umask: spool one entry; the spool's size after."""

    def write() -> str:
        os.umask(0o077)
        spool = Spool(spool_settings({"path": str(path)}))
        spool.add([(record_id, "redis", b"{}")])
        try:
            return str(spool.pending("redis"))
        finally:
            spool.close()  # the child leaves through os._exit

    return run_as(uid, write, groups=(GROUP,))


@needs_root
def test_users_of_the_directorys_group_write_one_spool(group_dir):
    path = group_dir / "spool.db"
    assert spool_as(FIRST, path, "from-first") == "1"
    assert spool_as(SECOND, path, "from-second") == "2"
    assert mode_and_group(path) == (0o660, GROUP)


@needs_root
def test_the_state_beside_a_shared_spool_is_shared_too(group_dir):
    path = str(group_dir / "state.db")

    def take(node: str) -> str:
        def write() -> str:
            os.umask(0o077)
            state = SqliteState(path)
            state.take([build_record("disk", "OK", None, node=node)])
            return str(len(state.entries()))

        return write

    assert run_as(FIRST, take("n1"), groups=(GROUP,)) == "1"
    assert run_as(SECOND, take("n2"), groups=(GROUP,)) == "2"
    assert mode_and_group(path) == (0o660, GROUP)


@needs_root
def test_a_corrupt_shared_spool_is_set_aside_by_any_user_of_the_group(group_dir):
    """Setting aside takes a lock file beside the spool: the next user must open it too."""
    path = group_dir / "spool.db"
    for uid in (FIRST, SECOND):
        path.write_bytes(b"this is not a database" * 100)
        os.chown(path, 0, GROUP)
        path.chmod(0o660)
        assert spool_as(uid, path, f"from-{uid}") == "1"
    assert mode_and_group(group_dir / "spool.db.recover") == (0o660, GROUP)
    assert len(list(group_dir.glob("spool.db.corrupt-*[0-9]"))) == 2


def test_anywhere_else_a_new_spool_is_private_whatever_the_umask(tmp_path):
    group_writable = tmp_path / "group-writable-without-setgid"
    group_writable.mkdir()
    group_writable.chmod(0o770)
    old = os.umask(0o002)
    try:
        for path in (tmp_path / "made" / "spool.db", group_writable / "spool.db"):
            create_private(str(path))
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(tmp_path / "made").st_mode) == 0o700
    finally:
        os.umask(old)


def test_an_existing_file_keeps_the_mode_it_was_given(tmp_path):
    path = tmp_path / "spool.db"
    path.touch()
    path.chmod(0o640)
    create_private(str(path))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
