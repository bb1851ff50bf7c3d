// The visual guide follows the call: it asks where the call is and, when it moves, shows the new step
// in place (no reload): the step's part of the page is replaced, the page's title names the step, one
// polite live region says what changed (« Étape 3 sur 6 : … ») and the focus stays where the user
// is (on the new step's heading if what had it is gone). It asks only while the page is in view (a
// caller busy in the phone's settings costs nothing) and at once when it comes back. Without
// JavaScript the page and its buttons work the same; only this following is lost.
(function () {
  var body = document.body;
  var url = body.getAttribute("data-etat-url");
  var state = body.getAttribute("data-etat");
  var every = parseInt(body.getAttribute("data-follow"), 10) || 1500;
  var timer = null;
  if (!url || !window.fetch || !window.DOMParser || state === "fin") return;
  function later(delay) {
    clearTimeout(timer);
    timer = document.visibilityState === "hidden" ? null : setTimeout(look, delay);
  }
  function swap(selector, fresh) {
    var old = document.querySelector(selector), next = fresh.querySelector(selector);
    if (old && next) { old.replaceWith(next); return next; }
    if (old) { old.remove(); return null; }
    if (next) { document.getElementById("contenu").insertBefore(next, document.querySelector("main .all")); }
    return next;
  }
  function redraw() {
    fetch(window.location.pathname, { cache: "no-store", credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (!html) { later(every * 4); return; }
        var fresh = new DOMParser().parseFromString(html, "text/html");
        var now = document.querySelector("main .now"), device = document.getElementById("appareil");
        var inDevice = !!(device && device.contains(document.activeElement));
        var focusWasThere = inDevice || !!(now && now.contains(document.activeElement));
        var focusedId = document.activeElement && document.activeElement.id;
        var next = swap("main .now", fresh);
        swap("#appareil", fresh);
        document.title = fresh.title;
        state = fresh.body.getAttribute("data-etat");
        body.setAttribute("data-etat", state);
        var live = document.getElementById("annonce");  // « C'est noté » was about the step before: the new step instead
        if (live && next) {
          live.textContent = next.getAttribute("data-annonce") || "";
          live.classList.toggle("visually-hidden", !live.textContent);
        }
        if (focusWasThere && next) {
          var same = focusedId && document.getElementById(focusedId);
          var link = inDevice && document.querySelector("#appareil a");
          (same || link || next.querySelector("h1")).focus();
        }
        if (state !== "fin") { later(every); }
      })
      .catch(function () { later(every * 4); });
  }
  function look() {
    fetch(url, { cache: "no-store", credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (data && data.etat !== state) { redraw(); return; }
        later(data ? every : every * 4);
      })
      .catch(function () { later(every * 4); });
  }
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") later(0); else later(every);
  });
  later(every);
  // Back from a button (« C'est noté » in the live region from the start, which is not announced):
  // the note is said again once the page is there, and the focus is on the step's heading.
  var live = document.getElementById("annonce");
  if (live && live.textContent.trim()) {
    var said = live.textContent;
    live.textContent = "";
    setTimeout(function () { live.textContent = said; }, 300);
    var heading = document.querySelector("main .now h1");
    if (heading) { heading.focus(); }
  }
  // A button pressed: the others are told busy, never disabled (the focus would fall to the page).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.classList || !form.classList.contains("buttons")) return;
    if (form.getAttribute("aria-busy") === "true") { event.preventDefault(); return; }
    form.setAttribute("aria-busy", "true");
  });
})();
