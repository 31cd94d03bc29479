// Audio in the browser: 16-bit PCM from the stream, playback as it arrives, WAV files, microphone clips as
// WAV (the gateway takes wav/flac/ogg/mp3, not the browser's webm), and the waveform drawing.

const WAV_HEADER_BYTES = 44;
const PLAYBACK_LEAD_S = 0.05; // the first piece starts this much after it arrives, so it is never clipped

// Collects a byte stream of 16-bit little-endian samples; a read may end in the middle of a sample.
export class PcmCollector {
  constructor() {
    this.pieces = [];
    this.length = 0;
    this.carry = null;
  }

  // The whole samples of these bytes (an odd byte waits for the next read).
  push(bytes) {
    let data = bytes;
    if (this.carry !== null) {
      data = new Uint8Array(bytes.length + 1);
      data[0] = this.carry;
      data.set(bytes, 1);
      this.carry = null;
    }
    const whole = data.length - (data.length % 2);
    if (whole < data.length) this.carry = data[whole];
    const view = new DataView(data.buffer, data.byteOffset, whole);
    const samples = new Int16Array(whole / 2);
    for (let i = 0; i < samples.length; i++) samples[i] = view.getInt16(2 * i, true);
    if (samples.length) {
      this.pieces.push(samples);
      this.length += samples.length;
    }
    return samples;
  }

  samples() {
    const all = new Int16Array(this.length);
    let offset = 0;
    for (const piece of this.pieces) {
      all.set(piece, offset);
      offset += piece.length;
    }
    return all;
  }
}

function toFloat(samples) {
  const out = new Float32Array(samples.length);
  for (let i = 0; i < samples.length; i++) out[i] = samples[i] / 32768;
  return out;
}

// Plays pieces of samples back to back as they come (Web Audio), without gaps between them.
export class StreamPlayer {
  constructor(context, sampleRate) {
    this.context = context;
    this.sampleRate = sampleRate;
    this.next = 0;
    this.sources = [];
    this.scheduledSeconds = 0; // audio handed to the output so far
  }

  play(samples) {
    const buffer = this.context.createBuffer(1, samples.length, this.sampleRate);
    buffer.getChannelData(0).set(toFloat(samples));
    const source = this.context.createBufferSource();
    source.buffer = buffer;
    source.connect(this.context.destination);
    this.next = Math.max(this.next, this.context.currentTime + PLAYBACK_LEAD_S);
    source.start(this.next);
    this.next += buffer.duration;
    this.scheduledSeconds += buffer.duration;
    this.sources.push(source);
  }

  stop() {
    for (const source of this.sources) source.stop();
    this.sources = [];
  }
}

// A 16-bit mono WAV file of these samples.
export function wavBlob(samples, sampleRate) {
  const header = new DataView(new ArrayBuffer(WAV_HEADER_BYTES));
  const dataBytes = samples.length * 2;
  const ascii = (offset, text) => [...text].forEach((c, i) => header.setUint8(offset + i, c.charCodeAt(0)));
  ascii(0, "RIFF");
  header.setUint32(4, 36 + dataBytes, true);
  ascii(8, "WAVE");
  ascii(12, "fmt ");
  header.setUint32(16, 16, true); // fmt chunk size
  header.setUint16(20, 1, true); // PCM
  header.setUint16(22, 1, true); // mono
  header.setUint32(24, sampleRate, true);
  header.setUint32(28, sampleRate * 2, true); // bytes per second
  header.setUint16(32, 2, true); // bytes per frame
  header.setUint16(34, 16, true); // bits per sample
  ascii(36, "data");
  header.setUint32(40, dataBytes, true);
  const body = new Uint8Array(dataBytes);
  const view = new DataView(body.buffer);
  samples.forEach((s, i) => view.setInt16(2 * i, s, true));
  return new Blob([header, body], { type: "audio/wav" });
}

// Any clip the browser can decode (a recording's webm/opus) as a 16-bit mono WAV file.
export async function clipAsWav(blob, name) {
  const decoder = new OfflineAudioContext(1, 1, 48000);
  const buffer = await decoder.decodeAudioData(await blob.arrayBuffer());
  const mono = new Int16Array(buffer.length);
  for (let i = 0; i < buffer.length; i++) {
    let sum = 0;
    for (let c = 0; c < buffer.numberOfChannels; c++) sum += buffer.getChannelData(c)[i];
    const value = Math.max(-1, Math.min(1, sum / buffer.numberOfChannels));
    mono[i] = Math.round(value * 32767);
  }
  return new File([wavBlob(mono, buffer.sampleRate)], name, { type: "audio/wav" });
}

// One vertical line per pixel column from the column's smallest to its largest sample.
export function drawWaveform(canvas, samples) {
  const scale = window.devicePixelRatio || 1;
  const width = Math.round(canvas.clientWidth * scale);
  const height = Math.round(canvas.clientHeight * scale);
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d");
  const style = getComputedStyle(canvas);
  context.clearRect(0, 0, width, height);
  context.fillStyle = style.getPropertyValue("--wave-axis").trim() || "#ccc";
  context.fillRect(0, Math.floor(height / 2), width, 1);
  if (!samples.length) return;
  context.fillStyle = style.getPropertyValue("--wave").trim() || "#2563eb";
  const perColumn = samples.length / width;
  for (let x = 0; x < width; x++) {
    const start = Math.floor(x * perColumn);
    const end = Math.max(start + 1, Math.floor((x + 1) * perColumn));
    let low = 0;
    let high = 0;
    for (let i = start; i < end && i < samples.length; i++) {
      low = Math.min(low, samples[i]);
      high = Math.max(high, samples[i]);
    }
    const top = ((1 - high / 32768) * height) / 2;
    const bottom = ((1 - low / 32768) * height) / 2;
    context.fillRect(x, top, 1, Math.max(1, bottom - top));
  }
}
