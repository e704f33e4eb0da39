// One task: its architecture drawn as a graph (and the searched cell of a cell space), params
// and FLOPs, metrics and learning curve, the event timeline, and the exported PyTorch source.

import { api, badge, el, fatal, fmt, fmtCount, link, pageId, poll, replace, section, svg, time } from "./common.js";
import { lineChart } from "./charts.js";

const id = pageId();
let task = null;
let drawnHash = null;

const parts = {
  summary: el("section", { class: "card", id: "summary" }),
  metrics: el("div", { id: "metrics" }),
  events: el("div", { id: "events" }),
  graph: el("div", { id: "graph", class: "graph-scroll" }),
  cell: el("div", { id: "cell" }),
  source: el("div", { id: "source" }),
};

function layout() {
  replace(document.getElementById("main"), parts.summary,
    el("div", { class: "two" }, section("Metrics", parts.metrics), section("Timeline", parts.events)),
    el("div", { class: "two" }, section("Architecture", parts.graph), section("Cell and choices", parts.cell)),
    section("PyTorch source", parts.source));
}

function summary(data) {
  const t = data.task, a = data.architecture;
  return [
    el("div", { class: "card-head" },
      el("h1", {}, `Task #${t.id} `), badge(t.state),
      el("span", { class: "muted" }, " of ", link(`/ui/experiments/${data.experiment.id}`, `${data.experiment.name} #${data.experiment.id}`))),
    el("div", { class: "facts" },
      fact(data.experiment.objective.metric, fmt(t.value), "value"),
      fact("params", a.error ? "—" : fmtCount(a.params), "params"),
      fact("FLOPs (MACs)", a.error ? "—" : fmtCount(a.flops), "flops"),
      fact("attempt", `${t.attempt} / ${t.max_attempts}`),
      fact("worker", t.worker_name ? `${t.worker_name} (#${t.worker_id})` : "—", "worker"),
      fact("budget", t.budget ?? "—"),
      fact("progress", t.progress === null ? "—" : `${Math.round(t.progress * 100)}%`),
      fact("created", time(t.created_at)),
      fact("finished", time(t.finished_at)),
      fact("hash", a.hash ? a.hash.slice(0, 16) : "—", "hash")),
    t.error ? el("pre", { class: "error-text", id: "task-error" }, t.error) : null,
  ];
}

function fact(name, value, key) {
  return el("div", { class: "fact", "data-fact": key || name }, el("div", { class: "muted small" }, name), el("div", { class: "value" }, value));
}

function metrics(data) {
  const entries = Object.entries(data.task.metrics || {});
  const metric = data.experiment.objective.metric;
  const steps = Object.entries(data.intermediate).map(([step, m]) => [Number(step), m[metric]]).filter(([, v]) => typeof v === "number");
  return [
    entries.length ? el("table", { class: "grid kv", id: "metric-table" }, el("tbody", {}, entries.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", { class: "num" }, fmt(v)))))) :
      el("p", { class: "muted" }, "No final metrics yet."),
    steps.length ? lineChart({ xLabel: "step", yLabel: metric, height: 220, series: [{ points: steps, kind: "line", cls: `curve s-${data.task.state}` }, { points: steps, kind: "dots", cls: "evaluation" }] }) : null,
  ];
}

const EVENT_TEXT = { created: "created", claimed: "claimed", retried: "retried (back to pending)", lease_expired: "heartbeats lost: lease expired, reassigned", completed: "completed", failed: "failed", pruned: "pruned", cancelled: "cancelled" };

function events(data) {
  if (!data.events.length) return el("p", { class: "muted" }, "No event recorded.");
  return el("ol", { class: "timeline", id: "timeline" }, data.events.map((e) => el("li", { class: `ev-${e.kind}`, "data-kind": e.kind },
    el("span", { class: "when" }, time(e.created_at)),
    el("strong", {}, EVENT_TEXT[e.kind] || e.kind),
    el("span", { class: "muted" }, ` attempt ${e.attempt}`),
    e.worker_id ? el("span", {}, " on ", el("code", {}, e.worker_name || `worker #${e.worker_id}`)) : null,
    e.detail && Object.keys(e.detail).length ? el("div", { class: "muted small clip" }, JSON.stringify(e.detail)) : null)));
}

// --- the architecture graph: layers by longest path from the input, drawn top to bottom -------

function paramText(node) {
  const p = node.params || {};
  const keys = { conv2d: ["filters", "kernel_size", "stride"], dense: ["units"], output: ["units"], activation: ["fn"], dropout: ["rate"], maxpool: ["pool_size"], avgpool: ["pool_size"] }[node.op] || [];
  return keys.filter((k) => p[k] !== undefined && p[k] !== null).map((k) => `${k}=${p[k]}`).join(" ");
}

function graph(arch) {
  if (arch.error) return el("p", { class: "error-text" }, arch.error);
  const depth = {};
  for (const node of arch.nodes) depth[node.id] = node.inputs.length ? 1 + Math.max(...node.inputs.map((i) => depth[i])) : 0;
  const layers = [];
  for (const node of arch.nodes) (layers[depth[node.id]] ||= []).push(node);
  const W = 170, H = 40, GAPX = 24, GAPY = 26;
  const widest = Math.max(...layers.map((l) => l.length));
  const width = widest * (W + GAPX) + GAPX, height = layers.length * (H + GAPY) + GAPY;
  const pos = {};
  layers.forEach((layer, row) => layer.forEach((node, col) => {
    const offset = (width - layer.length * (W + GAPX) + GAPX) / 2;
    pos[node.id] = { x: offset + col * (W + GAPX), y: GAPY + row * (H + GAPY) };
  }));
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, class: "dag", role: "img", "data-nodes": arch.nodes.length });
  root.append(svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, svg("path", { d: "M0,0 L10,5 L0,10 z", class: "arrow" }))));
  for (const node of arch.nodes) for (const source of node.inputs) {
    const a = pos[source], b = pos[node.id];
    const x1 = a.x + W / 2, y1 = a.y + H, x2 = b.x + W / 2, y2 = b.y;
    root.append(svg("path", { d: `M${x1},${y1} C${x1},${y1 + GAPY} ${x2},${y2 - GAPY} ${x2},${y2}`, class: "edge", "marker-end": "url(#arrow)" }));
  }
  for (const node of arch.nodes) {
    const { x, y } = pos[node.id];
    root.append(svg("g", { class: `node op-${node.op.replace(/[^a-z0-9_]/g, "")}`, "data-node": node.id, transform: `translate(${x},${y})` },
      svg("rect", { width: W, height: H, rx: 6 }),
      svg("text", { x: 8, y: 16, class: "op" }, `${node.op} ${paramText(node)}`.slice(0, 28)),
      svg("text", { x: 8, y: 32, class: "shape" }, `→ ${JSON.stringify(node.shape)}`),
      svg("title", {}, `${node.id}: ${node.op} ${JSON.stringify(node.params)} → ${JSON.stringify(node.shape)}`)));
  }
  return [el("p", { class: "muted small" }, `${arch.nodes.length} nodes, ${arch.nodes.reduce((n, x) => n + x.inputs.length, 0)} edges; output shape under each op`), root];
}

