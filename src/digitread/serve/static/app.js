// The digitread page: write on a canvas or give an image; each is sent to /v1/read and the reading is
// drawn over the image. No library and no outside asset: the page must work offline with the server.
"use strict";

const READ_DELAY_MS = 450; // after the pen lifts: long enough to start the next stroke of a digit
const $ = (id) => document.getElementById(id);
const pad = $("pad");
const padContext = pad.getContext("2d");
const view = $("view");
const strokeInput = $("stroke");

let strokes = []; // each {width, points: [[x, y], ...]} in canvas pixels; redrawn on undo
let current = null;
let readTimer = null;
let requestSerial = 0; // a reply to an older request than the latest is dropped
let lastImage = null; // what was read last: {kind: "drawing", dataUrl} or {kind: "file", file}

// ---- writing ----

function padPoint(event) {
  const rect = pad.getBoundingClientRect();
  return [(event.clientX - rect.left) * (pad.width / rect.width), (event.clientY - rect.top) * (pad.height / rect.height)];
}

function paintBackground() {
  padContext.fillStyle = "#fff";
  padContext.fillRect(0, 0, pad.width, pad.height);
}

function paintStroke(stroke) {
  const [first, ...rest] = stroke.points;
  padContext.strokeStyle = "#111";
  padContext.fillStyle = "#111";
  padContext.lineWidth = stroke.width;
  padContext.lineCap = "round";
  padContext.lineJoin = "round";
  if (rest.length === 0) {
    padContext.beginPath();
    padContext.arc(first[0], first[1], stroke.width / 2, 0, 2 * Math.PI);
    padContext.fill();
    return;
  }
  padContext.beginPath();
  padContext.moveTo(first[0], first[1]);
  for (const [x, y] of rest) padContext.lineTo(x, y);
  padContext.stroke();
}

function repaint() {
  paintBackground();
  strokes.forEach(paintStroke);
  $("undo").disabled = strokes.length === 0;
  $("clear").disabled = strokes.length === 0;
}

pad.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  current = { width: Number(strokeInput.value), points: [padPoint(event)] };
  strokes.push(current);
  clearTimeout(readTimer);
  repaint();
});

pad.addEventListener("pointermove", (event) => {
  if (!current) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  for (const e of events.length ? events : [event]) current.points.push(padPoint(e));
  repaint();
});

function endStroke() {
  if (!current) return;
  current = null;
  scheduleRead();
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

strokeInput.addEventListener("input", () => { $("stroke-value").textContent = strokeInput.value; });

$("undo").addEventListener("click", () => {
  strokes.pop();
  repaint();
  if (strokes.length) scheduleRead(); else showNothing();
});

$("clear").addEventListener("click", () => {
  strokes = [];
  repaint();
  showNothing();
});

function scheduleRead() {
  clearTimeout(readTimer);
  readTimer = setTimeout(readDrawing, READ_DELAY_MS);
}

function readDrawing() {
  if (!strokes.length) return;
  const dataUrl = pad.toDataURL("image/png");
  lastImage = { kind: "drawing", dataUrl };
  send(JSON.stringify({ image: dataUrl, name: "drawing" }), { "Content-Type": "application/json" }, dataUrl);
}

// ---- images: choose, photograph, drop ----

function readFile(file) {
  if (!file) return;
  lastImage = { kind: "file", file };
  const body = new FormData();
  body.append("file", file, file.name || "image");
  send(body, {}, URL.createObjectURL(file));
}

for (const input of [$("file"), $("camera")]) {
  input.addEventListener("change", () => { readFile(input.files[0]); input.value = ""; });
}

const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  readFile(event.dataTransfer.files[0]);
});

// ---- reading and showing ----

// The page's state also goes on <body data-state>: idle, reading, read or error (tests wait on it).
function setStatus(text, isError = false, state = isError ? "error" : "idle") {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
  document.body.dataset.state = state;
}

async function errorText(response) {
  try {
    const body = await response.json();
    return body.detail || body.error || response.statusText;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

async function send(body, headers, imageUrl) {
  const serial = ++requestSerial;
  setStatus("Reading…", false, "reading");
  try {
    const response = await fetch("/v1/read", { method: "POST", body, headers });
    if (serial !== requestSerial) return;
    if (!response.ok) {
      showNothing(`Could not read it: ${await errorText(response)}`, true);
      return;
    }
    const reading = await response.json();
    if (serial !== requestSerial) return;
    await showReading(reading, imageUrl);
  } catch (error) {
    if (serial === requestSerial) showNothing(`The server did not answer (${error.message}).`, true);
  }
}

function showNothing(message = "Nothing read yet.", isError = false) {
  requestSerial++;
  setStatus(message, isError);
  $("number").textContent = "";
  $("confidence").textContent = "";
  $("digits").replaceChildren();
  view.hidden = true;
  $("feedback").hidden = true;
}

const percent = (p) => `${Math.round(p * 100)}%`;

function confidenceColour(p) {
  const style = getComputedStyle(document.documentElement);
  return style.getPropertyValue(p >= 0.9 ? "--good" : p >= 0.5 ? "--fair" : "--poor").trim();
}

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error("the browser cannot show this image"));
    image.src = url;
  });
}

