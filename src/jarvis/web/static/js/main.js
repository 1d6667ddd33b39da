// The console's shell: sign-in, the views (routed by the URL's hash), language and theme.

import { api, auth } from "./api.js";
import { applyI18n, lang, setLang, t } from "./i18n.js";
import { clear, h } from "./dom.js";

const VIEWS = {
  chat: () => import("./views/chat.js"),
  models: () => import("./views/models.js"),
  plugins: () => import("./views/plugins.js"),
  memory: () => import("./views/memory.js"),
  logs: () => import("./views/logs.js"),
  status: () => import("./views/status.js"),
};
const ADMIN_ONLY = new Set(["logs"]);

const main = document.getElementById("view");
const nav = document.getElementById("nav");
let me = null;
let current = null; // {view, handle: {unmount, update?}}
let routing = 0;

function leave() {
  if (current && current.handle && current.handle.unmount) current.handle.unmount();
  current = null;
}

// --- preferences --------------------------------------------------------------------------

const THEME = "jarvis.theme";
const dark = window.matchMedia("(prefers-color-scheme: dark)");

function applyTheme() {
  const chosen = localStorage.getItem(THEME) || "auto";
  document.getElementById("theme").value = chosen;
  const effective = chosen === "auto" ? (dark.matches ? "dark" : "light") : chosen;
  document.documentElement.dataset.theme = effective;
}

dark.addEventListener("change", applyTheme);
document.getElementById("theme").addEventListener("change", (event) => {
  localStorage.setItem(THEME, event.target.value);
  applyTheme();
});
document.getElementById("lang").addEventListener("change", (event) => {
  setLang(event.target.value);
  applyI18n(document);
  if (current && current.view === "signin") signIn();
  else route({ redraw: true }); // views draw their own text: draw the current one again
});
document.getElementById("nav-toggle").addEventListener("click", () => {
  const open = document.body.classList.toggle("nav-open");
  document.getElementById("nav-toggle").setAttribute("aria-expanded", String(open));
});
nav.addEventListener("click", (event) => {
  if (event.target.closest("a")) {
    document.body.classList.remove("nav-open");
    document.getElementById("nav-toggle").setAttribute("aria-expanded", "false");
  }
});
document.getElementById("sign-out").addEventListener("click", () => {
  auth.key = "";
  me = null;
  signIn();
});

// --- dialogs (in the page: no window.confirm) ---------------------------------------------

const dialog = document.getElementById("dialog");

function ask(text, { input = null, ok = t("common.ok") } = {}) {
  document.getElementById("dialog-text").textContent = text;
  const field = document.getElementById("dialog-input");
  field.hidden = input === null;
  field.value = input ?? "";
  field.setAttribute("aria-label", text);
  document.getElementById("dialog-ok").textContent = ok;
  document.getElementById("dialog-cancel").textContent = t("common.cancel");
  dialog.returnValue = "";
  dialog.showModal();
  if (input !== null) field.select();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      if (dialog.returnValue !== "ok") resolve(null);
      else resolve(input === null ? true : field.value.trim());
    }, { once: true });
  });
}

// --- sign-in and routing ------------------------------------------------------------------

auth.onUnauthorized = () => {
  if (me && me.keys) {
    auth.key = "";
    me = null;
    signIn(t("signin.expired"));
  }
};

async function loadMe() {
  try {
    me = await api("/api/me", { quiet401: true });
    return true;
  } catch (error) {
    if (error.status === 401) return false;
    throw error;
  }
}

async function signIn(message = "") {
  leave();
  nav.hidden = true;
  document.getElementById("sign-out").hidden = true;
  const { mount } = await import("./views/signin.js");
  current = { view: "signin", handle: mount(main, {
    message,
    async submit(key) {
      auth.key = key;
      if (await loadMe()) { start(); return true; }
      auth.key = "";
      return false;
    },
  }) };
}

function start() {
  nav.hidden = false;
  for (const link of nav.querySelectorAll("[data-admin]")) link.hidden = !me.admin;
  document.getElementById("sign-out").hidden = !me.keys;
  route();
}

async function route({ redraw = false } = {}) {
  if (!me) return;
  const [name = "chat", ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  const view = VIEWS[name] ? name : "chat";
  const mine = ++routing;
  for (const link of nav.querySelectorAll("a")) {
    if (link.dataset.view === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${t(`nav.${view}`)} · JARVIS`;
  const params = rest.map(decodeURIComponent);
  if (!redraw && current && current.view === view && current.handle && current.handle.update) {
    current.handle.update(params); // e.g. another chat session: keep the socket
    return;
  }
  leave();
  if (ADMIN_ONLY.has(view) && !me.admin) {
    clear(main, h("p", { class: "notice" }, t("errors.forbidden")));
    return;
  }
  const module = await VIEWS[view]();
  if (mine !== routing) return; // another route began meanwhile
  main.replaceChildren();
  current = { view, handle: module.mount(main, { me, ask, params }) };
}

window.addEventListener("hashchange", () => route());

async function boot() {
  applyTheme();
  setLang(lang());
  document.getElementById("lang").value = lang();
  applyI18n(document);
  try {
    if (await loadMe()) start();
    else signIn();
  } catch (error) {
    clear(main, h("p", { class: "notice error", role: "alert" }, t("errors.network")));
  }
}

boot();
