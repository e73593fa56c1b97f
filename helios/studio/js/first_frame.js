// Where the user sees the first frame: from a click on Generate or Continue to the live player's first played frame,
// measured in this browser.
() => {
  const watch = () => {
    const t0 = performance.now();
    const show = (text) => {
      const out = document.querySelector('#on-screen');
      if (out) out.innerHTML = '<table class="metrics-table"><tr><th>first frame on screen</th><td>' + text + '</td></tr></table>';
    };
    const old = document.querySelector('#live video');
    const oldSource = old ? old.currentSrc : null;
    show('waiting for the stream');
    const look = () => {
      const v = document.querySelector('#live video');
      if (v && v.currentSrc && v.currentSrc !== oldSource && v.currentTime > 0) {
        show(((performance.now() - t0) / 1000).toFixed(2) + ' s after the click (measured in this browser)');
      } else if (performance.now() - t0 < 600000) {
        requestAnimationFrame(look);
      }
    };
    requestAnimationFrame(look);
  };
  document.addEventListener('click', (e) => { if (e.target.closest('#generate, #continue')) watch(); }, true);
}
