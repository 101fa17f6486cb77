"""Local mode: the platform as plain processes, for machines without Docker or Kubernetes."""
