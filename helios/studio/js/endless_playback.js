// The Live tab's endless stream: what was played more than `keepS` ago leaves the media buffer (a browser refuses
// appends past its quota, ~150 MB in Chromium). It plays at the rate the clips arrive (measured here, over the last
// few; until three have, the server's estimate, which is low), nudged to keep about half a segment plus `marginS` ahead of the playhead: below real time that is a slowed
// rate, shown, instead of stalls; at real time it stays near the live edge (a slightly faster rate catches up, up to
// 1.1x), and Jump to live goes to the newest frame. The keys 1-9 press the prompt pads unless a field has the focus.
// Each steer's latency, from the key press to the first frame of the segment it landed on being on screen, is shown
// and kept in `window.heliosSteers`.
({keepS, segmentS, marginS}) => {
  const presses = [], watching = [], steers = window.heliosSteers = [], arrivals = [];
  let landedSeen = 0;
  const pressed = () => presses.push(Date.now());
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && e.target.closest && e.target.closest('#live-prompt')) pressed();
  }, true);
  document.addEventListener('click', (e) => { if (e.target.closest('[id^=live-pad-]')) pressed(); }, true);
  const video = () => document.querySelector('#live-player video');
  const data = () => (document.querySelector('#live-metrics .metrics') || {}).dataset || {};
  const say = (text) => { const out = document.querySelector('#live-rate'); if (out) out.textContent = text; };
  const edge = (v) => v.buffered.length ? v.buffered.end(v.buffered.length - 1) : 0;
  document.addEventListener('keydown', (e) => {
    const t = e.target;
    if (e.ctrlKey || e.metaKey || e.altKey || !/^[1-9]$/.test(e.key)) return;
    if (t && (t.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(t.tagName))) return;
    const tab = document.querySelector('#live-tab');
    const pad = document.querySelector('#live-pad-' + e.key);
    if (tab && tab.offsetParent !== null && pad) { e.preventDefault(); pad.click(); }
  }, true);
  document.addEventListener('click', (e) => {
    const v = video();
    if (!e.target.closest('#live-jump') || !v || !v.buffered.length) return;
    v.currentTime = Math.max(0, edge(v) - 0.2);
    v.play();
  }, true);
  setInterval(() => {
    const v = video(), d = data();
    if (!v) return;
    const landed = (d.landed || '').split(',').filter((s) => s !== '').map(Number);
    const count = Number(d.landedCount || 0);
    if (count < landedSeen) landedSeen = 0;
    for (const segment of landed.slice(Math.max(0, landed.length - (count - landedSeen)))) {
      if (presses.length) watching.push({segment, pressed: presses.shift()});
    }
    landedSeen = count;
    while (watching.length && v.currentTime >= (watching[0].segment - Number(d.legStart || 0)) * segmentS) {
      const steer = watching.shift();
      steer.latencyS = (Date.now() - steer.pressed) / 1000;
      steers.push(steer);
      const out = document.querySelector('#live-on-screen');
      if (out) out.textContent = 'Segment ' + (steer.segment + 1) + ' on screen ' + steer.latencyS.toFixed(1)
        + ' s after the key press.';
    }
    const newest = edge(v), now = Date.now(), last = arrivals[arrivals.length - 1];
    if (last && newest < last[1] - 0.5) arrivals.length = 0;  // a new leg: its media starts at zero
    if (!arrivals.length || newest > arrivals[arrivals.length - 1][1] + 0.01) arrivals.push([now, newest]);
    if (arrivals.length > 8) arrivals.shift();
    const [t0, e0] = arrivals[0], [t1, e1] = arrivals[arrivals.length - 1];
    const made = arrivals.length >= 3 ? (e1 - e0) / ((t1 - t0) / 1000) : Math.min(1, Number(d.rtf) || 0.5);
    const ahead = newest - v.currentTime;
    let rate = 1;
    if (d.state === 'running') {
      rate = made * (1 + 0.5 * (ahead - segmentS / 2 - marginS) / segmentS);
      rate = Math.min(1.1, Math.max(0.25, Math.round(rate * 50) / 50));
    }
    if (Math.abs(v.playbackRate - rate) >= 0.02) v.playbackRate = rate;
    say(v.playbackRate < 0.99 ? v.playbackRate.toFixed(2) + 'x: below real time, played at the rate it is made'
      : v.playbackRate > 1.01 ? v.playbackRate.toFixed(2) + 'x: catching up with the live edge'
      : ahead > 5 ? ahead.toFixed(0) + ' s behind the live edge' : '');
    const buffer = v.helios;
    if (buffer && !buffer.updating && v.buffered.length && v.currentTime - v.buffered.start(0) > keepS + 10) {
      try { buffer.remove(0, v.currentTime - keepS); } catch (err) { /* the source ended: nothing left to trim */ }
    }
  }, 100);
}
