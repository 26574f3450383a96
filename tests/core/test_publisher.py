"""core.publisher: messages go out in order from the process's thread; a failed send is logged and
the next one still goes; a forked child starts with an empty queue of its own. (The real path,
to Redis and a Celery worker, is tests/integration/test_celery_worker.py.)"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from core import publisher as publisher_module
from core.publisher import BackgroundPublisher


class Recorder:
    def __init__(self, fail_on: set[int] | None = None) -> None:
        self.sent: list[tuple[str, tuple[Any, ...]]] = []
        self.threads: set[str] = set()
        self.fail_on = fail_on or set()

    def __call__(self, task_name: str, args: tuple[Any, ...]) -> None:
        self.threads.add(threading.current_thread().name)
        if args and args[0] in self.fail_on:
            raise ConnectionError("broker down")
        self.sent.append((task_name, args))


def test_messages_go_out_in_order_from_the_publisher_thread() -> None:
    recorder = Recorder()
    pub = BackgroundPublisher(send=recorder)
    for i in range(50):
        pub.put("quality.update_item", (i,))
    pub.drain()
    assert recorder.sent == [("quality.update_item", (i,)) for i in range(50)]
    assert recorder.threads == {"kyodo-publisher"}
    # After a drain the next message starts the thread again.
    pub.put("quality.update_item", (50,))
    pub.drain()
    assert recorder.sent[-1] == ("quality.update_item", (50,))


def test_a_failed_send_is_logged_and_the_next_goes_out(caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder(fail_on={1})
    pub = BackgroundPublisher(send=recorder)
    for i in range(3):
        pub.put("quality.update_item", (i,))
    pub.drain()
    assert recorder.sent == [("quality.update_item", (0,)), ("quality.update_item", (2,))]
    assert "could not publish quality.update_item(1,)" in caplog.text


def test_a_forked_child_does_not_publish_its_parents_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[int, str]] = []
    release = threading.Event()

    def slow(task_name: str, args: tuple[Any, ...]) -> None:
        release.wait(5)
        sent.append((threading.get_ident(), task_name))

    pub = BackgroundPublisher(send=slow)
    pub.put("parent", (1,))
    pub.put("parent", (2,))  # still queued: the parent's thread is busy with the first
    monkeypatch.setattr(publisher_module.os, "getpid", lambda: -1)  # from here on, "the child"
    pub.put("child", (3,))
    child_thread = pub._thread
    assert child_thread is not None
    release.set()
    pub.drain()
    assert [name for ident, name in sent if ident == child_thread.ident] == ["child"]
