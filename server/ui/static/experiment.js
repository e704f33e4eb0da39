// One experiment: summary and actions, spec, convergence, Pareto front, which choices matter,
// learning curves, the task table (sorted, filtered and paged by the server) and failed tasks.

import { api, age, badge, el, fatal, fmt, link, pageId, poll, replace, section, showError, time } from "./common.js";
import { choiceBars, legend, lineChart, parallelCoordinates } from "./charts.js";

const id = pageId();
const STATES = ["", "pending", "running", "completed", "failed", "pruned", "cancelled"];
const COLUMNS = [["id", "id"], ["state", "state"], ["value", "value"], ["attempt", "attempt"], ["worker", "worker"], ["finished", "finished"]];
const PAGE = 50;
const table = { state: "", sort: "id", order: "desc", offset: 0 };
let experiment = null;
let refresh = null;

const parts = {
  summary: el("section", { class: "card", id: "summary" }),
  convergence: el("div", { id: "convergence" }),
  pareto: el("div", { id: "pareto" }),
  importance: el("div", { id: "importance" }),
  curves: el("div", { id: "curves" }),
  tasks: el("div", { id: "tasks" }),
  failures: el("div", { id: "failures" }),
  spec: el("pre", { id: "spec", class: "code" }),
};

function layout() {
  replace(document.getElementById("main"),
    parts.summary,
    el("div", { class: "two" },
      section("Convergence", parts.convergence),
      section("Learning curves", parts.curves)),
    section("Tasks", taskControls(), parts.tasks),
    el("div", { class: "two" },
      section("Pareto front", parts.pareto),
      section("Failed tasks", parts.failures)),
    section("Which choices matter", parts.importance),
    section("Spec", el("details", {}, el("summary", {}, "the experiment's spec (JSON)"), parts.spec)));
}

// --- summary ---------------------------------------------------------------------------------

async function act(action, button) {
  if (action === "cancel" && !confirm(`Cancel experiment ${id}?`)) return;
  button.disabled = true;
  try {
    await api(`/v1/experiments/${id}/${action}`, { method: "POST" });
  } catch (error) {
    showError(error);
  }
  refresh();
}

function summary(e) {
  const actions = { running: ["pause", "cancel"], paused: ["resume", "cancel"] }[e.status] || [];
  const objective = e.spec.objectives[0];
  const done = e.counts.completed + e.counts.failed + e.counts.pruned;
  const budget = e.budget.max_evaluations;
  return [
    el("div", { class: "card-head" },
      el("h1", {}, `${e.name} `, el("span", { class: "muted" }, `#${e.id}`)), badge(e.status),
      el("span", { class: "spacer" }),
      actions.map((a) => el("button", { type: "button", class: `action ${a}`, "data-action": a, onclick: (ev) => act(a, ev.target) }, a))),
    el("div", { class: "facts" },
      fact("progress", budget ? `${done} / ${budget}` : String(done)),
      fact(`best ${objective.metric}`, e.best ? link(`/ui/tasks/${e.best.task_id}`, fmt(e.best.value)) : "—", "best-value"),
      fact("direction", objective.direction),
      fact("optimizer", e.spec.optimizer?.name ?? "default"),
      fact("evaluator", e.spec.evaluator?.kind ?? "—"),
      fact("parallelism", e.parallelism),
      ...Object.entries(e.counts).map(([state, n]) => fact(state, n, `count-${state}`)),
      fact("created", time(e.created_at)),
      fact("running for", age(e.started_at || e.created_at, e.finished_at || undefined))),
    e.error ? el("p", { class: "error-text" }, e.error) : null,
  ];
}

function fact(name, value, testId) {
  return el("div", { class: "fact", "data-fact": testId || name }, el("div", { class: "muted small" }, name), el("div", { class: "value" }, value));
}

// --- charts ----------------------------------------------------------------------------------

function convergence(data) {
  const metric = data.objective.metric;
  const last = data.points.length ? data.points[data.points.length - 1][0] : 0;
  const best = data.best.length ? [...data.best, [data.total, data.best[data.best.length - 1][1]]] : [];
  return [
    el("p", { class: "muted small" }, `${data.total} completed evaluations` + (data.points.length < data.total ? ` (${data.points.length} drawn)` : "")),
    lineChart({ xLabel: "evaluation (in finishing order)", yLabel: metric, series: [
      { points: data.points, kind: "dots", cls: "evaluation", label: "evaluation" },
      { points: best.filter((p) => p[0] <= Math.max(last, data.total)), kind: "step", cls: "best", label: "best so far" },
    ] }),
    legend([["evaluation", "each evaluation"], ["best", "best so far"]]),
  ];
}

