// /studies: the tenant's studies (GET /v1/studies), newest first, each linking to /studies/{id}.
// The list's summaries carry no leaderboard, so each row's winner is read from GET /v1/studies/{id}
// after the table is drawn. Names and variant labels are user-supplied: text only.
"use strict";

(() => {
  const { api, el, showError } = Trainyard;
  const PAGE = 50;
  const REFRESH_MS = 10000;  // while a study on the page is running, its counts move
  let offset = 0;
  let timer = null;

  // Members per status, most telling first; statuses with no members are left out.
  const ORDER = ["succeeded", "running", "queued", "held", "retrying", "failed", "pruned", "cancelled"];

  function countsText(counts, planned) {
    const names = [...ORDER.filter(s => counts[s]), ...Object.keys(counts).filter(s => !ORDER.includes(s) && counts[s])];
    const parts = names.map(s => `${counts[s]} ${s}`);
    const members = Object.values(counts).reduce((a, b) => a + b, 0);
    return `${members}/${planned}` + (parts.length ? " · " + parts.join(", ") : "");
  }

  function row(s) {
    const winner = el("td", { class: "winner muted" }, "…");
    const tr = el("tr", { dataset: { id: s.id } },
      el("td", {}, el("a", { href: "/studies/" + encodeURIComponent(s.id) }, s.name || s.id),
        s.name ? el("div", { class: "muted id" }, s.id) : null),
      el("td", {}, el("span", { class: "status " + s.status }, s.status)),
      el("td", {}, s.kind),
      el("td", { class: "counts" }, countsText(s.counts, s.planned)),
      winner,
      el("td", {}, new Date(s.created_at).toLocaleString()));
    return { tr, winner };
  }

  async function fillWinner(id, cell) {
    try {
      const study = await api("/v1/studies/" + encodeURIComponent(id));
      const board = study.leaderboard;
      cell.textContent = board.winner === null ? "–" : board.winner;
      cell.className = board.winner === null ? "winner muted" : "winner";
      if (board.summary) cell.title = board.summary;
    } catch (e) {
      cell.textContent = "?";
      if (e.status !== 404) throw e;  // a study deleted since the list was read has no winner
    }
  }

  async function load() {
    clearTimeout(timer);
    const status = document.getElementById("studies-status").value;
    const page = await api("/v1/studies", { params: { limit: PAGE, offset, status } });
    const box = document.getElementById("studies-list");
    if (!page.items.length) {
      box.replaceChildren(el("p", { class: "muted" }, offset === 0 && !status
        ? "No studies yet: POST one to /v1/studies, or `trainyard study run study.json`."
        : "No studies here."));
    } else {
      const rows = page.items.map(row);
      box.replaceChildren(el("table", {},
        el("thead", {}, el("tr", {}, ["Name", "Status", "Kind", "Members", "Winner", "Created"].map(h => el("th", {}, h)))),
        el("tbody", {}, rows.map(r => r.tr))));
      await Promise.all(page.items.map((s, i) => fillWinner(s.id, rows[i].winner)));
    }
    const pager = document.getElementById("studies-pager");
    pager.hidden = page.total <= PAGE;
    document.getElementById("studies-range").textContent =
      page.items.length ? `${offset + 1}–${offset + page.items.length} of ${page.total}` : `0 of ${page.total}`;
    document.getElementById("studies-prev").disabled = offset === 0;
    document.getElementById("studies-next").disabled = offset + PAGE >= page.total;
    if (page.items.some(s => s.status === "running")) timer = setTimeout(reload, REFRESH_MS);
  }

  const reload = () => load().catch(showError);

  document.getElementById("studies-prev").addEventListener("click", () => { offset = Math.max(0, offset - PAGE); reload(); });
  document.getElementById("studies-next").addEventListener("click", () => { offset += PAGE; reload(); });
  document.getElementById("studies-status").addEventListener("change", () => { offset = 0; reload(); });
  reload();
})();
