// Plugins: each with its switch (admins only), its capabilities and its last error.

import { api } from "../api.js";
import { errorText, lang, t } from "../i18n.js";
import { clear, formatTime, h } from "../dom.js";

export function mount(root, { me }) {
  const status = h("p", { class: "view-status", role: "status", "aria-live": "polite" });
  const list = h("div", { class: "plugin-list" });
  root.append(h("div", { class: "page" },
    h("h1", {}, t("nav.plugins")),
    h("p", { class: "muted" }, me.admin ? t("plugins.hint") : t("plugins.readOnly")),
    status,
    list,
  ));

  async function load() {
    try {
      const { plugins } = await api("/api/plugins");
      clear(list, plugins.map(card));
    } catch (error) {
      status.classList.add("error");
      status.textContent = errorText(error);
    }
  }

  function card(p) {
    const toggle = h("input", {
      type: "checkbox",
      role: "switch",
      checked: p.enabled,
      disabled: !me.admin || !p.loaded,
      "aria-label": t("plugins.enableNamed", { name: p.name }),
    });
    toggle.addEventListener("change", async () => {
      toggle.disabled = true;
      try {
        const result = await api(`/api/plugins/${encodeURIComponent(p.id)}/${toggle.checked ? "enable" : "disable"}`, { method: "POST" });
        status.classList.remove("error");
        status.textContent = t(result.enabled ? "plugins.enabled" : "plugins.disabled", { name: result.name });
        await load();
      } catch (error) {
        toggle.checked = !toggle.checked;
        toggle.disabled = false;
        status.classList.add("error");
        status.textContent = errorText(error);
      }
    });
    const caps = (p.capabilities || []).map((c) => t(`plugins.cap.${c}`));
    return h("section", { class: "card plugin", dataset: { plugin: p.id, enabled: String(p.enabled) } },
      h("div", { class: "card-head" },
        h("div", {}, h("h2", {}, p.name), h("p", { class: "muted small" }, `${p.id} · ${p.version || "–"} · ${p.source}`)),
        h("label", { class: "switch" }, toggle, h("span", { class: "switch-text" }, p.enabled ? t("plugins.on") : t("plugins.off")))),
      p.description ? h("p", {}, p.description) : null,
      caps.length ? h("p", { class: "small" }, h("strong", {}, t("plugins.provides")), " ", caps.join(", ")) : null,
      !p.loaded ? h("p", { class: "badge error" }, t("plugins.notLoaded")) : null,
      p.last_error ? h("div", { class: "message-error", role: "note" },
        h("strong", {}, t("plugins.lastError")), " ", formatTime(p.last_error_at, lang()), h("br"), p.last_error) : null,
    );
  }

  load();
  return { unmount() {} };
}
