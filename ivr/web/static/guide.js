// The visual guide follows the call: it asks where the call is and shows the new step when it moves.
// It asks only while the page is in view (a caller busy in the phone's settings costs nothing) and
// at once when it comes back. Without JavaScript the page and its buttons work the same; only this
// following is lost.
(function () {
  var body = document.body;
  var url = body.getAttribute("data-etat-url");
  var state = body.getAttribute("data-etat");
  var every = parseInt(body.getAttribute("data-follow"), 10) || 1500;
  var timer = null;
  if (!url || !window.fetch || state === "fin") return;
  function later(delay) {
    clearTimeout(timer);
    timer = document.visibilityState === "hidden" ? null : setTimeout(look, delay);
  }
  function look() {
    fetch(url, { cache: "no-store", credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (data && data.etat !== state) { window.location.replace(window.location.pathname); return; }
        later(data ? every : every * 4);
      })
      .catch(function () { later(every * 4); });
  }
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") later(0); else later(every);
  });
  later(every);
  var form = document.querySelector("form.buttons");
  if (form) form.addEventListener("submit", function () {
    setTimeout(function () { form.querySelectorAll("button").forEach(function (b) { b.disabled = true; }); }, 0);
  });
})();
