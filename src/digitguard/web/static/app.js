// digitguard drawing page: pointer events (mouse, pen, touch) on a canvas, PNG to the JSON API.
"use strict";

(function () {
  const pad = document.getElementById("pad");
  const ctx = pad.getContext("2d");
  const statusLine = document.getElementById("status");
  const digitOut = document.getElementById("digit");
  const confidenceOut = document.getElementById("confidence");
  const reasonOut = document.getElementById("reason");
  const bars = document.getElementById("bars");
  const recogniseButton = document.getElementById("recognise");
  const flagBox = document.getElementById("flag");
  const flagButton = document.getElementById("flag-button");
  const flagLabel = document.getElementById("flag-label");
  let drawing = false;
  let inked = false;
  let lastAnswer = null;  // {request_id, input}: what a "this is wrong" flag sends back
  // What happens next after an abstention; *why* it abstained is the API's reason_text, so the
  // page, the audit record and the review queue say the same thing.
  const NEXT_STEP = {
    flagged_adversarial: "The answer changes when the drawing is simplified, so none is given and a person will review it.",
    flagged_trigger: "The answer rests on one small mark rather than the digit, so none is given and a person will review it.",
    not_a_digit: "No digit is given and a person will review it. Draw one digit from 0 to 9.",
    models_disagree: "No digit is given and a person will review it. Try drawing the digit more clearly.",
    low_confidence: "No digit is given and a person will review it. Try drawing the digit more clearly.",
  };

  function setupPen() {
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.strokeStyle = "#000";
    ctx.lineWidth = pad.width / 14;
  }

  function point(event) {
    const rect = pad.getBoundingClientRect();
    return [(event.clientX - rect.left) * (pad.width / rect.width), (event.clientY - rect.top) * (pad.height / rect.height)];
  }

  pad.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    pad.setPointerCapture(event.pointerId);
    drawing = true;
    const [x, y] = point(event);
    ctx.beginPath();
    ctx.moveTo(x, y);
    ctx.lineTo(x + 0.01, y);
    ctx.stroke();
    inked = true;
  });
  pad.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    const [x, y] = point(event);
    ctx.lineTo(x, y);
    ctx.stroke();
  });
  ["pointerup", "pointercancel", "pointerleave"].forEach((name) => pad.addEventListener(name, () => { drawing = false; }));

  function clearAll() {
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, pad.width, pad.height);
    setupPen();
    inked = false;
    digitOut.textContent = "?";
    digitOut.dataset.state = "idle";
    confidenceOut.textContent = "—";
    showReason(null, "");
    for (const id of ["model-input", "heatmap"]) {
      const c = document.getElementById(id).getContext("2d");
      c.clearRect(0, 0, 28, 28);
    }
    renderBars(null);
    hideFlag();
    say("Draw a digit, then press Recognise.");
  }

  function hideFlag() {
    lastAnswer = null;
    flagBox.hidden = true;
  }

  function csrfHeaders(headers) {
    const csrf = document.querySelector('meta[name="csrf-token"]');
    if (csrf && csrf.content) headers["X-CSRF-Token"] = csrf.content;  // signed-in sessions only
    return headers;
  }

  function say(text, isError) {
    statusLine.textContent = text;
    statusLine.classList.toggle("error", Boolean(isError));
  }

  function renderBars(probabilities) {
    bars.textContent = "";
    const best = probabilities ? probabilities.indexOf(Math.max(...probabilities)) : -1;
    for (let d = 0; d < 10; d++) {
      const p = probabilities ? probabilities[d] : 0;
      const li = document.createElement("li");
      if (d === best) li.classList.add("top");
      const label = document.createElement("span");
      label.textContent = String(d);
      const track = document.createElement("span");
      track.className = "track";
      const fill = document.createElement("span");
      fill.className = "fill";
      fill.style.width = (p * 100).toFixed(1) + "%";
      fill.style.display = "block";
      track.appendChild(fill);
      const pct = document.createElement("span");
      pct.className = "pct";
      pct.textContent = probabilities ? (p * 100).toFixed(1) + "%" : "";
      li.append(label, track, pct);
      bars.appendChild(li);
    }
  }

  function paintGrid(id, grid, colour) {
    const c = document.getElementById(id).getContext("2d");
    const image = c.createImageData(28, 28);
    for (let y = 0; y < 28; y++) {
      for (let x = 0; x < 28; x++) {
        const [r, g, b] = colour(grid[y][x]);
        const i = (y * 28 + x) * 4;
        image.data[i] = r; image.data[i + 1] = g; image.data[i + 2] = b; image.data[i + 3] = 255;
      }
    }
    c.putImageData(image, 0, 0);
  }

  function showReason(code, text) {
    reasonOut.textContent = text;
    reasonOut.dataset.reason = code || "";
    reasonOut.hidden = !code;
  }

  function showResult(body) {
    hideFlag();
    const confidence = (body.confidence * 100).toFixed(1) + "%";
    if (body.abstained) {
      // Never "not sure" beside a confidence without saying why.
      const flagged = body.flagged_adversarial || body.flagged_trigger;
      digitOut.textContent = body.reason === "not_a_digit" ? "not a digit" : "not sure";
      digitOut.dataset.state = flagged ? "flagged" : "abstained";
      const why = body.reason_text || "no reason was given";
      showReason(body.reason || "unknown", why + " (top answer " + confidence + ")");
      say(NEXT_STEP[body.reason] || "No digit is given and a person will review it.");
    } else {
      showReason(null, "");
      digitOut.textContent = String(body.digit);
      digitOut.dataset.state = "answered";
      say("Recognised. Request " + body.request_id.slice(0, 8) + ".");
      if (body.input) {
        lastAnswer = { request_id: body.request_id, input: body.input };
        flagLabel.value = "";
        flagButton.disabled = false;
        flagBox.hidden = false;
      }
    }
    confidenceOut.textContent = confidence;
    renderBars(body.probabilities);
    if (body.input) paintGrid("model-input", body.input, (v) => { const k = Math.round(v * 255); return [k, k, k]; });
    if (body.explanation) {
      paintGrid("heatmap", body.explanation, (v) => {
        const k = Math.round(Math.min(1, Math.abs(v)) * 255);
        return v >= 0 ? [k, 0, 0] : [0, Math.round(k / 3), k];
      });
    }
  }

  async function recognise() {
    if (!inked) { say("Nothing drawn yet.", true); return; }
    recogniseButton.disabled = true;
    say("Recognising…");
    try {
      const blob = await new Promise((resolve) => pad.toBlob(resolve, "image/png"));
      const headers = csrfHeaders({ "Content-Type": "image/png" });
      const response = await fetch("/api/v1/predict?details=1", {
        method: "POST", headers: headers, body: blob, credentials: "same-origin",
      });
      const body = await response.json();
      if (!response.ok) {
        const messages = {
          nothing_drawn: "Nothing drawn — draw a digit first.",
          rate_limited: "Too many requests — wait a moment and try again.",
          overloaded: "The server is busy — try again in a second.",
        };
        say(messages[body.error] || "Refused: " + body.message, true);
        return;
      }
      showResult(body);
    } catch (error) {
      say("Could not reach the server.", true);
    } finally {
      recogniseButton.disabled = false;
    }
  }

  async function flagAnswer() {
    if (!lastAnswer) return;
    flagButton.disabled = true;
    const payload = { pixels: lastAnswer.input };  // the input exactly as the server showed it
    if (flagLabel.value !== "") payload.label = Number(flagLabel.value);
    try {
      const response = await fetch("/api/v1/predictions/" + lastAnswer.request_id + "/flag", {
        method: "POST", headers: csrfHeaders({ "Content-Type": "application/json" }),
        body: JSON.stringify(payload), credentials: "same-origin",
      });
      const body = await response.json();
      if (response.ok || body.error === "already_queued") {
        say("Thank you — a person will review this answer.");
        flagBox.hidden = true;
        return;
      }
      say(body.error === "rate_limited" ? "Too many requests — wait a moment and try again." : "Refused: " + body.message, true);
      flagButton.disabled = false;
    } catch (error) {
      say("Could not reach the server.", true);
      flagButton.disabled = false;
    }
  }

  document.getElementById("clear").addEventListener("click", clearAll);
  flagButton.addEventListener("click", flagAnswer);
  recogniseButton.addEventListener("click", recognise);
  clearAll();
})();
