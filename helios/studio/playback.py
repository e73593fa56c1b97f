"""Smooth playback: below real time, the live player holds its start until the rest of the video will arrive before
it is due, so the whole video then plays without a pause; live playback starts at once.

The server says the run's length and speed (its measured segment times); the page times its own buffer's arrivals,
so the stream's delivery is accounted for, and starts at the moment from which the last segment, predicted from the
newest arrival, comes before it is due. A clip can reach the player before the page update that counts it (they
travel apart): the player holds until the update has caught up with its buffer, so it never starts on a speed
measured before that clip was made.
"""

from __future__ import annotations

from helios.limits import FPS, FRAMES_PER_SEGMENT

SEGMENT_S = FRAMES_PER_SEGMENT / FPS
MARGIN = 0.25
"""Of a segment's generation time, added to the start: segment times vary from one to the next."""

SMOOTH_PLAYBACK = """() => {
  const SEGMENT_S = %(segment_s)s, MARGIN = %(margin)s;
  let phase = 'idle', seen = 0, arrived = 0;
  const mode = () => (document.querySelector('#playback input:checked') || {}).value || 'smooth';
  const data = () => (document.querySelector('#metrics .metrics') || {}).dataset || {};
  const video = () => document.querySelector('#live video');
  const say = (text) => { const out = document.querySelector('#playback-status'); if (out) out.textContent = text; };
  const buffered = (v) => v && v.buffered.length ? Math.floor(v.buffered.end(v.buffered.length - 1) / SEGMENT_S + 0.1) : 0;
  document.addEventListener('click', (e) => {
    if (e.target.closest('#generate, #continue')) { phase = mode() === 'smooth' ? 'armed' : 'idle'; seen = 0; }
  }, true);
  const hold = (e) => {
    if ((phase === 'armed' || phase === 'holding') && e.target.closest && e.target.closest('#live')) e.target.pause();
  };
  for (const name of ['play', 'playing', 'timeupdate']) document.addEventListener(name, hold, true);
  setInterval(() => {
    const d = data(), v = video(), now = performance.now();
    const speed = d.rtf ? Number(d.rtf).toFixed(2) + 'x real time' : '';
    if (phase === 'armed') {
      if (d.state !== 'generating') { say('waiting for the first segment'); return; }
      phase = 'holding';
    }
    if (phase === 'holding') {
      const have = buffered(v), total = Number(d.total || 0), segmentS = Number(d.segmentS || 0);
      const told = d.made ? d.made.split(',').length : 0;
      if (have > seen) { seen = have; arrived = now; }
      if (mode() === 'smooth' && d.state === 'generating') {
        if (!have || told < have || !segmentS) {
          if (v && !v.paused) v.pause();
          if (!have) say('waiting for the first segment');
          return;
        }
        const start = arrived + 1000 * ((total - have + MARGIN) * segmentS - (total - 1) * SEGMENT_S);
        if (now < start) {
          if (v && !v.paused) v.pause();
          say('starts in ' + Math.ceil((start - now) / 1000) + ' s (' + have + ' of ' + total + ' segments made)' + (speed ? ' — generating at ' + speed : ''));
          return;
        }
      }
      phase = 'playing';
      if (v) { if (v.currentTime < 0.5) v.currentTime = 0; v.play(); }
    }
    say(speed ? (d.state === 'generating' ? 'generating at ' : 'generated at ') + speed : '');
  }, 50);
}""" % {"segment_s": SEGMENT_S, "margin": MARGIN}
"""Installed once with the page: holds and releases the live player, and says why it waits."""
