// The console's call simulator: plays Twilio in the browser. Each webhook goes through
// /console/try/webhook, which signs it and sends it to the real /voice endpoints.
(function () {
  "use strict";
  const root = document.querySelector(".try");
  let callSid = root.dataset.callSid;
  const csrf = root.dataset.csrf;
  const transcript = document.getElementById("transcript");
  const statusLine = document.getElementById("status");
  const typed = document.getElementById("typed");
  const keys = Array.from(document.querySelectorAll("#keypad button"));
  const silenceButton = document.getElementById("silence");
  const recordButton = document.getElementById("record");
  const hangupButton = document.getElementById("hangup");
  const baseParams = { AccountSid: "AC" + "0".repeat(32), From: "+33600000000", To: "+33900000000", CallStatus: "in-progress", Direction: "inbound" };
  let pending = null; // {action, numDigits, finishOnKey, rest, record}
  let buffer = "";
  let ended = false;
  let waitUrl = null; // while queued: the <Enqueue>'s waitUrl, which Twilio requests again and again
  let asking = false; // the document being played asks a question (a <Gather>)
  const queue = (seconds) => ({ QueuePosition: "1", QueueTime: String(seconds), AvgQueueTime: "0", CurrentQueueSize: "1",
                                QueueSid: "QU" + "0".repeat(32) });

  function line(text, who) {
    const item = document.createElement("li");
    item.textContent = who === "caller" ? "→ " + text : text;
    item.className = who || "server";
    transcript.appendChild(item);
    transcript.scrollTop = transcript.scrollHeight;
  }

  function speak(text) {
    if (!document.getElementById("speak").checked || !("speechSynthesis" in window)) return;
    const utterance = new SpeechSynthesisUtterance(text);
    utterance.lang = "fr-FR";
    window.speechSynthesis.speak(utterance);
  }

  // Buttons are told unavailable (aria-disabled), never disabled: a disabled button loses the focus,
  // which falls to the page at every key pressed.
  function able(button, enabled) { button.setAttribute("aria-disabled", enabled ? "false" : "true"); }
  function usable(button) { return button.getAttribute("aria-disabled") !== "true"; }
  function setInput(enabled, record) {
    keys.forEach((button) => able(button, enabled && !record));
    able(silenceButton, enabled);
    recordButton.hidden = !record;
    able(recordButton, enabled && record);
  }

  async function post(url, extra) {
    const response = await fetch(root.dataset.webhook, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify({ url: url, params: Object.assign({ CallSid: callSid }, baseParams, extra || {}) }),
    });
    const answer = await response.json();
    if (answer.status !== 200) throw new Error("HTTP " + answer.status);
    return answer.body;
  }

  async function request(url, extra) {
    setInput(false);
    statusLine.textContent = "…";
    try {
      const verbs = Array.from(new DOMParser().parseFromString(await post(url, extra), "text/xml").documentElement.children);
      asking = verbs.some((verb) => verb.tagName === "Gather");
      run(url, verbs);
    } catch (error) {
      statusLine.textContent = "Erreur : " + error.message;
    }
  }

  function run(url, verbs) {
    while (verbs.length) {
      const verb = verbs.shift();
      if (verb.tagName === "Say") { line(verb.textContent); speak(verb.textContent); }
      else if (verb.tagName === "Play") { line("[enregistrement] " + verb.textContent); }
      else if (verb.tagName === "Gather") {
        Array.from(verb.children).forEach((child) => { if (child.tagName === "Say") { line(child.textContent); speak(child.textContent); } });
        pending = { action: verb.getAttribute("action"), numDigits: parseInt(verb.getAttribute("numDigits") || "0", 10),
                    finishOnKey: verb.getAttribute("finishOnKey") || "", rest: verbs, record: false };
        buffer = ""; typed.textContent = "";
        statusLine.textContent = pending.finishOnKey === "#" ? "Tapez le numéro puis #, ou « Silence »." : "Tapez une touche, ou « Silence ».";
        setInput(true, false);
        return;
      }
      else if (verb.tagName === "Record") {
        pending = { action: verb.getAttribute("action"), rest: verbs, record: true };
        line("(bip)");
        statusLine.textContent = "Message vocal : « Laisser un message » ou « Silence ».";
        setInput(true, true);
        return;
      }
      else if (verb.tagName === "Redirect") { request(verb.textContent, {}); return; }
      else if (verb.tagName === "Hangup") { finish("Le serveur a raccroché."); return; }
      else if (verb.tagName === "Enqueue" && verb.getAttribute("waitUrl") && !waitUrl) {
        // As Twilio: the caller waits in the queue, where the wait URL may ask the last questions.
        const wait = new URL(verb.getAttribute("waitUrl"), window.location.href);
        waitUrl = wait.pathname + wait.search;
        line("(en file d'attente)");
        request(waitUrl, queue(0));
        return;
      }
      else if (verb.tagName === "Enqueue" || verb.tagName === "Dial") { finish("Transfert vers un conseiller."); return; }
    }
    if (waitUrl && asking) { request(waitUrl, queue(30)); return; }  // a question left unanswered: the wait goes on
    if (waitUrl) { finish("Un conseiller décroche (simulé) : transfert vers un conseiller."); return; }
    finish("Fin du document : Twilio raccroche.");
  }

  function submit(digits) {
    const target = pending.action;
    const rest = pending.rest;
    pending = null;
    if (!digits) {  // # alone: Twilio posts nothing and goes on, as for silence
      line("# (rien d'autre)", "caller");
      run(null, rest);
      return;
    }
    line(digits, "caller");
    request(target, { Digits: digits });
  }

  keys.forEach((button) => button.addEventListener("click", () => {
    if (!pending || pending.record || !usable(button)) return;
    const key = button.dataset.key;
    if (pending.finishOnKey === "#" ) {
      if (key === "#") { submit(buffer); return; }
      buffer += key; typed.textContent = buffer;
      if (pending.numDigits && buffer.length >= pending.numDigits) submit(buffer);  // as Twilio: no wait for #
      return;
    }
    submit(key);
  }));

  silenceButton.addEventListener("click", () => {
    if (!pending || !usable(silenceButton)) return;
    const rest = pending.rest;
    pending = null;
    line("(silence)", "caller");
    run(null, rest);
  });

  recordButton.addEventListener("click", () => {
    if (!pending || !usable(recordButton)) return;
    const target = pending.action;
    pending = null;
    line("(message vocal de 12 s)", "caller");
    request(target, { RecordingUrl: "https://api.twilio.com/simulated/" + callSid + ".mp3", RecordingDuration: "12", Digits: "#" });
  });

  hangupButton.addEventListener("click", () => {
    if (!usable(hangupButton)) return;
    line("(raccroche)", "caller");
    finish("Vous avez raccroché.");
  });

  async function finish(message) {
    if (ended) return;
    ended = true;
    setInput(false);
    able(hangupButton, false);
    statusLine.textContent = message;
    try { await post("/voice/status", { CallStatus: "completed", CallDuration: "60" }); } catch (error) { /* shown below */ }
    const answer = await (await fetch(root.dataset.context.replace("__SID__", callSid))).json();
    document.getElementById("result").hidden = false;
    document.getElementById("outcome").textContent = message + " Résultat enregistré : " + (answer.outcome_label || "—") +
      (answer.outcome_step ? " (étape " + answer.outcome_step + ")" : "") + ".";
    document.getElementById("summary").textContent = answer.summary || "Aucune fiche : l'appel n'a pas été transféré.";
    document.getElementById("context").textContent = answer.context ? JSON.stringify(answer.context, null, 2) : "—";
    document.getElementById("again").hidden = false;
    if (document.activeElement === document.body) document.getElementById("result-title").focus();
  }

  function newSid() {
    const bytes = new Uint8Array(15);
    window.crypto.getRandomValues(bytes);
    return root.dataset.prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("").slice(0, 34 - root.dataset.prefix.length);
  }

  document.getElementById("start").addEventListener("click", (event) => {
    if (!usable(event.target)) return;
    able(event.target, false);
    able(hangupButton, true);
    request("/voice", {});
  });

  document.getElementById("again").addEventListener("click", (event) => {
    event.target.hidden = true;
    transcript.focus();  // the button is gone: the focus goes to what the call says, not to the page
    callSid = newSid();
    ended = false;
    waitUrl = null;
    pending = null;
    buffer = "";
    typed.textContent = "";
    transcript.textContent = "";
    document.getElementById("result").hidden = true;
    able(hangupButton, true);
    statusLine.textContent = "…";
    request("/voice", {});
  });
})();
