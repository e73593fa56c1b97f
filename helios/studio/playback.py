"""Smooth playback: below real time, the live player holds its start until the rest of the video will arrive before
it is due, so the whole video then plays without a pause; live playback starts at once.

The server says the run's length and speed (its measured segment times); the page times its own buffer's arrivals,
so the stream's delivery is accounted for, and starts at the moment from which the last segment, predicted from the
newest arrival, comes before it is due. A clip can reach the player before the page update that counts it (they
travel apart): the player holds until the update has caught up with its buffer, so it never starts on a speed
measured before that clip was made. The page's part is js/smooth_playback.js.
"""

from __future__ import annotations

from helios.limits import FPS, FRAMES_PER_SEGMENT

SEGMENT_S = FRAMES_PER_SEGMENT / FPS
MARGIN = 0.25
"""Of a segment's generation time, added to the start: segment times vary from one to the next."""
ENDLESS_KEEP_S = 120.0
"""The Live tab keeps this much already-played video in the browser's media buffer (~2 MB a minute at 384x640 on
the tiny preview; a browser refuses appends past ~150 MB), so a page can play for hours."""
ENDLESS_MARGIN_S = 0.4
"""The Live tab's player aims to have this much video left when the next segment arrives: less is a stall when a
segment comes late, more is steer latency."""
