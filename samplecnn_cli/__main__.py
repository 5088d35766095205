from samplecnn_cli.cli.app import run

run()
