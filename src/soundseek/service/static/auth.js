// Access tokens (docs/security.md): when the API answers 401, the page asks once for a token,
// keeps it in localStorage and sends it as a bearer token, and as a SameSite=Strict cookie so
// that <audio> elements (which cannot send headers) play too. Without tokens nothing changes.
"use strict";
(function () {
  const KEY = "soundseek-token";
  const plain = window.fetch.bind(window);
  let token = localStorage.getItem(KEY);
  let asking = null;
  const setCookie = (t) => { document.cookie = "soundseek_token=" + encodeURIComponent(t) + "; path=/; SameSite=Strict"; };
  if (token) setCookie(token);
  function withToken(init) {
    if (!token) return init;
    const headers = new Headers((init && init.headers) || {});
    headers.set("Authorization", "Bearer " + token);
    return Object.assign({}, init, { headers });
  }
  function ask() {
    if (!asking) {
      asking = Promise.resolve().then(() => {
        const t = window.prompt("This sound library needs an access token:");
        if (t && t.trim()) {
          token = t.trim();
          localStorage.setItem(KEY, token);
          setCookie(token);
        }
      }).finally(() => { setTimeout(() => { asking = null; }, 0); });
    }
    return asking;
  }
  window.fetch = async function (input, init) {
    const before = token;
    let res = await plain(input, withToken(init));
    if (res.status === 401) {
      if (token === before) await ask();
      if (token && token !== before) res = await plain(input, withToken(init));
    }
    return res;
  };
})();
