// Sign-in with an API key, kept for this tab only (sessionStorage).

import { t } from "../i18n.js";
import { field, h } from "../dom.js";

export function mount(root, { message, submit }) {
  const key = h("input", { type: "password", class: "input", name: "key", autocomplete: "current-password", required: true, minlength: 1 });
  const status = h("p", { class: "view-status", role: "alert" }, message || "");
  if (message) status.classList.add("error");
  const button = h("button", { type: "submit", class: "button primary" }, t("signin.submit"));
  const form = h("form", { class: "card signin stack", onsubmit: async (event) => {
    event.preventDefault();
    button.disabled = true;
    status.classList.remove("error");
    status.textContent = t("signin.checking");
    const ok = await submit(key.value.trim()).catch(() => false);
    button.disabled = false;
    if (!ok) {
      status.classList.add("error");
      status.textContent = t("signin.refused");
      key.select();
    }
  } },
  h("h1", {}, t("signin.title")),
  h("p", { class: "muted" }, t("signin.hint")),
  field(t("signin.key"), key),
  status,
  h("div", { class: "row end" }, button));
  root.replaceChildren(h("div", { class: "page narrow" }, form));
  key.focus();
  return { unmount() {} };
}
