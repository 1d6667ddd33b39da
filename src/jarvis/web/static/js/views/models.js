// Models: installed models, pulling (with the variants to choose from) and live download
// progress from /api/models/download/progress, the catalog, and free disk.

import { api, follow } from "../api.js";
import { errorText, lang, t } from "../i18n.js";
import { clear, field, formatBytes, formatDuration, formatNumber, h } from "../dom.js";

const ACTIVE = new Set(["queued", "downloading", "stalled", "retrying", "verifying"]);

export function mount(root, { me, ask }) {
  const stopStreams = new AbortController();
  const jobs = new Map(); // job_id -> latest progress snapshot
  const jobRows = new Map(); // job_id -> {row, ...elements}
  const status = h("p", { class: "view-status", role: "status", "aria-live": "polite" });
  const disk = h("p", { class: "disk muted" });
  const installedBody = h("tbody");
  const catalogBody = h("tbody");
  const downloads = h("div", { class: "downloads", "aria-label": t("models.downloads") });
  const keyInput = h("input", { class: "input", type: "text", name: "model_key", required: true, maxlength: 500, placeholder: "qwen2.5-1.5b, hf.co/ns/repo, llama3.2:1b, https://…/x.gguf", autocomplete: "off" });
  const quantSelect = h("select", { class: "input", name: "quantization" }, h("option", { value: "" }, t("models.recommended")));
  const variantsButton = h("button", { type: "button", class: "button", onclick: () => loadVariants() }, t("models.variants"));
  const pullForm = h("form", { class: "pull-form", onsubmit: (event) => { event.preventDefault(); pull(keyInput.value.trim(), quantSelect.value || null); } },
    field(t("models.modelKey"), keyInput, "grow"),
    field(t("models.quantization"), quantSelect),
    h("div", { class: "row end" }, variantsButton, h("button", { type: "submit", class: "button primary" }, t("models.pull"))),
  );

  root.append(h("div", { class: "page" },
    h("h1", {}, t("nav.models")),
    status,
    h("section", { class: "card", "aria-labelledby": "installed-heading" },
      h("div", { class: "card-head" }, h("h2", { id: "installed-heading" }, t("models.installed")), disk),
      h("div", { class: "table-wrap" }, h("table", { class: "table" },
        h("thead", {}, h("tr", {}, [t("models.name"), t("models.kind"), t("models.family"), t("models.params"), t("models.quantization"), t("models.size"), t("models.context"), ""].map((c, i) => h("th", { scope: "col", class: [2, 3, 6].includes(i) ? "hide-narrow" : null }, c)))),
        installedBody)),
    ),
    me.admin ? h("section", { class: "card", "aria-labelledby": "pull-heading" },
      h("h2", { id: "pull-heading" }, t("models.pullTitle")),
      h("p", { class: "muted" }, t("models.pullHint")),
      pullForm,
    ) : null,
    h("section", { class: "card", "aria-labelledby": "downloads-heading" },
      h("h2", { id: "downloads-heading" }, t("models.downloads")),
      downloads,
    ),
    h("section", { class: "card", "aria-labelledby": "catalog-heading" },
      h("h2", { id: "catalog-heading" }, t("models.catalog")),
      h("div", { class: "table-wrap" }, h("table", { class: "table" },
        h("thead", {}, h("tr", {}, [t("models.name"), t("models.description"), t("models.params"), t("models.size"), t("models.memory"), t("models.status"), ""].map((c, i) => h("th", { scope: "col", class: [1, 2].includes(i) ? "hide-narrow" : null }, c)))),
        catalogBody)),
    ),
  ));
  drawDownloads();

  function say(text) { status.classList.remove("error"); status.textContent = text; }
  function fail(error) { status.classList.add("error"); status.textContent = errorText(error); }

  // --- installed ----------------------------------------------------------------------------
  async function loadInstalled() {
    try {
      const { models } = await api("/api/models");
      clear(installedBody, models.length ? models.map(installedRow) : h("tr", {}, h("td", { colspan: 8, class: "muted" }, t("models.none"))));
    } catch (error) {
      fail(error);
    }
  }

  function installedRow(m) {
    const activate = h("button", { type: "button", class: "button", disabled: m.active, "aria-label": t("models.activateNamed", { name: m.name }), onclick: async () => {
      activate.disabled = true;
      say(t("models.loading", { name: m.name }));
      try {
        const result = await api(`/api/models/${encodePath(m.name)}/activate`, { method: "POST" });
        say(t("models.activated", { name: result.model, seconds: formatNumber(result.load_seconds, lang(), 2) }));
        await loadInstalled();
      } catch (error) {
        fail(error);
        activate.disabled = false;
      }
    } }, m.active ? t("models.active") : t("models.activate"));
    const remove = me.admin ? h("button", { type: "button", class: "button subtle danger", "aria-label": t("models.deleteNamed", { name: m.name }), onclick: async () => {
      if (!await ask(t("models.deleteConfirm", { name: m.name }), { ok: t("common.delete") })) return;
      try {
        await api(`/api/models/${encodePath(m.name)}`, { method: "DELETE" });
        say(t("models.deleted", { name: m.name }));
        refresh();
      } catch (error) {
        fail(error);
      }
    } }, t("common.delete")) : null;
    return h("tr", { dataset: { installed: m.name } },
      h("th", { scope: "row" }, h("span", { class: "model-name" }, m.name), m.active ? h("span", { class: "badge ok" }, t("models.active")) : null),
      h("td", {}, m.kind === "base" ? h("span", { class: "badge warn", title: t("models.baseHint") }, t("models.base")) : t("models.instruct")),
      h("td", { class: "hide-narrow" }, m.family || "–"),
      h("td", { class: "hide-narrow" }, m.parameter_count ? formatCount(m.parameter_count) : "–"),
      h("td", {}, m.quantization || "–"),
      h("td", { class: "num" }, formatBytes(m.size, lang())),
      h("td", { class: "num hide-narrow" }, m.context_length ? formatNumber(m.context_length, lang(), 0) : "–"),
      h("td", { class: "actions" }, activate, remove),
    );
  }

  async function loadDisk() {
    try {
      const d = await api("/api/models/disk");
      disk.textContent = t("models.disk", { free: formatBytes(d.free_bytes, lang()), total: formatBytes(d.total_bytes, lang()), models: formatBytes(d.models_bytes, lang()) });
    } catch (error) {
      disk.textContent = "";
    }
  }

  // --- catalog ------------------------------------------------------------------------------
  async function loadCatalog() {
    try {
      const { models } = await api("/api/models/available");
      const catalog = models.filter((m) => m.params !== undefined);
      clear(catalogBody, catalog.map(catalogRow));
    } catch (error) {
      fail(error);
    }
  }

  function catalogRow(m) {
    const state = m.status === "downloading" ? t("models.downloadingPercent", { percent: formatNumber(m.percent, lang()) })
      : m.status === "installed" ? t("models.installedState") : m.status === "error" ? t("models.errorState") : "";
    const pullButton = me.admin && m.status !== "installed" && m.status !== "downloading"
      ? h("button", { type: "button", class: "button", "aria-label": t("models.pullNamed", { name: m.model_key }), onclick: () => pull(m.model_key, null) }, t("models.pull"))
      : null;
    return h("tr", { dataset: { catalog: m.model_key } },
      h("th", { scope: "row" }, h("span", { class: "model-name" }, m.model_key), m.instruct === false ? h("span", { class: "badge warn" }, t("models.base")) : null),
      h("td", { class: "hide-narrow" }, m.description || "–"),
      h("td", { class: "hide-narrow" }, m.params || "–"),
      h("td", { class: "num" }, formatBytes(m.size, lang())),
      h("td", { class: "num" }, formatBytes(m.memory, lang()), m.fits === false ? h("span", { class: "badge error", title: t("models.tooLargeHint") }, t("models.tooLarge")) : null),
      h("td", {}, state),
      h("td", { class: "actions" }, pullButton),
    );
  }

  // --- pulling ------------------------------------------------------------------------------
  async function loadVariants() {
    const key = keyInput.value.trim();
    if (!key) { keyInput.focus(); return; }
    variantsButton.disabled = true;
    say(t("models.lookingUp", { key }));
    try {
      const { variants } = await api(`/api/models/variants?model_key=${encodeURIComponent(key)}`);
      clear(quantSelect, variants.map((v) => h("option", { value: v.quantization || "", selected: v.recommended },
        `${v.quantization || v.file} · ${formatBytes(v.size, lang())}${v.recommended ? ` · ${t("models.recommendedShort")}` : ""}`)));
      say(t("models.variantsFound", { n: variants.length }));
    } catch (error) {
      fail(error);
    } finally {
      variantsButton.disabled = false;
    }
  }

  async function pull(key, quantization) {
    if (!key) return;
    say(t("models.starting", { key }));
    try {
      const body = { model_key: key };
      if (quantization) body.quantization = quantization;
      const job = await api("/api/models/download", { method: "POST", body });
      update(job);
      say(job.status === "completed" ? t("models.alreadyInstalled", { name: job.name || key }) : t("models.started", { name: job.name || key }));
      if (job.status === "completed") refresh();
    } catch (error) {
      fail(error);
    }
  }

  async function cancel(job, keepPartial) {
    try {
      update(await api("/api/models/cancel", { method: "POST", body: { model_key: job.job_id, keep_partial: keepPartial } }));
    } catch (error) {
      fail(error);
    }
  }

  // --- progress -----------------------------------------------------------------------------
  function update(job) {
    if (!job || !job.job_id) return;
    const before = jobs.get(job.job_id);
    jobs.set(job.job_id, { ...before, ...job });
    drawJob(jobs.get(job.job_id));
    if (job.status === "completed" && (!before || before.status !== "completed")) refresh();
  }

  function drawDownloads() {
    if (!jobs.size) clear(downloads, h("p", { class: "muted" }, t("models.noDownloads")));
  }

  function drawJob(job) {
    let view = jobRows.get(job.job_id);
    if (!view) {
      if (!jobRows.size) downloads.replaceChildren();
      const label = t("models.progressOf", { name: job.name || job.model });
      view = {
        title: h("span", { class: "job-name" }),
        state: h("span", { class: "badge" }),
        bar: h("progress", { max: 100, value: 0, "aria-label": label }),
        numbers: h("span", { class: "job-numbers" }),
        error: h("p", { class: "message-error", hidden: true }),
        buttons: h("div", { class: "row" }),
      };
      view.row = h("div", { class: "job", dataset: { job: job.job_id, model: job.model } },
        h("div", { class: "job-head" }, view.title, view.state), view.bar, view.numbers, view.error, view.buttons);
      jobRows.set(job.job_id, view);
      downloads.prepend(view.row);
    }
    const name = job.name || job.model;
    view.row.dataset.status = job.status;
    view.title.textContent = job.quantization && !String(name).includes(job.quantization) ? `${name} (${job.quantization})` : name;
    view.state.textContent = t(`download.${job.status}`);
    view.state.className = `badge ${{ completed: "ok", error: "error", stalled: "warn", retrying: "warn", cancelled: "" }[job.status] ?? "info"}`;
    view.bar.value = job.status === "completed" ? 100 : job.percent || 0;
    view.bar.setAttribute("aria-valuetext", `${formatNumber(job.percent || 0, lang())} %`);
    const parts = [`${formatNumber(job.status === "completed" ? 100 : job.percent || 0, lang())} %`];
    if (job.total_bytes) parts.push(t("models.bytesOf", { done: formatBytes(job.downloaded_bytes, lang()), total: formatBytes(job.total_bytes, lang()) }));
    if (ACTIVE.has(job.status) && job.status !== "queued" && job.status !== "verifying") {
      parts.push(job.status === "stalled" ? t("models.noBytes") : `${formatNumber(job.speed_mbps, lang())} MB/s`);
      parts.push(t("models.eta", { eta: job.eta_seconds === null || job.eta_seconds === undefined ? "–" : formatDuration(job.eta_seconds) }));
    }
    view.numbers.textContent = parts.join(" · ");
    view.error.hidden = !job.error;
    view.error.textContent = job.error ? errorText({ code: job.error_code, message: job.error }) : "";
    const buttons = [];
    if (me.admin && ACTIVE.has(job.status) && job.status !== "verifying") {
      buttons.push(h("button", { type: "button", class: "button subtle", "aria-label": t("models.pauseNamed", { name }), onclick: () => cancel(job, true) }, t("models.pause")));
      buttons.push(h("button", { type: "button", class: "button danger", "aria-label": t("models.cancelNamed", { name }), onclick: () => cancel(job, false) }, t("common.cancel")));
    }
    if (me.admin && (job.status === "cancelled" || job.status === "error")) {
      buttons.push(h("button", { type: "button", class: "button", "aria-label": t("models.resumeNamed", { name }), onclick: () => pull(job.model, job.quantization) }, t("models.resume")));
    }
    clear(view.buttons, buttons);
  }

  follow("/api/models/download/progress", {
    signal: stopStreams.signal,
    onEvent(type, data) {
      if (type === "progress") update(data);
      else if (type === "error") {
        const job = [...jobs.values()].find((j) => j.job_id === data.job_id || j.name === data.name);
        if (job) update({ ...job, status: "error", error: data.error, error_code: data.error_code });
      }
    },
    onState(state, error) {
      if (state === "retrying" && error) fail(error);
    },
  });

  function refresh() {
    loadInstalled();
    loadCatalog();
    loadDisk();
  }
  refresh();

  return { unmount() { stopStreams.abort(); } };
}

function encodePath(name) {
  return name.split("/").map(encodeURIComponent).join("/");
}

function formatCount(n) {
  if (typeof n === "string") return n;
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)}B`;
  if (n >= 1e6) return `${Math.round(n / 1e6)}M`;
  return String(n);
}
