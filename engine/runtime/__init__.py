"""Service shell: lifecycle, supervised tasks, logging, signals and graceful stop."""
