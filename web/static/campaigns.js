// Campaigns page: the list (refreshed on campaign events) and the new-campaign editor.
"use strict";
(() => {
  const tbody = document.querySelector("#campaigns tbody");
  const textarea = document.getElementById("protocol");
  let examples = [];

  async function load() {
    const campaigns = await rc.api("GET", "/api/campaigns");
    if (!campaigns.length) {
      tbody.replaceChildren(rc.el("tr", {}, rc.el("td", { colspan: 7, class: "muted" }, "No campaigns yet.")));
      return;
    }
    tbody.replaceChildren(...campaigns.map((c) => {
      const pct = c.progress === null ? null : Math.round(c.progress * 100);
      const bar = rc.el("div", { class: "progress" }, rc.el("div", { style: `width:${pct ?? 0}%` }));
      return rc.el("tr", { "data-campaign": c.id },
        rc.el("td", {}, c.id),
        rc.el("td", {}, rc.el("a", { href: `/campaigns/${c.id}` }, c.name)),
        rc.el("td", {}, rc.el("span", { class: `badge status-${c.status}` }, c.status)),
        rc.el("td", {}, bar, pct === null ? "" : `${pct}%`),
        rc.el("td", { class: "num" }, `${c.experiments_done}${c.planned_experiments ? " / " + c.planned_experiments : ""}`),
        rc.el("td", { class: "num" }, c.best_yield_percent === null ? "—" : `${rc.num(c.best_yield_percent)} %`),
        rc.el("td", {}, rc.time(c.created_at)));
    }));
  }

  let badLines = new Set();

  function gutter() {
    const lines = textarea.value.split("\n").length;
    const numbers = [];
    for (let n = 1; n <= lines; n++) {
      numbers.push(badLines.has(n) ? rc.el("span", { class: "bad" }, n) : String(n), "\n");
    }
    document.getElementById("gutter").replaceChildren(...numbers);
  }

  function goToLine(line) {
    const lines = textarea.value.split("\n");
    const start = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
    textarea.focus();
    textarea.setSelectionRange(start, start + (lines[line - 1] || "").length);
  }

  function showIssues(issues, validMessage) {
    const list = document.getElementById("issues");
    badLines = new Set(issues.map((i) => i.line).filter(Boolean));
    gutter();
    list.className = issues.length ? "issues" : "issues valid";
    if (!issues.length) { list.replaceChildren(rc.el("li", {}, validMessage)); return; }
    list.replaceChildren(...issues.map((i) => {
      const where = i.line ? `line ${i.line}${i.column ? ":" + i.column : ""}: ` : "";
      const item = rc.el("li", {}, `${where}${i.path ? i.path + " — " : ""}${i.message}`);
      if (i.line) item.addEventListener("click", () => goToLine(i.line));
      return item;
    }));
  }

  async function validate() {
    try {
      const result = await rc.api("POST", "/api/protocols/validate", { protocol_yaml: textarea.value });
      showIssues(result.issues, "The protocol is valid.");
    } catch (e) { rc.toast(e.message, "bad"); }
  }

  async function create() {
    try {
      const result = await rc.api("POST", "/api/campaigns", { protocol_yaml: textarea.value });
      window.location.href = `/campaigns/${result.id}`;
    } catch (e) {
      if (e.data && e.data.issues) showIssues(e.data.issues, "");
      else rc.toast(e.message, "bad");
    }
  }

  async function setupEditor() {
    if (!textarea) return;
    textarea.addEventListener("input", gutter);
    textarea.addEventListener("scroll", () => {
      document.getElementById("gutter").scrollTop = textarea.scrollTop;
    });
    examples = await rc.api("GET", "/api/protocols/examples");
    const select = document.getElementById("example");
    for (const e of examples) select.append(rc.el("option", { value: e.name }, e.title));
    select.addEventListener("change", () => {
      const example = examples.find((e) => e.name === select.value);
      if (example) { textarea.value = example.text; gutter(); }
    });
    document.getElementById("upload").addEventListener("change", async (event) => {
      const file = event.target.files[0];
      if (file) { textarea.value = await file.text(); gutter(); }
    });
    document.getElementById("validate").addEventListener("click", validate);
    document.getElementById("create").addEventListener("click", create);
    gutter();
  }

  document.addEventListener("DOMContentLoaded", async () => {
    try { await load(); } catch (e) { rc.toast(e.message, "bad"); }
    const refresh = rc.debounce(() => load().catch(() => {}), 500);
    rc.stream({}, { event: (e) => { if (e.campaign_id) refresh(); } });
    setupEditor().catch((e) => rc.toast(e.message, "bad"));
  });
})();