function pareto(data) {
  if (data.objectives.length < 2) return el("p", { class: "muted empty" }, "One objective: no trade-off to show. Add a second objective (e.g. num_params, minimize) to see a Pareto front.");
  const [a, b] = data.objectives;
  return [
    el("p", { class: "muted small" }, `${data.front.length} on the front of ${data.total} completed`),
    lineChart({ xLabel: `${a.metric} (${a.direction})`, yLabel: `${b.metric} (${b.direction})`, series: [
      { points: data.others.map(([t, x, y]) => [x, y, t]), kind: "dots", cls: "dominated", label: "dominated" },
      { points: data.front.map(([t, x, y]) => [x, y]), kind: "line", cls: "front-line", label: "front" },
      { points: data.front.map(([t, x, y]) => [x, y, t]), kind: "dots", cls: "front", label: "on the front" },
    ] }),
    legend([["front", "on the Pareto front"], ["dominated", "dominated"]]),
  ];
}

function importance(data) {
  if (!data.variables.length) return el("p", { class: "muted empty" }, "No completed task with choices yet.");
  const maximize = data.objective.direction === "maximize";
  const means = data.variables.flatMap((v) => v.choices.map((c) => c.mean));
  const lo = Math.min(...means), hi = Math.max(...means);
  const domain = [lo - (hi - lo) * 0.15 - 1e-9, hi];
  const shown = data.variables.slice(0, 12);
  const axes = shown.slice(0, 8).map((v) => ({ name: v.name, values: v.choices.map((c) => c.value) }));
  return [
    el("p", { class: "muted small" }, `Mean ${data.objective.metric} by the value chosen, over the latest ${data.tasks} completed tasks; variables with the widest spread first.`),
    el("div", { class: "small-multiples" }, shown.map((v) =>
      el("figure", { class: "variable", "data-variable": v.name }, el("figcaption", {}, v.name, el("span", { class: "muted" }, ` spread ${fmt(v.spread, 3)}`)), choiceBars(v, maximize, domain)))),
    el("h3", {}, `Top ${data.top.length} candidates`),
    parallelCoordinates({ axes, lines: data.top, valueLabel: data.objective.metric, maximize }),
  ];
}

function curves(data) {
  if (!data.tasks.length) return el("p", { class: "muted empty" }, "No intermediate metrics reported yet (the train evaluator reports one per epoch).");
  const series = data.tasks.flatMap((t) => [{
    points: t.steps, kind: "line", cls: `curve s-${t.state}`, label: `task ${t.task_id}`,
    title: `task ${t.task_id} (${t.state})`, endMarker: t.state === "pruned" ? "✕" : null,
  }, // the reports themselves, while few enough to tell apart
  t.steps.length <= 50 ? { points: t.steps.map(([x, y]) => [x, y, t.task_id]), kind: "dots", cls: `curve-pt s-${t.state}`, label: `task ${t.task_id}` } : null].filter(Boolean));
  return [lineChart({ xLabel: "step", yLabel: data.objective.metric, series }),
    legend([["s-running", "running"], ["s-completed", "completed"], ["s-pruned", "pruned ✕"]])];
}

// --- tasks -----------------------------------------------------------------------------------

function taskControls() {
  const select = el("select", { id: "state-filter", "aria-label": "Filter by state" },
    STATES.map((s) => el("option", { value: s }, s || "all states")));
  select.addEventListener("change", () => { table.state = select.value; table.offset = 0; loadTasks(); });
  return el("div", { class: "controls" }, select, el("span", { id: "task-count", class: "muted" }), el("span", { class: "spacer" }),
    el("button", { type: "button", id: "prev-page", class: "quiet", onclick: () => { table.offset = Math.max(0, table.offset - PAGE); loadTasks(); } }, "‹ previous"),
    el("span", { id: "page-of", class: "muted" }),
    el("button", { type: "button", id: "next-page", class: "quiet", onclick: () => { table.offset += PAGE; loadTasks(); } }, "next ›"));
}

