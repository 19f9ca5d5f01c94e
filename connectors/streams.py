"""A download as a file: the event loop puts chunks in, a worker thread reads lines out.

Bulk Data files are streamed over HTTP (async) while validation and storage
run in a worker thread (sync). `QueuedStream` joins the two with a bounded
queue, so memory holds a few chunks whatever the file size, and the download
waits when the reader falls behind. The reader side has `readline(limit)`,
which is all `FileReader.read_ndjson` needs: one NDJSON reader for files and
downloads alike.
"""

from __future__ import annotations

import queue

from connectors.errors import StreamFailed

_END = b""


class QueuedStream:
    def __init__(self, max_chunks: int = 16) -> None:
        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(max_chunks)
        self._buffer = bytearray()
        self._ended = False

    # -- producer side (blocking; call from a thread or via asyncio.to_thread) --

    def put(self, chunk: bytes) -> None:
        if chunk:
            self._queue.put(chunk)

    def close(self) -> None:
        self._queue.put(_END)

    def fail(self, error: BaseException) -> None:
        self._queue.put(error)

    # -- reader side --

    def _fill(self) -> bool:
        """Take the next chunk into the buffer; False at the end."""
        if self._ended:
            return False
        item = self._queue.get()
        if isinstance(item, BaseException):
            self._ended = True
            raise StreamFailed(str(item)) from item
        if item == _END:
            self._ended = True
            return False
        self._buffer += item
        return True

    def readline(self, limit: int = -1, /) -> bytes:
        """Up to and including the next newline, or `limit` bytes, or what is left."""
        scanned = 0
        while True:
            newline = self._buffer.find(b"\n", scanned)
            if newline >= 0 and (limit < 0 or newline < limit):
                end = newline + 1
                break
            if 0 <= limit <= len(self._buffer):
                end = limit
                break
            scanned = len(self._buffer)
            if not self._fill():
                end = len(self._buffer)
                break
        line = bytes(self._buffer[:end])
        del self._buffer[:end]
        return line
