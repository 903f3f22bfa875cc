"""The on-robot loop's building blocks: deployment gates (a candidate must beat the deployed
model on held-out data without collapsing) and atomic deploys with history and rollback."""
