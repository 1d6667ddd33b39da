// English and German. The language comes from the browser unless chosen with the switch
// (remembered in localStorage). `t(key, {name})` fills in `{name}`; a missing German text
// falls back to English.

const STORE = "jarvis.lang";

const en = {
  "nav.chat": "Chat", "nav.models": "Models", "nav.plugins": "Plugins", "nav.memory": "Memory", "nav.logs": "Logs",
  "nav.status": "Status", "nav.menu": "Menu", "nav.views": "Views",
  "prefs.language": "Language", "prefs.theme": "Theme", "prefs.auto": "Auto", "prefs.light": "Light", "prefs.dark": "Dark",
  "common.loading": "Loading…", "common.ok": "OK", "common.cancel": "Cancel", "common.delete": "Delete", "common.save": "Save",
  "common.close": "Close", "common.more": "Show more",
  "signin.title": "Sign in", "signin.hint": "This server wants an API key. It is kept for this tab only.",
  "signin.key": "API key", "signin.submit": "Sign in", "signin.checking": "Checking…",
  "signin.refused": "The server refused this key.", "signin.expired": "Your key is no longer accepted: sign in again.",
  "signin.out": "Sign out",
  "chat.sessions": "Chats", "chat.new": "New chat", "chat.search": "Search chats", "chat.noSessions": "No chats yet.",
  "chat.noMatch": "No chat matches.", "chat.untitled": "Untitled", "chat.model": "Model",
  "chat.defaultModel": "Default ({model})", "chat.systemPrompt": "System prompt", "chat.systemPromptButton": "System prompt",
  "chat.systemPromptHint": "How the assistant should behave in this chat", "chat.rename": "Rename",
  "chat.renamePrompt": "New name for this chat", "chat.deleteConfirm": "Delete the chat “{title}” and all its messages?",
  "chat.transcript": "Messages", "chat.placeholder": "Ask anything…", "chat.message": "Message", "chat.send": "Send",
  "chat.stop": "Stop", "chat.you": "You", "chat.edit": "Edit", "chat.editMessage": "Edit your message",
  "chat.saveSend": "Save and send", "chat.copy": "Copy", "chat.copied": "Copied", "chat.copyCode": "Copy code",
  "chat.copyAnswer": "Copy", "chat.regenerate": "Regenerate", "chat.stopped": "Stopped", "chat.stopping": "Stopping…",
  "chat.disconnected": "Cut off: the connection closed", "chat.interrupted": "Cut off: the server stopped",
  "chat.failed": "Failed", "chat.writing": "Writing…", "chat.waiting": "Waiting for the model…",
  "chat.queued": "Waiting, position {n} in the queue", "chat.memoriesUsed": "Used {n} memories",
  "chat.memoryGone": "Memory #{id} (deleted)", "chat.modelSet": "This chat now uses {model}.",
  "chat.promptSaved": "System prompt saved.",
  "chat.empty": "Ask anything. Answers stream in as they are written.",
  "chat.keys": "Enter sends · Shift+Enter adds a line · Esc stops the answer",
  "models.installed": "Installed", "models.name": "Name", "models.kind": "Kind", "models.family": "Family",
  "models.params": "Parameters", "models.quantization": "Quantization", "models.size": "Size", "models.context": "Context",
  "models.memory": "Memory", "models.status": "Status", "models.description": "Description",
  "models.none": "No models installed.", "models.base": "base", "models.instruct": "instruct",
  "models.baseHint": "A base model completes text; it was not tuned to follow instructions.",
  "models.active": "active", "models.activate": "Activate", "models.activateNamed": "Activate {name}",
  "models.deleteNamed": "Delete {name}", "models.loading": "Loading {name}…", "models.activated": "{name} is active (loaded in {seconds} s).",
  "models.deleteConfirm": "Delete the model {name}? Its files are removed from disk.", "models.deleted": "{name} was deleted.",
  "models.disk": "Free disk: {free} of {total} · models use {models}",
  "models.pullTitle": "Pull a model", "models.pullHint": "A catalog name, hf.co/namespace/repo, an Ollama name such as llama3.2:1b, or the URL of a .gguf file.",
  "models.modelKey": "Model", "models.recommended": "Recommended (Q4_K_M)", "models.recommendedShort": "recommended",
  "models.variants": "Show variants", "models.pull": "Pull", "models.pullNamed": "Pull {name}",
  "models.lookingUp": "Looking up the variants of {key}…", "models.variantsFound": "{n} variants found.",
  "models.starting": "Starting the download of {key}…", "models.started": "Downloading {name}.",
  "models.alreadyInstalled": "{name} is already installed.",
  "models.downloads": "Downloads", "models.noDownloads": "No downloads.", "models.progressOf": "Download progress of {name}",
  "models.bytesOf": "{done} of {total}", "models.eta": "{eta} left", "models.noBytes": "no data arriving",
  "models.pause": "Pause", "models.pauseNamed": "Pause {name}", "models.cancelNamed": "Cancel {name}",
  "models.resume": "Resume", "models.resumeNamed": "Resume {name}",
  "models.catalog": "Catalog", "models.downloadingPercent": "downloading {percent} %", "models.installedState": "installed",
  "models.errorState": "failed", "models.tooLarge": "too large", "models.tooLargeHint": "Needs more memory than this machine has.",
  "download.queued": "queued", "download.downloading": "downloading", "download.stalled": "stalled",
  "download.retrying": "retrying", "download.verifying": "verifying", "download.completed": "completed",
  "download.cancelled": "cancelled", "download.error": "failed",
  "plugins.hint": "Switch plugins on or off; the choice survives restarts.", "plugins.readOnly": "Only an admin may switch plugins.",
  "plugins.enableNamed": "Enable {name}", "plugins.on": "On", "plugins.off": "Off", "plugins.enabled": "{name} is on.",
  "plugins.disabled": "{name} is off.", "plugins.provides": "Provides:", "plugins.lastError": "Last error",
  "plugins.notLoaded": "Failed to load", "plugins.cap.commands": "chat commands", "plugins.cap.tools": "tools",
  "plugins.cap.before_message": "message hook", "plugins.cap.after_answer": "answer hook",
  "memory.stats": "Overview", "memory.total": "Memories", "memory.byKind": "By kind", "memory.pinned": "Pinned",
  "memory.size": "Size", "memory.searches": "Searches", "memory.searchStats": "{n} served, p95 {p95} ms",
  "memory.add": "Add a memory", "memory.content": "Text", "memory.kindLabel": "Kind", "memory.addButton": "Add",
  "memory.added": "Memory #{id} added.", "memory.search": "Search", "memory.query": "Words to look for",
  "memory.searchButton": "Search", "memory.found": "{n} found in {ms} ms", "memory.all": "All memories",
  "memory.none": "Nothing remembered yet.", "memory.deleteNamed": "Delete memory #{id}",
  "memory.deleteConfirm": "Forget “{text}”?", "memory.deleted": "Memory #{id} deleted.", "memory.score": "score {score}",
  "memory.kind.fact": "fact", "memory.kind.preference": "preference", "memory.kind.note": "note", "memory.kind.summary": "summary",
  "memory.source.api": "added here or by API", "memory.source.command": "by /remember", "memory.source.auto": "from a chat",
  "logs.level": "Level", "logs.text": "Text", "logs.source": "Source", "logs.apply": "Apply", "logs.live": "Live",
  "logs.time": "Time", "logs.message": "Message", "logs.none": "No records.", "logs.count": "{shown} of {total} records",
  "logs.following": "following new records", "logs.reconnecting": "reconnecting…",
  "status.health": "Health", "status.state": "State", "status.ok": "ok", "status.degraded": "degraded", "status.down": "not answering",
  "status.uptime": "Uptime", "status.database": "Database", "status.engine": "Engine", "status.engineName": "Engine",
  "status.activeModel": "Active model", "status.noModel": "none loaded", "status.context": "Context window",
  "status.loadTime": "Load time", "status.error": "Error", "status.slots": "Slots and queue", "status.slotsBusy": "Slots busy",
  "status.slotsOf": "{busy} of {total}", "status.slotsUnknown": "not reported by this server", "status.queued": "Waiting",
  "status.remote": "Remote engines", "status.none": "none", "status.versions": "Versions", "status.libraries": "Console libraries",
  "status.browser": "Browser",
  "engine.idle": "idle", "engine.loading": "loading", "engine.ready": "ready", "engine.error": "error",
  "errors.network": "The server cannot be reached.", "errors.connectionLost": "The connection to the server was lost.",
  "errors.unauthorized": "The API key is missing or was refused.", "errors.forbidden": "Only an admin may do this.",
  "errors.forbidden_host": "The server refused this address.", "errors.remote_access_disabled": "The server accepts only this machine without an API key.",
  "errors.not_found": "Not found.", "errors.session_not_found": "This chat does not exist (any more).",
  "errors.model_not_found": "That model is not installed or does not exist.", "errors.memory_not_found": "That memory does not exist (any more).",
  "errors.conflict": "That cannot be done right now.", "errors.payload_too_large": "That is too long.",
  "errors.invalid_request": "The request was not accepted.", "errors.model_invalid": "The model file cannot be loaded.",
  "errors.model_too_large": "This model needs more memory than this machine has.",
  "errors.too_many_requests": "Too many answers are waiting for the model; try again in a moment.",
  "errors.too_many_connections": "Too many connections from this browser.", "errors.busy": "An answer is still being written.",
  "errors.internal_error": "Something went wrong on the server.", "errors.engine_error": "The model failed while answering.",
  "errors.engine_unavailable": "The model's engine cannot be reached.", "errors.upstream_error": "The registry or download server failed.",
  "errors.upstream_auth": "The registry refused access: the model is gated or private.",
  "errors.insufficient_storage": "Not enough free disk space for this model.", "errors.verification_failed": "The downloaded file did not match its checksum.",
  "errors.unknown_type": "The server did not understand the request.", "errors.generic": "Something went wrong.",
};

