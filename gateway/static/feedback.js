// What the page tells its user: the banner line at the top, and the gateway's error next to the field it names
// (every input has a <p data-error-for="FIELD">; the gateway's body names the field as the form sent it).

const banner = () => document.getElementById("message");

export function say(text, kind = "info") {
  const element = banner();
  element.textContent = text;
  element.className = kind;
  element.hidden = !text;
}

export function clearErrors() {
  say("");
  for (const element of document.querySelectorAll("[data-error-for]")) {
    element.textContent = "";
    element.hidden = true;
  }
  for (const element of document.querySelectorAll(".invalid")) element.classList.remove("invalid");
}

function fieldError(field) {
  return field ? document.querySelector(`[data-error-for="${CSS.escape(field)}"]`) : null;
}

// An ApiError (or any error) shown: its message next to its field when the page has that field, and a status
// line in the banner either way (with the request id, which the gateway's log lines carry).
export function showError(error) {
  if (error.name === "AbortError") return;
  const element = fieldError(error.field);
  if (error.status === 401) document.getElementById("key-form").hidden = false;
  const status = error.status ? `${error.status}: ` : "";
  const request = error.requestId ? ` (request ${error.requestId})` : "";
  if (element) {
    element.textContent = error.message;
    element.hidden = false;
    const details = element.closest("details");
    if (details) details.open = true;
    document.querySelector(`[name="${CSS.escape(error.field)}"]`)?.classList.add("invalid");
  }
  say(`${status}${error.message}${request}`, "error");
}
