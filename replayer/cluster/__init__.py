"""One schedule over many nodes: `replayer merge` (shards run by hand or by Kubernetes into one
run), `replayer run --ray` (a Ray driver that runs one shard per node and merges them) and
`replayer k8s-job` (the Kubernetes Indexed Job that runs the shards). docs/scaling.md."""
