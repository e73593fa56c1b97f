// A and B (and their difference) from the start together; the others follow A's play, pause and position.
() => {
  const [lead, ...rest] = ['#compare-a', '#compare-b', '#compare-difference'].map(s => document.querySelector(s + ' video')).filter(v => v);
  if (!lead) return;
  if (!lead.dataset.synced) {
    lead.dataset.synced = '1';
    lead.addEventListener('play', () => rest.forEach(v => v.play()));
    lead.addEventListener('pause', () => rest.forEach(v => v.pause()));
    lead.addEventListener('timeupdate', () => rest.forEach(v => { if (Math.abs(v.currentTime - lead.currentTime) > 0.1) v.currentTime = lead.currentTime; }));
  }
  [lead, ...rest].forEach(v => { v.muted = true; v.currentTime = 0; v.play(); });
}
