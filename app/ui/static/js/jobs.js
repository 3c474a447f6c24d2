// The jobs list: newest first, filtered by status, study, a label (key:value) and a name prefix
// (all kept in the URL), a page at a time.
// While a shown job is active the page is read again every 2 s: one request for every row,
// cheaper than a stream per running row.
"use strict";

(() => {
  const { api, el, number, showError } = Trainyard;
  const root = document.getElementById("jobs-root");
  const PAGE = 25;
  const POLL_MS = 2000;
  const ACTIVE = Trainyard.ACTIVE;
  const STATUSES = ["", ...ACTIVE, "succeeded", "failed", "cancelled", "pruned"];

  const query = new URLSearchParams(location.search);
  const state = { status: query.get("status") || "", studyId: query.get("study_id") || "",
                  label: query.get("label") || "", name: query.get("name_prefix") || "",
                  offset: Number(query.get("offset")) || 0 };
  const picked = new Set(); // job ids ticked for compare, kept across refreshes and pages

  const statusSelect = el("select", { id: "jobs-status", "aria-label": "status" },
                          STATUSES.map(s => el("option", { value: s }, s || "any status")));
  statusSelect.value = state.status;
  const studyInput = el("input", { id: "jobs-study", placeholder: "study id", value: state.studyId, "aria-label": "study id" });
  const labelInput = el("input", { id: "jobs-label", placeholder: "label key:value", value: state.label, "aria-label": "label" });
  const nameInput = el("input", { id: "jobs-name", placeholder: "name starts with", value: state.name, "aria-label": "name prefix" });
  const compareButton = el("button", { class: "primary", id: "jobs-compare", type: "button", disabled: true }, "Compare");
  const count = el("span", { class: "muted" });
  const prev = el("button", { type: "button", id: "jobs-prev" }, "← Newer");
  const next = el("button", { type: "button", id: "jobs-next" }, "Older →");
  const tbody = el("tbody");
  root.append(
    el("div", { class: "toolbar" }, statusSelect, studyInput, labelInput, nameInput, compareButton, count),
    el("table", { id: "jobs-table" },
       el("thead", {}, el("tr", {}, ["", "job", "status", "progress", "latest loss", "val loss", "study / variant", "created"]
         .map(h => el("th", {}, h)))),
       tbody),
    el("div", { class: "toolbar" }, prev, next));

  function syncUrl() {
    const q = new URLSearchParams();
    if (state.status) q.set("status", state.status);
    if (state.studyId) q.set("study_id", state.studyId);
    if (state.label) q.set("label", state.label);
    if (state.name) q.set("name_prefix", state.name);
    if (state.offset) q.set("offset", state.offset);
    history.replaceState(null, "", q.toString() ? `/?${q}` : "/");
  }

  function row(job) {
    const box = el("input", { type: "checkbox", class: "pick", value: job.id, "aria-label": `pick ${job.id}`,
                              checked: picked.has(job.id) });
    box.addEventListener("change", () => {
      if (box.checked) picked.add(job.id); else picked.delete(job.id);
      compareButton.disabled = picked.size === 0;
      compareButton.textContent = picked.size ? `Compare (${picked.size})` : "Compare";
    });
    const p = job.progress;
    const latest = job.latest_metrics || {};
    return el("tr", { dataset: { jobId: job.id, status: job.status } },
      el("td", {}, box),
      el("td", {}, el("a", { href: `/jobs/${job.id}` }, job.id),
         job.name ? el("div", { class: "job-name" }, job.name) : null,
         Object.keys(job.labels || {}).length
           ? el("div", { class: "muted job-labels" }, Object.entries(job.labels).map(([k, v]) => `${k}=${v}`).join(" "))
           : null),
      el("td", {}, el("span", { class: `status ${job.status}` }, job.status)),
      el("td", {}, el("progress", { max: p.total_steps || 1, value: p.step }), ` ${p.epoch}/${p.epochs}`),
      el("td", { class: "num" }, number(latest.train_loss)),
      el("td", { class: "num" }, number(latest.val_loss)),
      el("td", {}, job.study_id ? el("a", { href: `/studies/${job.study_id}` }, job.variant || job.study_id) : ""),
      el("td", { class: "muted" }, new Date(job.created_at).toLocaleString()));
  }

  let timer = null;
  async function load() {
    clearTimeout(timer);
    try {
      const page = await api("/v1/jobs", { params: { status: state.status, study_id: state.studyId, label: state.label,
                                                     name_prefix: state.name, limit: PAGE, offset: state.offset } });
      tbody.replaceChildren(...page.items.map(row));
      if (!page.items.length) tbody.append(el("tr", {}, el("td", { colspan: 8, class: "muted" }, "No jobs.")));
      count.textContent = `${page.total} job${page.total === 1 ? "" : "s"}`;
      prev.disabled = state.offset === 0;
      next.disabled = state.offset + PAGE >= page.total;
      if (page.items.some(j => ACTIVE.includes(j.status))) timer = setTimeout(load, POLL_MS);
    } catch (e) {
      showError(e);
    }
  }

  const refilter = () => { state.offset = 0; syncUrl(); load(); };
  statusSelect.addEventListener("change", () => { state.status = statusSelect.value; refilter(); });
  studyInput.addEventListener("change", () => { state.studyId = studyInput.value.trim(); refilter(); });
  labelInput.addEventListener("change", () => { state.label = labelInput.value.trim(); refilter(); });
  nameInput.addEventListener("change", () => { state.name = nameInput.value.trim(); refilter(); });
  prev.addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE); syncUrl(); load(); });
  next.addEventListener("click", () => { state.offset += PAGE; syncUrl(); load(); });
  compareButton.addEventListener("click", () => { location.assign(`/compare?jobs=${[...picked].join(",")}`); });
  load();
})();
