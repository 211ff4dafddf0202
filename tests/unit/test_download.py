"""Downloads against a real HTTP server on 127.0.0.1: a good file, a 404, a wrong checksum and a
truncated transfer. Every failure is one line of DataError and leaves nothing in the cache."""

import gzip
import hashlib
import stat
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from pipeline.config import FileSpec, IdxConfig
from pipeline.data import load_prepared, prepare
from pipeline.data.download import fetch, resolve
from pipeline.data.errors import DataError

BODY = bytes(range(256)) * 40  # 10,240 bytes
FILES: dict[str, bytes] = {"/good.bin": BODY}


class Handler(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        Handler.hits.append(self.path)
        if self.path == "/truncated.bin":  # promises more than it sends, then hangs up
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY[:1000])
            self.close_connection = True
            return
        body = FILES.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GAN_LAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_good_file_is_cached_privately_reused_and_reverified(server, cache):
    path = fetch(f"{server}/good.bin", sha(BODY))
    assert path.read_bytes() == BODY and path.parent == cache
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    before = len(Handler.hits)
    assert fetch(f"{server}/good.bin", sha(BODY).upper()) == path and len(Handler.hits) == before  # from cache
    path.write_bytes(b"tampered")
    assert fetch(f"{server}/good.bin", sha(BODY)).read_bytes() == BODY  # re-verified, so fetched again
    assert len(Handler.hits) == before + 1 and [p.name for p in cache.iterdir()] == [path.name]


@pytest.mark.parametrize("name, expected", [
    ("missing.bin", "missing.bin: HTTP error 404 (Not Found); nothing kept"),
    ("good.bin", "good.bin: sha256 of the download is"),
    ("truncated.bin", "truncated.bin: truncated transfer, 1000 of 10240 bytes; nothing kept"),
])
def test_failed_downloads_are_one_line_errors_and_keep_nothing(server, cache, name, expected):
    with pytest.raises(DataError) as info:
        fetch(f"{server}/{name}", "0" * 64)
    assert expected in str(info.value) and "\n" not in str(info.value)
    assert not any(cache.iterdir())


def test_unreachable_server_is_a_one_line_error(cache):
    with pytest.raises(DataError, match=r"http://127.0.0.1:9/x.gz: download failed \(.*\); nothing kept"):
        fetch("http://127.0.0.1:9/x.gz", "0" * 64, timeout=5)
    assert not any(cache.iterdir())


def test_a_local_path_with_sha256_is_checked(tmp_path):
    (tmp_path / "f.bin").write_bytes(BODY)
    assert resolve(FileSpec(path=str(tmp_path / "f.bin"), sha256=sha(BODY))) == tmp_path / "f.bin"
    with pytest.raises(DataError, match="f.bin: sha256 is"):
        resolve(FileSpec(path=str(tmp_path / "f.bin"), sha256="1" * 64))
    with pytest.raises(DataError, match="a folder; sha256 can only check a file"):
        resolve(FileSpec(path=str(tmp_path), sha256=sha(BODY)))
    with pytest.raises(DataError, match="nope.bin: not found"):
        resolve(FileSpec(path=str(tmp_path / "nope.bin")))


def test_idx_dataset_from_urls(server, cache, tmp_path):
    images = np.arange(4 * 28 * 28, dtype=np.uint32).reshape(4, 28, 28).astype(np.uint8)
    files = {"images": gzip.compress(struct.pack(">IIII", 2051, 4, 28, 28) + images.tobytes()),
             "labels": gzip.compress(struct.pack(">II", 2049, 4) + bytes([0, 1, 1, 0]))}
    for name, data in files.items():
        FILES[f"/{name}.gz"] = data
    spec = {name: {"url": f"{server}/{name}.gz", "sha256": sha(data)} for name, data in files.items()}
    prepare(IdxConfig(kind="idx", test_images=spec["images"], test_labels=spec["labels"], **spec), tmp_path / "u.npz")
    data = load_prepared(tmp_path / "u.npz")
    assert np.array_equal(data.x_test[:, 0, 2:30, 2:30], images) and data.y_train.tolist() == [0, 1, 1, 0]
    assert len(list(cache.iterdir())) == 2
