"""The process: HTTP app, SMTP server, configuration wiring and the `aduan` CLI."""
