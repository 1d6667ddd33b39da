// Logs (admins): stored records with a level filter and text search, and a live tail of new
// records from /api/events.

import { api, follow } from "../api.js";
import { errorText, lang, t } from "../i18n.js";
import { clear, field, formatTime, h } from "../dom.js";

const LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"];
const LEVELNO = { DEBUG: 10, INFO: 20, WARNING: 30, ERROR: 40, CRITICAL: 50 };
const KEEP = 500;

export function mount(root) {
  let tail = null;
  const status = h("p", { class: "view-status", role: "status", "aria-live": "polite" });
  const level = h("select", { class: "input", name: "level" }, LEVELS.map((l) => h("option", { value: l, selected: l === "INFO" }, l)));
  const text = h("input", { type: "search", class: "input", name: "q", maxlength: 200 });
  const source = h("input", { type: "text", class: "input", name: "source", maxlength: 200, placeholder: "jarvis.models" });
  const live = h("input", { type: "checkbox", role: "switch", checked: true });
  const body = h("tbody");
  const liveState = h("span", { class: "muted small" });

  root.append(h("div", { class: "page" },
    h("h1", {}, t("nav.logs")),
    h("form", { class: "filters", role: "search", onsubmit: (event) => { event.preventDefault(); reload(); } },
      field(t("logs.level"), level),
      field(t("logs.text"), text, "grow"),
      field(t("logs.source"), source),
      h("button", { type: "submit", class: "button primary" }, t("logs.apply")),
      h("label", { class: "switch" }, live, h("span", { class: "switch-text" }, t("logs.live"))),
      liveState,
    ),
    status,
    h("div", { class: "table-wrap" }, h("table", { class: "table logs" },
      h("thead", {}, h("tr", {}, [t("logs.time"), t("logs.level"), t("logs.source"), t("logs.message")].map((c) => h("th", { scope: "col" }, c)))),
      body)),
  ));
  level.addEventListener("change", reload);
  live.addEventListener("change", startTail);

  function row(r, fresh = false) {
    return h("tr", { class: `level-${r.level.toLowerCase()}${fresh ? " fresh" : ""}`, dataset: { id: String(r.id ?? "") } },
      h("td", { class: "nowrap" }, formatTime(r.created_at, lang())),
      h("td", {}, h("span", { class: `badge level ${r.level.toLowerCase()}` }, r.level)),
      h("td", { class: "source" }, r.source),
      h("td", { class: "log-message" }, r.message, r.request_id ? h("span", { class: "muted small" }, ` · ${r.request_id}`) : null));
  }

  function matches(r) {
    const q = text.value.trim().toLowerCase();
    const prefix = source.value.trim();
    return (LEVELNO[r.level] ?? r.levelno ?? 0) >= LEVELNO[level.value]
      && (!q || String(r.message).toLowerCase().includes(q))
      && (!prefix || r.source === prefix || String(r.source).startsWith(`${prefix}.`));
  }

  async function reload() {
    const params = new URLSearchParams({ level: level.value, limit: "200" });
    if (text.value.trim()) params.set("q", text.value.trim());
    if (source.value.trim()) params.set("source", source.value.trim());
    try {
      const page = await api(`/api/logs?${params}`);
      clear(body, page.records.length ? page.records.map((r) => row(r)) : h("tr", { class: "empty-row" }, h("td", { colspan: 4, class: "muted" }, t("logs.none"))));
      status.classList.remove("error");
      status.textContent = t("logs.count", { shown: page.records.length, total: page.total });
    } catch (error) {
      status.classList.add("error");
      status.textContent = errorText(error);
    }
    startTail();
  }

  function startTail() {
    if (tail) tail.abort();
    tail = null;
    liveState.textContent = "";
    if (!live.checked) return;
    tail = new AbortController();
    follow(`/api/events?types=log&log_level=${level.value}`, {
      signal: tail.signal,
      onEvent(type, data) {
        if (type === "ready") liveState.textContent = t("logs.following");
        if (type !== "log.record" || !matches(data)) return;
        const empty = body.querySelector(".empty-row");
        if (empty) empty.remove();
        body.prepend(row(data, true));
        while (body.childElementCount > KEEP) body.lastElementChild.remove();
      },
      onState(state, error) {
        if (state === "retrying") liveState.textContent = error ? errorText(error) : t("logs.reconnecting");
      },
    });
  }

  reload();
  return { unmount() { if (tail) tail.abort(); } };
}
