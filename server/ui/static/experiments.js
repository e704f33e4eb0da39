// The experiments page: status, progress, best value, counts, first error, age; a status
// filter; pause, resume and cancel (the /v1 lifecycle endpoints).

import { age, api, badge, el, fmt, link, poll, replace, setActiveNav, showError } from "./common.js";

const STATUSES = ["", "running", "paused", "completed", "cancelled", "failed"];
const ACTIONS = { running: ["pause", "cancel"], paused: ["resume", "cancel"] };
let status = new URLSearchParams(location.search).get("status") || "";
let refresh = null;

function filter() {
  const select = el("select", { id: "status-filter", "aria-label": "Filter by status" },
    STATUSES.map((s) => el("option", { value: s, selected: s === status }, s || "all statuses")));
  select.addEventListener("change", () => {
    status = select.value;
    history.replaceState(null, "", status ? `?status=${status}` : location.pathname);
    refresh();
  });
  return select;
}

async function act(id, action, button) {
  if (action === "cancel" && !confirm(`Cancel experiment ${id}? Its pending and running tasks are cancelled.`)) return;
  button.disabled = true;
  try {
    await api(`/v1/experiments/${id}/${action}`, { method: "POST" });
  } catch (error) {
    showError(error);
  }
  refresh();
}

function progress(row) {
  const budget = row.budget;
  const fraction = budget ? Math.min(1, row.done / budget) : null;
  return el("div", { class: "progress" },
    el("div", { class: "bar-track" }, el("div", { class: "bar-fill", "data-fraction": fraction ?? 0 })),
    el("span", {}, budget ? `${row.done} / ${budget}` : `${row.done}`));
}

function row(experiment, now) {
  const counts = experiment.counts;
  return el("tr", { "data-id": experiment.id },
    el("td", {}, link(`/ui/experiments/${experiment.id}`, `#${experiment.id}`)),
    el("td", { class: "name" }, link(`/ui/experiments/${experiment.id}`, experiment.name)),
    el("td", {}, badge(experiment.status)),
    el("td", {}, progress(experiment)),
    el("td", { class: "num" }, fmt(experiment.best), el("div", { class: "muted small" }, experiment.objective.metric)),
    el("td", { class: "num" }, counts.running),
    el("td", { class: "num" + (counts.failed ? " bad" : "") }, counts.failed),
    el("td", { class: "error-text clip" }, experiment.first_error || ""),
    el("td", { class: "num" }, age(experiment.created_at, now)),
    el("td", { class: "actions" }, (ACTIONS[experiment.status] || []).map((action) =>
      el("button", { type: "button", class: `action ${action}`, "data-action": action,
        onclick: (event) => act(experiment.id, action, event.target) }, action))));
}

function table(page) {
  if (!page.data.length) return el("p", { class: "muted empty" }, status ? `No ${status} experiment.` : "No experiment yet: submit one with `morphml submit` or the API.");
  return el("table", { id: "experiments", class: "grid" },
    el("thead", {}, el("tr", {}, ["id", "name", "status", "progress", "best", "running", "failed", "first error", "age", ""]
      .map((h) => el("th", {}, h)))),
    el("tbody", {}, page.data.map((e) => row(e, page.now))));
}

function sizeBars(root) {
  // Widths through the CSSOM (an inline style attribute is refused by the page's CSP).
  for (const fill of root.querySelectorAll(".bar-fill")) fill.style.width = `${(Number(fill.dataset.fraction) * 100).toFixed(1)}%`;
}

setActiveNav("experiments");
const main = document.getElementById("main");
const body = el("div", { id: "experiments-body" });
replace(main, el("section", { class: "card" },
  el("div", { class: "card-head" }, el("h1", {}, "Experiments"), el("span", { id: "experiment-count", class: "muted" }), filter()),
  body));
refresh = poll(async () => {
  const query = new URLSearchParams({ limit: "100" });
  if (status) query.set("status", status);
  const page = await api(`/ui/api/experiments?${query}`);
  document.getElementById("experiment-count").textContent = `${page.count} in all`;
  replace(body, table(page));
  sizeBars(body);
});