function sortBy(key) {
  table.order = table.sort === key && table.order === "desc" ? "asc" : "desc";
  table.sort = key;
  table.offset = 0;
  loadTasks();
}

function taskTable(page) {
  const heads = COLUMNS.map(([key, label]) => el("th", { class: "sortable" + (table.sort === key ? ` sorted ${table.order}` : ""), "data-sort": key, onclick: () => sortBy(key) },
    label + (table.sort === key ? (table.order === "desc" ? " ▼" : " ▲") : "")));
  const rows = page.data.map((t) => el("tr", { "data-id": t.id },
    el("td", {}, link(`/ui/tasks/${t.id}`, `#${t.id}`)),
    el("td", {}, badge(t.state), t.state === "running" && t.progress !== null ? el("span", { class: "muted small" }, ` ${Math.round(t.progress * 100)}%`) : null),
    el("td", { class: "num" }, fmt(t.value)),
    el("td", { class: "num" }, `${t.attempt}/${t.max_attempts}`),
    el("td", { class: "num" }, t.worker_id ?? "—"),
    el("td", {}, time(t.finished_at)),
    el("td", { class: "error-text clip" }, t.error || "")));
  return el("table", { class: "grid", id: "task-table", "data-count": page.count },
    el("thead", {}, el("tr", {}, heads, el("th", {}, "error"))), el("tbody", {}, rows));
}

async function loadTasks() {
  const query = new URLSearchParams({ sort: table.sort, order: table.order, offset: table.offset, limit: PAGE });
  if (table.state) query.set("state", table.state);
  const page = await api(`/ui/api/experiments/${id}/tasks?${query}`);
  if (page.count && table.offset >= page.count) { table.offset = Math.floor((page.count - 1) / PAGE) * PAGE; return loadTasks(); }
  replace(parts.tasks, page.data.length ? taskTable(page) : el("p", { class: "muted empty", id: "task-table-empty" }, "No task in this state."));
  document.getElementById("task-count").textContent = `${page.count.toLocaleString("en-US")} tasks`;
  const pages = Math.max(1, Math.ceil(page.count / PAGE));
  document.getElementById("page-of").textContent = `page ${Math.floor(table.offset / PAGE) + 1} of ${pages}`;
  document.getElementById("prev-page").disabled = table.offset === 0;
  document.getElementById("next-page").disabled = table.offset + PAGE >= page.count;
  if (!performance.getEntriesByName("task-table").length) performance.mark("task-table");
}

function failures(data) {
  if (!data.count) return el("p", { class: "muted empty" }, "No failed task.");
  return [el("p", { class: "muted small" }, `${data.count} failed` + (data.count > data.data.length ? `; the first ${data.data.length}:` : ":")),
    el("ul", { class: "failures", id: "failure-list" }, data.data.map((f) => el("li", {},
      link(`/ui/tasks/${f.id}`, `task #${f.id}`), el("span", { class: "muted" }, ` attempt ${f.attempt}, ${time(f.finished_at)}`),
      el("pre", { class: "error-text" }, f.error))))];
}

// --- refresh ---------------------------------------------------------------------------------

async function into(part, path, render) {
  replace(part, render(await api(path)));
}

async function refreshAll() {
  const base = `/ui/api/experiments/${id}`;
  // The table first: it is what a big experiment's page waits for.
  const [loaded] = await Promise.all([api(base), loadTasks()]);
  experiment = loaded;
  replace(parts.summary, summary(loaded));
  document.title = `${loaded.name} · MorphML`;
  if (!parts.spec.textContent) parts.spec.textContent = JSON.stringify(loaded.spec, null, 2);
  await Promise.all([
    into(parts.convergence, `${base}/convergence`, convergence),
    into(parts.curves, `${base}/curves`, curves),
    into(parts.failures, `${base}/failures`, failures),
    into(parts.pareto, `${base}/pareto`, pareto),
    into(parts.importance, `${base}/importance`, importance),
  ]);
}

async function start() {
  if (!id) return fatal(new Error("no experiment id in this address"));
  layout();
  const live = () => (experiment && ["running", "paused"].includes(experiment.status) ? 3000 : 15000);
  refresh = poll(refreshAll, live);
}

start();
