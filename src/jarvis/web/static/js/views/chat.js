// Chat: sessions in a sidebar, answers streamed over /ws and rendered as sanitised Markdown,
// stop, regenerate, edit and resend, the model and system prompt per session, the memories an
// answer used, the queue position while waiting.

import { api, openSocket } from "../api.js";
import { errorText, lang, t } from "../i18n.js";
import { clear, formatTime, h } from "../dom.js";
import { copyText, decorateCode, renderMarkdown } from "../markdown.js";

/** The REST path of a chat session, or of what is under it (`rest`). */
const sessionPath = (id, rest = "") => `/api/chat/sessions/${encodeURIComponent(id)}${rest}`;

export function mount(root, { ask, params }) {
  const state = {
    sessions: [],
    session: draft(),
    messages: [],
    models: { names: [], default: null },
    streaming: null, // {sessionId, text, article, body, meta, started}
    socket: null,
    socketOpen: null, // a promise of the open socket
    closed: false,
    search: "",
  };

  // --- the page -----------------------------------------------------------------------------
  const search = h("input", { type: "search", class: "input", placeholder: t("chat.search"), "aria-label": t("chat.search") });
  const sessionList = h("ul", { class: "session-list", "aria-label": t("chat.sessions") });
  const aside = h("aside", { class: "sessions", "aria-label": t("chat.sessions") },
    h("button", { type: "button", class: "button primary wide", onclick: () => newChat() }, t("chat.new")),
    search,
    sessionList,
  );
  const title = h("h1", { class: "conv-title" });
  const modelSelect = h("select", { class: "input model-select", "aria-label": t("chat.model") });
  const promptArea = h("textarea", { class: "input", rows: 3, maxlength: 20000, "aria-label": t("chat.systemPrompt"), placeholder: t("chat.systemPromptHint") });
  const promptPanel = h("div", { class: "system-prompt", hidden: true },
    h("label", { class: "field-label" }, t("chat.systemPrompt")),
    promptArea,
    h("div", { class: "row" },
      h("button", { type: "button", class: "button", onclick: () => savePrompt() }, t("common.save")),
      h("button", { type: "button", class: "button subtle", onclick: () => { promptPanel.hidden = true; } }, t("common.close")),
    ),
  );
  const renameButton = h("button", { type: "button", class: "button subtle", onclick: () => rename() }, t("chat.rename"));
  const deleteButton = h("button", { type: "button", class: "button subtle danger", onclick: () => remove() }, t("common.delete"));
  const promptButton = h("button", { type: "button", class: "button subtle", "aria-expanded": "false", onclick: () => {
    promptPanel.hidden = !promptPanel.hidden;
    promptButton.setAttribute("aria-expanded", String(!promptPanel.hidden));
    if (!promptPanel.hidden) promptArea.focus();
  } }, t("chat.systemPromptButton"));
  const sessionsToggle = h("button", { type: "button", class: "button subtle sessions-toggle", "aria-expanded": "false", onclick: () => {
    const open = layout.classList.toggle("show-sessions");
    sessionsToggle.setAttribute("aria-expanded", String(open));
  } }, t("chat.sessions"));
  const transcript = h("div", { class: "transcript", role: "log", "aria-label": t("chat.transcript") });
  const status = h("p", { class: "chat-status", role: "status", "aria-live": "polite" });
  const input = h("textarea", { class: "input composer-input", rows: 2, placeholder: t("chat.placeholder"), "aria-label": t("chat.message") });
  const send = h("button", { type: "submit", class: "button primary" }, t("chat.send"));
  const stop = h("button", { type: "button", class: "button danger", hidden: true, onclick: () => stopAnswer() }, t("chat.stop"));
  const composer = h("form", { class: "composer", onsubmit: (event) => { event.preventDefault(); submit(); } }, input, h("div", { class: "composer-buttons" }, stop, send));
  const layout = h("div", { class: "chat-layout" },
    aside,
    h("section", { class: "conversation", "aria-label": t("nav.chat") },
      h("div", { class: "conv-head" }, sessionsToggle, title,
        h("div", { class: "conv-tools" }, modelSelect, promptButton, renameButton, deleteButton)),
      promptPanel,
      transcript,
      status,
      composer,
    ),
  );
  root.append(layout);

  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit();
    }
  });
  const onKey = (event) => {
    if (event.key === "Escape" && state.streaming && !document.querySelector("dialog[open]")) {
      event.preventDefault();
      stopAnswer();
    }
  };
  document.addEventListener("keydown", onKey);
  let searchTimer = null;
  search.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => { state.search = search.value.trim(); loadSessions(); }, 250);
  });
  modelSelect.addEventListener("change", () => changeModel(modelSelect.value));

  // --- sessions ---------------------------------------------------------------------------
  function draft() {
    return { id: null, title: null, model: null, system_prompt: null };
  }

  async function loadSessions() {
    const query = state.search ? `&q=${encodeURIComponent(state.search)}` : "";
    try {
      const page = await api(`/api/chat/sessions?limit=100${query}`);
      state.sessions = page.sessions;
      drawSessions();
    } catch (error) {
      showError(error);
    }
  }

  function drawSessions() {
    clear(sessionList, state.sessions.length ? state.sessions.map((s) => h("li", {},
      h("a", {
        class: "session-item",
        href: `#/chat/${encodeURIComponent(s.id)}`,
        "aria-current": s.id === state.session.id ? "page" : null,
        onclick: () => layout.classList.remove("show-sessions"),
      }, h("span", { class: "session-title" }, s.title || t("chat.untitled")),
        h("span", { class: "session-date" }, formatTime(s.updated_at, lang()))),
    )) : h("li", { class: "muted" }, state.search ? t("chat.noMatch") : t("chat.noSessions")));
  }

  async function openSession(id) {
    try {
      const detail = await api(sessionPath(id));
      const { messages, ...session } = detail;
      state.session = session;
      state.messages = messages;
    } catch (error) {
      state.session = draft();
      state.messages = [];
      showError(error);
    }
    drawHead();
    drawTranscript();
    drawSessions();
  }

  function newChat() {
    state.session = draft();
    state.messages = [];
    if (location.hash !== "#/chat") history.replaceState(null, "", "#/chat");
    layout.classList.remove("show-sessions");
    drawHead();
    drawTranscript();
    drawSessions();
    input.focus();
  }

  /** PATCH the open session (title, model, system prompt) and keep what the server answers. */
  async function updateSession(changes) {
    state.session = await api(sessionPath(state.session.id), { method: "PATCH", body: changes });
  }

  async function rename() {
    if (!state.session.id) return;
    const name = await ask(t("chat.renamePrompt"), { input: state.session.title || "", ok: t("chat.rename") });
    if (!name) return;
    try {
      await updateSession({ title: name });
      drawHead();
      await loadSessions();
    } catch (error) {
      showError(error);
    }
  }

  async function remove() {
    if (!state.session.id) return;
    const sure = await ask(t("chat.deleteConfirm", { title: state.session.title || "" }), { ok: t("common.delete") });
    if (!sure) return;
    try {
      await api(sessionPath(state.session.id), { method: "DELETE" });
      newChat();
      await loadSessions();
    } catch (error) {
      showError(error);
    }
  }

  async function changeModel(model) {
    const chosen = model || state.models.default;
    if (!state.session.id) {
      state.session.model = model || null;
      return;
    }
    try {
      await updateSession({ model: chosen });
      say(t("chat.modelSet", { model: chosen }));
    } catch (error) {
      showError(error);
      drawHead();
    }
  }

  async function savePrompt() {
    const text = promptArea.value;
    if (!state.session.id) {
      state.session.system_prompt = text || null;
      promptPanel.hidden = true;
      say(t("chat.promptSaved"));
      return;
    }
    try {
      await updateSession({ system_prompt: text });
      promptPanel.hidden = true;
      say(t("chat.promptSaved"));
    } catch (error) {
      showError(error);
    }
  }

  async function loadModels() {
    try {
      const found = await api("/api/v1/chat/models");
      state.models = { names: found.models || [], default: found.default };
    } catch (error) {
      showError(error);
    }
    drawHead();
  }

  function drawHead() {
    const s = state.session;
    title.textContent = s.id ? (s.title || t("chat.untitled")) : t("chat.new");
    renameButton.disabled = deleteButton.disabled = !s.id;
    const names = [...new Set([...state.models.names, ...(s.model ? [s.model] : [])])];
    clear(modelSelect,
      h("option", { value: "" }, t("chat.defaultModel", { model: state.models.default || "–" })),
      names.map((name) => h("option", { value: name, selected: name === s.model }, name)),
    );
    if (!s.model) modelSelect.value = "";
    promptArea.value = s.system_prompt || "";
    promptButton.classList.toggle("active", Boolean(s.system_prompt));
  }

  // --- the transcript ---------------------------------------------------------------------
  function drawTranscript() {
    const lastAnswer = [...state.messages].reverse().find((m) => m.role === "assistant");
    const items = state.messages.map((m) => (m.role === "user" ? userMessage(m) : answerMessage(m, m === lastAnswer)));
    if (!items.length) items.push(h("div", { class: "empty" }, h("p", {}, t("chat.empty")), h("p", { class: "muted" }, t("chat.keys"))));
    clear(transcript, items);
    if (state.streaming && state.streaming.sessionId === state.session.id) transcript.append(state.streaming.article);
    transcript.scrollTop = transcript.scrollHeight;
  }

  function userMessage(message) {
    const text = h("div", { class: "message-text" }, message.content);
    const edit = h("button", { type: "button", class: "link-button", disabled: !message.id || Boolean(state.streaming), onclick: () => startEdit(message, article) }, t("chat.edit"));
    const article = h("article", { class: "message user", dataset: { id: message.id || "" } },
      h("div", { class: "message-meta" }, t("chat.you")), text, h("div", { class: "message-actions" }, edit));
    return article;
  }

  function answerMessage(message, last) {
    const body = h("div", { class: "markdown" });
    body.append(renderMarkdown(message.content));
    decorateCode(body, t, { highlight: true });
    const note = statusNote(message);
    const actions = h("div", { class: "message-actions" },
      h("button", { type: "button", class: "link-button", onclick: async (event) => {
        await copyText(message.content);
        event.target.textContent = t("chat.copied");
      } }, t("chat.copyAnswer")),
      last ? h("button", { type: "button", class: "link-button", disabled: Boolean(state.streaming), onclick: () => regenerate(message) }, t("chat.regenerate")) : null,
    );
    return h("article", { class: `message assistant status-${message.status}`, dataset: { id: message.id, status: message.status } },
      h("div", { class: "message-meta" }, message.model || "JARVIS", note ? h("span", { class: "message-note" }, note) : null),
      body,
      message.error ? h("p", { class: "message-error", role: "note" }, message.error) : null,
      memoriesUsed(message.memory_ids || []),
      actions,
    );
  }

  function statusNote(message) {
    return {
      cancelled: t("chat.stopped"),
      disconnected: t("chat.disconnected"),
      interrupted: t("chat.interrupted"),
      error: t("chat.failed"),
      streaming: t("chat.writing"),
    }[message.status] || "";
  }

  function memoriesUsed(ids) {
    if (!ids.length) return null;
    const list = h("ul", { class: "memory-list" });
    const details = h("details", { class: "memories" }, h("summary", {}, t("chat.memoriesUsed", { n: ids.length })), list);
    details.addEventListener("toggle", async () => {
      if (!details.open || list.childElementCount) return;
      for (const id of ids) {
        try {
          const memory = await api(`/api/memory/${id}`);
          list.append(h("li", {}, h("span", { class: "tag" }, memory.kind), " ", memory.content));
        } catch {
          list.append(h("li", { class: "muted" }, t("chat.memoryGone", { id })));
        }
      }
    });
    return details;
  }

  function startEdit(message, article) {
    const area = h("textarea", { class: "input", rows: 3, "aria-label": t("chat.editMessage") });
    area.value = message.content;
    const form = h("form", { class: "edit-form", onsubmit: async (event) => {
      event.preventDefault();
      const text = area.value.trim();
      if (!text) return;
      if (await rewind(message.id)) ask_(text);
    } }, area, h("div", { class: "row" },
      h("button", { type: "submit", class: "button primary" }, t("chat.saveSend")),
      h("button", { type: "button", class: "button subtle", onclick: () => drawTranscript() }, t("common.cancel"))));
    article.querySelector(".message-text").replaceWith(form);
    article.querySelector(".message-actions").hidden = true;
    area.focus();
  }

  async function regenerate(answer) {
    const index = state.messages.indexOf(answer);
    const question = [...state.messages.slice(0, index)].reverse().find((m) => m.role === "user");
    if (!question) return;
    if (await rewind(question.id)) ask_(question.content);
  }

  /** Delete `messageId` and what followed it, on the server and here. */
  async function rewind(messageId) {
    try {
      await api(sessionPath(state.session.id, `/messages/${encodeURIComponent(messageId)}`), { method: "DELETE" });
      const index = state.messages.findIndex((m) => m.id === messageId);
      state.messages = index >= 0 ? state.messages.slice(0, index) : state.messages;
      drawTranscript();
      return true;
    } catch (error) {
      showError(error);
      return false;
    }
  }

  // --- asking -----------------------------------------------------------------------------
  function submit() {
    const text = input.value.trim();
    if (!text || state.streaming) return;
    input.value = "";
    ask_(text);
  }

  async function ask_(text) {
    if (state.streaming) return;
    say("");
    if (!state.session.id) {
      try {
        const body = {};
        if (state.session.model) body.model = state.session.model;
        if (state.session.system_prompt) body.system_prompt = state.session.system_prompt;
        state.session = await api("/api/chat/sessions", { method: "POST", body });
        history.replaceState(null, "", `#/chat/${encodeURIComponent(state.session.id)}`);
        drawHead();
      } catch (error) {
        input.value = text;
        showError(error);
        return;
      }
    }
    state.messages.push({ id: null, role: "user", content: text });
    const body = h("div", { class: "markdown" }, h("span", { class: "typing", "aria-label": t("chat.waiting") }, "…"));
    const meta = h("div", { class: "message-meta" }, state.session.model || state.models.default || "JARVIS", h("span", { class: "message-note" }, t("chat.waiting")));
    const article = h("article", { class: "message assistant status-streaming", dataset: { status: "streaming" } }, meta, body);
    state.streaming = { sessionId: state.session.id, question: text, text: "", article, body, meta, started: false, frame: 0 };
    setBusy(true);
    drawTranscript();
    try {
      const socket = await connect();
      socket.send(JSON.stringify({ type: "chat", message: text, session_id: state.session.id, stream: true }));
    } catch (error) {
      finish();
      showError(error);
    }
  }

  function stopAnswer() {
    if (!state.streaming || !state.socket || state.socket.readyState !== WebSocket.OPEN) return;
    state.socket.send(JSON.stringify({ type: "cancel" }));
    say(t("chat.stopping"));
  }

  function setBusy(busy) {
    stop.hidden = !busy;
    send.disabled = busy;
    for (const button of transcript.querySelectorAll(".message-actions button")) button.disabled = busy;
  }

  function note(text) {
    const span = state.streaming.meta.querySelector(".message-note");
    span.textContent = text;
  }

  function render() {
    const streaming = state.streaming;
    if (!streaming || streaming.frame) return;
    streaming.frame = requestAnimationFrame(() => {
      streaming.frame = 0;
      streaming.body.replaceChildren(renderMarkdown(streaming.text));
      decorateCode(streaming.body, t);
      const nearBottom = transcript.scrollHeight - transcript.scrollTop - transcript.clientHeight < 80;
      if (nearBottom) transcript.scrollTop = transcript.scrollHeight;
    });
  }

  async function finish() {
    const streaming = state.streaming;
    if (streaming && streaming.frame) cancelAnimationFrame(streaming.frame);
    state.streaming = null;
    setBusy(false);
    if (streaming && streaming.sessionId === state.session.id) await openSession(state.session.id);
    await loadSessions();
    if (!state.closed) input.focus();
  }

  function onFrame(frame) {
    const streaming = state.streaming;
    switch (frame.type) {
      case "queued": // after stream_start: the answer waits for a free slot (1: next)
        if (streaming) { streaming.queued = true; note(t("chat.queued", { n: frame.position })); }
        say(t("chat.queued", { n: frame.position }));
        break;
      case "stream_start":
        if (!streaming) break;
        streaming.started = true;
        streaming.meta.firstChild.textContent = frame.model;
        note(t("chat.writing"));
        say("");
        break;
      case "stream_chunk":
        if (!streaming) break;
        if (streaming.queued) { streaming.queued = false; note(t("chat.writing")); say(""); }
        streaming.text += frame.content;
        render();
        break;
      case "stream_end":
        if (!streaming) break;
        streaming.text = frame.full_response;
        say(frame.status === "cancelled" ? t("chat.stopped") : "");
        finish();
        break;
      case "cancelled": // stopped before it started: nothing was stored, so the question goes back in the box
        if (frame.active && streaming) {
          if (!input.value.trim()) input.value = streaming.question;
          say(t("chat.stopped"));
          finish();
        }
        break;
      case "error":
        if (streaming) { finish().then(() => showError(frame)); }
        else showError(frame);
        break;
      default:
        break; // connection, pong, history, events: nothing to draw
    }
  }

  function connect() {
    if (state.socketOpen && state.socket && state.socket.readyState <= WebSocket.OPEN) return state.socketOpen;
    const socket = openSocket();
    state.socket = socket;
    state.socketOpen = new Promise((resolve, reject) => {
      socket.addEventListener("open", () => resolve(socket), { once: true });
      socket.addEventListener("close", (event) => {
        reject(Object.assign(new Error(event.reason), { code: event.code === 1008 ? "unauthorized" : "network" }));
      }, { once: true });
    });
    state.socketOpen.catch(() => {}); // handled where it is awaited
    socket.addEventListener("message", (event) => {
      let frame;
      try { frame = JSON.parse(event.data); } catch { return; }
      onFrame(frame);
    });
    socket.addEventListener("close", () => {
      if (state.socket === socket) { state.socket = null; state.socketOpen = null; }
      if (state.streaming && !state.closed) {
        say(t("errors.connectionLost"));
        finish();
      }
    });
    return state.socketOpen;
  }

  // --- messages to the user ---------------------------------------------------------------
  function say(text) {
    status.classList.remove("error");
    status.textContent = text;
  }

  function showError(error) {
    status.classList.add("error");
    status.textContent = errorText(error);
  }

  // --- start --------------------------------------------------------------------------------
  drawHead();
  drawTranscript();
  loadModels();
  loadSessions();
  connect().catch(() => {});
  if (params[0]) openSession(params[0]);
  else input.focus();

  return {
    update(next) {
      if (next[0] && next[0] !== state.session.id) openSession(next[0]);
      else if (!next[0] && state.session.id) newChat();
    },
    unmount() {
      state.closed = true;
      document.removeEventListener("keydown", onKey);
      if (state.socket) state.socket.close();
    },
  };
}
