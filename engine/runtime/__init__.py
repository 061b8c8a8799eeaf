"""Service shell: lifecycle, supervised tasks, metrics, signals and graceful stop (logging, waits
and heap settling come from `plumbing`)."""
