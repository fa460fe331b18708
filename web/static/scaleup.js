// Campaign page, scale-up: the "Scale up" form of a finished campaign, and for a scale-up
// run its report and the yield of every NMR check over time (start-up, collection, drift).
"use strict";
(() => {
  const main = document.querySelector("main");
  const id = Number(main.dataset.campaignId);
  const section = document.getElementById("scaleup");
  const form = document.getElementById("scaleup-form");
  const open = document.getElementById("scaleup-open");
  const CONFIG = { displaylogo: false, responsive: true };
  const LAYOUT = {
    margin: { l: 56, r: 16, t: 10, b: 46 }, font: { size: 12 },
    legend: { orientation: "h", y: -0.22 }, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "#fff",
    xaxis: { title: "time (min)" }, yaxis: { title: "NMR yield (%)" },
  };

  if (open && form) {
    open.addEventListener("click", () => { form.hidden = !form.hidden; });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const list = document.getElementById("scaleup-issues");
      list.replaceChildren();
      const body = {
        amount: form.elements.amount.value, objective: form.elements.objective.value,
        on_drift: form.elements.on_drift.value,
      };
      try {
        const created = await rc.api("POST", `/api/campaigns/${id}/scale-up`, body);
        window.location.href = `/campaigns/${created.id}`;
      } catch (error) {
        const issues = (error.data && error.data.issues) || [{ message: error.message }];
        list.replaceChildren(...issues.map((i) => rc.el("li", {},
          i.line ? `line ${i.line}: ${i.path || ""}: ${i.message}` : i.message)));
      }
    });
  }

  const fact = (label, value) => rc.el("div", {}, rc.el("span", { class: "label" }, label),
    rc.el("span", {}, value));

  function render(d) {
    const r = d.report || {};
    const badge = document.getElementById("scaleup-status");
    badge.textContent = r.status || "not started";
    badge.className = `badge status-${(r.status || "created").split(" ")[0]}`;
    const hours = (r.collection_s || 0) / 3600;
    document.getElementById("scaleup-facts").replaceChildren(
      fact("Product (NMR)", `${rc.num(r.product_mmol ?? 0, 3)} of ${rc.num(r.target_mmol ?? 0, 3)} mmol`),
      fact("Collected", `${rc.num(r.collected_ml ?? 0, 3)} mL in ${rc.num(hours * 60, 3)} min`),
      fact("Mean yield", r.mean_yield_percent == null ? "—" : `${rc.num(r.mean_yield_percent)} %`),
      fact("Productivity", r.productivity_mmol_h == null ? "—" : `${rc.num(r.productivity_mmol_h, 3)} mmol/h`),
      fact("Space-time yield", r.space_time_yield_mmol_l_h == null ? "—"
        : `${rc.num(r.space_time_yield_mmol_l_h, 4)} mmol L⁻¹ h⁻¹`),
      fact("NMR checks", String(d.checks.length)),
    );
    const traces = [];
    for (const [phase, color] of [["startup", "#98a2b3"], ["collecting", "#2563eb"]]) {
      const points = d.checks.filter((c) => c.phase === phase && c.yield_percent !== null);
      traces.push({
        x: points.map((c) => c.minutes), y: points.map((c) => c.yield_percent),
        mode: "markers+lines", name: phase === "startup" ? "start-up (to waste)" : "collecting",
        marker: { color, size: 8 }, line: { color, width: 1 },
      });
    }
    const start = d.checks.length ? d.checks[0].minutes : 0;
    const steady = d.phases.filter((p) => p.phase === "steady");
    if (steady.length && d.checks.length) {
      const x = [start, d.checks[d.checks.length - 1].minutes];
      steady.forEach((p, i) => traces.push({
        x, y: [p.yield_percent, p.yield_percent], mode: "lines", name: i ? "" : "steady-state yield",
        showlegend: i === 0, line: { color: "#16a34a", dash: "dash" },
      }));
    }
    if (d.drift.length) {
      traces.push({
        x: d.drift.map((e) => d.checks.find((c) => c.yield_percent === e.yield)?.minutes ?? null),
        y: d.drift.map((e) => e.yield), mode: "markers", name: "yield drift",
        marker: { color: "#dc2626", size: 14, symbol: "x" },
      });
    }
    if (window.Plotly) window.Plotly.react("plot-scaleup", traces, LAYOUT, CONFIG);
  }

  async function refresh() {
    let d;
    try { d = await rc.api("GET", `/api/campaigns/${id}/scale-up`); } catch (_) { return; }
    if (!d.scale_up) return;
    section.hidden = false;
    render(d);
    const status = document.getElementById("status").textContent.trim();
    if (["created", "running", "paused", "stopping", "aborting"].includes(status)) {
      setTimeout(refresh, 3000);
    }
  }
  refresh();
})();
