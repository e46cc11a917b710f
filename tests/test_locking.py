import os
import subprocess
import sys

import pytest
from as_user import OTHER, needs_root, run_as, shared_directory

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
        [sys.executable, "-P", "-c", HOLD_LOCK, str(lockdir), name],
        stdout=subprocess.PIPE,
        text=True,
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


@needs_root
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


def test_a_fifo_in_place_of_the_lock_directory_is_refused(tmp_path):
    path = tmp_path / "locks"
    os.mkfifo(path)
    with pytest.raises(UserError, match="it is not a directory"):
        locking.prepare_lockdir(str(path))


def test_missing_directories_on_the_way_are_created_private(tmp_path):
    path = tmp_path / "a" / "b" / "locks"
    assert locking.prepare_lockdir(str(path)) == str(path)
    for made in (tmp_path / "a", tmp_path / "a" / "b", path):
        assert os.lstat(made).st_mode & 0o777 == 0o700


def test_a_link_of_this_user_on_the_way_is_followed(tmp_path):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(real)
    locking.prepare_lockdir(str(tmp_path / "link" / "locks"))
    assert os.lstat(real / "locks").st_mode & 0o777 == 0o700


def test_a_world_writable_directory_on_the_way_is_refused_before_creating(tmp_path):
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    with pytest.raises(UserError, match=f"{open_dir} is writable by others"):
        locking.prepare_lockdir(str(open_dir / "me" / "locks"))
    assert not (open_dir / "me").exists()


@pytest.fixture
def sticky(tmp_path):
    """A sticky directory every user may write to, like /tmp."""
    path = tmp_path / "tmp"
    path.mkdir()
    path.chmod(0o1777)
    return path


@needs_root
@pytest.mark.parametrize("target_owner", [0, OTHER])
def test_a_link_planted_by_another_user_on_the_way_is_not_followed(sticky, tmp_path, target_owner):
    target = tmp_path / "target"
    target.mkdir(mode=0o777)
    os.chown(target, target_owner, target_owner)
    planted = sticky / "me"
    planted.symlink_to(target)
    os.lchown(planted, OTHER, OTHER)
    with pytest.raises(UserError, match=f"{planted} is a symlink owned by uid {OTHER}"):
        locking.prepare_lockdir(str(planted / "accre-monitor"))
    assert os.listdir(target) == []


@needs_root
def test_a_directory_of_another_user_on_the_way_is_refused_before_creating(sticky):
    planted = sticky / "me"
    planted.mkdir(mode=0o777)
    os.chown(planted, OTHER, OTHER)
    with pytest.raises(UserError, match=f"{planted} is owned by uid {OTHER}"):
        locking.prepare_lockdir(str(planted / "accre-monitor"))
    assert os.listdir(planted) == []


@needs_root
def test_every_directory_on_the_way_is_checked_not_only_the_parent(sticky):
    foreign = sticky / "other"
    foreign.mkdir(mode=0o755)
    mine = foreign / "mine"
    mine.mkdir(mode=0o700)
    os.chown(foreign, OTHER, OTHER)
    with pytest.raises(UserError, match=f"{foreign} is owned by uid {OTHER}"):
        locking.prepare_lockdir(str(mine / "accre-monitor"))
    assert os.listdir(mine) == []


@pytest.fixture
def shared_tmp():
    yield from shared_directory()


def prepare_as(uid, path):
    """prepare_lockdir run by another, unprivileged user: "OK" or its one-line refusal."""

    def prepare():
        try:
            locking.prepare_lockdir(str(path))
        except UserError as exc:
            return str(exc)
        return "OK"

    return run_as(uid, prepare)


@needs_root
def test_a_user_refuses_a_link_planted_in_tmp_by_another_user(shared_tmp):
    attacker = OTHER - 1
    theirs = shared_tmp / "theirs"
    theirs.mkdir(mode=0o777)
    os.chown(theirs, attacker, attacker)
    planted = shared_tmp / "victim"
    planted.symlink_to(theirs)
    os.lchown(planted, attacker, attacker)
    answer = prepare_as(OTHER, planted / "accre-monitor")
    assert answer == (
        f"refusing lock directory {planted}/accre-monitor: {planted} is a symlink owned by "
        f"uid {attacker}, not by root or this user"
    )
    assert os.listdir(theirs) == []


@needs_root
def test_a_user_creates_its_lock_directory_private_through_a_link_of_root(shared_tmp):
    (shared_tmp / "alias").symlink_to(shared_tmp)
    assert prepare_as(OTHER, shared_tmp / "alias" / "victim" / "accre-monitor") == "OK"
    for made in (shared_tmp / "victim", shared_tmp / "victim" / "accre-monitor"):
        info = os.lstat(made)
        assert (info.st_uid, info.st_mode & 0o777) == (OTHER, 0o700)
