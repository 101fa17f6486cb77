"""The shared kit every service is built from: settings, keyrings, tokens, errors, observability,
MongoDB access, service-to-service calls and the app factory."""
