"""The per-node data cache (pipeline.train.data_cache), attacked for real: a corrupted cached copy, a
cache directory another user owns, one others can write to, a symlink planted in its place."""

from __future__ import annotations

import hashlib
import os
import stat

import pytest

from pipeline.train.data_cache import CacheError, cache_root, cached_copy, private_dir

NPZ, JSON = b"prepared data " * 100, b'{"n_train": 1}'
SHA, META_SHA = hashlib.sha256(NPZ).hexdigest(), hashlib.sha256(JSON).hexdigest()


class Fetch:
    """What Ray's object store would return, counting the calls."""

    def __init__(self, npz: bytes = NPZ):
        self.calls, self.npz = 0, npz

    def __call__(self) -> dict[str, bytes]:
        self.calls += 1
        return {"npz": self.npz, "json": JSON}


def test_the_cache_is_a_private_directory_per_user(tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert cache_root().name == f"gan-lab-{os.getuid()}"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "gan-lab"
    local = cached_copy("digits.npz", SHA, META_SHA, Fetch())
    assert local == tmp_path / "xdg" / "gan-lab" / SHA / "digits.npz" and local.read_bytes() == NPZ
    assert local.with_suffix(".json").read_bytes() == JSON
    assert stat.S_IMODE(os.stat(tmp_path / "xdg" / "gan-lab").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(local.parent).st_mode) == 0o700


def test_an_intact_copy_is_reused_and_a_corrupted_one_is_detected_and_replaced(tmp_path):
    root = tmp_path / "cache"
    first = Fetch()
    local = cached_copy("digits.npz", SHA, META_SHA, first, root)
    again = Fetch()
    assert cached_copy("digits.npz", SHA, META_SHA, again, root) == local and again.calls == 0
    corrupted = bytearray(local.read_bytes())
    corrupted[5] ^= 0xFF  # one flipped byte, same size and name: what the old cache reused unchecked
    local.write_bytes(bytes(corrupted))
    refetch = Fetch()
    assert cached_copy("digits.npz", SHA, META_SHA, refetch, root) == local and refetch.calls == 1
    assert local.read_bytes() == NPZ
    local.with_suffix(".json").write_text('{"n_train": 999}')  # the sidecar is checked too
    assert cached_copy("digits.npz", SHA, META_SHA, Fetch(), root).with_suffix(".json").read_bytes() == JSON
    assert sorted(p.name for p in local.parent.iterdir()) == ["digits.json", "digits.npz"]  # no temporaries


def test_data_that_does_not_match_its_hash_is_never_cached(tmp_path):
    with pytest.raises(CacheError, match="does not match its sha256"):
        cached_copy("digits.npz", SHA, META_SHA, Fetch(npz=b"tampered"), tmp_path / "cache")
    assert not (tmp_path / "cache" / SHA / "digits.npz").exists()


@pytest.mark.parametrize("name, sha", [("../escape.npz", SHA), ("digits.npz", "../" + SHA[3:]), ("", SHA)])
def test_entry_names_cannot_leave_the_cache(name, sha, tmp_path):
    with pytest.raises(CacheError, match="refused entry"):
        cached_copy(name, sha, META_SHA, Fetch(), tmp_path / "cache")


def test_a_group_or_world_writable_cache_directory_is_refused(tmp_path):
    planted = tmp_path / "cache"
    planted.mkdir()
    os.chmod(planted, 0o777)
    with pytest.raises(CacheError) as info:
        cached_copy("digits.npz", SHA, META_SHA, Fetch(), planted)
    assert str(info.value) == (f"{planted}: refused as the data cache: writable by group or others (mode 777); "
                               "remove it or set XDG_CACHE_HOME")
    assert list(planted.iterdir()) == []


def test_a_cache_directory_of_another_user_is_refused(tmp_path):
    if os.getuid() == 0:  # root can make the attacker's directory for real
        planted = tmp_path / "cache"
        planted.mkdir(mode=0o755)
        os.chown(planted, 12345, 12345)
        owner = 12345
    else:  # a directory some other account owns already
        planted = next(p for p in ("/usr", "/etc", "/") if os.stat(p).st_uid != os.getuid())
        owner = os.stat(planted).st_uid
    with pytest.raises(CacheError) as info:
        private_dir(type(tmp_path)(planted))
    assert str(info.value) == (f"{planted}: refused as the data cache: owned by uid {owner}, not by this user "
                               f"(uid {os.getuid()}); remove it or set XDG_CACHE_HOME")


def test_a_symlink_planted_as_the_cache_directory_is_refused(tmp_path):
    (tmp_path / "attacker").mkdir()
    (tmp_path / "cache").symlink_to(tmp_path / "attacker")
    with pytest.raises(CacheError, match="refused as the data cache: not a directory"):
        cached_copy("digits.npz", SHA, META_SHA, Fetch(), tmp_path / "cache")
    assert list((tmp_path / "attacker").iterdir()) == []


def test_an_own_cache_directory_open_to_reading_is_tightened_to_0700(tmp_path):
    mine = tmp_path / "cache"
    mine.mkdir(mode=0o755)
    os.chmod(mine, 0o755)
    assert private_dir(mine) == mine and stat.S_IMODE(os.stat(mine).st_mode) == 0o700
