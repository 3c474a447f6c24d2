// The job page: status, progress and ETA, live curves, the plan, attempts, downloads, cancel.
// History: GET /metrics?max_points=2000 once (a long history comes back cut to size), then the
// job's SSE stream appends its step and epoch points as they come.
"use strict";

(() => {
  const { api, el, number, showError } = Trainyard;
  const root = document.getElementById("job-root");
  const jobId = root.dataset.jobId;
  const ACTIVE = Trainyard.ACTIVE;
  const ETA_EPOCHS = 5; // the ETA is the mean epoch time of this many recent epochs, times those left

  const steps = [];  // StepPoint, in step order
  const epochs = []; // EpochPoint, in step order
  let job = null;

  // The page's frame, built once; the parts below fill it.
  const head = el("div", { class: "job-head" });
  const progressBox = el("div", { class: "job-progress" });
  const errorBox = el("p", { class: "error", id: "job-error", hidden: true });
  const actions = el("div", { class: "toolbar" });
  const chartsBox = el("div", { class: "job-charts" });
  const planBox = el("div", { id: "job-plan" });
  const attemptsBox = el("div", { id: "job-attempts" });
  root.append(head, progressBox, errorBox, actions, chartsBox,
              el("h2", {}, "Plan"), planBox, el("h2", {}, "Attempts"), attemptsBox);

  const chartBox = id => { const box = el("div", { id }); chartsBox.append(box); return box; };
  const lossChart = TrainyardChart.create(chartBox("chart-loss"), { title: "Loss", xLabel: "step" });
  const accChart = TrainyardChart.create(chartBox("chart-accuracy"), { title: "Validation accuracy", xLabel: "epoch" });
  const lrChart = TrainyardChart.create(chartBox("chart-lr"), { title: "Learning rate", xLabel: "step" });
  // Per-layer gradient norms on a log scale: a vanishing gradient sinks, an exploding one climbs.
  const gradChart = TrainyardChart.create(chartBox("chart-grad"), { title: "Gradient norm per layer (log)",
                                                                     xLabel: "epoch", logY: true });

  // replaceChildren() writes null as the text "null": the absent parts are left out first.
  const fill = (node, ...parts) => node.replaceChildren(...parts.filter(x => x !== null && x !== undefined && x !== ""));
  const col = (points, key) => points.map(p => p[key] ?? null);

  function drawCharts() {
    const epochSteps = col(epochs, "step");
    lossChart.update([
      { label: "train loss (steps)", x: col(steps, "step"), y: col(steps, "train_loss"), width: 1 },
      { label: "train loss (epoch)", x: epochSteps, y: col(epochs, "train_loss"), width: 2 },
      { label: "val loss", x: epochSteps, y: col(epochs, "val_loss"), width: 2 },
    ]);
    accChart.update([{ label: "val accuracy", x: col(epochs, "epoch"), y: col(epochs, "val_accuracy") }]);
    const stepLr = steps.filter(p => p.lr !== null && p.lr !== undefined);
    lrChart.update([stepLr.length ? { label: "lr", x: col(stepLr, "step"), y: col(stepLr, "lr") }
                                  : { label: "lr", x: epochSteps, y: col(epochs, "lr") }]);
    const layers = [...new Set(epochs.flatMap(p => Object.keys(p.grad_norms || {})))];
    gradChart.update(layers.map(layer => ({
      label: layer, x: col(epochs, "epoch"), y: epochs.map(p => (p.grad_norms || {})[layer] ?? null),
    })));
  }

  function eta() {
    const recent = epochs.slice(-ETA_EPOCHS).map(p => p.epoch_seconds).filter(Number.isFinite);
    if (!job || job.status !== "running" || !recent.length) return null;
    const left = job.progress.epochs - job.progress.epoch;
    const seconds = left * recent.reduce((a, b) => a + b, 0) / recent.length;
    return seconds < 60 ? `${Math.round(seconds)} s` : `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  }

  function drawJob() {
    const p = job.progress;
    fill(head, 
      el("span", { class: `status ${job.status}`, id: "job-status" }, job.status),
      " ", el("code", {}, job.id),
      job.name ? el("strong", { id: "job-name" }, " ", job.name) : null,
      Object.keys(job.labels || {}).length
        ? el("span", { class: "muted", id: "job-labels" }, " · ",
             Object.entries(job.labels).map(([k, v]) => `${k}=${v}`).join(", "))
        : null,
      job.study_id ? el("span", {}, " · study ", el("a", { href: `/studies/${job.study_id}` }, job.study_id),
                        " · variant ", job.variant || "") : null,
      el("span", { class: "muted" }, ` · ${number(job.parameter_count)} parameters · ${job.device || "no device yet"}`),
    );
    const time = eta();
    fill(progressBox, 
      el("progress", { max: p.total_steps || 1, value: p.step }),
      ` epoch ${p.epoch}/${p.epochs} · step ${p.step}/${p.total_steps}`,
      time ? ` · ETA ${time}` : "",
      job.waiting_reason ? el("span", { class: "muted" }, " · ", job.waiting_reason) : null,
    );
    errorBox.textContent = job.error || "";
    errorBox.hidden = !job.error;
    const links = job.status === "succeeded"
      ? [el("a", { class: "button", href: `/v1/jobs/${job.id}/weights`, download: `${job.id}.safetensors` }, "Weights (.safetensors)"),
         el("a", { class: "button", href: `/v1/jobs/${job.id}/weights?format=onnx`, download: `${job.id}.onnx` }, "ONNX")]
      : [];
    const cancel = ACTIVE.includes(job.status) && !job.cancel_requested
      ? el("button", { class: "danger", id: "job-cancel", type: "button" }, "Cancel") : null;
    if (cancel) cancel.addEventListener("click", cancelJob);
    fill(actions, ...links, cancel,
                            job.cancel_requested && ACTIVE.includes(job.status) ? el("span", { class: "muted" }, "cancelling…") : null,
                            el("a", { href: `/compare?jobs=${job.id}` }, "Open in compare"));
    drawAttempts();
  }

  function drawAttempts() {
    const rows = (job.attempt_history || []).map(a => el("tr", {},
      el("td", { class: "num" }, a.attempt), el("td", {}, a.worker || "–"), el("td", {}, a.started_at),
      el("td", {}, a.ended_at || "–"), el("td", {}, a.outcome || "–"), el("td", {}, a.reason || "")));
    attemptsBox.replaceChildren(rows.length
      ? el("table", {}, el("thead", {}, el("tr", {}, ["#", "worker", "started", "ended", "outcome", "reason"].map(h => el("th", {}, h)))),
           el("tbody", {}, rows))
      : el("p", { class: "muted" }, "No attempt yet."));
  }

  async function drawPlan() {
    try {
      const served = await api(`/v1/jobs/${jobId}/spec`);
      const plan = await api("/v1/jobs", { method: "POST", params: { dry_run: "true" }, body: served.spec });
      const flat = [];
      const walk = (layers, depth) => layers.forEach(l => { flat.push([l, depth]); walk(l.layers || [], depth + 1); });
      walk(plan.layers, 0);
      planBox.replaceChildren(
        el("p", {}, `${number(plan.parameter_count)} parameters · ${number(plan.flops_per_step)} FLOPs per step · `,
           `~${number(plan.memory_bytes / 2 ** 20, 3)} MiB training memory · ${plan.train_rows} train / `,
           `${plan.validation_rows} validation rows · ${plan.steps_per_epoch} steps per epoch, ${plan.total_steps} in all`),
        el("table", {}, el("thead", {}, el("tr", {}, ["layer", "type", "input", "output", "parameters"].map(h => el("th", {}, h)))),
           el("tbody", {}, flat.map(([l, depth]) => el("tr", {},
             el("td", {}, "\u00a0\u00a0".repeat(depth) + l.path), el("td", {}, l.type),
             el("td", {}, JSON.stringify(l.input_shape)), el("td", {}, JSON.stringify(l.output_shape)),
             el("td", { class: "num" }, number(l.parameters)))))),
        ...plan.warnings.map(w => el("p", { class: "muted" }, w)));
    } catch (e) {
      // A job whose dataset was deleted since cannot be planned again: say so, keep the page.
      planBox.replaceChildren(el("p", { class: "muted" }, "The plan is not available: ", e.message));
    }
  }

  async function refreshJob() {
    job = await api(`/v1/jobs/${jobId}`);
    drawJob();
  }

  async function cancelJob() {
    try {
      job = await api(`/v1/jobs/${jobId}/cancel`, { method: "POST" });
      drawJob();
    } catch (e) { showError(e); }
  }

  // A point from the stream: appended unless the initial history already had it.
  function add(list, point) {
    const last = list.length ? list[list.length - 1].step : -1;
    if (point.step > last) { list.push(point); return true; }
    return false;
  }

  let refreshTimer = null;
  function refreshSoon() {
    if (refreshTimer === null) refreshTimer = setTimeout(() => { refreshTimer = null; refreshJob().catch(showError); }, 300);
  }

  function follow(after) {
    // From the event the history was read at: nothing missed; add() drops a point seen twice.
    const source = new EventSource(`/v1/jobs/${jobId}/events?after=${after}`);
    const onPoint = list => e => {
      if (add(list, JSON.parse(e.data))) drawCharts();
      if (list === epochs) refreshSoon();
    };
    source.addEventListener("step", onPoint(steps));
    source.addEventListener("epoch", onPoint(epochs));
    source.addEventListener("rewind", e => {
      // Training went back to a checkpoint: what came after it is no longer the job's history.
      const step = JSON.parse(e.data).step;
      for (const list of [steps, epochs]) while (list.length && list[list.length - 1].step > step) list.pop();
      drawCharts();
    });
    source.addEventListener("status", refreshSoon);
    source.addEventListener("end", () => { source.close(); refreshJob().catch(showError); });
  }

  async function start() {
    await refreshJob();
    const history = await api(`/v1/jobs/${jobId}/metrics`, { params: { max_points: 2000 } });
    steps.push(...history.steps);
    epochs.push(...history.epochs);
    drawCharts();
    drawJob();
    drawPlan();
    if (ACTIVE.includes(job.status)) follow(history.last_event_id);
  }

  start().catch(showError);
})();
