"""The `morphml-worker` agent: pulls tasks from the control plane and evaluates them."""
