"""The stack's parts as containers of the project's own images (harness/image), through
testcontainers, on any Docker-compatible API: Docker's, or Podman's service on machines like
these (docs/image.md, "Podman, and testcontainers"). Local binaries stay the stack's default."""
