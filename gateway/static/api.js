// Calls to the gateway's API: the API key from this tab's session storage only, and every failure as the
// gateway's own JSON error (field and rule), never a bare status.

const KEY_STORAGE = "gsv-triton.api-key";
// The gateway's root, whatever path prefix a proxy serves it under: the page lives at <root>/ui/.
const ROOT = new URL("../", location.href);

export class ApiError extends Error {
  constructor(status, body) {
    super(body.detail || body.message || `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.field = body.field || null;
    this.requestId = body.request_id || null;
  }
}

export function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

export function apiUrl(path) {
  return new URL(path.replace(/^\//, ""), ROOT);
}

async function errorOf(response) {
  let body;
  try {
    body = await response.json();
  } catch {
    body = { detail: `${response.status} ${response.statusText}`.trim() };
  }
  return new ApiError(response.status, body);
}

// fetch() with the key; resolves to the response when it is a success, else throws ApiError.
export async function call(path, { method = "GET", body, signal } = {}) {
  const headers = {};
  const key = apiKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  let response;
  try {
    response = await fetch(apiUrl(path), { method, body, headers, signal });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, { detail: `the gateway did not answer (${error.message})` });
  }
  if (!response.ok) throw await errorOf(response);
  return response;
}

export async function getJson(path, options) {
  return (await call(path, options)).json();
}
