"""What every layer stands on: errors a user can act on, path containment, the plugin rules, the
process context built once by the CLI, the runtime (device, precision, task head) and the paper's metrics.

Imports nothing else of samplecnn_cli."""
