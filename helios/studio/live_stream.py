"""The live player's channel: a run's clips, as one fragmented-MP4 byte stream over a plain HTTP response, sent as
each clip is encoded, into the page's Media Source.

Gradio's streaming video probes and re-muxes every clip with FFmpeg into HLS for a player that reloads its
playlist: measured on 2 cores at 384x640, a segment was in the browser's buffer 1.1-1.4 s (median) after it was
made; here the clip's bytes go out as they are, the moment it is written, and it is there in 0.63-0.69 s
(benchmarks/live_latency.py). A stream's name is as hard to guess as a session token and only its run's page is
given it.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict, deque
from pathlib import Path

POLL_S = 0.01
ROUTE = "/helios-live/{name}"
HELD = 120
"""Clips a stream names for a reader that joins late: a Generate run has at most 60; a live leg goes on for hours."""


class LiveStream:
    def __init__(self):
        self.name = secrets.token_urlsafe(24)
        self.clips: deque[Path] = deque(maxlen=HELD)
        self.added = 0
        self.ended = False
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """Relative to the page, so it holds behind a proxy's path too."""
        return ROUTE.format(name=self.name).lstrip("/")

    def add(self, clip: Path) -> None:
        with self._lock:
            self.clips.append(clip)
            self.added += 1

    def clip(self, n: int) -> tuple[int, Path | None]:
        """Clip n (counted from the stream's first), or the oldest still held if n is older; None if not made yet."""
        with self._lock:
            first = self.added - len(self.clips)
            n = max(n, first)
            return n, self.clips[n - first] if n < self.added else None

    def end(self) -> None:
        self.ended = True


class LiveStreams:
    """Thread-safe: runs open and fill streams in Gradio's worker threads; the web server reads them."""

    def __init__(self, kept: int):
        self.kept = kept
        self._streams: OrderedDict[str, LiveStream] = OrderedDict()
        self._lock = threading.Lock()

    def open(self) -> LiveStream:
        stream = LiveStream()
        with self._lock:
            self._streams[stream.name] = stream
            ended = [name for name, s in self._streams.items() if s.ended]
            for name in ended[: max(0, len(self._streams) - self.kept)]:
                del self._streams[name]
        return stream

    def get(self, name: str) -> LiveStream | None:
        with self._lock:
            return self._streams.get(name)

    async def chunks(self, stream: LiveStream):
        """The stream's clips from its first still held, each as soon as it exists, until its run ends. A clip removed
        with its run's files ends the stream."""
        import anyio

        sent = 0
        while True:
            sent, clip = stream.clip(sent)
            if clip is not None:
                try:
                    data = await anyio.Path(clip).read_bytes()
                except OSError:
                    return
                sent += 1
                yield data
            elif stream.ended:
                return
            else:
                await anyio.sleep(POLL_S)

    def mount(self, app) -> None:
        """Adds the channel's route to the page's web app (FastAPI): GET it for the stream, 404 for any other name."""
        from fastapi.responses import PlainTextResponse, StreamingResponse

        async def serve(name: str):
            stream = self.get(name)
            if stream is None:
                return PlainTextResponse("No such live stream: it ended long ago or was never made.", status_code=404)
            headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
            return StreamingResponse(self.chunks(stream), media_type="video/mp4", headers=headers)

        app.add_api_route(ROUTE, serve, methods=["GET"], include_in_schema=False)


PLAYER_HTML = '<div class="live-player"><video autoplay muted playsinline controls></video></div>'
