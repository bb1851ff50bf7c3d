"""The supervisors' tools: lint, diagrams, figures, and a simulated caller."""
