"""The one store of the server's state: every write goes through a transition here.

Each transition is one unit of work (`server.db.unit`: one transaction, commit or roll back,
announced tasks woken after the commit) on prebuilt Core statements (`sql.py`):

- `tasks`: claim (a batch of one or more), heartbeat (appending metrics to `task_metric`, asking
  the pruner, pruning), complete, fail, requeue_expired;
- `experiments`: insert (with its first tasks), pause, resume, cancel;
- `refill`: tell the optimizer its outcomes, ask, insert tasks; the only place it runs. When to
  refill is `refill_rule.plan_refill`, a pure function;
- `workers`: register, mark_silent_offline.

Lock order (Postgres; SQLite has one writer at a time, so it cannot deadlock):
1. A unit that finishes or releases a task (complete, fail, prune, requeue) locks that task row
   only (FOR NO KEY UPDATE, `sql.LOCK_TASK`) and never an experiment row after it. The refill its
   outcome makes due runs after its commit, in a unit of its own.
2. A unit that changes an experiment (refill, lifecycle, insert) locks the experiment row first
   (`sql.LOCK_EXPERIMENT`), then updates its task rows.
3. A claim locks pending task rows (up to its batch, one statement each), skipping locked ones,
   and waits for nothing.
So no unit waits for an experiment row while holding a task row. FOR NO KEY UPDATE rather than
FOR UPDATE: inserted events take KEY SHARE on the rows they reference.

Read paths (listings, the admin views) use the ORM in read-only units (`server.db.read_session`).
"""
