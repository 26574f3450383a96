"""Tasks handed to a thread of this process to publish, so a request does not wait on the broker.

Why: each submitted label enqueues its item's quality update, and with Redis that publish was a
third network round trip in the submit, on top of its two to PostgreSQL: the submit's tail
latency (bench/README.md, "Next task"). The request now puts (task, args) on an in-process
queue and returns; one thread per process publishes them in order.

Only for a task whose message may be lost without losing data: a crash between the commit and
the publish drops what is queued, so whatever a message asks for must also be found again from
the rows (the quality update: `quality.sweep_lagging` re-sends it for every label whose item's
consensus has not counted it). A failed publish is logged and left to that repair too.

The thread starts on first use in each process (uWSGI and Celery fork after import; a thread
does not survive a fork), and drains what is left when the process exits.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

from celery import current_app

log = logging.getLogger(__name__)

Message = tuple[str, tuple[Any, ...]]
_STOP: Any = object()
DRAIN_SECONDS = 5.0


def _apply_async(task_name: str, args: tuple[Any, ...]) -> None:
    current_app.signature(task_name, args=args).apply_async()


class BackgroundPublisher:
    """An in-process queue of task messages and the one thread that publishes them."""

    def __init__(self, send: Callable[[str, tuple[Any, ...]], None] = _apply_async) -> None:
        self._send = send
        self._lock = threading.Lock()
        self._pid = 0
        self._queue: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def put(self, task_name: str, args: tuple[Any, ...]) -> None:
        self._running().put((task_name, args))

    def drain(self, timeout: float = DRAIN_SECONDS) -> None:
        """Publish what is queued and stop the thread (at exit; tests)."""
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is None or self._pid != os.getpid():
                return
            self._queue.put(_STOP)
        thread.join(timeout)

    def _running(self) -> queue.SimpleQueue[Message]:
        thread = self._thread
        if thread is not None and self._pid == os.getpid() and thread.is_alive():
            return self._queue
        with self._lock:
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                if self._pid != os.getpid():
                    # A forked child: what the parent queued is the parent's to publish.
                    self._queue = queue.SimpleQueue()
                    self._pid = os.getpid()
                    atexit.register(self.drain)
                self._thread = threading.Thread(
                    target=self._run, args=(self._queue,), name="kyodo-publisher", daemon=True
                )
                self._thread.start()
            return self._queue

    def _run(self, messages: queue.SimpleQueue[Message]) -> None:
        while True:
            message = messages.get()
            if message is _STOP:
                return
            task_name, args = message
            try:
                self._send(task_name, args)
            except Exception:  # the broker is down or refused it: the rows still say what to do
                log.exception(
                    "could not publish %s%r; its sweep will send it again", task_name, args
                )


publisher = BackgroundPublisher()
