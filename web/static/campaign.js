// Campaign page: facts, controls, experiments, plots, spectrum and the event log,
// kept current by the campaign's event stream.
"use strict";
(() => {
  const main = document.querySelector("main");
  const id = Number(main.dataset.campaignId);
  const LABELS = {
    yield_percent: "yield (%)", conversion_percent: "conversion (%)",
    throughput_mmol_h: "throughput (mmol/h)",
  };
  const CONFIG = { displaylogo: false, responsive: true };
  const LAYOUT = {
    margin: { l: 56, r: 16, t: 10, b: 46 }, font: { size: 12 },
    legend: { orientation: "h", y: -0.22 }, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "#fff",
  };
  // measure name (GET .../best) -> the experiments' column
  const COLUMNS = { yield: "yield_percent", conversion: "conversion_percent", throughput: "throughput_mmol_h" };
  let experiments = [];
  let goals = {};  // column -> "maximize" | "minimize", from the campaign's objectives
  let selected = null;
  const seenEvents = new Set();

  const plot = (el, data, layout) => {
    if (window.Plotly) window.Plotly.react(el, data, { ...LAYOUT, ...layout }, CONFIG);
  };
  const usable = (e, m) => e[m] !== null && e[m] !== undefined && e.qc_status !== "rejected";

  function fromNow(iso) {
    const minutes = Math.round((Date.parse(iso) - Date.now()) / 60000);
    if (minutes <= 0) return "due";
    return minutes < 60 ? `in ${minutes} min` : `in ${Math.floor(minutes / 60)} h ${minutes % 60} min`;
  }

  function facts(c) {
    const badge = document.getElementById("status");
    badge.textContent = c.status;
    badge.className = `badge status-${c.status}`;
    const pct = c.progress === null ? null : Math.round(c.progress * 100);
    document.getElementById("progress-bar").style.width = `${pct ?? 0}%`;
    document.getElementById("progress-text").textContent =
      `${c.experiments_done}${c.planned_experiments ? " / " + c.planned_experiments : ""} done` +
      (c.experiments_failed ? `, ${c.experiments_failed} failed` : "");
    document.getElementById("eta").textContent = c.eta ? `${rc.time(c.eta)} (${fromNow(c.eta)})` : "—";
    document.getElementById("current").textContent =
      c.current.experiment_index === null ? "—" : `#${c.current.experiment_index}`;
    document.getElementById("step").textContent = c.current.step || "—";
    document.getElementById("best").textContent =
      c.best_yield_percent === null ? "—" : `${rc.num(c.best_yield_percent)} %`;
    document.getElementById("reason").textContent = c.status_reason || "—";
    const engine = main.dataset.engine === "true";
    const allowed = {
      start: ["created"], pause: ["running"], resume: ["paused"],
      abort: ["created", "running", "paused", "stopping"],
    };
    for (const button of document.querySelectorAll("button.control")) {
      button.disabled = !engine || !allowed[button.dataset.action].includes(c.status);
      button.title = engine ? "" : "no campaign engine attached";
    }
  }

  function table(rows) {
    const variables = [...new Set(rows.flatMap((e) => Object.keys(e.conditions)))].sort();
    const head = ["#", "status", ...variables, "yield %", "conv. %", "mmol/h", "QC"];
    document.querySelector("#experiments thead").replaceChildren(
      rc.el("tr", {}, ...head.map((h) => rc.el("th", {}, h))));
    document.querySelector("#experiments tbody").replaceChildren(...rows.map((e) => {
      const tr = rc.el("tr", { "data-experiment": e.id, class: e.id === selected ? "selected" : "" },
        rc.el("td", {}, e.index),
        rc.el("td", {}, rc.el("span", { class: `badge status-${e.status}` }, e.status)),
        ...variables.map((v) => rc.el("td", { class: "num" },
          typeof e.conditions[v] === "number" ? rc.num(e.conditions[v], 2) : e.conditions[v] ?? "—")),
        rc.el("td", { class: "num" }, rc.num(e.yield_percent)),
        rc.el("td", { class: "num" }, rc.num(e.conversion_percent)),
        rc.el("td", { class: "num" }, rc.num(e.throughput_mmol_h, 2)),
        rc.el("td", {}, e.qc_status ? rc.el("span", { class: `badge status-${e.qc_status}`, title: e.qc_reasons.join("; ") }, e.qc_status) : "—"));
      tr.addEventListener("click", () => spectrum(e));
      return tr;
    }));
    return variables;
  }

  function objectivePlot(rows, measure) {
    const done = rows.filter((e) => e[measure] !== null && e[measure] !== undefined);
    // "best so far" under the objective's goal on this measure (GET .../best), else the
    // highest: the one definition of best the CLI shares (robochem.storage.results)
    const minimise = goals[measure] === "minimize";
    let best = null;
    const bestX = [], bestY = [];
    for (const e of rows) {
      if (usable(e, measure) && (best === null || (minimise ? e[measure] < best : e[measure] > best))) best = e[measure];
      if (best !== null) { bestX.push(e.index); bestY.push(best); }
    }
    plot("plot-objective", [
      { x: done.map((e) => e.index), y: done.map((e) => e[measure]), mode: "markers", name: LABELS[measure],
        marker: { size: 9, color: done.map((e) => (e.qc_status === "rejected" ? "#d1d5db" : e.qc_status === "warning" ? "#f59e0b" : "#2563eb")) },
        text: done.map((e) => `#${e.index} ${e.qc_status || ""}`) },
      { x: bestX, y: bestY, mode: "lines", name: "best so far", line: { shape: "hv", color: "#15803d", width: 2 } },
    ], { xaxis: { title: { text: "experiment" }, dtick: rows.length > 20 ? undefined : 1 },
         yaxis: { title: { text: LABELS[measure] } } });
  }

  function paretoPlot(rows) {
    const pts = rows.filter((e) => usable(e, "yield_percent") && usable(e, "throughput_mmol_h"));
    const front = pts.filter((a) => !pts.some((b) => b !== a &&
      b.yield_percent >= a.yield_percent && b.throughput_mmol_h >= a.throughput_mmol_h &&
      (b.yield_percent > a.yield_percent || b.throughput_mmol_h > a.throughput_mmol_h)))
      .sort((a, b) => a.throughput_mmol_h - b.throughput_mmol_h);
    plot("plot-pareto", [
      { x: pts.map((e) => e.throughput_mmol_h), y: pts.map((e) => e.yield_percent), mode: "markers",
        name: "experiments", marker: { color: "#93c5fd", size: 8 }, text: pts.map((e) => `#${e.index}`) },
      { x: front.map((e) => e.throughput_mmol_h), y: front.map((e) => e.yield_percent), mode: "lines+markers",
        name: "Pareto front", marker: { color: "#b91c1c", size: 10 }, line: { color: "#b91c1c" },
        text: front.map((e) => `#${e.index}`) },
    ], { xaxis: { title: { text: LABELS.throughput_mmol_h } }, yaxis: { title: { text: LABELS.yield_percent } } });
  }

  function variablePlots(rows, variables, measure) {
    const box = document.getElementById("plot-variables");
    if (!variables.length) { box.replaceChildren(rc.el("p", { class: "muted" }, "No experiments yet.")); return; }
    if (box.dataset.variables !== variables.join("|")) {
      box.replaceChildren(...variables.map((v) => rc.el("div", { id: `plot-var-${v}`, "data-variable": v })));
      box.dataset.variables = variables.join("|");
    }
    for (const v of variables) {
      const pts = rows.filter((e) => e[measure] !== null && e[measure] !== undefined && v in e.conditions);
      plot(`plot-var-${v}`, [{ x: pts.map((e) => e.conditions[v]), y: pts.map((e) => e[measure]),
        mode: "markers", marker: { size: 8, color: pts.map((e) => e.index), colorscale: "Viridis",
        showscale: false }, text: pts.map((e) => `#${e.index}`) }],
      { xaxis: { title: { text: v } }, yaxis: { title: { text: LABELS[measure] } }, showlegend: false,
        margin: { l: 50, r: 10, t: 6, b: 42 } });
    }
  }

  function lineWidthPlot(rows) {
    const pts = rows.filter((e) => e.nmr_line_width_hz !== null && e.nmr_line_width_hz !== undefined);
    plot("plot-linewidth", [{ x: pts.map((e) => e.index), y: pts.map((e) => e.nmr_line_width_hz),
      mode: "lines+markers", marker: { size: 7, color: "#2563eb" }, line: { color: "#93c5fd" },
      text: pts.map((e) => `#${e.index}`) }],
    { xaxis: { title: { text: "experiment" } }, yaxis: { title: { text: "line width (Hz)" }, rangemode: "tozero" },
      showlegend: false, margin: { l: 50, r: 10, t: 6, b: 42 },
      shapes: rows.filter((e) => e.nmr_shimmed_before).map((e) => ({ type: "line", xref: "x",
        yref: "paper", x0: e.index - 0.5, x1: e.index - 0.5, y0: 0, y1: 1,
        line: { color: "#15803d", dash: "dash", width: 1 } })) });
  }

  function draw() {
    const measure = document.getElementById("measure").value;
    const variables = table(experiments);
    objectivePlot(experiments, measure);
    paretoPlot(experiments);
    variablePlots(experiments, variables, measure);
    lineWidthPlot(experiments);
  }

  async function spectrum(e) {
    selected = e.id;
    for (const tr of document.querySelectorAll("#experiments tbody tr"))
      tr.classList.toggle("selected", Number(tr.dataset.experiment) === e.id);
    const title = document.getElementById("spectrum-title");
    const tbody = document.querySelector("#regions tbody");
    let s;
    try { s = await rc.api("GET", `/api/experiments/${e.id}/spectrum`); }
    catch (error) {
      title.textContent = `experiment #${e.index}: ${error.message}`;
      tbody.replaceChildren();
      if (window.Plotly) window.Plotly.purge("plot-spectrum");
      return;
    }
    title.textContent = `experiment #${e.index}${s.nucleus ? " · " + s.nucleus : ""}`;
    const colors = { product: "rgba(21,128,61,.15)", internal_standard: "rgba(37,99,235,.15)",
      substrate: "rgba(234,88,12,.15)" };
    plot("plot-spectrum", [{ x: s.ppm, y: s.intensity, mode: "lines", line: { color: "#111827", width: 1 }, name: "spectrum" }], {
      xaxis: { title: { text: "δ (ppm)" }, autorange: "reversed" }, yaxis: { title: { text: "intensity" } },
      showlegend: false, margin: { l: 56, r: 16, t: 24, b: 46 },
      shapes: s.regions.filter((r) => r.lo !== null && r.hi !== null).map((r) => ({
        type: "rect", xref: "x", yref: "paper", x0: r.lo, x1: r.hi, y0: 0, y1: 1, line: { width: 0 },
        fillcolor: colors[r.role] || "rgba(107,114,128,.15)" })),
      annotations: s.regions.filter((r) => r.lo !== null && r.hi !== null).map((r) => ({
        x: (r.lo + r.hi) / 2, y: 1, xref: "x", yref: "paper", text: r.name, showarrow: false,
        yanchor: "bottom", font: { size: 11 } })),
    });
    tbody.replaceChildren(...s.regions.map((r) => rc.el("tr", {},
      rc.el("td", {}, r.name), rc.el("td", {}, r.role || "—"),
      rc.el("td", {}, r.lo === null ? "—" : `${rc.num(r.lo, 2)}–${rc.num(r.hi, 2)}`),
      rc.el("td", { class: "num" }, rc.num(r.integral, 3)),
      rc.el("td", { class: "num" }, rc.num(r.concentration_M, 4)),
      rc.el("td", { class: "num" }, rc.num(r.snr, 0)),
      rc.el("td", { class: "num" }, rc.num(r.line_width_hz, 2)))));
    document.getElementById("spectrum-qc").textContent =
      `yield ${rc.num(s.yield_percent)} %, conversion ${rc.num(s.conversion_percent)} %, QC ${s.qc_status}` +
      (s.qc_reasons.length ? ` (${s.qc_reasons.join("; ")})` : "");
  }

  function logEvent(e) {
    if (seenEvents.has(e.id)) return;
    seenEvents.add(e.id);
    const tbody = document.querySelector("#events tbody");
    const payload = JSON.stringify(e.payload);
    tbody.prepend(rc.el("tr", { "data-event": e.id }, rc.el("td", {}, rc.time(e.time)),
      rc.el("td", {}, e.source), rc.el("td", {}, rc.el("strong", {}, e.kind)),
      rc.el("td", {}, payload === "{}" ? "" : payload)));
  }

  async function refresh() {
    const [campaign, rows, best] = await Promise.all([
      rc.api("GET", `/api/campaigns/${id}`), rc.api("GET", `/api/campaigns/${id}/experiments`),
      rc.api("GET", `/api/campaigns/${id}/best`)]);
    facts(campaign);
    goals = {};
    for (const b of [...best.objectives].reverse()) goals[COLUMNS[b.measure]] = b.goal;  // first wins
    experiments = rows;
    draw();
  }

  async function control(action) {
    try {
      const body = action === "abort" ? { reason: "aborted from the dashboard" } : undefined;
      if (action === "abort" && !window.confirm("Abort this campaign?")) return;
      const result = await rc.api("POST", `/api/campaigns/${id}/${action}`, body);
      rc.toast(result.detail, "ok");
      await refresh();
    } catch (e) { rc.toast(e.message, "bad"); }
  }

  document.addEventListener("DOMContentLoaded", async () => {
    for (const button of document.querySelectorAll("button.control"))
      button.addEventListener("click", () => control(button.dataset.action));
    document.getElementById("measure").addEventListener("change", draw);
    try {
      await refresh();
      const events = await rc.api("GET", `/api/campaigns/${id}/events?limit=200`);
      events.forEach(logEvent);
      const latest = events.length ? events[events.length - 1].id : undefined;
      const later = rc.debounce(() => refresh().catch(() => {}), 300);
      const params = { campaign_id: id };
      if (latest !== undefined) params.after = latest;
      rc.stream(params, { event: (e) => { logEvent(e); later(); } });
      const withSpectrum = [...experiments].reverse().find((e) => e.measurement_id !== null);
      if (withSpectrum) spectrum(withSpectrum);
    } catch (e) { rc.toast(e.message, "bad"); }
  });
})();
