// Shows the STOMP endpoint this page was served next to (kept out of inline
// script so the Content-Security-Policy "default-src 'self'" holds).
document.getElementById('ws').textContent =
  (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
