"""`samplecnn report`: run folders read back (collect.py), the paper's tables beside them (tables.py), and
one offline HTML page, Markdown and JSON (build.py).

May import viz, features, training, inference, runs, data, models and core."""
