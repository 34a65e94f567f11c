"""Control tasks: the registry (a task is data), scores, environment adapters and experts."""
