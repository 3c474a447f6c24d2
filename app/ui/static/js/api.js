// What every dashboard page shares: the API over the session cookie, and safe DOM building.
// Text from the API (names, labels, errors) only ever reaches the page through textContent.
"use strict";

const Trainyard = (() => {
  // A job in one of these may still change: pages keep following it.
  const ACTIVE = ["held", "queued", "retrying", "running"];

  const csrf = () => document.querySelector('meta[name="csrf-token"]').content;

  class ApiError extends Error {
    constructor(status, body) {
      const errors = (body && body.errors) || [];
      super(errors.length ? errors.map(e => (e.field ? e.field + ": " : "") + e.message).join("; ")
                          : "HTTP " + status);
      this.status = status;
      this.errors = errors;
    }
  }

  // fetch() on the API with the session cookie; state-changing methods carry the CSRF token.
  async function api(path, { method = "GET", body, params } = {}) {
    const url = new URL(path, window.location.origin);
    for (const [k, v] of Object.entries(params || {})) {
      if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
    }
    const headers = { "Accept": "application/json" };
    if (method !== "GET") headers["X-CSRF-Token"] = csrf();
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(url, { method, headers, credentials: "same-origin",
                                         body: body === undefined ? undefined : JSON.stringify(body) });
    if (response.status === 401) {
      window.location.assign("/signin?next=" + encodeURIComponent(location.pathname + location.search));
      throw new ApiError(401, null);
    }
    const data = response.status === 204 ? null : await response.json().catch(() => null);
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  // el("td", {class: "num"}, "0.5", child, ...): an element with attributes and text or nodes.
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "dataset") Object.assign(node.dataset, v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function number(v, digits = 4) {
    if (v === undefined || v === null) return "–";
    if (typeof v !== "number") return String(v);
    if (v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e5)) return v.toExponential(2);
    return String(Number(v.toPrecision(digits)));
  }

  function showError(error) {
    const box = document.getElementById("page-error");
    box.textContent = error instanceof Error ? error.message : String(error);
    box.hidden = false;
  }

  return { api, el, number, showError, csrf, ApiError, ACTIVE };
})();
