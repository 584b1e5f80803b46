# Alembic's environment script only runs inside a migration; doctest collection must skip it.
collect_ignore_glob = ["amploop/registry/migrations/*"]