const de = {
  "nav.chat": "Chat", "nav.models": "Modelle", "nav.plugins": "Plugins", "nav.memory": "Gedächtnis", "nav.logs": "Protokoll",
  "nav.status": "Status", "nav.menu": "Menü", "nav.views": "Ansichten",
  "prefs.language": "Sprache", "prefs.theme": "Farbschema", "prefs.auto": "Automatisch", "prefs.light": "Hell", "prefs.dark": "Dunkel",
  "common.loading": "Lädt…", "common.ok": "OK", "common.cancel": "Abbrechen", "common.delete": "Löschen", "common.save": "Speichern",
  "common.close": "Schließen", "common.more": "Mehr anzeigen",
  "signin.title": "Anmelden", "signin.hint": "Dieser Server verlangt einen API-Schlüssel. Er bleibt nur in diesem Tab gespeichert.",
  "signin.key": "API-Schlüssel", "signin.submit": "Anmelden", "signin.checking": "Wird geprüft…",
  "signin.refused": "Der Server hat diesen Schlüssel abgelehnt.", "signin.expired": "Dein Schlüssel gilt nicht mehr: bitte neu anmelden.",
  "signin.out": "Abmelden",
  "chat.sessions": "Chats", "chat.new": "Neuer Chat", "chat.search": "Chats durchsuchen", "chat.noSessions": "Noch keine Chats.",
  "chat.noMatch": "Kein Chat passt.", "chat.untitled": "Ohne Titel", "chat.model": "Modell",
  "chat.defaultModel": "Standard ({model})", "chat.systemPrompt": "Systemprompt", "chat.systemPromptButton": "Systemprompt",
  "chat.systemPromptHint": "Wie sich der Assistent in diesem Chat verhalten soll", "chat.rename": "Umbenennen",
  "chat.renamePrompt": "Neuer Name für diesen Chat", "chat.deleteConfirm": "Den Chat „{title}“ mit allen Nachrichten löschen?",
  "chat.transcript": "Nachrichten", "chat.placeholder": "Frag etwas…", "chat.message": "Nachricht", "chat.send": "Senden",
  "chat.stop": "Stopp", "chat.you": "Du", "chat.edit": "Bearbeiten", "chat.editMessage": "Deine Nachricht bearbeiten",
  "chat.saveSend": "Speichern und senden", "chat.copy": "Kopieren", "chat.copied": "Kopiert", "chat.copyCode": "Code kopieren",
  "chat.copyAnswer": "Kopieren", "chat.regenerate": "Neu erzeugen", "chat.stopped": "Gestoppt", "chat.stopping": "Wird gestoppt…",
  "chat.disconnected": "Abgebrochen: die Verbindung wurde geschlossen", "chat.interrupted": "Abgebrochen: der Server wurde beendet",
  "chat.failed": "Fehlgeschlagen", "chat.writing": "Schreibt…", "chat.waiting": "Wartet auf das Modell…",
  "chat.queued": "Wartet, Platz {n} in der Warteschlange", "chat.memoriesUsed": "{n} Erinnerungen verwendet",
  "chat.memoryGone": "Erinnerung #{id} (gelöscht)", "chat.modelSet": "Dieser Chat verwendet jetzt {model}.",
  "chat.promptSaved": "Systemprompt gespeichert.",
  "chat.empty": "Frag etwas. Antworten erscheinen, während sie geschrieben werden.",
  "chat.keys": "Enter sendet · Umschalt+Enter für neue Zeile · Esc stoppt die Antwort",
  "models.installed": "Installiert", "models.name": "Name", "models.kind": "Art", "models.family": "Familie",
  "models.params": "Parameter", "models.quantization": "Quantisierung", "models.size": "Größe", "models.context": "Kontext",
  "models.memory": "Speicher", "models.status": "Status", "models.description": "Beschreibung",
  "models.none": "Keine Modelle installiert.", "models.base": "Basis", "models.instruct": "Instruct",
  "models.baseHint": "Ein Basismodell setzt Text fort; es wurde nicht darauf trainiert, Anweisungen zu folgen.",
  "models.active": "aktiv", "models.activate": "Aktivieren", "models.activateNamed": "{name} aktivieren",
  "models.deleteNamed": "{name} löschen", "models.loading": "{name} wird geladen…", "models.activated": "{name} ist aktiv (geladen in {seconds} s).",
  "models.deleteConfirm": "Das Modell {name} löschen? Seine Dateien werden von der Platte entfernt.", "models.deleted": "{name} wurde gelöscht.",
  "models.disk": "Freier Speicher: {free} von {total} · Modelle belegen {models}",
  "models.pullTitle": "Modell herunterladen", "models.pullHint": "Ein Katalogname, hf.co/namespace/repo, ein Ollama-Name wie llama3.2:1b oder die URL einer .gguf-Datei.",
  "models.modelKey": "Modell", "models.recommended": "Empfohlen (Q4_K_M)", "models.recommendedShort": "empfohlen",
  "models.variants": "Varianten zeigen", "models.pull": "Herunterladen", "models.pullNamed": "{name} herunterladen",
  "models.lookingUp": "Varianten von {key} werden gesucht…", "models.variantsFound": "{n} Varianten gefunden.",
  "models.starting": "Download von {key} wird gestartet…", "models.started": "{name} wird heruntergeladen.",
  "models.alreadyInstalled": "{name} ist bereits installiert.",
  "models.downloads": "Downloads", "models.noDownloads": "Keine Downloads.", "models.progressOf": "Fortschritt des Downloads von {name}",
  "models.bytesOf": "{done} von {total}", "models.eta": "noch {eta}", "models.noBytes": "es kommen keine Daten",
  "models.pause": "Pausieren", "models.pauseNamed": "{name} pausieren", "models.cancelNamed": "{name} abbrechen",
  "models.resume": "Fortsetzen", "models.resumeNamed": "{name} fortsetzen",
  "models.catalog": "Katalog", "models.downloadingPercent": "lädt {percent} %", "models.installedState": "installiert",
  "models.errorState": "fehlgeschlagen", "models.tooLarge": "zu groß", "models.tooLargeHint": "Braucht mehr Arbeitsspeicher, als dieser Rechner hat.",
  "download.queued": "wartet", "download.downloading": "lädt", "download.stalled": "stockt",
  "download.retrying": "neuer Versuch", "download.verifying": "wird geprüft", "download.completed": "fertig",
  "download.cancelled": "abgebrochen", "download.error": "fehlgeschlagen",
  "plugins.hint": "Plugins ein- oder ausschalten; die Wahl bleibt nach einem Neustart erhalten.", "plugins.readOnly": "Nur ein Admin kann Plugins schalten.",
  "plugins.enableNamed": "{name} einschalten", "plugins.on": "An", "plugins.off": "Aus", "plugins.enabled": "{name} ist an.",
  "plugins.disabled": "{name} ist aus.", "plugins.provides": "Bietet:", "plugins.lastError": "Letzter Fehler",
  "plugins.notLoaded": "Konnte nicht geladen werden", "plugins.cap.commands": "Chat-Befehle", "plugins.cap.tools": "Werkzeuge",
  "plugins.cap.before_message": "Nachrichten-Hook", "plugins.cap.after_answer": "Antwort-Hook",
  "memory.stats": "Überblick", "memory.total": "Erinnerungen", "memory.byKind": "Nach Art", "memory.pinned": "Angeheftet",
  "memory.size": "Größe", "memory.searches": "Suchen", "memory.searchStats": "{n} beantwortet, p95 {p95} ms",
  "memory.add": "Erinnerung hinzufügen", "memory.content": "Text", "memory.kindLabel": "Art", "memory.addButton": "Hinzufügen",
  "memory.added": "Erinnerung #{id} hinzugefügt.", "memory.search": "Suche", "memory.query": "Gesuchte Wörter",
  "memory.searchButton": "Suchen", "memory.found": "{n} gefunden in {ms} ms", "memory.all": "Alle Erinnerungen",
  "memory.none": "Noch nichts gemerkt.", "memory.deleteNamed": "Erinnerung #{id} löschen",
  "memory.deleteConfirm": "„{text}“ vergessen?", "memory.deleted": "Erinnerung #{id} gelöscht.", "memory.score": "Treffer {score}",
  "memory.kind.fact": "Fakt", "memory.kind.preference": "Vorliebe", "memory.kind.note": "Notiz", "memory.kind.summary": "Zusammenfassung",
  "memory.source.api": "hier oder per API", "memory.source.command": "per /remember", "memory.source.auto": "aus einem Chat",
  "logs.level": "Stufe", "logs.text": "Text", "logs.source": "Quelle", "logs.apply": "Anwenden", "logs.live": "Live",
  "logs.time": "Zeit", "logs.message": "Meldung", "logs.none": "Keine Einträge.", "logs.count": "{shown} von {total} Einträgen",
  "logs.following": "neue Einträge werden verfolgt", "logs.reconnecting": "verbindet neu…",
  "status.health": "Zustand", "status.state": "Zustand", "status.ok": "ok", "status.degraded": "eingeschränkt", "status.down": "antwortet nicht",
  "status.uptime": "Laufzeit", "status.database": "Datenbank", "status.engine": "Engine", "status.engineName": "Engine",
  "status.activeModel": "Aktives Modell", "status.noModel": "keins geladen", "status.context": "Kontextfenster",
  "status.loadTime": "Ladezeit", "status.error": "Fehler", "status.slots": "Slots und Warteschlange", "status.slotsBusy": "Belegte Slots",
  "status.slotsOf": "{busy} von {total}", "status.slotsUnknown": "von diesem Server nicht gemeldet", "status.queued": "Wartend",
  "status.remote": "Entfernte Engines", "status.none": "keine", "status.versions": "Versionen", "status.libraries": "Bibliotheken der Konsole",
  "status.browser": "Browser",
  "engine.idle": "untätig", "engine.loading": "lädt", "engine.ready": "bereit", "engine.error": "Fehler",
  "errors.network": "Der Server ist nicht erreichbar.", "errors.connectionLost": "Die Verbindung zum Server ist abgerissen.",
  "errors.unauthorized": "Der API-Schlüssel fehlt oder wurde abgelehnt.", "errors.forbidden": "Das darf nur ein Admin.",
  "errors.forbidden_host": "Der Server hat diese Adresse abgelehnt.", "errors.remote_access_disabled": "Ohne API-Schlüssel nimmt der Server nur diesen Rechner an.",
  "errors.not_found": "Nicht gefunden.", "errors.session_not_found": "Diesen Chat gibt es nicht (mehr).",
  "errors.model_not_found": "Dieses Modell ist nicht installiert oder existiert nicht.", "errors.memory_not_found": "Diese Erinnerung gibt es nicht (mehr).",
  "errors.conflict": "Das geht gerade nicht.", "errors.payload_too_large": "Das ist zu lang.",
  "errors.invalid_request": "Die Anfrage wurde nicht angenommen.", "errors.model_invalid": "Die Modelldatei lässt sich nicht laden.",
  "errors.model_too_large": "Dieses Modell braucht mehr Arbeitsspeicher, als dieser Rechner hat.",
  "errors.too_many_requests": "Zu viele Antworten warten auf das Modell; bitte gleich noch einmal versuchen.",
  "errors.too_many_connections": "Zu viele Verbindungen von diesem Browser.", "errors.busy": "Es wird noch eine Antwort geschrieben.",
  "errors.internal_error": "Auf dem Server ist etwas schiefgegangen.", "errors.engine_error": "Das Modell ist beim Antworten gescheitert.",
  "errors.engine_unavailable": "Die Engine des Modells ist nicht erreichbar.", "errors.upstream_error": "Die Registry oder der Download-Server hat versagt.",
  "errors.upstream_auth": "Die Registry verweigert den Zugriff: das Modell ist geschützt oder privat.",
  "errors.insufficient_storage": "Nicht genug freier Speicherplatz für dieses Modell.", "errors.verification_failed": "Die heruntergeladene Datei passt nicht zu ihrer Prüfsumme.",
  "errors.unknown_type": "Der Server hat die Anfrage nicht verstanden.", "errors.generic": "Etwas ist schiefgegangen.",
};

