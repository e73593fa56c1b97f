// Smooth playback (playback.py says why): below real time the live player holds its start, with autoplay
// off so that no frame plays while held, until the rest of the video will arrive before it is due.
({segmentS: SEGMENT_S, margin: MARGIN}) => {
  let phase = 'idle', seen = 0, arrived = 0;
  const mode = () => (document.querySelector('#playback input:checked') || {}).value || 'smooth';
  const data = () => (document.querySelector('#metrics .metrics') || {}).dataset || {};
  const video = () => document.querySelector('#live video');
  const say = (text) => { const out = document.querySelector('#playback-status'); if (out) out.textContent = text; };
  const buffered = (v) => v && v.buffered.length ? Math.floor(v.buffered.end(v.buffered.length - 1) / SEGMENT_S + 0.1) : 0;
  const autoplay = (on) => { const v = video(); if (v) v.autoplay = on; };
  document.addEventListener('click', (e) => {
    if (!e.target.closest('#generate, #continue')) return;
    phase = mode() === 'smooth' ? 'armed' : 'idle';
    seen = 0;
    autoplay(phase === 'idle');
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
      autoplay(true);
      if (v) v.play();
    }
    say(speed ? (d.state === 'generating' ? 'generating at ' : 'generated at ') + speed : '');
  }, 50);
}
