// Model answers as Markdown: marked turns them into HTML in which any raw HTML of the text is
// escaped (it shows as text), images become links (nothing is fetched from elsewhere), and
// DOMPurify sanitises the result before it reaches the page. Code blocks get a copy button
// and, once the answer is complete, highlighting.

import { Marked } from "../vendor/marked/marked.esm.js";
import DOMPurify from "../vendor/dompurify/purify.es.mjs";
import hljs from "../vendor/highlightjs/highlight.min.js";
import { h } from "./dom.js";

const escape = (text) => text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

const marked = new Marked({
  gfm: true,
  breaks: true,
  renderer: {
    html({ text }) { return escape(text); },
    image({ href, text }) { return `<a href="${escape(href || "")}">${escape(text || href || "")}</a>`; },
  },
});

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer");
  }
});

const PURIFY = { FORBID_TAGS: ["style", "img", "svg", "math", "form", "input", "button", "iframe"], FORBID_ATTR: ["style"] };

/** A fragment of sanitised nodes for `text`. */
export function renderMarkdown(text) {
  const html = marked.parse(text || "", { async: false });
  return DOMPurify.sanitize(html, { ...PURIFY, RETURN_DOM_FRAGMENT: true });
}

/** Copy buttons on the code blocks inside `root` (labels from `t`); `highlight` colours them. */
export function decorateCode(root, t, { highlight = false } = {}) {
  for (const pre of root.querySelectorAll("pre")) {
    const code = pre.querySelector("code");
    if (!code || pre.parentElement.classList.contains("code-block")) continue;
    const language = (code.className.match(/language-([\w+#-]+)/) || [])[1] || "";
    const copy = h("button", { type: "button", class: "copy-button", "aria-label": t("chat.copyCode") }, t("chat.copy"));
    copy.addEventListener("click", async () => {
      await copyText(code.textContent);
      copy.textContent = t("chat.copied");
      setTimeout(() => { copy.textContent = t("chat.copy"); }, 1500);
    });
    const wrapper = h("div", { class: "code-block" }, h("div", { class: "code-head" }, h("span", {}, language || "code"), copy));
    pre.replaceWith(wrapper);
    wrapper.append(pre);
  }
  if (highlight) {
    for (const code of root.querySelectorAll("pre code:not(.hljs)")) {
      const language = (code.className.match(/language-([\w+#-]+)/) || [])[1];
      if (language && hljs.getLanguage(language)) hljs.highlightElement(code);
      else if (!language && code.textContent.length < 20_000) {
        const result = hljs.highlightAuto(code.textContent);
        if (result.relevance > 5) {
          code.replaceChildren(DOMPurify.sanitize(result.value, { RETURN_DOM_FRAGMENT: true, ALLOWED_TAGS: ["span"], ALLOWED_ATTR: ["class"] }));
          code.classList.add("hljs");
        }
      }
    }
  }
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = h("textarea", { class: "offscreen", "aria-hidden": "true" });
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
}
