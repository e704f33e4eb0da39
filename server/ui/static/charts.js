// Hand-written SVG charts: no library, nothing fetched. Each draws into a fixed viewBox and
// scales with its container. Points carry data-task so tests and clicks can find them.

import { el, fmt, svg } from "./common.js";

const PAD = { left: 58, right: 16, top: 14, bottom: 40 };

function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo)) return [lo];
  const step0 = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= step0) || step0;
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(+t.toPrecision(12));
  return ticks;
}

function extent(values) {
  let lo = Math.min(...values), hi = Math.max(...values);
  if (!Number.isFinite(lo)) return [0, 1];
  if (lo === hi) { lo -= Math.abs(lo) * 0.05 || 0.5; hi += Math.abs(hi) * 0.05 || 0.5; }
  const pad = (hi - lo) * 0.05;
  return [lo - pad, hi + pad];
}

function frame(width, height, xDomain, yDomain, xLabel, yLabel) {
  const [x0, x1] = xDomain, [y0, y1] = yDomain;
  const sx = (x) => PAD.left + ((x - x0) / (x1 - x0 || 1)) * (width - PAD.left - PAD.right);
  const sy = (y) => height - PAD.bottom - ((y - y0) / (y1 - y0 || 1)) * (height - PAD.top - PAD.bottom);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img" });
  const axes = svg("g", { class: "axes" });
  for (const t of niceTicks(y0, y1)) {
    axes.append(svg("line", { x1: PAD.left, x2: width - PAD.right, y1: sy(t), y2: sy(t), class: "grid" }),
      svg("text", { x: PAD.left - 6, y: sy(t) + 4, "text-anchor": "end" }, fmt(t, 3)));
  }
  for (const t of niceTicks(x0, x1, 6)) {
    axes.append(svg("text", { x: sx(t), y: height - PAD.bottom + 16, "text-anchor": "middle" }, fmt(t, 3)));
  }
  axes.append(
    svg("line", { x1: PAD.left, x2: width - PAD.right, y1: height - PAD.bottom, y2: height - PAD.bottom, class: "axis" }),
    svg("text", { x: (PAD.left + width - PAD.right) / 2, y: height - 6, "text-anchor": "middle", class: "label" }, xLabel),
    svg("text", { x: 12, y: (PAD.top + height - PAD.bottom) / 2, "text-anchor": "middle", class: "label",
      transform: `rotate(-90 12 ${(PAD.top + height - PAD.bottom) / 2})` }, yLabel));
  root.append(axes);
  return { root, sx, sy };
}

function pathOf(points, sx, sy, step = false) {
  let d = "";
  points.forEach(([x, y], i) => {
    if (i === 0) d += `M${sx(x).toFixed(1)},${sy(y).toFixed(1)}`;
    else if (step) d += `H${sx(x).toFixed(1)}V${sy(y).toFixed(1)}`;
    else d += `L${sx(x).toFixed(1)},${sy(y).toFixed(1)}`;
  });
  return d;
}

