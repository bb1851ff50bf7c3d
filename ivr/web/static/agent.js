// The agent's page: answers given in the queue appear without a reload. Asks /etat every few
// seconds and rewrites the answers table (and the step, the e-CPS test) when its version changes.
(function () {
  "use strict";
  var body = document.body;
  var url = body.dataset.stateUrl, version = body.dataset.version, fixed = body.dataset.fixed;
  var every = parseInt(body.dataset.every, 10) || 2000;
  function cell(text) { var td = document.createElement("td"); td.textContent = text; return td; }
  function redraw(state) {
    var tbody = document.querySelector("#answers tbody");
    var rows = state.answers.map(function (answer) {
      var tr = document.createElement("tr");
      tr.className = answer.kind;
      tr.appendChild(cell(answer.label)); tr.appendChild(cell(answer.value + (answer.beside ? " — relevé sur l'appareil : " + answer.beside : ""))); tr.appendChild(cell(answer.origin));
      return tr;
    });
    var added = rows.length - tbody.children.length;
    tbody.replaceChildren.apply(tbody, rows);
    var news = document.getElementById("answers-news");  // said once, not the whole table again
    if (news) { news.textContent = added > 0 ? added + (added > 1 ? " nouvelles réponses" : " nouvelle réponse") : "Réponses mises à jour"; }
    document.getElementById("step").textContent = state.step ? "l'étape " + state.step : "l'accueil";
    document.getElementById("ecps-test").textContent = state.ecps_test;
    document.getElementById("card").textContent = state.card || "non donnée";
    document.getElementById("summary").textContent = state.summary;
    document.getElementById("not-asked").textContent = state.not_asked.length ? "Pas encore demandé : " + state.not_asked.join(", ") + "." : "";
  }
  function poll() {
    fetch(url, {cache: "no-store"}).then(function (response) {
      if (!response.ok) { throw new Error(response.status); }
      return response.json();
    }).then(function (state) {
      if (state.fixed !== fixed) {  // the identifier, the card, the message…: the whole page, unless a name is being typed
        var typing = document.getElementById("agent");
        if (!typing || !typing.value) { window.location.reload(); return; }
      }
      if (state.version !== version) { version = state.version; redraw(state); }
    }).catch(function () {}).finally(function () { setTimeout(poll, every); });
  }
  setTimeout(poll, every);
})();
