"""One thin module per `samplecnn` command: options, one call into a task or library package, output.
How to add a command: a module here with a function, registered with one line in cli/app.py."""