async function drawBoxes(reading, imageUrl) {
  // The server's boxes are in the image's own pixels (EXIF rotation applied, as browsers show it).
  const scale = Math.min(1, 900 / reading.width);
  view.width = Math.max(1, Math.round(reading.width * scale));
  view.height = Math.max(1, Math.round(reading.height * scale));
  const context = view.getContext("2d");
  try {
    context.drawImage(await loadImage(imageUrl), 0, 0, view.width, view.height);
  } catch {
    context.fillStyle = "#eee";
    context.fillRect(0, 0, view.width, view.height);
  }
  context.lineWidth = Math.max(2, Math.round(view.width / 300));
  for (const digit of reading.digits) {
    const [x, y, w, h] = digit.box.map((v) => v * scale);
    const colour = confidenceColour(digit.confidence);
    context.strokeStyle = colour;
    context.strokeRect(x, y, w, h);
    // The label fits its box's width, so the labels of neighbouring digits do not cover each other.
    const label = `${digit.char} ${percent(digit.confidence)}`;
    let font = Math.min(28, Math.max(10, h * 0.3));
    context.font = `bold ${font}px system-ui, sans-serif`;
    while (font > 9 && context.measureText(label).width + 4 > Math.max(w, 24)) {
      font -= 1;
      context.font = `bold ${font}px system-ui, sans-serif`;
    }
    const labelWidth = context.measureText(label).width + 4;
    const top = y - font - 4 >= 0 ? y - font - 4 : y + h;
    context.fillStyle = colour;
    context.fillRect(x, top, labelWidth, font + 4);
    context.fillStyle = "#fff";
    context.fillText(label, x + 2, top + font);
  }
  view.hidden = false;
}

function digitItem(digit) {
  const item = document.createElement("li");
  item.className = digit.uncertain ? "uncertain" : "";
  const char = document.createElement("span");
  char.className = "char";
  char.textContent = digit.char;
  const confidence = document.createElement("small");
  confidence.textContent = percent(digit.confidence);
  item.append(char, confidence);
  if (digit.uncertain && digit.alternatives.length) {
    const alternatives = document.createElement("small");
    alternatives.textContent = "or " + digit.alternatives.map(([c, p]) => `${c} (${percent(p)})`).join(", ");
    item.append(alternatives);
  }
  item.setAttribute("aria-label", item.textContent);
  return item;
}

async function showReading(reading, imageUrl) {
  const found = reading.text.length > 0;
  $("number").textContent = found ? reading.text : "";
  $("confidence").textContent = found ? `confidence ${percent(reading.confidence)}` : "";
  const uncertain = reading.digits.filter((d) => d.uncertain).length;
  setStatus(
    !found ? "No number found." : uncertain ? `Read, with ${uncertain} uncertain digit${uncertain > 1 ? "s" : ""}.` : "Read.",
    false,
    "reading"
  );
  $("digits").replaceChildren(...reading.digits.filter((d) => /\d/.test(d.char)).map(digitItem));
  await drawBoxes(reading, imageUrl);
  $("feedback").hidden = false;
  $("correction").hidden = true;
  $("wrong").setAttribute("aria-expanded", "false");
  $("thanks").textContent = "";
  $("truth").value = reading.text.split("\n")[0];
  document.body.dataset.state = "read";
}

// ---- "that's wrong": send the image back with the right number ----

$("wrong").addEventListener("click", () => {
  const form = $("correction");
  form.hidden = !form.hidden;
  $("wrong").setAttribute("aria-expanded", String(!form.hidden));
  if (!form.hidden) $("truth").focus();
});

$("correction").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!lastImage) return;
  const number = $("truth").value.trim();
  let request;
  if (lastImage.kind === "drawing") {
    request = { body: JSON.stringify({ image: lastImage.dataUrl, number, name: "drawing" }),
                headers: { "Content-Type": "application/json" } };
  } else {
    const body = new FormData();
    body.append("file", lastImage.file, lastImage.file.name || "image");
    body.append("number", number);
    request = { body, headers: {} };
  }
  try {
    const response = await fetch("/v1/feedback", { method: "POST", ...request });
    if (!response.ok) {
      $("thanks").textContent = `Not stored: ${await errorText(response)}`;
      return;
    }
    const stored = await response.json();
    $("thanks").textContent = `Thank you: stored as correction #${stored.id}.`;
    $("correction").hidden = true;
    $("wrong").setAttribute("aria-expanded", "false");
    $("wrong").focus();
  } catch (error) {
    $("thanks").textContent = `Not stored: the server did not answer (${error.message}).`;
  }
});

repaint();
