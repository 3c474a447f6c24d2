// /datasets: the tenant's uploads (GET /v1/datasets, a page at a time) and the builtin catalogue.
// Names, class names and descriptions are user-supplied: they go in as text (Trainyard.el), never HTML.
"use strict";

(() => {
  const { api, el, showError } = Trainyard;
  const PAGE = 50;
  const MAX_CLASSES_SHOWN = 12;  // a 1000-class dataset would otherwise fill the row
  let offset = 0;

  const shape = dims => (dims && dims.length ? dims.join(" × ") : "scalar");
  const created = iso => new Date(iso).toLocaleString();

  function classesCell(classes, count) {
    if (!classes || !classes.length) return el("td", { class: "muted" }, count ? count + " classes" : "–");
    const shown = classes.slice(0, MAX_CLASSES_SHOWN).map(String).join(", ");
    const more = classes.length > MAX_CLASSES_SHOWN ? ` … (${classes.length} in all)` : "";
    return el("td", { class: "classes", title: classes.map(String).join(", ") }, shown + more);
  }

  function table(head, rows) {
    return el("table", {},
      el("thead", {}, el("tr", {}, head.map(([label, cls]) => el("th", { class: cls }, label)))),
      el("tbody", {}, rows));
  }

  function uploadedRow(d) {
    return el("tr", { dataset: { id: d.id } },
      el("td", {}, el("span", { class: "name" }, d.name), el("div", { class: "muted id" }, d.id)),
      el("td", { class: "num" }, d.rows.toLocaleString()),
      el("td", {}, shape(d.feature_shape)),
      el("td", {}, shape(d.target_shape) + " " + d.target_kind),
      classesCell(d.classes),
      el("td", {}, created(d.created_at)));
  }

  function builtinRow(b) {
    return el("tr", { dataset: { name: b.name } },
      el("td", {}, el("code", {}, b.name), el("div", { class: "muted" }, b.description)),
      el("td", {}, b.task),
      el("td", { class: "num" }, b.rows.toLocaleString()),
      el("td", {}, shape(b.feature_shape)),
      el("td", {}, shape(b.target_shape) + " " + b.target_kind),
      classesCell(null, b.num_classes));
  }

  async function loadUploaded() {
    const box = document.getElementById("datasets-uploaded");
    const page = await api("/v1/datasets", { params: { limit: PAGE, offset } });
    if (!page.items.length && offset === 0) {
      box.replaceChildren(el("p", { class: "muted" },
        "No uploads yet: POST a .csv, .npz or inline JSON to /v1/datasets, or `trainyard datasets upload FILE --target COL`."));
    } else {
      box.replaceChildren(table(
        [["Name"], ["Rows", "num"], ["Features"], ["Target"], ["Classes"], ["Created"]],
        page.items.map(uploadedRow)));
    }
    const pager = document.getElementById("datasets-pager");
    pager.hidden = page.total <= PAGE;
    document.getElementById("datasets-range").textContent =
      page.items.length ? `${offset + 1}–${offset + page.items.length} of ${page.total}` : `0 of ${page.total}`;
    document.getElementById("datasets-prev").disabled = offset === 0;
    document.getElementById("datasets-next").disabled = offset + PAGE >= page.total;
  }

  async function loadBuiltin() {
    const { items } = await api("/v1/datasets/builtin");
    document.getElementById("datasets-builtin").replaceChildren(table(
      [["Name"], ["Task"], ["Rows", "num"], ["Features"], ["Target"], ["Classes"]], items.map(builtinRow)));
  }

  function turn(by) {
    offset = Math.max(0, offset + by);
    loadUploaded().catch(showError);
  }

  document.getElementById("datasets-prev").addEventListener("click", () => turn(-PAGE));
  document.getElementById("datasets-next").addEventListener("click", () => turn(PAGE));
  loadUploaded().catch(showError);
  loadBuiltin().catch(showError);
})();
