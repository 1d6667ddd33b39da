// Memory: what the assistant remembers: stats, add, search, list, delete.

import { api } from "../api.js";
import { errorText, lang, t } from "../i18n.js";
import { clear, field, formatBytes, formatNumber, formatTime, h } from "../dom.js";

const KINDS = ["fact", "preference", "note", "summary"];
const PAGE = 50;

export function mount(root, { ask }) {
  const status = h("p", { class: "view-status", role: "status", "aria-live": "polite" });
  const stats = h("dl", { class: "stats" });
  const content = h("textarea", { class: "input", rows: 2, required: true, maxlength: 10000 });
  const kind = h("select", { class: "input" }, KINDS.map((k) => h("option", { value: k }, t(`memory.kind.${k}`))));
  const pinned = h("input", { type: "checkbox" });
  const query = h("input", { type: "search", class: "input", required: true, maxlength: 1000 });
  const results = h("div", { class: "memory-results", "aria-live": "polite" });
  const list = h("ul", { class: "memories-list" });
  const more = h("button", { type: "button", class: "button subtle", hidden: true, onclick: () => loadList(offset) }, t("common.more"));
  let offset = 0;

  root.append(h("div", { class: "page" },
    h("h1", {}, t("nav.memory")),
    status,
    h("section", { class: "card" }, h("h2", {}, t("memory.stats")), stats),
    h("div", { class: "two-columns" },
      h("section", { class: "card" }, h("h2", {}, t("memory.add")),
        h("form", { class: "stack", onsubmit: (event) => { event.preventDefault(); add(); } },
          field(t("memory.content"), content),
          h("div", { class: "row" }, field(t("memory.kindLabel"), kind), h("label", { class: "check" }, pinned, " ", t("memory.pinned"))),
          h("div", { class: "row end" }, h("button", { type: "submit", class: "button primary" }, t("memory.addButton"))))),
      h("section", { class: "card" }, h("h2", {}, t("memory.search")),
        h("form", { class: "stack", role: "search", onsubmit: (event) => { event.preventDefault(); search(); } },
          field(t("memory.query"), query),
          h("div", { class: "row end" }, h("button", { type: "submit", class: "button primary" }, t("memory.searchButton")))),
        results)),
    h("section", { class: "card" }, h("h2", {}, t("memory.all")), list, more),
  ));

  function say(text) { status.classList.remove("error"); status.textContent = text; }
  function fail(error) { status.classList.add("error"); status.textContent = errorText(error); }

  async function loadStats() {
    try {
      const s = await api("/api/memory/stats");
      const kinds = Object.entries(s.by_kind || {}).map(([k, n]) => `${t(`memory.kind.${k}`)}: ${n}`).join(", ") || "–";
      clear(stats,
        h("dt", {}, t("memory.total")), h("dd", { dataset: { stat: "total" } }, String(s.total)),
        h("dt", {}, t("memory.byKind")), h("dd", {}, kinds),
        h("dt", {}, t("memory.pinned")), h("dd", {}, String(s.pinned)),
        h("dt", {}, t("memory.size")), h("dd", {}, formatBytes(s.size ? s.size.bytes : 0, lang())),
        h("dt", {}, t("memory.searches")), h("dd", {}, s.searches ? t("memory.searchStats", { n: s.searches.served, p95: formatNumber(s.searches.p95_ms, lang()) }) : "–"),
      );
    } catch (error) {
      fail(error);
    }
  }

  function item(m, score) {
    return h("li", { class: "memory-item", dataset: { id: String(m.id) } },
      h("div", { class: "memory-text" }, m.content),
      h("div", { class: "memory-meta muted small" },
        h("span", { class: "tag" }, t(`memory.kind.${m.kind}`)),
        m.pinned ? h("span", { class: "tag" }, t("memory.pinned")) : null,
        ` #${m.id} · ${t(`memory.source.${m.source}`)} · ${formatTime(m.created_at, lang())}`,
        score !== undefined ? ` · ${t("memory.score", { score: formatNumber(score, lang(), 2) })}` : "",
        h("button", { type: "button", class: "link-button danger", "aria-label": t("memory.deleteNamed", { id: m.id }), onclick: () => remove(m) }, t("common.delete"))));
  }

  async function loadList(from = 0) {
    try {
      const page = await api(`/api/memory?limit=${PAGE}&offset=${from}`);
      if (from === 0) list.replaceChildren();
      list.append(...page.memories.map((m) => item(m)));
      if (!page.total) list.append(h("li", { class: "muted" }, t("memory.none")));
      offset = from + page.memories.length;
      more.hidden = offset >= page.total;
    } catch (error) {
      fail(error);
    }
  }

  async function add() {
    const text = content.value.trim();
    if (!text) return;
    try {
      const m = await api("/api/memory", { method: "POST", body: { content: text, kind: kind.value, pinned: pinned.checked } });
      content.value = "";
      pinned.checked = false;
      say(t("memory.added", { id: m.id }));
      refresh();
    } catch (error) {
      fail(error);
    }
  }

  async function search() {
    const text = query.value.trim();
    if (!text) return;
    try {
      const found = await api("/api/memory/search", { method: "POST", body: { query: text, limit: 20 } });
      clear(results,
        h("p", { class: "muted small" }, t("memory.found", { n: found.results.length, ms: formatNumber(found.took_ms, lang()) })),
        h("ul", { class: "memories-list" }, found.results.map((m) => item(m, m.score))));
    } catch (error) {
      fail(error);
    }
  }

  async function remove(m) {
    if (!await ask(t("memory.deleteConfirm", { text: m.content.slice(0, 80) }), { ok: t("common.delete") })) return;
    try {
      await api(`/api/memory/${m.id}`, { method: "DELETE" });
      say(t("memory.deleted", { id: m.id }));
      for (const node of root.querySelectorAll(`.memory-item[data-id="${m.id}"]`)) node.remove();
      refresh();
    } catch (error) {
      fail(error);
    }
  }

  function refresh() {
    loadStats();
    loadList(0);
  }
  refresh();
  return { unmount() {} };
}
