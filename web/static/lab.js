// Lab page: one card per device, readings updated in place from the event stream.
"use strict";
(() => {
  const CONTROLS = {
    flow: { label: "Flow mL/min", field: "ml_min", step: "0.01", min: 0 },
    light: { label: "Light %", field: "percent", step: "1", min: 0, max: 100 },
    temperature: { label: "Temperature °C", field: "celsius", step: "0.5" },
  };
  const cards = new Map();
  const root = document.getElementById("devices");

  function label(key) {
    return key.replace(/_/g, " ").replace(/ ml min$/, " (mL/min)").replace(/ percent$/, " (%)")
      .replace(/ bar$/, " (bar)").replace(/ c$/, " (°C)");
  }

  function value(v) {
    if (typeof v === "number") return String(Math.round(v * 1000) / 1000);
    if (typeof v === "boolean") return v ? "yes" : "no";
    return v === null || v === undefined ? "—" : String(v);
  }

  async function command(device, kind, body, form) {
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      const result = await rc.api("POST", `/api/devices/${encodeURIComponent(device)}/${kind}`, body);
      rc.toast(result.detail, "ok");
    } catch (error) {
      rc.toast(`${device}: ${error.message}`, "bad");
    } finally { button.disabled = false; }
  }

  function controlForm(device, kind) {
    if (kind === "valve") {
      const select = rc.el("select", { name: "position", "aria-label": "valve position" });
      for (const p of device.positions) select.append(rc.el("option", { value: p }, p));
      const form = rc.el("form", { "data-control": "valve" },
        rc.el("label", {}, "Valve position", select), rc.el("button", { type: "submit" }, "Move"));
      form.addEventListener("submit", (e) => {
        e.preventDefault();
        command(device.name, "valve", { position: select.value }, form);
      });
      return form;
    }
    const spec = CONTROLS[kind];
    if (!spec) return null;
    const input = rc.el("input", { type: "number", step: spec.step, name: spec.field, required: "" });
    if (spec.min !== undefined) input.min = spec.min;
    if (spec.max !== undefined) input.max = spec.max;
    const form = rc.el("form", { "data-control": kind },
      rc.el("label", {}, spec.label, input), rc.el("button", { type: "submit" }, "Set"));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      command(device.name, kind, { [spec.field]: Number(input.value) }, form);
    });
    return form;
  }

  function build(device) {
    const card = rc.el("section", { class: "card device", "data-device": device.name },
      rc.el("h2", {}, rc.el("span", { class: "dot" }), device.name),
      rc.el("div", { class: "meta" }, `${device.kind} · ${device.driver}`),
      rc.el("div", { class: "meta health" }, rc.el("span", { class: "conn" }), rc.el("span", { class: "age" })),
      rc.el("dl", { class: "readings" }),
      rc.el("ul", { class: "faults" }));
    if (rc.canOperate()) {
      for (const kind of device.controls) {
        const form = controlForm(device, kind);
        if (form) card.append(form);
      }
    }
    root.append(card);
    return card;
  }

  function update(device) {
    const card = cards.get(device.name) || build(device);
    cards.set(device.name, card);
    card.classList.toggle("offline", !device.connected);
    card.classList.toggle("faulted", device.faults.length > 0);
    card.querySelector(".dot").classList.toggle("on", device.connected);
    card.querySelector(".conn").textContent = device.connected ? "connected" : "DISCONNECTED";
    card.dataset.updatedAt = device.updated_at || "";
    age(card);
    const dl = card.querySelector(".readings");
    dl.replaceChildren(...Object.entries(device.readings).flatMap(([k, v]) =>
      [rc.el("dt", {}, label(k)), rc.el("dd", { "data-reading": k }, value(v))]));
    card.querySelector(".faults").replaceChildren(
      ...device.faults.map((f) => rc.el("li", {}, f)));
  }

  // Readings older than this are flagged: the device layer may have lost the device.
  const STALE_S = 5;

  function age(card) {
    const when = card.dataset.updatedAt ? Date.parse(card.dataset.updatedAt) : NaN;
    const span = card.querySelector(".age");
    if (Number.isNaN(when)) { span.textContent = ""; return; }
    const seconds = Math.max(0, Math.round((Date.now() - when) / 1000));
    span.textContent = ` · updated ${seconds < 60 ? seconds + " s" : Math.round(seconds / 60) + " min"} ago`;
    card.classList.toggle("stale", seconds > STALE_S);
  }

  function render(devices) {
    if (!devices.length && !cards.size) {
      root.replaceChildren(rc.el("p", { class: "muted" }, "No devices."));
      return;
    }
    if (!cards.size) root.replaceChildren();
    devices.forEach(update);
    document.dispatchEvent(new CustomEvent("lab:devices", { detail: devices }));
  }

  document.addEventListener("DOMContentLoaded", async () => {
    try { render(await rc.api("GET", "/api/devices")); } catch (e) { rc.toast(e.message, "bad"); }
    rc.stream({ devices: "true" }, { devices: render });
    setInterval(() => cards.forEach(age), 1000);
  });
})();
