"""The command line: the Typer app (app.py), one thin module per command (commands/), and the console
plumbing every command shares (console.py: one-line errors, JSON output, progress bars).

May import every other layer. Nothing imports it. Command modules import only typer and rich at module
level, so `samplecnn --help` stays fast."""
