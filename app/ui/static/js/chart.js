// The dashboard's one chart: a thin wrapper over uPlot (vendor/uplot-1.6.32) that every page uses.
//
//   const chart = TrainyardChart.create(container, {title: "Loss", xLabel: "step", logY: false});
//   chart.update([{label: "train", x: [...], y: [...]}, ...], {bands: [[upper, lower]]});
//
// Each series brings its own x; the wrapper joins them onto one x column (uPlot wants aligned
// data) and bridges the gaps. update() redraws in place while the series stay the same (a live
// append costs one setData), and rebuilds the plot when they change or the y scale does.
// The container keeps data-points (finite points drawn, all series), data-series and data-log
// up to date: the browser tests read them, and a person can inspect them.
"use strict";

const TrainyardChart = (() => {
  const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04",
                   "#db2777", "#4b5563", "#65a30d", "#7c3aed", "#0f766e"];
  const WHOLE = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000];
  const color = i => PALETTE[i % PALETTE.length];

  // A fill colour from a palette colour: its rgb at low opacity (for the seed bands).
  function translucent(hex, alpha = 0.15) {
    const n = parseInt(hex.slice(1), 16);
    return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${alpha})`;
  }

  // [[x, y1], [x, y2], ...] -> [x, y1', y2'] on the union of the xs; null where a series has no point.
  function join(series) {
    const xs = [...new Set(series.flatMap(s => s.x))].filter(v => v !== null && Number.isFinite(v));
    xs.sort((a, b) => a - b);
    const index = new Map(xs.map((v, i) => [v, i]));
    const columns = series.map(s => {
      const col = new Array(xs.length).fill(null);
      for (let i = 0; i < s.x.length; i++) {
        const at = index.get(s.x[i]);
        if (at !== undefined) col[at] = s.y[i];
      }
      return col;
    });
    return [xs, ...columns];
  }

  // A log scale cannot show 0, negatives or non-finite values: those points are left out. And
  // uPlot's log axis fails ("Invalid array length") past about 25 decades, which a vanishing
  // gradient reaches (1e-30 beside 1): values under 1e-20 of the largest are drawn at that floor.
  const LOG_DECADES = 20;
  function clean(values, logY) {
    return values.map(v => (v === null || v === undefined || !Number.isFinite(v) || (logY && v <= 0)) ? null : v);
  }

  function floorLog(columns) {
    let top = -Infinity;
    for (const c of columns) for (const v of c) if (v !== null && v > top) top = v;
    if (!Number.isFinite(top)) return columns;
    const floor = top * 10 ** -LOG_DECADES;
    return columns.map(c => c.map(v => (v !== null && v < floor ? floor : v)));
  }

  function create(container, given = {}) {
    const options = { ...given };
    const state = { logY: !!options.logY, series: [], bands: [], plot: null, key: "" };
    const holder = document.createElement("div");
    container.classList.add("chart");
    container.append(holder);

    function width() {
      return Math.max(320, (container.clientWidth || 800) - 16);
    }

    function opts(series) {
      const uSeries = [{ label: options.xLabel || "x" }];
      series.forEach((s, i) => {
        const stroke = s.color || color(i);
        uSeries.push({
          label: s.label, stroke, width: s.width || 1.5, spanGaps: true,
          dash: s.dash, points: { show: false }, class: s.hidden ? "legend-hidden" : undefined,
          fill: s.fill, value: (u, v) => (v === null ? "–" : Trainyard.number(v)),
        });
      });
      return {
        width: width(), height: options.height || 280, title: options.title,
        scales: { x: { time: false }, y: state.logY ? { distr: 3 } : { auto: true } },
        // Epochs are whole numbers: no tick at epoch 1.5.
        axes: [{ label: options.xLabel, incrs: options.xLabel === "epoch" ? WHOLE : undefined }, { label: options.yLabel, size: 60,
                                             values: (u, ticks) => ticks.map(v => Trainyard.number(v, 3)) }],
        series: uSeries,
        bands: state.bands.map(([upper, lower], i) => ({
          series: [upper + 1, lower + 1], fill: translucent(series[upper].color || color(upper)),
        })),
        legend: { live: true },
        cursor: { drag: { x: true, y: false } },
      };
    }

    function draw() {
      let data = join(state.series);
      for (let i = 1; i < data.length; i++) data[i] = clean(data[i], state.logY);
      if (state.logY) data = [data[0], ...floorLog(data.slice(1))];
      const key = JSON.stringify([state.logY, state.bands, state.series.map(s => [s.label, s.color, s.dash])]);
      if (state.plot && key === state.key) {
        state.plot.setData(data);
      } else {
        if (state.plot) state.plot.destroy();
        holder.textContent = "";
        state.plot = new uPlot(opts(state.series), data, holder);
        state.key = key;
      }
      let points = 0;
      for (let i = 1; i < data.length; i++) points += data[i].filter(v => v !== null).length;
      container.dataset.points = String(points);
      container.dataset.series = String(state.series.length);
      container.dataset.log = state.logY ? "1" : "0";
    }

    // Several updates in one frame (a burst of live points) draw once.
    let pending = null;
    function scheduleDraw() {
      if (pending !== null) return;
      pending = requestAnimationFrame(() => { pending = null; draw(); });
    }

    new ResizeObserver(() => {
      if (state.plot && Math.abs(state.plot.width - width()) > 2) state.plot.setSize({ width: width(), height: state.plot.height });
    }).observe(container);

    return {
      // series: [{label, x, y, color?, dash?, width?, hidden? (left out of the legend)}]; bands: [[upperIndex, lowerIndex]] into series.
      update(series, { bands = [], now = false } = {}) {
        state.series = series;
        state.bands = bands;
        if (now) draw(); else scheduleDraw();
      },
      // New axis labels or title: the next draw builds a new plot.
      setOptions(changes) {
        Object.assign(options, changes);
        state.key = "";
      },
      setLogY(on) {
        state.logY = !!on;
        draw();
      },
      // The plot's canvas as a PNG Blob (axes and curves; the legend is HTML).
      png() {
        return new Promise(resolve => state.plot.ctx.canvas.toBlob(resolve, "image/png"));
      },
      get plot() { return state.plot; },
      container,
    };
  }

  // Saves a Blob under a file name through a temporary <a download>.
  function download(blob, name) {
    const url = URL.createObjectURL(blob);
    const a = Trainyard.el("a", { href: url, download: name });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  return { create, download, color, join };
})();
