"""Sub-commands of the `zhida` CLI, one module per noun."""
