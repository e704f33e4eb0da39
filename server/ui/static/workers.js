// Workers: online or offline, resources (GPUs with memory and utilisation when reported, CPUs,
// RAM), slots, current tasks, last seen, labels.

import { age, api, badge, el, link, poll, replace, setActiveNav } from "./common.js";

function gpus(resources) {
  const list = resources.gpus || [];
  if (!list.length) return el("span", { class: "muted" }, "none");
  return el("ul", { class: "gpus" }, list.map((g) => el("li", {},
    `#${g.index} ${g.name || "GPU"} · ${g.memory_mb ? `${(g.memory_mb / 1024).toFixed(1)} GiB` : "? GiB"}`,
    g.utilization !== undefined ? el("span", { class: "muted" }, ` · ${g.utilization}% busy`) : null,
    g.memory_used_mb !== undefined ? el("span", { class: "muted" }, ` · ${(g.memory_used_mb / 1024).toFixed(1)} GiB used`) : null)));
}

function row(w, now) {
  const r = w.resources || {};
  return el("tr", { "data-id": w.id, "data-status": w.status },
    el("td", {}, `#${w.id}`),
    el("td", { class: "name" }, w.name, el("div", { class: "muted small" }, w.host)),
    el("td", {}, badge(w.status)),
    el("td", {}, gpus(r)),
    el("td", { class: "num" }, r.cpus ?? "—"),
    el("td", { class: "num" }, r.memory_mb ? `${(r.memory_mb / 1024).toFixed(1)} GiB` : "—"),
    el("td", { class: "num" }, r.slots ?? "—"),
    el("td", { class: "current" }, w.current_tasks.length ? w.current_tasks.map((t) => link(`/ui/tasks/${t}`, `#${t}`)) : el("span", { class: "muted" }, "idle")),
    el("td", {}, `${age(w.last_seen_at, now)} ago`),
    el("td", {}, Object.entries(w.labels || {}).map(([k, v]) => el("code", { class: "label-chip" }, `${k}=${v}`))));
}

setActiveNav("workers");
const body = el("div", { id: "workers-body" });
replace(document.getElementById("main"), el("section", { class: "card" },
  el("div", { class: "card-head" }, el("h1", {}, "Workers"), el("span", { id: "worker-count", class: "muted" })), body));
poll(async () => {
  const page = await api("/ui/api/workers");
  const online = page.data.filter((w) => w.status === "online").length;
  document.getElementById("worker-count").textContent = `${online} online of ${page.count}`;
  replace(body, page.data.length ? el("table", { class: "grid", id: "workers" },
    el("thead", {}, el("tr", {}, ["id", "name", "status", "GPUs", "CPUs", "RAM", "slots", "current tasks", "last seen", "labels"].map((h) => el("th", {}, h)))),
    el("tbody", {}, page.data.map((w) => row(w, page.now)))) :
    el("p", { class: "muted empty" }, "No worker has registered yet: start one with `morphml-worker --server URL`."));
});
