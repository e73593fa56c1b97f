// The live players (Generate's and Live's): a run's page update names its stream (`data-live`); it is opened into a
// Media Source and each clip is appended as it arrives, in sequence (each clip's timestamps start at zero). The
// source's address is revoked once the video holds it, so a tab that watched many runs keeps none of them. The
// video keeps its source buffer (`helios`) for the Live tab's trimming.
(players) => {
  const watch = (playerSel, metricsSel) => {
  let current = null;
  const codec = (bytes) => {
    for (let i = 0; i + 8 < bytes.length; i++) {
      if (bytes[i] === 0x61 && bytes[i + 1] === 0x76 && bytes[i + 2] === 0x63 && bytes[i + 3] === 0x43) {
        const hex = (b) => b.toString(16).padStart(2, '0');
        return 'avc1.' + hex(bytes[i + 5]) + hex(bytes[i + 6]) + hex(bytes[i + 7]);
      }
    }
    return null;
  };
  const play = async (url) => {
    const video = document.querySelector(playerSel + ' video');
    const source = new MediaSource();
    const address = URL.createObjectURL(source);
    video.src = address;
    await new Promise((opened) => source.addEventListener('sourceopen', opened, {once: true}));
    URL.revokeObjectURL(address);
    const reader = (await fetch(url, {cache: 'no-store'})).body.getReader();
    let buffer = null, head = new Uint8Array(0);
    const queue = [];
    const pump = () => { if (buffer && !buffer.updating && queue.length) buffer.appendBuffer(queue.shift()); };
    for (;;) {
      const {done, value} = await reader.read();
      if (current !== url) { reader.cancel(); return; }
      if (done) break;
      if (buffer) { queue.push(value); pump(); continue; }
      const joined = new Uint8Array(head.length + value.length);
      joined.set(head); joined.set(value, head.length); head = joined;
      const kind = codec(head);
      if (!kind) continue;
      buffer = source.addSourceBuffer('video/mp4; codecs="' + kind + '"');
      buffer.mode = 'sequence';
      video.helios = buffer;
      buffer.addEventListener('updateend', pump);
      queue.push(head); pump();
    }
    const finish = () => {
      if (current !== url) return;
      if (buffer && (buffer.updating || queue.length)) { setTimeout(finish, 20); return; }
      if (source.readyState === 'open') source.endOfStream();
    };
    finish();
  };
  setInterval(() => {
    const metrics = document.querySelector(metricsSel + ' .metrics');
    const url = metrics && metrics.dataset.live;
    if (url && url !== current) { current = url; play(url); }
  }, 20);
  };
  for (const [playerSel, metricsSel] of players) watch(playerSel, metricsSel);
}