function cellGraph(cell) {
  const cy = 170, n = cell.num_nodes;
  const at = (i) => ({ x: 40 + (i * 300) / Math.max(1, n - 1), y: cy + (i % 2 ? -60 : 60) * (n > 2 ? 1 : 0) });
  const root = svg("svg", { viewBox: "0 0 380 340", class: "dag cell", role: "img", "data-cell-nodes": n });
  cell.edges.forEach((e, k) => {
    const a = at(e.from), b = at(e.to);
    const bend = (e.to - e.from) * 30 * (k % 2 ? 1 : -1);
    const mx = (a.x + b.x) / 2, my = (a.y + b.y) / 2 + bend;
    root.append(svg("path", { d: `M${a.x},${a.y} Q${mx},${my} ${b.x},${b.y}`, class: `edge cell-edge op-${e.op.replace(/[^a-z0-9_]/g, "")}`, "data-op": e.op }),
      svg("text", { x: mx, y: my + (bend > 0 ? -2 : 10) / 2, "text-anchor": "middle", class: "edge-label" }, e.op));
  });
  for (let i = 0; i < n; i++) {
    const { x, y } = at(i);
    root.append(svg("g", { class: "node cell-node", "data-node": i }, svg("circle", { cx: x, cy: y, r: 16 }), svg("text", { x, y: y + 5, "text-anchor": "middle" }, String(i))));
  }
  return root;
}

function choices(arch) {
  if (arch.error) return null;
  const config = Object.entries(arch.config || {});
  return [
    arch.cell ? [el("p", { class: "muted small" }, `The searched cell (every cell of the network shares it): ${(arch.cell.cell_inputs || 1) > 1 ? `nodes 0-${arch.cell.cell_inputs - 1} are the cell's inputs` : "node 0 is the cell's input"}; 'none' edges are dropped.`), cellGraph(arch.cell)] : null,
    config.length ? el("table", { class: "grid kv", id: "choice-table" }, el("tbody", {}, config.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, typeof v === "string" ? v : JSON.stringify(v)))))) :
      el("p", { class: "muted" }, "No recorded choices."),
  ];
}

function source(arch) {
  if (arch.error) return el("p", { class: "error-text" }, arch.error);
  const code = el("pre", { class: "code", id: "source-code" }, arch.source);
  const status = el("span", { class: "muted small", id: "copy-status" });
  const copy = el("button", { type: "button", id: "copy-source", onclick: async () => {
    try {
      await navigator.clipboard.writeText(arch.source);
      status.textContent = "copied";
    } catch (error) {
      // No clipboard (plain http on another host): select the text for Ctrl-C instead.
      getSelection().selectAllChildren(code);
      status.textContent = "selected: press Ctrl-C to copy";
    }
  } }, "Copy");
  return [el("div", { class: "controls" }, copy, status), code];
}

async function refresh() {
  const data = await api(`/ui/api/tasks/${id}`);
  task = data.task;
  document.title = `Task ${task.id} · MorphML`;
  replace(parts.summary, summary(data));
  replace(parts.metrics, metrics(data));
  replace(parts.events, events(data));
  if (drawnHash !== (data.architecture.hash || data.architecture.error)) {
    drawnHash = data.architecture.hash || data.architecture.error;
    replace(parts.graph, graph(data.architecture));
    replace(parts.cell, choices(data.architecture));
    replace(parts.source, source(data.architecture));
  }
}

if (!id) fatal(new Error("no task id in this address"));
else {
  layout();
  poll(refresh, () => (task && ["pending", "running"].includes(task.state) ? 3000 : 15000));
}
