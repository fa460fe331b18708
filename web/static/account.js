// Account page: own API tokens; for admins, users.
"use strict";
(() => {
  async function tokens() {
    const rows = await rc.api("GET", "/api/tokens");
    document.querySelector("#tokens tbody").replaceChildren(...rows.map((t) => {
      const revoke = t.revoked || !rc.canOperate() ? (t.revoked ? "revoked" : "")
        : rc.el("button", { type: "button", class: "danger", onclick: async () => {
          try { await rc.api("DELETE", `/api/tokens/${t.id}`); await tokens(); }
          catch (e) { rc.toast(e.message, "bad"); }
        } }, "Revoke");
      return rc.el("tr", {}, rc.el("td", {}, t.id), rc.el("td", {}, t.name),
        rc.el("td", {}, rc.time(t.created_at)), rc.el("td", {}, rc.time(t.last_used_at)),
        rc.el("td", {}, revoke));
    }));
  }

  async function users() {
    const rows = await rc.api("GET", "/api/users");
    document.querySelector("#users tbody").replaceChildren(...rows.map((u) => {
      const toggle = rc.el("button", { type: "button", onclick: async () => {
        try { await rc.api("PATCH", `/api/users/${encodeURIComponent(u.name)}`, { disabled: !u.disabled }); await users(); }
        catch (e) { rc.toast(e.message, "bad"); }
      } }, u.disabled ? "Enable" : "Disable");
      return rc.el("tr", {}, rc.el("td", {}, u.name), rc.el("td", {}, u.role),
        rc.el("td", {}, u.disabled ? "disabled" : "active"), rc.el("td", {}, rc.time(u.created_at)),
        rc.el("td", {}, toggle));
    }));
  }

  document.addEventListener("DOMContentLoaded", () => {
    tokens().catch((e) => rc.toast(e.message, "bad"));
    const create = document.getElementById("token-create");
    if (create) create.addEventListener("click", async () => {
      const name = document.getElementById("token-name").value.trim() || "token";
      try {
        const t = await rc.api("POST", "/api/tokens", { name });
        const shown = document.getElementById("token-new");
        shown.hidden = false;
        shown.textContent = `New token "${t.name}" (copy it now, it is not shown again): ${t.token}`;
        await tokens();
      } catch (e) { rc.toast(e.message, "bad"); }
    });
    if (document.getElementById("users")) {
      users().catch((e) => rc.toast(e.message, "bad"));
      document.getElementById("user-add").addEventListener("click", async () => {
        const body = {
          name: document.getElementById("user-name").value.trim(),
          role: document.getElementById("user-role").value,
          password: document.getElementById("user-password").value,
        };
        try { await rc.api("POST", "/api/users", body); rc.toast(`added ${body.name}`, "ok"); await users(); }
        catch (e) { rc.toast(e.message, "bad"); }
      });
    }
  });
})();
