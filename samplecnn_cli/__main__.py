from samplecnn_cli.main import run

run()