const DICTIONARIES = { en, de };
let current = "en";

export function lang() {
  const stored = localStorage.getItem(STORE);
  if (stored && DICTIONARIES[stored]) return stored;
  const preferred = (navigator.languages || [navigator.language || "en"]).map((l) => l.slice(0, 2).toLowerCase());
  return preferred.find((l) => DICTIONARIES[l]) || "en";
}

export function setLang(value) {
  current = DICTIONARIES[value] ? value : "en";
  if (value !== lang()) localStorage.setItem(STORE, current);
  document.documentElement.lang = current;
}

export function t(key, vars = {}) {
  const text = DICTIONARIES[current][key] ?? en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (match, name) => (name in vars ? String(vars[name]) : match));
}

/** Translate the static page: `data-i18n` sets the text, `data-i18n-label` the accessible name. */
export function applyI18n(root) {
  for (const element of root.querySelectorAll("[data-i18n]")) element.textContent = t(element.dataset.i18n);
  for (const element of root.querySelectorAll("[data-i18n-label]")) element.setAttribute("aria-label", t(element.dataset.i18nLabel));
}

/** An error (ApiError, a WebSocket error frame, a download's error) in words; the server's own
 * message follows as detail when it adds something. */
export function errorText(error) {
  const code = error && error.code;
  const detail = (error && (typeof error.error === "string" ? error.error : error.message)) || "";
  const words = code && (DICTIONARIES[current][`errors.${code}`] || en[`errors.${code}`]);
  if (!words) return detail || t("errors.generic");
  return detail && detail !== words ? `${words} (${detail})` : words;
}
