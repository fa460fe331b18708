// Lab page, simulated lab only: what each device physically does (the simulator's
// GET /state, relayed by /api/virtual-lab/state) beside what its driver reports.
"use strict";
(() => {
  const POLL_MS = 1000;
  const drivers = new Map(); // device name -> latest readings from /api/devices
  let panel = null;

  const pct = (v) => `${Math.round(v * 10) / 10} %`;
  const flow = (v) => `${Math.round(v * 1000) / 1000} mL/min`;

  // Per device: [row label, physical text, driver text, do they agree].
  function rows(name, truth) {
    const seen = drivers.get(name) || {};
    if (truth.kind === "pump") {
      const running = seen.state === "running";
      const driverFlow = running ? seen.flow_ml_min || 0 : 0;
      return [[name, truth.running ? `running · ${flow(truth.flow_ml_min)}` : "stopped",
        seen.state === undefined ? "—" : (running ? `running · ${flow(driverFlow)}` : seen.state),
        seen.state === undefined || (truth.running === running &&
          Math.abs(truth.flow_ml_min - driverFlow) < 1e-3)]];
    }
    if (truth.kind === "valve") {
      return [[name, `position ${truth.position}`,
        seen.position === undefined ? "—" : `position ${seen.position}`,
        seen.position === undefined || String(seen.position) === truth.position]];
    }
    if (truth.kind === "photoreactor") {
      const light = truth.light, temp = truth.temperature;
      const lightOn = seen.light_on === true;
      const control = seen.temperature_control === "running";
      return [
        [`${name} light`, light.on ? `on · ${pct(light.output_percent)}` : "off",
          seen.light_on === undefined ? "—" : (lightOn ? `on · ${pct(seen.light_percent || 0)}` : "off"),
          seen.light_on === undefined || (light.on === lightOn &&
            Math.abs(light.output_percent - (lightOn ? seen.light_percent || 0 : 0)) < 0.2)],
        [`${name} temperature`,
          `${temp.reading_c} °C, setpoint ${temp.setpoint_c} °C, control ${temp.control ? "on" : "off"}`,
          seen.setpoint_c === undefined ? "—" :
            `${seen.temperature_c} °C, setpoint ${seen.setpoint_c} °C, control ${control ? "on" : "off"}`,
          seen.setpoint_c === undefined || (temp.control === control && temp.setpoint_c === seen.setpoint_c)],
      ];
    }
    if (truth.kind === "nmr") {
      return [[name, truth.busy ? `busy: ${truth.busy}` : "idle", "—", true]];
    }
    return [];
  }

  function show(answer) {
    const body = panel.querySelector("tbody");
    const note = panel.querySelector(".vl-note");
    if (answer.error || !answer.state) {
      note.textContent = `The simulated lab does not answer: ${answer.error || "no state"}`;
      body.replaceChildren();
      return;
    }
    const state = answer.state;
    note.textContent = `Simulated time ${new Date(state.simulated_time * 1000).toLocaleString()} ` +
      `(x${state.speed}). Read from the simulators themselves, not from the drivers.`;
    body.replaceChildren(...Object.entries(state.devices).flatMap(([name, truth]) =>
      rows(name, truth).map(([label, physical, driver, agree]) =>
        rc.el("tr", { class: agree ? "" : "differs", "data-vl": label },
          rc.el("td", {}, label), rc.el("td", { "data-physical": "" }, physical),
          rc.el("td", {}, driver)))));
  }

  async function poll() {
    try { show(await rc.api("GET", "/api/virtual-lab/state")); } catch (e) { /* next poll */ }
  }

  document.addEventListener("lab:devices", (event) => {
    for (const device of event.detail) drivers.set(device.name, device.readings || {});
  });

  document.addEventListener("DOMContentLoaded", async () => {
    panel = document.getElementById("virtual-lab");
    if (!panel) return;
    let first;
    try { first = await rc.api("GET", "/api/virtual-lab/state"); } catch (e) { return; }
    if (!first.simulated) return; // a real lab: nothing to compare against
    panel.hidden = false;
    show(first);
    setInterval(poll, POLL_MS);
  });
})();
