// The voice library: the table of stored voices (GET /v1/voices), "Use" and a two-click "Delete".

import { call, getJson } from "./api.js";
import { say, showError } from "./feedback.js";

const CONFIRM_WINDOW_MS = 4000; // a first click on Delete arms it this long

function cell(row, text) {
  const td = row.insertCell();
  td.textContent = text;
  return td;
}

function button(label, onClick) {
  const element = document.createElement("button");
  element.type = "button";
  element.textContent = label;
  element.addEventListener("click", onClick);
  return element;
}

// Fills the table; ``onUse(voice)`` is called when a row's Use is pressed, ``onDeleted(voice)`` after a delete.
export async function showVoices({ onUse, onDeleted, defaultModel }) {
  const body = document.querySelector("#voices tbody");
  let voices;
  try {
    voices = (await getJson("v1/voices")).voices;
  } catch (error) {
    showError(error);
    return [];
  }
  body.replaceChildren();
  for (const voice of voices) {
    const row = body.insertRow();
    row.dataset.voiceId = voice.id;
    cell(row, voice.name || "(unnamed)").title = voice.id;
    cell(row, voice.model || defaultModel);
    cell(row, voice.prompt_language);
    cell(row, voice.prompt_text).className = "transcript";
    cell(row, `${voice.reference_seconds.toFixed(1)} s`);
    cell(row, new Date(voice.created_at * 1000).toLocaleString());
    const actions = row.insertCell();
    actions.append(button("Use", () => onUse(voice)), deleteButton(voice, onDeleted));
  }
  document.getElementById("voices-empty").hidden = voices.length > 0;
  return voices;
}

function deleteButton(voice, onDeleted) {
  let armed = null;
  const element = button("Delete", async () => {
    if (!armed) {
      element.textContent = "Confirm delete";
      element.classList.add("armed");
      armed = setTimeout(() => {
        armed = null;
        element.textContent = "Delete";
        element.classList.remove("armed");
      }, CONFIRM_WINDOW_MS);
      return;
    }
    clearTimeout(armed);
    try {
      await call(`v1/voices/${encodeURIComponent(voice.id)}`, { method: "DELETE" });
      say(`Deleted ${voice.name || voice.id}.`);
      onDeleted(voice);
    } catch (error) {
      showError(error);
    }
  });
  element.className = "danger";
  return element;
}
