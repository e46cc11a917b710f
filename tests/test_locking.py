import os
import subprocess
import sys

import pytest

from accre_monitor import locking
from accre_monitor.errors import UserError


@pytest.fixture
def lockdir(tmp_path):
    path = tmp_path / "locks"
    locking.use_lockdir(str(path))
    yield path
    for name, flock_id in list(locking._HELD):
        locking.release_lock(name, flock_id)
    locking.use_lockdir(None)


HOLD_LOCK = """
import sys, time
from accre_monitor import locking
locking.use_lockdir(sys.argv[1])
print(locking.maybe_acquire_lock(sys.argv[2])[0], flush=True)
time.sleep(30)
"""


def hold_in_other_process(lockdir, name):
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(lockdir), name], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "OK"
    return proc


def test_a_free_lock_is_taken_and_the_directory_created_private(lockdir):
    status, data = locking.maybe_acquire_lock("disk")
    assert status == "OK"
    assert data["lock"] == str(lockdir / "disk.lock")
    assert os.stat(lockdir).st_mode & 0o777 == 0o700


def test_a_lock_held_by_another_process_is_critical(lockdir):
    proc = hold_in_other_process(lockdir, "disk")
    try:
        status, data = locking.maybe_acquire_lock("disk")
        assert status == "CRITICAL"
        assert "already running" in data["error"]
        assert data["exception"] == "BlockingIOError"
    finally:
        proc.kill()
        proc.wait()
    assert locking.maybe_acquire_lock("disk")[0] == "OK"


def test_each_flock_id_is_its_own_lock(lockdir):
    proc = hold_in_other_process(lockdir, "disk")
    try:
        assert locking.maybe_acquire_lock("disk", flock_id=1)[0] == "OK"
        assert locking.maybe_acquire_lock("disk", flock_id=2)[0] == "OK"
    finally:
        proc.kill()
        proc.wait()


def test_a_released_lock_can_be_taken_by_another_process(lockdir):
    assert locking.maybe_acquire_lock("disk")[0] == "OK"
    locking.release_lock("disk")
    proc = hold_in_other_process(lockdir, "disk")
    proc.kill()
    proc.wait()


def test_a_symlinked_lock_directory_is_refused(tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    link = tmp_path / "locks"
    link.symlink_to(target)
    with pytest.raises(UserError, match="symlink"):
        locking.prepare_lockdir(str(link))


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to create a directory for another user")
def test_a_lock_directory_owned_by_another_user_is_refused(tmp_path):
    path = tmp_path / "locks"
    path.mkdir(mode=0o700)
    os.chown(path, 65534, 65534)
    with pytest.raises(UserError, match="owned by uid 65534"):
        locking.prepare_lockdir(str(path))


def test_a_lock_directory_writable_by_others_is_refused(tmp_path):
    path = tmp_path / "locks"
    path.mkdir()
    path.chmod(0o777)
    with pytest.raises(UserError, match="writable by others"):
        locking.prepare_lockdir(str(path))


def test_a_refused_lock_directory_makes_maybe_acquire_lock_critical(tmp_path):
    link = tmp_path / "locks"
    link.symlink_to(tmp_path)
    locking.use_lockdir(str(link))
    try:
        status, data = locking.maybe_acquire_lock("disk")
    finally:
        locking.use_lockdir(None)
    assert status == "CRITICAL"
    assert data["exception"] == "UserError"


def test_the_default_lock_directory_is_per_user_in_tmp():
    import pwd

    user = pwd.getpwuid(os.getuid()).pw_name
    assert locking.resolve_lockdir("[DEFAULT]") == f"/tmp/{user}/accre-monitor"
    assert locking.resolve_lockdir(None) is None
