// Status: health, the engine and its slots and queue, remote engines, versions.

import { api } from "../api.js";
import { errorText, lang, t } from "../i18n.js";
import { clear, formatDuration, formatNumber, h } from "../dom.js";

export function mount(root) {
  const status = h("p", { class: "view-status", role: "status", "aria-live": "polite" });
  const cards = h("div", { class: "status-grid" });
  root.append(h("div", { class: "page" }, h("h1", {}, t("nav.status")), status, cards));

  const pair = (label, value, key) => [h("dt", {}, label), h("dd", { dataset: key ? { stat: key } : {} }, value ?? "–")];
  const card = (title, ...rows) => h("section", { class: "card" }, h("h2", {}, title), h("dl", { class: "stats" }, rows));

  async function load() {
    try {
      const [health, active, vendor] = await Promise.all([
        api("/api/health"),
        api("/api/models/active").catch(() => null),
        fetch("/console/vendor/MANIFEST.json").then((r) => r.json()).catch(() => null),
      ]);
      const engine = health.engine || {};
      const ok = health.status === "ok";
      const libraries = vendor ? [...new Map(Object.values(vendor.files).map((f) => [f.package, f.version])).entries()].map(([p, v]) => `${p} ${v}`).join(", ") : "–";
      const slots = health.slots;
      clear(cards,
        card(t("status.health"),
          pair(t("status.state"), h("span", { class: `badge ${ok ? "ok" : "error"}` }, ok ? t("status.ok") : t("status.degraded")), "status"),
          pair(t("status.uptime"), formatDuration(health.uptime_seconds)),
          pair(t("status.database"), health.database ? `${health.database.backend} · ${health.database.ok ? t("status.ok") : t("status.down")}` : "–"),
        ),
        card(t("status.engine"),
          pair(t("status.engineName"), engine.name),
          pair(t("status.state"), engine.state ? t(`engine.${engine.state}`) : "–", "engine"),
          pair(t("status.activeModel"), health.active_model || t("status.noModel"), "model"),
          pair(t("status.context"), active && active.context_length ? formatNumber(active.context_length, lang(), 0) : "–"),
          pair(t("status.loadTime"), active && active.load_seconds !== null && active.load_seconds !== undefined ? `${formatNumber(active.load_seconds, lang(), 2)} s` : "–"),
          engine.error ? pair(t("status.error"), engine.error) : null,
        ),
        card(t("status.slots"),
          slots
            ? [pair(t("status.slotsBusy"), t("status.slotsOf", { busy: slots.busy, total: slots.total }), "slots"), pair(t("status.queued"), String(slots.queued ?? 0), "queued")]
            : pair(t("status.slotsBusy"), t("status.slotsUnknown"), "slots"),
          pair(t("status.remote"), (health.remote_engines || []).join(", ") || t("status.none")),
        ),
        card(t("status.versions"),
          pair("JARVIS Core", health.version, "version"),
          pair(t("status.libraries"), libraries),
          pair(t("status.browser"), navigator.userAgent.match(/(Chrome|Chromium|Firefox|Safari)\/[\d.]+/)?.[0] || "–"),
        ),
      );
      status.textContent = "";
      status.classList.remove("error");
    } catch (error) {
      status.classList.add("error");
      status.textContent = errorText(error);
    }
  }

  load();
  const timer = setInterval(load, 5000);
  return { unmount() { clearInterval(timer); } };
}
