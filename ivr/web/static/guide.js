// The visual guide follows the call: it asks where the call is and shows the new step when it moves.
// Without JavaScript the page and its buttons work the same; only this following is lost.
(function () {
  var body = document.body;
  var url = body.getAttribute("data-etat-url");
  var state = body.getAttribute("data-etat");
  var every = parseInt(body.getAttribute("data-follow"), 10) || 1500;
  if (!url || !window.fetch || state === "fin") return;
  function look() {
    fetch(url, { cache: "no-store", credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (data && data.etat !== state) { window.location.replace(window.location.pathname); return; }
        setTimeout(look, data ? every : every * 4);
      })
      .catch(function () { setTimeout(look, every * 4); });
  }
  setTimeout(look, every);
  var form = document.querySelector("form.buttons");
  if (form) form.addEventListener("submit", function () {
    setTimeout(function () { form.querySelectorAll("button").forEach(function (b) { b.disabled = true; }); }, 0);
  });
})();
