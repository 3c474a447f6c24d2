// The study page: the leaderboard over the seeds, each variant's mean curve with its seed band
// (min to max), and the members. Live from the study's SSE stream: an event asks for a fresh
// read of the study and its curves, at most once a second; while the study runs the curves are
// also read every few seconds, since members' epochs make no study event.
"use strict";

(() => {
  const { api, el, number, showError } = Trainyard;
  const root = document.getElementById("study-root");
  const studyId = root.dataset.studyId;
  const THROTTLE_MS = 1000;
  const POLL_MS = 3000;

  // Whether a member trained in a pack (docs/studies.md): "with N" members, else alone and, when
  // its spec cannot be packed, why (also the cell's title).
  const packed = m => m.packed_with ? `with ${m.packed_with}` : (m.unpackable ? `alone: ${m.unpackable}` : "alone");

  const head = el("div", { class: "study-head" });
  const summary = el("p", { id: "study-summary" });
  const board = el("div", { id: "study-leaderboard" });
  const metricSelect = el("select", { id: "study-metric", "aria-label": "metric" },
                          ["val_loss", "train_loss", "val_accuracy", "lr"].map(m => el("option", { value: m }, m)));
  const logBox = el("input", { type: "checkbox", id: "study-log" });
  const chartBox = el("div", { id: "study-chart" });
  const members = el("div", { id: "study-members" });
  root.append(head, summary, el("h2", {}, "Leaderboard"), board,
              el("h2", {}, "Curves"), el("div", { class: "toolbar" }, el("label", {}, "metric ", metricSelect),
                                         el("label", {}, logBox, " log y")),
              chartBox, el("h2", {}, "Members"), members);
  const chart = TrainyardChart.create(chartBox, { xLabel: "epoch", height: 380 });
  let study = null;

  const stat = s => (s && s.n ? (s.std !== null ? `${number(s.mean)} ± ${number(s.std, 2)}` : number(s.mean)) : "–");

  function drawStudy() {
    const lb = study.leaderboard;
    head.replaceChildren(el("span", { class: `status ${study.status}`, id: "study-status" }, study.status), " ",
                         el("strong", {}, study.name || study.id), " ",
                         el("span", { class: "muted" }, `${study.kind} · objective ${lb.objective.metric} (${lb.objective.mode})`,
                            ` · ${Object.entries(study.counts).map(([k, v]) => `${v} ${k}`).join(", ")} of ${study.planned}`),
                         " ", el("a", { href: `/?study_id=${study.id}` }, "jobs"));
    summary.textContent = lb.summary;
    const target = lb.objective.target !== null && lb.objective.target !== undefined;
    const headers = ["rank", "variant", "members", "final", "best", ...(target ? ["reached target", "epochs to target"] : []),
                     "AUC", "wall s"];
    board.replaceChildren(el("table", { id: "leaderboard" },
      el("thead", {}, el("tr", {}, headers.map(h => el("th", {}, h)))),
      el("tbody", {}, lb.rows.map(r => el("tr", { class: r.variant === lb.winner ? "winner" : null },
        el("td", { class: "num" }, r.rank ?? "–"),
        el("td", {}, r.variant, r.variant === lb.winner ? el("span", { class: "status succeeded" }, " winner") : ""),
        el("td", {}, Object.entries(r.members).map(([k, v]) => `${v} ${k}`).join(", ")),
        el("td", { class: "num" }, stat(r.final)), el("td", { class: "num" }, stat(r.best)),
        ...(target ? [el("td", { class: "num" }, r.to_target ? `${r.to_target.reached}/${r.to_target.n}` : "–"),
                      el("td", { class: "num" }, stat(r.to_target && r.to_target.epochs))] : []),
        el("td", { class: "num" }, stat(r.auc)), el("td", { class: "num" }, stat(r.wall_seconds)))))),
      lb.lead ? el("p", { class: "muted" }, `lead over ${lb.lead.against}: Welch's t p = ${number(lb.lead.p_value)}`,
                   lb.lead.paired_p_value !== null ? `, paired p = ${number(lb.lead.paired_p_value)} (${lb.lead.n_pairs} pairs)` : "",
                   lb.lead.note ? ` (${lb.lead.note})` : "") : "");
    members.replaceChildren(el("table", {},
      el("thead", {}, el("tr", {}, ["#", "job", "variant", "seed", "status", "packed", "error"].map(h => el("th", {}, h)))),
      el("tbody", {}, study.members.map(m => el("tr", {},
        el("td", { class: "num" }, m.member), el("td", {}, el("a", { href: `/jobs/${m.job_id}` }, m.job_id)),
        el("td", {}, m.variant), el("td", { class: "num" }, m.seed),
        el("td", {}, el("span", { class: `status ${m.status}` }, m.status)),
        el("td", { class: "packed", title: m.unpackable || "" }, packed(m)),
        el("td", { class: "error" }, m.error || ""))))));
  }

  async function drawCurves() {
    const curves = await api(`/v1/studies/${studyId}/curves`, { params: { metric: metricSelect.value, x: "epoch" } });
    // Per variant three series: the mean, and the max and min bounding its seed band.
    const series = [], bands = [];
    curves.variants.forEach((v, i) => {
      const c = TrainyardChart.color(i);
      const at = series.length;
      series.push({ label: v.variant, x: v.x, y: v.mean, color: c, width: 2 },
                  { label: `${v.variant} max`, x: v.x, y: v.max, color: c, width: 0.5, dash: [4, 4], hidden: true },
                  { label: `${v.variant} min`, x: v.x, y: v.min, color: c, width: 0.5, dash: [4, 4], hidden: true });
      bands.push([at + 1, at + 2]);
    });
    chart.update(series, { bands });
  }

  async function refresh() {
    study = await api(`/v1/studies/${studyId}`);
    if (!metricSelect.dataset.chosen) metricSelect.value = study.objective.metric;
    drawStudy();
    await drawCurves();
  }

  // At most one refresh a second, however many events arrive.
  let last = 0, timer = null;
  function refreshSoon() {
    if (timer !== null) return;
    timer = setTimeout(() => { timer = null; last = Date.now(); refresh().catch(showError); },
                       Math.max(0, THROTTLE_MS - (Date.now() - last)));
  }

  function follow() {
    const source = new EventSource(`/v1/studies/${studyId}/events`);
    for (const kind of ["member", "status", "leaderboard"]) source.addEventListener(kind, refreshSoon);
    source.addEventListener("end", () => { source.close(); clearInterval(poll); refreshSoon(); });
    const poll = setInterval(refreshSoon, POLL_MS);
  }

  metricSelect.addEventListener("change", () => { metricSelect.dataset.chosen = "1"; drawCurves().catch(showError); });
  logBox.addEventListener("change", () => chart.setLogY(logBox.checked));
  refresh().then(() => { if (study.status === "running") follow(); }).catch(showError);
})();
