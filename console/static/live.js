// Live events and gate status over Server-Sent Events. Text only (textContent), never HTML.
"use strict";
(function () {
  const page = document.body.dataset.page;
  const state = document.getElementById("stream-state");
  const MAX_ROWS = 500;

  function clock(iso) {
    const d = new Date(iso);
    return isNaN(d) ? iso : d.toISOString().replace("T", " ").slice(0, 19) + " UTC";
  }

  function cell(row, text, cls) {
    const td = document.createElement("td");
    if (cls) td.className = cls;
    td.textContent = text == null ? "" : String(text);
    row.appendChild(td);
    return td;
  }

  function timeCell(row, iso, cls) {
    const td = cell(row, "", cls);
    const t = document.createElement("time");
    t.dateTime = iso;
    t.textContent = clock(iso);
    td.appendChild(t);
  }

  function addEvent(item) {
    const body = document.querySelector("#events tbody");
    if (!body) return;
    for (const row of body.rows) {
      if (row.dataset.id === item.id) return; // already shown
    }
    const row = document.createElement("tr");
    row.dataset.id = item.id;
    row.dataset.kind = item.kind;
    row.className = "outcome-" + String(item.outcome).toLowerCase() + " fresh";
    timeCell(row, item.ts);
    cell(row, item.kind);
    cell(row, item.gate);
    cell(row, item.outcome, "verdict");
    cell(row, item.reason);
    cell(row, item.subject, "subject");
    cell(row, item.detail);
    body.insertBefore(row, body.firstChild);
    while (body.rows.length > MAX_ROWS) body.deleteRow(body.rows.length - 1);
  }

  function setGate(gate) {
    const body = document.querySelector("#gates tbody");
    if (!body) return;
    const empty = document.getElementById("no-gates");
    if (empty) empty.remove();
    let row = null;
    for (const r of body.rows) {
      if (r.dataset.gateId === gate.gate_id) row = r;
    }
    const fresh = document.createElement("tr");
    fresh.id = "gate-" + gate.gate_id;
    fresh.dataset.gateId = gate.gate_id;
    fresh.className = "state-" + gate.state;
    cell(fresh, gate.gate_id);
    cell(fresh, gate.state, "state");
    timeCell(fresh, gate.changed_at, "since");
    if (gate.last_seen) timeCell(fresh, gate.last_seen, "seen");
    else cell(fresh, "-", "seen");
    cell(fresh, gate.firmware);
    if (row) body.replaceChild(fresh, row);
    else body.appendChild(fresh);
  }

  if (page !== "events" && page !== "gates") return;
  const source = new EventSource("/stream");
  source.onopen = function () { if (state) state.textContent = "live"; };
  source.onerror = function () {
    if (state) state.textContent = source.readyState === EventSource.CLOSED ? "closed (log in again)" : "reconnecting";
  };
  source.addEventListener("feed", function (e) {
    if (page === "events") addEvent(JSON.parse(e.data));
  });
  source.addEventListener("gate", function (e) {
    if (page === "gates") setGate(JSON.parse(e.data));
  });
})();
