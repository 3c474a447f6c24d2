// Compare: several jobs' epoch curves on one chart (?jobs=a,b,...), with a metric, the x axis,
// a log y scale and EMA smoothing to choose; the shown data as CSV and the chart as PNG.
// Without ?jobs= it lists the recent jobs to pick from.
"use strict";

(() => {
  const { api, el, showError } = Trainyard;
  const root = document.getElementById("compare-root");
  const METRICS = ["train_loss", "val_loss", "val_accuracy", "lr"];
  const X_AXES = ["epoch", "step", "seconds"];
  const MAX_POINTS = 2000;

  const query = new URLSearchParams(location.search);
  const ids = (query.get("jobs") || "").split(",").map(s => s.trim()).filter(Boolean);

  if (!ids.length) { picker(); return; }

  const metricSelect = el("select", { id: "compare-metric", "aria-label": "metric" },
                          METRICS.map(m => el("option", { value: m }, m)));
  metricSelect.value = METRICS.includes(query.get("metric")) ? query.get("metric") : "val_loss";
  const xSelect = el("select", { id: "compare-x", "aria-label": "x axis" }, X_AXES.map(x => el("option", { value: x }, x)));
  const logBox = el("input", { type: "checkbox", id: "compare-log" });
  const smoothing = el("input", { type: "range", id: "compare-smoothing", min: 0, max: 0.99, step: 0.01, value: 0 });
  const smoothingValue = el("output", { id: "compare-smoothing-value" }, "0");
  const csvButton = el("button", { type: "button", id: "compare-csv" }, "CSV");
  const pngButton = el("button", { type: "button", id: "compare-png" }, "PNG");
  const chartBox = el("div", { id: "compare-chart" });
  root.append(el("div", { class: "toolbar" },
    el("label", {}, "metric ", metricSelect), el("label", {}, "x ", xSelect),
    el("label", {}, logBox, " log y"), el("label", {}, "smoothing ", smoothing, " ", smoothingValue),
    csvButton, pngButton), chartBox);
  const chart = TrainyardChart.create(chartBox, { title: "", xLabel: "epoch", height: 420 });

  const runs = []; // {job, epochs}, in the order of ?jobs=

  // TensorBoard's debiased exponential moving average: the running mean starts at 0 and is
  // divided by (1 - weight^n), so the first points are not pulled towards 0. Non-finite values
  // are kept as they are and do not enter the average.
  function ema(values, weight) {
    if (!weight) return values;
    let last = 0, n = 0;
    return values.map(v => {
      if (v === null || !Number.isFinite(v)) return v;
      last = last * weight + (1 - weight) * v;
      n += 1;
      return last / (1 - weight ** n);
    });
  }

  // x of each epoch point: its epoch, its step, or the training seconds through it.
  function xs(epochs, axis) {
    if (axis !== "seconds") return epochs.map(p => p[axis]);
    let total = 0;
    return epochs.map(p => (total += p.epoch_seconds || 0));
  }

  const label = job => (job.variant ? `${job.variant} ` : "") + job.id.slice(0, 12);

  // What the chart shows now, one entry per job: its label, x and (smoothed) y.
  function shown() {
    const metric = metricSelect.value, axis = xSelect.value, weight = Number(smoothing.value);
    return runs.map(({ job, epochs }) => {
      const x = xs(epochs, axis);
      const kept = epochs.map((p, i) => i).filter(i => epochs[i][metric] !== null && epochs[i][metric] !== undefined);
      return { label: label(job), jobId: job.id, x: kept.map(i => x[i]), y: ema(kept.map(i => epochs[i][metric]), weight) };
    });
  }

  function draw() {
    chartBox.dataset.smoothing = smoothing.value;
    chartBox.dataset.metric = metricSelect.value;
    chart.update(shown(), { now: true });
  }

  function csv() {
    const axis = xSelect.value, metric = metricSelect.value;
    const lines = [`job,label,${axis},${metric}`];
    const quote = s => `"${String(s).replaceAll('"', '""')}"`;
    for (const s of shown()) s.x.forEach((x, i) => lines.push([s.jobId, quote(s.label), x, s.y[i]].join(",")));
    TrainyardChart.download(new Blob([lines.join("\n") + "\n"], { type: "text/csv" }), `compare-${metric}.csv`);
  }

  // Loaded whole, then again every few seconds while any of the jobs still trains: a compare view
  // follows live runs as the job page does, with one cheap downsampled read per job.
  const ACTIVE = Trainyard.ACTIVE;
  async function load() {
    const loaded = await Promise.all(ids.map(async id => {
      const [job, metrics] = await Promise.all([api(`/v1/jobs/${id}`),
                                                api(`/v1/jobs/${id}/metrics`, { params: { max_points: MAX_POINTS } })]);
      return { job, epochs: metrics.epochs };
    }));
    runs.splice(0, runs.length, ...loaded);
    draw();
    if (loaded.some(r => ACTIVE.includes(r.job.status))) setTimeout(() => load().catch(showError), 3000);
  }

  metricSelect.addEventListener("change", draw);
  xSelect.addEventListener("change", () => {
    chart.setOptions({ xLabel: xSelect.value });
    draw();
  });
  logBox.addEventListener("change", () => chart.setLogY(logBox.checked));
  smoothing.addEventListener("input", () => { smoothingValue.textContent = smoothing.value; draw(); });
  csvButton.addEventListener("click", csv);
  pngButton.addEventListener("click", async () => TrainyardChart.download(await chart.png(), `compare-${metricSelect.value}.png`));
  load().catch(showError);

  // No ?jobs=: the recent jobs, to tick and compare.
  function picker() {
    const list = el("tbody");
    const go = el("button", { class: "primary", id: "compare-go", type: "button" }, "Compare");
    root.append(el("p", { class: "muted" }, "Pick the jobs to compare."),
                el("table", {}, el("thead", {}, el("tr", {}, ["", "job", "status", "variant"].map(h => el("th", {}, h)))), list),
                el("div", { class: "toolbar" }, go));
    go.addEventListener("click", () => {
      const chosen = [...list.querySelectorAll("input:checked")].map(b => b.value);
      if (chosen.length) location.assign(`/compare?jobs=${chosen.join(",")}`);
    });
    api("/v1/jobs", { params: { limit: 50 } }).then(page => {
      list.replaceChildren(...page.items.map(j => el("tr", {},
        el("td", {}, el("input", { type: "checkbox", value: j.id, "aria-label": `pick ${j.id}` })),
        el("td", {}, el("a", { href: `/jobs/${j.id}` }, j.id)),
        el("td", {}, el("span", { class: `status ${j.status}` }, j.status)), el("td", {}, j.variant || ""))));
    }).catch(showError);
  }
})();
