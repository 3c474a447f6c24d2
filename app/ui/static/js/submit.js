// /submit: a JSON editor for a job spec, checked by a dry run as you type (debounced), showing the
// plan or the field errors in place; Submit queues it (POST /v1/jobs) and goes to its page.
// The ready specs come from app/ui/static/templates.json (tests/api/test_dashboard_templates.py
// dry-runs each). Error messages echo what was typed: they go in as text only.
"use strict";

(() => {
  const { api, el, number, showError, ApiError } = Trainyard;
  const DEBOUNCE_MS = 400;
  const root = document.getElementById("submit-root");
  const editor = document.getElementById("submit-spec");
  const picker = document.getElementById("submit-template");
  const button = document.getElementById("submit-button");
  const state = document.getElementById("submit-state");
  let templates = [];
  let timer = null;
  let generation = 0;  // answers to older dry runs are dropped: only the latest text's counts

  // ---- reading the editor -----------------------------------------------------------------

  // Where JSON text first goes wrong, as a character offset. JSON.parse says so only for some
  // errors ("at position 42"), not for others ("Unexpected token 'x', ... is not valid JSON"),
  // so this small scanner of the JSON grammar finds it; JSON.parse still says what is wrong.
  function errorOffset(text) {
    let i = 0;
    const ws = () => { while (i < text.length && " \t\n\r".includes(text[i])) i += 1; };
    const fail = () => { throw i; };
    const literal = word => { if (text.startsWith(word, i)) i += word.length; else fail(); };
    function string() {
      i += 1;
      while (i < text.length && text[i] !== '"') {
        if (text.charCodeAt(i) < 0x20) fail();
        if (text[i] === "\\") {
          i += 1;
          if (text[i] === "u") { if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) fail(); i += 4; }
          else if (!'"\\/bfnrt'.includes(text[i] || "x")) fail();
        }
        i += 1;
      }
      if (i >= text.length) fail();
      i += 1;
    }
    function num() {
      const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i));
      if (!m) fail();
      i += m[0].length;
    }
    function items(close, item) {
      i += 1; ws();
      if (text[i] === close) { i += 1; return; }
      for (;;) {
        item(); ws();
        if (text[i] === close) { i += 1; return; }
        if (text[i] !== ",") fail();
        i += 1; ws();
      }
    }
    function value() {
      ws();
      const c = text[i];
      if (c === "{") items("}", () => { if (text[i] !== '"') fail(); string(); ws(); if (text[i] !== ":") fail(); i += 1; value(); });
      else if (c === "[") items("]", value);
      else if (c === '"') string();
      else if (c === "t") literal("true");
      else if (c === "f") literal("false");
      else if (c === "n") literal("null");
      else num();
    }
    try { value(); ws(); if (i < text.length) fail(); } catch (at) { return typeof at === "number" ? at : i; }
    return null;
  }

  // JSON.parse's error, placed at a line and column.
  function parseError(text, error) {
    const reported = /position (\d+)/.exec(error.message);
    const scanned = errorOffset(text);
    const at = scanned !== null ? scanned : reported ? Number(reported[1]) : text.length;
    const before = text.slice(0, at).split("\n");
    // V8 quotes the whole text back ("..." is not valid JSON), and its position is given here already.
    const message = error.message.replace(/, ".*" is not valid JSON$/s, "").replace(/ (in JSON )?at position \d+.*$/s, "");
    return { field: `JSON line ${before.length}, column ${before[before.length - 1].length + 1}`, message };
  }

  function read() {
    const text = editor.value;
    if (!text.trim()) return { errors: [{ field: "JSON", message: "the spec is empty: pick a template or type one" }] };
    try {
      const spec = JSON.parse(text);
      if (spec === null || typeof spec !== "object" || Array.isArray(spec)) {
        return { errors: [{ field: "JSON", message: "a job spec is an object: {\"dataset\": ..., \"model\": ...}" }] };
      }
      return { spec };
    } catch (e) {
      return { errors: [parseError(text, e)] };
    }
  }

  // ---- showing the answer -----------------------------------------------------------------

  function showErrors(errors) {
    document.getElementById("submit-plan").hidden = true;
    document.getElementById("submit-error-list").replaceChildren(...errors.map(e =>
      el("li", { dataset: { field: e.field || "" } },
        e.field ? el("code", { class: "field" }, e.field) : null, e.field ? ": " : null, e.message)));
    document.getElementById("submit-errors").hidden = false;
  }

  function errorsOf(error) {
    if (error instanceof ApiError && error.errors.length) return error.errors;
    return [{ field: "", message: error.message || String(error) }];
  }

  const shape = dims => "(" + ["batch", ...dims].join(", ") + ")";
  const count = n => n.toLocaleString();

  function bytes(n) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return `${i ? n.toFixed(1) : n} ${units[i]}`;
  }

  function flops(n) {
    const units = ["", "k", "M", "G", "T", "P"];
    let i = 0;
    while (n >= 1000 && i < units.length - 1) { n /= 1000; i += 1; }
    return `${number(n, 3)} ${units[i]}FLOP`;
  }

  // A residual block's own layers follow it, indented by their depth.
  function layerRows(layers, depth = 0) {
    return layers.flatMap(l => [
      el("tr", { class: depth ? "nested depth-" + Math.min(depth, 4) : null, dataset: { path: l.path } },
        el("td", {}, el("code", {}, l.path)),
        el("td", {}, l.type),
        el("td", {}, shape(l.input_shape)),
        el("td", {}, shape(l.output_shape)),
        el("td", { class: "num" }, count(l.parameters))),
      ...layerRows(l.layers || [], depth + 1)]);
  }

  function showPlan(plan) {
    document.getElementById("submit-errors").hidden = true;
    const totals = [
      ["Parameters", count(plan.parameter_count)],
      ["FLOPs per step", flops(plan.flops_per_step)],
      ["Training memory", bytes(plan.memory_bytes)],
      ["Steps", `${count(plan.total_steps)} (${count(plan.steps_per_epoch)} per epoch)`],
      ["Rows", `${count(plan.train_rows)} train, ${count(plan.validation_rows)} validation`],
      ["Batch size", count(plan.batch_size)],
      ["Output", shape(plan.output_shape)],
    ];
    document.getElementById("submit-totals").replaceChildren(...totals.flatMap(([k, v]) =>
      [el("dt", {}, k), el("dd", { dataset: { total: k } }, v)]));
    document.getElementById("submit-warnings").replaceChildren(...plan.warnings.map(w => el("li", {}, w)));
    document.getElementById("submit-layers").replaceChildren(
      el("thead", {}, el("tr", {}, ["Path", "Type", "Input", "Output", ["Parameters", "num"]].map(h =>
        Array.isArray(h) ? el("th", { class: h[1] }, h[0]) : el("th", {}, h)))),
      el("tbody", {}, layerRows(plan.layers)));
    document.getElementById("submit-plan").hidden = false;
  }

  // ---- the dry run, as you type -------------------------------------------------------------

  async function dryRun() {
    const mine = ++generation;
    const { spec, errors } = read();
    if (errors) { showErrors(errors); state.textContent = ""; return; }
    state.textContent = "checking…";
    try {
      const plan = await api("/v1/jobs", { method: "POST", body: spec, params: { dry_run: "true" } });
      if (mine !== generation) return;
      showPlan(plan);
      state.textContent = "valid";
    } catch (e) {
      if (mine !== generation) return;
      showErrors(errorsOf(e));
      state.textContent = "";
    }
  }

  function scheduleDryRun() {
    clearTimeout(timer);
    generation += 1;  // whatever is in flight answers for text that is gone
    state.textContent = "";
    timer = setTimeout(dryRun, DEBOUNCE_MS);
  }

  async function submit() {
    clearTimeout(timer);
    generation += 1;
    const { spec, errors } = read();
    if (errors) { showErrors(errors); return; }
    button.disabled = true;  // one click, one job
    state.textContent = "submitting…";
    try {
      const job = await api("/v1/jobs", { method: "POST", body: spec });
      window.location.assign("/jobs/" + encodeURIComponent(job.id));
    } catch (e) {
      showErrors(errorsOf(e));
      state.textContent = "";
      button.disabled = false;
    }
  }

  function useTemplate(id) {
    const t = templates.find(x => x.id === id);
    if (!t) return;
    editor.value = JSON.stringify(t.spec, null, 2);
    clearTimeout(timer);
    dryRun();
  }

  async function loadTemplates() {
    const response = await fetch(root.dataset.templates, { credentials: "same-origin" });
    if (!response.ok) throw new Error("the templates did not load: HTTP " + response.status);
    templates = (await response.json()).templates;
    picker.append(...templates.map(t => el("option", { value: t.id }, t.title)));
    if (!editor.value.trim()) {  // a fresh page starts from the first template
      picker.value = templates[0].id;
      useTemplate(templates[0].id);
    } else {
      dryRun();  // the browser kept the text across a reload
    }
  }

  editor.addEventListener("input", scheduleDryRun);
  picker.addEventListener("change", () => useTemplate(picker.value));
  button.addEventListener("click", submit);
  loadTemplates().catch(showError);
})();
