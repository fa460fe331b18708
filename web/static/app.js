// Shared helpers: API calls with the CSRF token, toasts, the live event stream.
"use strict";
const rc = (() => {
  const csrf = () => document.querySelector('meta[name="csrf-token"]').content;

  async function api(method, url, body) {
    const headers = { "Accept": "application/json" };
    if (method !== "GET") headers["X-CSRF-Token"] = csrf();
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(url, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try { data = await response.json(); } catch (_) { /* empty or non-JSON body */ }
    if (!response.ok) {
      const detail = data && data.detail;
      const message = typeof detail === "string" ? detail
        : Array.isArray(detail) ? detail.map((d) => d.msg).join("; ") : response.statusText;
      const error = new Error(message);
      error.status = response.status; error.data = data;
      throw error;
    }
    return data;
  }

  function toast(message, kind = "") {
    const box = document.createElement("div");
    box.className = `toast ${kind}`;
    box.textContent = message;
    document.getElementById("toasts").append(box);
    setTimeout(() => box.remove(), 6000);
  }

  // One EventSource per page; the browser resends Last-Event-ID when it reconnects.
  function stream(params, handlers) {
    const query = new URLSearchParams(params).toString();
    const source = new EventSource(`/api/events/stream?${query}`);
    const live = document.getElementById("live");
    source.onopen = () => live && (live.className = "live on");
    source.onerror = () => live && (live.className = "live off");
    source.onmessage = (message) => {
      const data = JSON.parse(message.data);
      if (data.type === "devices" && handlers.devices) handlers.devices(data.devices);
      if (data.type === "event" && handlers.event) handlers.event(data.event);
    };
    return source;
  }

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child instanceof Node ? child : String(child ?? ""));
    return node;
  }

  const num = (v, digits = 1) => (v === null || v === undefined ? "—" : Number(v).toFixed(digits));
  const time = (iso) => (iso ? new Date(iso).toLocaleString() : "—");
  const canOperate = () => document.body.dataset.canOperate === "true";

  function debounce(fn, ms) {
    let timer = null;
    return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
  }

  document.addEventListener("DOMContentLoaded", () => {
    const estop = document.getElementById("estop");
    if (estop) estop.addEventListener("click", async () => {
      try {
        const result = await api("POST", "/api/emergency-stop");
        toast(result.detail, "ok");
      } catch (error) { toast(`Emergency stop failed: ${error.message}`, "bad"); }
    });
  });

  return { api, toast, stream, el, num, time, canOperate, debounce };
})();
