// The page: the form, the streamed synthesis (POST /v1/voice-clone/stream as pcm, played while it arrives),
// the result (audio element, download, waveform, timings), the voice library and the API key.

import { ApiError, apiKey, call, getJson, setApiKey } from "./api.js";
import { PcmCollector, StreamPlayer, clipAsWav, drawWaveform, wavBlob } from "./audio.js";
import { clearErrors, say, showError } from "./feedback.js";
import { showVoices } from "./library.js";

const $ = (id) => document.getElementById(id);
const SETTING_FIELDS = ["top_k", "top_p", "temperature", "speed", "seed", "cut_punc", "chunk_tokens"];
const HEALTH_EVERY_MS = 10000;

const state = {
  config: null,
  clip: null, // the reference File (uploaded or recorded)
  voice: null, // the stored voice in use instead of a clip
  recorder: null,
  controller: null, // aborts the synthesis under way
  audioContext: null,
  resultUrl: null,
  result: null, // {samples, sampleRate, seed, firstAudioMs, totalMs} of the last synthesis
};

// -- set-up from /ui/config.json ----------------------------------------------------------------------------

function fillLanguages(select, config) {
  for (const { code, label } of config.languages) select.add(new Option(`${label} (${code})`, code));
  select.value = config.default_language;
}

function applyConfig(config) {
  fillLanguages($("prompt_language"), config);
  fillLanguages($("text_language"), config);
  for (const [name, value] of Object.entries(config.sampling)) {
    $(name).value = value;
    $(name).placeholder = value;
  }
  $("cut_punc").value = config.cut_punc;
  $("clip-rule").textContent = `(${config.min_reference_seconds}-${config.max_reference_seconds} s: wav, flac, ogg, mp3)`;
  $("version").textContent = `gateway ${config.gateway_version}`;
  $("key-form").hidden = !(config.api_keys_required || apiKey());
  $("authorization").value = apiKey();
  countText();
}

function countText() {
  $("text-count").textContent = `${[...$("text").value].length} / ${state.config.max_text_chars} characters`;
}

async function refreshHealth() {
  const badge = $("health");
  try {
    const response = await fetch(new URL("../health", location.href));
    const body = await response.json();
    badge.textContent = body.status === "ok" ? "ready" : body.status;
    badge.className = `badge ${body.status}`;
    badge.title = body.triton?.error || "GET /health";
  } catch {
    badge.textContent = "gateway unreachable";
    badge.className = "badge unavailable";
  }
}

async function refreshModels() {
  const select = $("model");
  let cards;
  try {
    cards = (await getJson("v1/models")).data.filter((card) => card.model_set);
  } catch (error) {
    showError(error);
    return;
  }
  const chosen = select.value;
  select.replaceChildren();
  for (const { model_set: set } of cards) {
    const option = new Option(`${set.name}${set.default ? " (default)" : ""}, ${set.state}`, set.name);
    option.selected = chosen ? set.name === chosen : set.default;
    select.add(option);
  }
  if (state.voice) select.value = state.voice.model;
}

async function refreshVoices() {
  await showVoices({
    defaultModel: state.config.default_model,
    onUse: useVoice,
    onDeleted: (voice) => {
      if (state.voice?.id === voice.id) useClip();
      refreshVoices();
    },
  });
}

// -- the reference: a clip (file or microphone) or a stored voice -------------------------------------------

function setClip(file) {
  state.clip = file;
  const preview = $("clip-preview");
  if (preview.src) URL.revokeObjectURL(preview.src);
  preview.hidden = !file;
  if (file) preview.src = URL.createObjectURL(file);
  else preview.removeAttribute("src");
}

