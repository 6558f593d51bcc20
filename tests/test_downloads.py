"""``eca_keras.downloads.download`` against misbehaving servers on 127.0.0.1, written here with raw
sockets: one that accepts and never answers, one that stops in the middle of the body, one that
fails once and then serves, one that answers 404. Each bad case fails in one line naming the URL,
after the stated number of attempts (counted by the server), and leaves no file behind; timeouts
are a fraction of a second so that nothing here waits long."""

import contextlib
import os
import socket
import threading

import pytest

from eca_keras import downloads

PAYLOAD = bytes(range(256)) * 64  # 16 KiB


@contextlib.contextmanager
def server(behaviours):
    """Serves one connection per entry of ``behaviours`` (the last repeats): "silent" reads the
    request and never answers, "truncated" sends half the body and closes, "ok" the whole file,
    "404" not found. Yields ``(url, connections)``; ``connections`` counts what was accepted."""
    listener = socket.create_server(("127.0.0.1", 0))
    connections, release = [], threading.Event()

    def answer(connection, behaviour):
        with connection:
            connection.recv(65536)
            if behaviour == "silent":
                release.wait(10)
                return
            if behaviour == "404":
                connection.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                return
            body = PAYLOAD if behaviour == "ok" else PAYLOAD[: len(PAYLOAD) // 2]
            head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(PAYLOAD)}\r\n"
            connection.sendall(head.encode() + b"Content-Type: application/octet-stream\r\n\r\n")
            connection.sendall(body)

    def serve():
        while not release.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            behaviour = behaviours[min(len(connections), len(behaviours) - 1)]
            connections.append(behaviour)
            threading.Thread(target=answer, args=(connection, behaviour), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/weights.pth.tar", connections
    finally:
        release.set()
        listener.close()


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    monkeypatch.setattr(downloads.time, "sleep", lambda seconds: None)


def leftovers(folder):
    return sorted(os.listdir(folder))


@pytest.mark.parametrize("behaviour,reason", [("silent", "no answer"), ("truncated", "stopped")])
def test_a_server_that_stalls_or_stops_fails_naming_the_url(behaviour, reason, tmp_path):
    target = tmp_path / "weights.pth.tar"
    with server([behaviour]) as (url, connections):
        with pytest.raises(downloads.DownloadError) as error:
            downloads.download(url, target, timeout=0.5, retries=3, progress=False)
    message = str(error.value)
    assert "\n" not in message and url in message and "3 attempts" in message
    assert reason in message
    assert connections == [behaviour] * 3  # bounded: exactly the stated number of tries
    assert leftovers(tmp_path) == []  # no partial file, no target


def test_a_failed_attempt_is_retried_and_the_file_arrives_whole(tmp_path):
    target = tmp_path / "weights.pth.tar"
    with server(["silent", "truncated", "ok"]) as (url, connections):
        downloads.download(url, target, timeout=0.5, retries=3, progress=False)
    assert connections == ["silent", "truncated", "ok"]
    assert target.read_bytes() == PAYLOAD
    assert leftovers(tmp_path) == ["weights.pth.tar"]


def test_not_found_is_not_retried(tmp_path):
    with server(["404"]) as (url, connections):
        with pytest.raises(downloads.DownloadError, match="HTTP 404") as error:
            downloads.download(url, tmp_path / "x.pth", timeout=0.5, retries=3, progress=False)
    assert url in str(error.value) and connections == ["404"]
    assert leftovers(tmp_path) == []


def test_an_existing_file_survives_a_failed_download(tmp_path):
    target = tmp_path / "weights.pth.tar"
    target.write_bytes(b"the previous, good file")
    with server(["truncated"]) as (url, _):
        with pytest.raises(downloads.DownloadError):
            downloads.download(url, target, timeout=0.5, retries=2, progress=False)
    assert target.read_bytes() == b"the previous, good file"
    assert leftovers(tmp_path) == ["weights.pth.tar"]
