// Phone setup: the URL to paste for each event, per vendor, from GET .../phone-urls.

import { isClosed, isMissingRoute } from "./api.js";
import { announce, h, setText } from "./dom.js";

const LABELS = {
  grandstream: "Grandstream (GXP, GRP, GXV)",
  yealink: "Yealink",
  snom: "Snom",
  fanvil: "Fanvil",
};

/** "incoming_call" -> "Incoming call". */
function human(event) {
  const words = String(event).replaceAll("_", " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

export class PhonesView {
  constructor(root, api, tenant, vendors, models = {}, { loopbackOnly = false } = {}) {
    this.root = root;
    // The hub listens on 127.0.0.1 only: a real phone cannot reach it, whatever it is given.
    root.querySelector("[data-role=loopback]").hidden = !loopbackOnly;
    this.api = api;
    this.tenant = tenant;
    this.models = models;
    this.vendor = root.querySelector("[data-role=vendor]");
    this.model = root.querySelector("[data-role=model]");
    this.modelLabel = root.querySelector("[data-role=model-label]");
    this.host = root.querySelector("[data-role=host]");
    this.list = root.querySelector("[data-role=urls]");
    this.error = root.querySelector("[data-role=error]");
    this.loaded = false;
    this.vendor.replaceChildren(
      ...vendors.map((v) => h("option", { value: v }, LABELS[v] || v)),
    );
    this.vendor.onchange = () => {
      this.fillModels();
      this.load();
    };
    this.model.onchange = () => this.load();
    this.fillModels();
    let typing = null;
    this.host.oninput = () => {
      clearTimeout(typing);
      typing = setTimeout(() => this.load(), 400);
    };
  }

  /** The vendor's models whose guides name variables their own way (GXV3240: $call-id). */
  fillModels() {
    const models = this.models[this.vendor.value] || [];
    this.model.replaceChildren(
      h("option", { value: "" }, "Any model"),
      ...models.map((m) => h("option", { value: m }, m)),
    );
    this.model.hidden = this.modelLabel.hidden = models.length === 0;
  }

  async show() {
    if (!this.loaded) await this.load();
  }

  async load() {
    this.loaded = true;
    setText(this.error, "");
    let data;
    try {
      data = await this.api.get(`/tenants/${encodeURIComponent(this.tenant)}/phone-urls`, {
        vendor: this.vendor.value,
        model: this.model.value || undefined,
        host: this.host.value.trim() || undefined,
      });
    } catch (err) {
      if (isClosed(err)) return;
      this.list.replaceChildren();
      setText(
        this.error,
        isMissingRoute(err) ? "This hub has no phone URL API yet." : `Could not load URLs: ${err.message}`,
      );
      return;
    }
    const urls = Array.isArray(data) ? data : data.urls || data.events || [];
    if (!this.host.value && data.host) this.host.placeholder = data.host;
    this.list.replaceChildren(...urls.map((u) => this.item(u)));
  }

  item(u) {
    const name = human(u.event);
    const id = `url-${u.event}`;
    // Line breaks only between pairs: a <wbr> after each "?" and "&".
    const code = h("code", { id, class: "url-text" });
    for (const part of u.url.split(/(?<=[?&])/)) code.append(part, h("wbr"));
    const copy = h(
      "button",
      { type: "button", "aria-label": `Copy the URL for ${name}`, "aria-describedby": id },
      "Copy",
    );
    copy.addEventListener("click", () => this.copy(u.url, copy, name));
    return h(
      "li",
      { dataset: { event: u.event } },
      h(
        "div",
        { class: "url-head" },
        h(
          "div",
          {},
          h("span", { class: "event-name" }, name),
          " ",
          u.setting && u.setting.toLowerCase() !== name.toLowerCase()
            ? h("span", { class: "setting" }, u.setting)
            : null,
        ),
        copy,
      ),
      code,
      u.too_long
        ? h("p", { class: "warn" }, "Longer than this vendor's field allows: drop some variables.")
        : null,
    );
  }

  async copy(text, button, name) {
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      // Not a secure context (plain http to a LAN address): the old way, via a textarea.
      const area = h("textarea", { readonly: true, class: "visually-hidden" });
      area.value = text;
      document.body.append(area);
      area.select();
      document.execCommand("copy");
      area.remove();
      button.focus();
    }
    setText(button, "Copied");
    announce(`URL for ${name} copied`);
    setTimeout(() => setText(button, "Copy"), 1500);
  }
}