async function toggleRecording() {
  if (state.recorder) {
    state.recorder.stop();
    return;
  }
  if (!navigator.mediaDevices?.getUserMedia || typeof MediaRecorder === "undefined") {
    say("This browser allows no recording here (it needs https or localhost): upload a clip instead.", "error");
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (error) {
    say(`The microphone is not available: ${error.message}`, "error");
    return;
  }
  const recorder = new MediaRecorder(stream);
  const parts = [];
  const started = performance.now();
  const limitMs = state.config.max_reference_seconds * 1000;
  const timer = setInterval(() => {
    const elapsed = performance.now() - started;
    $("record-status").textContent = `recording ${(elapsed / 1000).toFixed(1)} s`;
    if (elapsed >= limitMs - 250) recorder.stop(); // stay inside the reference limit
  }, 100);
  recorder.addEventListener("dataavailable", (event) => parts.push(event.data));
  recorder.addEventListener("stop", async () => {
    clearInterval(timer);
    for (const track of stream.getTracks()) track.stop();
    state.recorder = null;
    $("record").textContent = "Record";
    try {
      const clip = await clipAsWav(new Blob(parts, { type: recorder.mimeType }), "recording.wav");
      const transfer = new DataTransfer();
      transfer.items.add(clip);
      $("audio").files = transfer.files;
      setClip(clip);
      $("record-status").textContent = `recorded ${((performance.now() - started) / 1000).toFixed(1)} s`;
    } catch (error) {
      say(`The recording could not be read: ${error.message}`, "error");
    }
  });
  state.recorder = recorder;
  recorder.start();
  $("record").textContent = "Stop recording";
}

function useVoice(voice) {
  state.voice = voice;
  $("clip-mode").hidden = true;
  $("voice-mode").hidden = false;
  $("voice-name").textContent = voice.name || "(unnamed)";
  $("voice-id").textContent = voice.id;
  $("voice-model").textContent = voice.model;
  $("model").value = voice.model;
  $("model").disabled = true; // a stored voice speaks with the set it was stored under
  say(`Using the stored voice ${voice.name || voice.id}.`);
}

function useClip() {
  state.voice = null;
  $("clip-mode").hidden = false;
  $("voice-mode").hidden = true;
  $("model").disabled = false;
}

function referenceFields(form) {
  if (state.voice) {
    form.append("voice_id", state.voice.id);
    return;
  }
  if (state.clip) form.append("audio", state.clip, state.clip.name || "reference.wav");
  form.append("prompt_text", $("prompt_text").value);
  form.append("prompt_language", $("prompt_language").value);
}

async function saveVoice(event) {
  event.preventDefault();
  clearErrors();
  const form = new FormData();
  if (state.clip) form.append("audio", state.clip, state.clip.name || "reference.wav");
  form.append("prompt_text", $("prompt_text").value);
  form.append("prompt_language", $("prompt_language").value);
  form.append("name", $("name").value);
  form.append("model", $("model").value);
  const button = $("save-voice-button");
  button.disabled = true;
  try {
    const voice = await (await call("v1/voices", { method: "POST", body: form })).json();
    say(`Saved ${voice.name || voice.id} (${voice.id}) in the library.`);
    $("name").value = "";
    await refreshVoices();
  } catch (error) {
    showError(error);
  } finally {
    button.disabled = false;
  }
}

// -- synthesis: stream, play, then show the whole result ----------------------------------------------------

function synthesisForm() {
  const form = new FormData();
  referenceFields(form);
  form.append("text", $("text").value);
  form.append("text_language", $("text_language").value);
  form.append("model", $("model").value);
  for (const name of SETTING_FIELDS) form.append(name, $(name).value.trim());
  form.append("response_format", "pcm");
  return form;
}

function audioContext() {
  state.audioContext ??= new AudioContext();
  state.audioContext.resume();
  return state.audioContext;
}

function milliseconds(ms) {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

function showTimes(firstAudioMs, totalMs) {
  $("first-audio").textContent = firstAudioMs === null ? "–" : milliseconds(firstAudioMs);
  $("first-audio").dataset.ms = firstAudioMs ?? "";
  $("total-time").textContent = totalMs === null ? "…" : milliseconds(totalMs);
  $("total-time").dataset.ms = totalMs ?? "";
}

function showResult(result) {
  state.result = result;
  const blob = wavBlob(result.samples, result.sampleRate);
  if (state.resultUrl) URL.revokeObjectURL(state.resultUrl);
  state.resultUrl = URL.createObjectURL(blob);
  $("result-audio").src = state.resultUrl;
  $("download").href = state.resultUrl;
  $("download").download = `gsv-triton-seed${result.seed}.wav`;
  $("download").hidden = false;
  $("audio-length").textContent = `${(result.samples.length / result.sampleRate).toFixed(2)} s`;
  $("used-seed").textContent = result.seed;
  drawWaveform($("waveform"), result.samples);
}

async function synthesize() {
  clearErrors();
  const form = synthesisForm();
  const controller = new AbortController();
  state.controller = controller;
  $("synthesize").disabled = true;
  $("stop").disabled = false;
  showTimes(null, null);
  const player = new StreamPlayer(audioContext(), state.config.sample_rate);
  const pcm = new PcmCollector();
  const started = performance.now();
  let firstAudioMs = null;
  let seed = "";
  say("Synthesizing…");
  try {
    const response = await call("v1/voice-clone/stream", { method: "POST", body: form, signal: controller.signal });
    seed = response.headers.get("X-Seed") || "";
    player.sampleRate = Number(response.headers.get("X-Sample-Rate")) || player.sampleRate;
    const reader = response.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const samples = pcm.push(value);
      if (!samples.length) continue;
      if (firstAudioMs === null) {
        firstAudioMs = performance.now() - started;
        showTimes(firstAudioMs, null);
      }
      player.play(samples);
    }
    const totalMs = performance.now() - started;
    showTimes(firstAudioMs, totalMs);
    showResult({ samples: pcm.samples(), sampleRate: player.sampleRate, seed, firstAudioMs, totalMs });
    $("audio-length").dataset.playedS = player.scheduledSeconds; // what went to the speakers while it streamed
    say(`Done: ${milliseconds(firstAudioMs)} to the first audio, ${milliseconds(totalMs)} in all.`, "ok");
  } catch (error) {
    if (error.name === "AbortError") {
      player.stop();
      say("Stopped.");
    } else if (error instanceof ApiError) {
      showError(error);
    } else {
      // The status was 200, then the connection broke: the gateway's log has the reason.
      showError(new ApiError(0, { detail: `the stream broke after ${(pcm.length / player.sampleRate).toFixed(2)} s of audio (${error.message})` }));
    }
  } finally {
    if (!$("total-time").dataset.ms) $("total-time").textContent = "–"; // it ended without a whole result
    state.controller = null;
    $("synthesize").disabled = false;
    $("stop").disabled = true;
  }
}

// -- the API key ----------------------------------------------------------------------------------------------

async function useKey(event) {
  event.preventDefault();
  clearErrors();
  setApiKey($("authorization").value.trim());
  await reloadLists();
  if (!document.querySelector("#message.error")) say("The key is accepted.", "ok"); // else the error stays shown
}

async function reloadLists() {
  await Promise.all([refreshModels(), refreshVoices()]);
}

async function main() {
  state.config = await getJson("ui/config.json");
  applyConfig(state.config);
  $("text").addEventListener("input", countText);
  $("audio").addEventListener("change", () => setClip($("audio").files[0] || null));
  $("record").addEventListener("click", toggleRecording);
  $("use-clip").addEventListener("click", useClip);
  $("save-voice").addEventListener("submit", saveVoice);
  $("synthesize").addEventListener("click", synthesize);
  $("stop").addEventListener("click", () => state.controller?.abort());
  $("key-form").addEventListener("submit", useKey);
  $("forget-key").addEventListener("click", () => {
    setApiKey("");
    $("authorization").value = "";
    say("The key is forgotten.");
  });
  refreshHealth();
  setInterval(refreshHealth, HEALTH_EVERY_MS);
  await reloadLists();
  document.body.dataset.ready = "true"; // the page has its lists (tests wait for it)
}

main().catch((error) => showError(error));