function dot(x, y, cls, taskId, title) {
  const circle = svg("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r: 3.5, class: `pt ${cls}`, "data-task": taskId });
  if (title) circle.append(svg("title", {}, title));
  if (taskId) circle.addEventListener("click", () => { location.href = `/ui/tasks/${taskId}`; });
  return circle;
}

// series: [{points: [[x, y, taskId?]], kind: "dots" | "line" | "step", cls, label}]
export function lineChart({ series, xLabel, yLabel, width = 640, height = 300, xDomain, yDomain }) {
  const all = series.flatMap((s) => s.points);
  if (!all.length) return el("p", { class: "muted empty" }, "Nothing to draw yet.");
  const { root, sx, sy } = frame(width, height, xDomain || extent(all.map((p) => p[0])),
    yDomain || extent(all.map((p) => p[1])), xLabel, yLabel);
  for (const s of series) {
    const group = svg("g", { class: `series ${s.cls || ""}`, "data-series": s.label || "" });
    if (s.kind === "dots") {
      for (const [x, y, id] of s.points) group.append(dot(sx(x), sy(y), s.cls || "", id, `${s.label || ""} ${fmt(x)}: ${fmt(y)}`));
    } else {
      group.append(svg("path", { d: pathOf(s.points, sx, sy, s.kind === "step"), class: "line" }));
      if (s.title) group.append(svg("title", {}, s.title));
      if (s.endMarker && s.points.length) {
        const [x, y] = s.points[s.points.length - 1];
        group.append(svg("text", { x: sx(x), y: sy(y) + 4, class: "end-marker", "text-anchor": "middle" }, s.endMarker));
      }
    }
    root.append(group);
  }
  return root;
}

export function legend(items) {
  return el("div", { class: "legend" }, items.map(([cls, text]) =>
    el("span", {}, el("i", { class: `swatch ${cls}` }), text)));
}

// axes: [{name, values: [string, ...]}] (categorical) ; lines: [{task_id, value, config}]
export function parallelCoordinates({ axes, lines, valueLabel, maximize, width = 900, height = 320 }) {
  if (!lines.length || !axes.length) return el("p", { class: "muted empty" }, "Nothing to draw yet.");
  // A candidate without a variable (an optional layer left out) sits on the axis' "—".
  axes = axes.map((a) => (lines.some((l) => !(a.name in l.config)) ? { ...a, values: [...a.values, "—"] } : a));
  const names = [...axes.map((a) => a.name), valueLabel];
  const values = lines.map((l) => l.value);
  const [v0, v1] = extent(values);
  const left = 70, right = 70, top = 24, bottom = 30;
  const step = (width - left - right) / Math.max(1, names.length - 1);
  const yOf = (axisIndex, line) => {
    const usable = height - top - bottom;
    if (axisIndex === axes.length) return top + (1 - (line.value - v0) / (v1 - v0 || 1)) * usable;
    const choices = axes[axisIndex].values;
    const at = Math.max(0, choices.indexOf(line.config[axes[axisIndex].name] ?? "—"));
    return top + (choices.length > 1 ? at / (choices.length - 1) : 0.5) * usable;
  };
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart parallel", role: "img" });
  const ranked = [...lines].sort((a, b) => (maximize ? a.value - b.value : b.value - a.value));
  ranked.forEach((line, rank) => {
    const d = names.map((_, i) => `${i ? "L" : "M"}${(left + i * step).toFixed(1)},${yOf(i, line).toFixed(1)}`).join("");
    const strength = (rank + 1) / ranked.length;
    const path = svg("path", { d, class: "pc-line", "data-task": line.task_id, "stroke-opacity": (0.25 + 0.75 * strength).toFixed(2) },
      svg("title", {}, `task ${line.task_id}: ${fmt(line.value)}`));
    path.addEventListener("click", () => { location.href = `/ui/tasks/${line.task_id}`; });
    root.append(path);
  });
  names.forEach((name, i) => {
    const x = left + i * step;
    root.append(svg("line", { x1: x, x2: x, y1: top, y2: height - bottom, class: "axis" }),
      svg("text", { x, y: height - 8, "text-anchor": "middle", class: "label" }, name.slice(0, 24)));
    const ticks = i < axes.length ? axes[i].values.map((v, k) => [v, yOf(i, { config: { [axes[i].name]: v } })])
      : niceTicks(v0, v1, 4).map((t) => [fmt(t, 3), yOf(i, { value: t })]);
    for (const [text, y] of ticks) root.append(svg("text", { x: x + 4, y: y + 4, class: "tick" }, String(text).slice(0, 18)));
  });
  return root;
}

// One small bar chart per decision variable: the mean objective for each value chosen.
export function choiceBars(variable, maximize, domain) {
  const width = 260, height = 150, left = 8, bottom = 34, top = 18;
  const choices = variable.choices;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart bars", role: "img" });
  const [lo, hi] = domain;
  const barWidth = (width - 2 * left) / choices.length;
  const best = choices.reduce((b, c) => ((maximize ? c.mean > b.mean : c.mean < b.mean) ? c : b), choices[0]);
  choices.forEach((choice, i) => {
    const h = Math.max(2, ((choice.mean - lo) / (hi - lo || 1)) * (height - top - bottom));
    const x = left + i * barWidth + 3;
    root.append(svg("rect", { x, y: height - bottom - h, width: Math.max(2, barWidth - 6), height: h,
      class: choice === best ? "bar best" : "bar", "data-choice": choice.value },
    svg("title", {}, `${variable.name} = ${choice.value}: mean ${fmt(choice.mean)}, best ${fmt(choice.best)}, ${choice.count} tasks`)));
    root.append(svg("text", { x: x + barWidth / 2 - 3, y: height - bottom - h - 4, "text-anchor": "middle", class: "tick" }, fmt(choice.mean, 3)),
      svg("text", { x: x + barWidth / 2 - 3, y: height - bottom + 13, "text-anchor": "middle", class: "tick" }, String(choice.value).slice(0, 14)),
      svg("text", { x: x + barWidth / 2 - 3, y: height - bottom + 26, "text-anchor": "middle", class: "tick muted" }, `n=${choice.count}`));
  });
  return root;
}
