"""Smooth playback: below real time, the live player holds its start until the rest of the video will arrive before
it is due, so the whole video then plays without a pause; live playback starts at once.

The server measures the speed (this run's segment times) and says how many segments must be in the player's buffer
before it starts; the page counts what its own buffer holds, so the delay of the stream's delivery is accounted for.
"""

from __future__ import annotations

import math

from helios.limits import FPS, FRAMES_PER_SEGMENT

SEGMENT_S = FRAMES_PER_SEGMENT / FPS
MARGIN_SEGMENTS = 0.25
"""Delivery is bursty (the player polls its playlist): a quarter segment more than the arithmetic asks. A whole
segment more started a 5-segment run at 0.38x real time 26% later than it needed (browser test)."""


def segments_to_hold(total: int, segment_s: float | None) -> int:
    """Segments to buffer before playing so that none arrives after it is due. With k buffered at the start,
    segment i (from 0) is due i x 1.375 s later and arrives (i - k + 1) x segment_s later; below real time the
    last segment binds: k >= total - (total - 1) x 1.375 / segment_s."""
    if not total or not segment_s or segment_s <= SEGMENT_S:
        return 1
    needed = math.ceil(total - (total - 1) * SEGMENT_S / segment_s + MARGIN_SEGMENTS)
    return max(1, min(total, needed))


SMOOTH_PLAYBACK = """() => {
  const SEGMENT_S = %(segment_s)s;
  let phase = 'idle';
  const mode = () => (document.querySelector('#playback input:checked') || {}).value || 'smooth';
  const data = () => (document.querySelector('#metrics .metrics') || {}).dataset || {};
  const video = () => document.querySelector('#live video');
  const say = (text) => { const out = document.querySelector('#playback-status'); if (out) out.textContent = text; };
  const buffered = (v) => v && v.buffered.length ? Math.floor(v.buffered.end(v.buffered.length - 1) / SEGMENT_S + 0.05) : 0;
  document.addEventListener('click', (e) => {
    if (e.target.closest('#generate, #continue')) phase = mode() === 'smooth' ? 'armed' : 'idle';
  }, true);
  const hold = (e) => {
    if ((phase === 'armed' || phase === 'holding') && e.target.closest && e.target.closest('#live')) e.target.pause();
  };
  for (const name of ['play', 'playing', 'timeupdate']) document.addEventListener(name, hold, true);
  setInterval(() => {
    const d = data(), v = video();
    const speed = d.rtf ? Number(d.rtf).toFixed(2) + 'x real time' : '';
    if (phase === 'armed') {
      if (d.state !== 'generating') { say('waiting for the first segment'); return; }
      phase = 'holding';
    }
    if (phase === 'holding') {
      const need = Number(d.hold || 1), have = buffered(v);
      if (mode() === 'smooth' && d.state === 'generating' && have < need) {
        if (v && !v.paused) v.pause();
        const wait = Math.ceil((need - have) * Number(d.segmentS || SEGMENT_S));
        say('starts in ' + wait + ' s (' + have + ' of ' + need + ' segments buffered)' + (speed ? ' — generating at ' + speed : ''));
        return;
      }
      phase = 'playing';
      if (v) { if (v.currentTime < 0.5) v.currentTime = 0; v.play(); }
    }
    say(speed ? (d.state === 'generating' ? 'generating at ' : 'generated at ') + speed : '');
  }, 50);
}""" % {"segment_s": SEGMENT_S}
"""Installed once with the page: holds and releases the live player, and says why it waits."""
