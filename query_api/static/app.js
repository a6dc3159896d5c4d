// The pagelens browser page: ask /v1/query with a bearer token, show the answer, open cited pages.
"use strict";

const TOKEN_KEY = "pagelens.token";
const NAMESPACE_KEY = "pagelens.namespace";
const TIMEOUT_MS = 60000;
const LABEL = /\[(?:Page|Figure) \d+(?:, [^\]]+)?\]/g;  // [Page 2] or, across documents, [Page 2, doc]
const MODE_TEXT = {
  extractive: ["extractive", "Sentences quoted from the cited pages (no language model is configured)."],
  generated: ["generated", "Written by the language model from the cited pages; every citation was checked."],
  "extractive-fallback": ["fallback: extractive", "The language model failed, so sentences were quoted instead."],
};
const HINTS = {
  401: "Check the API token (it may be mistyped or revoked).",
  403: "This token does not grant that namespace.",
  404: "Nothing found there: is the namespace ingested?",
  503: "The service is not ready yet; try again shortly.",
};

const $ = (id) => document.getElementById(id);
let pageImageUrl = null; // the blob URL shown now, revoked when replaced

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// fetch with the bearer token and a timeout; JSON error bodies become ApiError with the server's message.
async function apiFetch(path, options = {}) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), TIMEOUT_MS);
  const headers = { Authorization: `Bearer ${$("token").value.trim()}`, ...(options.headers || {}) };
  let response;
  try {
    response = await fetch(path, { ...options, headers, signal: controller.signal });
  } catch (err) {
    const why = err.name === "AbortError" ? `no answer within ${TIMEOUT_MS / 1000} s` : "the API is unreachable";
    throw new ApiError(0, "network", why);
  } finally {
    clearTimeout(timer);
  }
  if (!response.ok) {
    let code = "http_error", message = response.statusText || "request failed";
    try {
      const body = await response.json();
      if (body && body.error) ({ code, message } = body.error);
    } catch (_) { /* not JSON: keep the status text */ }
    throw new ApiError(response.status, code, message);
  }
  return response;
}

function showError(err) {
  const box = $("error");
  const status = err.status ? `${err.status} ` : "";
  box.textContent = `${status}${err.code ? `(${err.code}) ` : ""}${err.message}`;
  const hint = HINTS[err.status];
  if (hint) box.append(document.createElement("br"), hint);
  box.hidden = false;
}

function clearMessages() {
  $("error").hidden = true;
  $("error").textContent = "";
  $("status").textContent = "";
}

async function ask(event) {
  event.preventDefault();
  const form = $("ask-form");
  if (!form.reportValidity()) return;
  clearMessages();
  const token = $("token").value.trim(), namespace = $("namespace").value.trim();
  sessionStorage.setItem(TOKEN_KEY, token);
  sessionStorage.setItem(NAMESPACE_KEY, namespace);
  $("ask").disabled = true;
  $("status").textContent = "Searching…";
  try {
    const response = await apiFetch("v1/query", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ question: $("question").value.trim(), namespace }),
    });
    renderAnswer(await response.json());
    $("status").textContent = "Answer ready.";
  } catch (err) {
    $("status").textContent = "";
    $("answer").hidden = true;
    showError(err);
  } finally {
    $("ask").disabled = false;
  }
}

function renderAnswer(body) {
  const answer = body.answer;
  const mode = $("answer-mode");
  const [modeName, modeHelp] = MODE_TEXT[answer.mode] || [answer.mode, ""];
  mode.textContent = modeName;
  mode.dataset.mode = answer.mode;
  $("mode-note").textContent = modeHelp + (answer.fallback_reason ? ` Reason: ${answer.fallback_reason}` : "") +
    (answer.abstained ? " The indexed documents do not answer this question, so nothing is cited." : "");
  renderAnswerText(answer.text, answer.citations);
  renderCitations(answer.citations);
  const t = body.timings || {};
  $("timings").textContent = `Retrieval ${t.retrieval_ms ?? "?"} ms · answer ${t.generation_ms ?? "?"} ms · ` +
    `${body.mode} retrieval in namespace ${body.namespace}`;
  $("answer").hidden = false;
}

