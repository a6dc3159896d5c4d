// The Documents tab: the namespace's ingestion report (GET /v1/documents), filtered and paged.
// Uses the page's token and namespace fields and app.js's apiFetch / showError / clearMessages.
"use strict";

const DOC_PAGE_SIZE = 50;
const docState = { offset: 0, total: 0 };

function selectTab(name) {
  const documents = name === "documents";
  for (const [tab, on] of [["tab-ask", !documents], ["tab-documents", documents]]) {
    $(tab).setAttribute("aria-selected", String(on));
    $(tab).tabIndex = on ? 0 : -1;
  }
  $("question-field").hidden = documents;
  $("ask-view").hidden = documents;
  $("documents-view").hidden = !documents;
  history.replaceState(null, "", documents ? "#documents" : "#");
  clearMessages();
  if (documents && $("token").value.trim()) loadDocuments(0);
}

async function loadDocuments(offset) {
  for (const field of ["token", "namespace"]) if (!$(field).reportValidity()) return;
  clearMessages();
  const namespace = $("namespace").value.trim();
  sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
  sessionStorage.setItem(NAMESPACE_KEY, namespace);
  const reason = $("doc-reason").value;
  const query = new URLSearchParams({ namespace, limit: DOC_PAGE_SIZE, offset });
  if ($("doc-quarantined").checked || reason) query.set("status", "quarantined");
  if (reason) query.set("reason", reason);
  $("doc-load").disabled = true;
  $("status").textContent = "Loading documents…";
  try {
    const body = await (await apiFetch(`v1/documents?${query}`)).json();
    renderDocuments(body);
    $("status").textContent = `${body.total} document${body.total === 1 ? "" : "s"} listed.`;
  } catch (err) {
    $("status").textContent = "";
    $("doc-table").hidden = true;
    showError(err);
  } finally {
    $("doc-load").disabled = false;
  }
}

function renderDocuments(body) {
  Object.assign(docState, { offset: body.offset, total: body.total });
  const counts = body.counts || {};
  const all = Object.values(counts).reduce((a, b) => a + b, 0);
  $("doc-summary").textContent = `Namespace ${body.namespace}: ${all} documents — ` +
    ["indexed", "quarantined", "deleted"].map((s) => `${counts[s] || 0} ${s}`).join(", ") + ".";
  renderReasons(body.reasons || {});
  const rows = body.documents.map(documentRow);
  if (!rows.length) {
    const cell = Object.assign(document.createElement("td"), { colSpan: 11, textContent: "No documents match." });
    const row = document.createElement("tr");
    row.append(cell);
    rows.push(row);
  }
  $("doc-rows").replaceChildren(...rows);
  $("doc-table").hidden = false;
  const last = Math.min(body.offset + body.documents.length, body.total);
  $("doc-range").textContent = body.total ? `${body.offset + 1}–${last} of ${body.total}` : "";
  $("doc-prev").disabled = body.offset === 0;
  $("doc-next").disabled = last >= body.total;
}

// The reason filter offers the kinds quarantined documents have ("corrupt", "encrypted", …) with their counts.
function renderReasons(reasons) {
  const select = $("doc-reason");
  const chosen = select.value;
  const options = [Object.assign(document.createElement("option"), { value: "", textContent: "any" })];
  for (const [kind, n] of Object.entries(reasons)) {
    options.push(Object.assign(document.createElement("option"), { value: kind, textContent: `${kind} (${n})` }));
  }
  if (chosen && !(chosen in reasons)) {
    options.push(Object.assign(document.createElement("option"), { value: chosen, textContent: `${chosen} (0)` }));
  }
  select.replaceChildren(...options);
  select.value = chosen;
}

function documentRow(doc) {
  const row = document.createElement("tr");
  row.dataset.status = doc.status;
  const cells = [doc.doc, doc.status, doc.reason, doc.pages, doc.ocr_pages, doc.tables, doc.figures, doc.chunks,
    doc.seconds.toFixed(2), doc.model_version, doc.updated_at.replace("T", " ").replace("+00:00", "")];
  cells.forEach((value, n) => {
    const cell = document.createElement(n === 0 ? "th" : "td");
    if (n === 0) cell.scope = "row";
    cell.className = n >= 3 && n <= 8 ? "num" : ({ 2: "reason", 9: "model", 10: "when" }[n] || "");
    if (n === 1) {
      cell.append(Object.assign(document.createElement("span"), { className: `status ${value}`, textContent: value }));
    } else {
      cell.textContent = String(value);
    }
    row.append(cell);
  });
  return row;
}

function initDocuments() {
  $("tab-ask").addEventListener("click", () => selectTab("ask"));
  $("tab-documents").addEventListener("click", () => selectTab("documents"));
  for (const tab of ["tab-ask", "tab-documents"]) {  // arrow keys move between the two tabs
    $(tab).addEventListener("keydown", (event) => {
      if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
      const next = tab === "tab-ask" ? "documents" : "ask";
      selectTab(next);
      $(`tab-${next}`).focus();
    });
  }
  $("doc-load").addEventListener("click", () => loadDocuments(0));
  $("doc-quarantined").addEventListener("change", () => loadDocuments(0));
  $("doc-reason").addEventListener("change", () => loadDocuments(0));
  $("doc-prev").addEventListener("click", () => loadDocuments(Math.max(0, docState.offset - DOC_PAGE_SIZE)));
  $("doc-next").addEventListener("click", () => loadDocuments(docState.offset + DOC_PAGE_SIZE));
  // Enter in the token or namespace field lists documents while that tab is open (not a question).
  $("ask-form").addEventListener("submit", (event) => {
    if ($("documents-view").hidden) return;
    event.preventDefault();
    event.stopImmediatePropagation();
    loadDocuments(0);
  }, { capture: true });
  if (location.hash === "#documents") selectTab("documents");
}

document.addEventListener("DOMContentLoaded", initDocuments);