// The answer with each [Page N] label as a button; the n-th label opens the n-th citation when it carries
// that label (extractive answers list them in order), else the first citation with the same label.
function renderAnswerText(text, citations) {
  const target = $("answer-text");
  target.replaceChildren();
  let last = 0, nth = 0;
  for (const match of text.matchAll(LABEL)) {
    target.append(text.slice(last, match.index));
    const label = match[0];
    const cited = citations[nth] && citations[nth].label === label ? citations[nth]
      : citations.find((c) => c.label === label);
    target.append(cited ? citationButton(label, cited, "cite") : label);
    last = match.index + label.length;
    nth += 1;
  }
  target.append(text.slice(last));
}

function renderCitations(citations) {
  const list = $("citations");
  list.replaceChildren();
  for (const cited of citations) {
    const item = document.createElement("li");
    const button = citationButton(`${cited.doc} — ${cited.label.slice(1, -1)}`, cited, "citation");
    const snippet = document.createElement("q");
    snippet.textContent = cited.snippet;
    item.append(button, snippet);
    list.append(item);
  }
  if (!citations.length) list.append(Object.assign(document.createElement("li"), { textContent: "No citations." }));
}

function citationButton(text, cited, className) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = className;
  button.textContent = text;
  button.title = `Open ${cited.doc}, page ${cited.page}, with the cited region highlighted`;
  button.addEventListener("click", () => openPage(cited));
  return button;
}

function pageImagePath(cited) {
  if (cited.image_url) return cited.image_url.replace(/^\//, "");
  const query = new URLSearchParams({ namespace: $("namespace").value.trim(), bbox: cited.bbox.join(",") });
  const doc = cited.doc.split("/").map(encodeURIComponent).join("/");
  return `v1/documents/${doc}/pages/${cited.page}.png?${query}`;
}

// <img src> cannot send the Authorization header: fetch the PNG and show it through a blob URL.
async function openPage(cited) {
  clearMessages();
  const path = pageImagePath(cited);
  $("status").textContent = `Loading page ${cited.page} of ${cited.doc}…`;
  try {
    const blob = await (await apiFetch(path)).blob();
    if (pageImageUrl) URL.revokeObjectURL(pageImageUrl);
    pageImageUrl = URL.createObjectURL(blob);
    const img = $("page-image");
    img.dataset.source = path;
    img.alt = `Page ${cited.page} of ${cited.doc}; the cited region is highlighted`;
    img.src = pageImageUrl;
    $("page-caption").textContent = `${cited.doc}, page ${cited.page}: “${cited.snippet}”`;
    $("viewer").hidden = false;
    $("status").textContent = `Showing page ${cited.page} of ${cited.doc}.`;
    $("viewer-heading").focus();
    $("viewer").scrollIntoView({ behavior: "smooth", block: "start" });
  } catch (err) {
    $("status").textContent = "";
    showError(err);
  }
}

// Offer the namespaces the token may read (GET /v1/namespaces) as suggestions; what the user typed stays.
async function loadNamespaces() {
  if (!$("token").value.trim()) return;
  try {
    const names = (await (await apiFetch("v1/namespaces")).json()).namespaces;
    $("namespaces").replaceChildren(...names.map((name) => Object.assign(document.createElement("option"), { value: name })));
  } catch (_) { /* asking shows the error with its hint */ }
}

function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  $("token").value = "";
  $("status").textContent = "Token forgotten.";
  $("token").focus();
}

function init() {
  $("token").value = sessionStorage.getItem(TOKEN_KEY) || "";
  $("namespace").value = sessionStorage.getItem(NAMESPACE_KEY) || $("namespace").value;
  $("ask-form").addEventListener("submit", ask);
  $("forget").addEventListener("click", forgetToken);
  $("token").addEventListener("change", loadNamespaces);
  loadNamespaces();
  ($("token").value ? $("question") : $("token")).focus();
}

document.addEventListener("DOMContentLoaded", init);
