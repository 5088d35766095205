"""Dataset adapters: each turns a raw dataset on disk into a Manifest (files, labels, splits).

Built-in: mtat, msd, gtzan, tagtraum, folder, toy. Third parties add more through the entry-point
group `samplecnn.datasets` (name = dataset name, value = "package.module:AdapterClass").
"""

from samplecnn_cli.data.datasets.adapters import ENTRY_POINT_GROUP, get_adapter, list_adapters
from samplecnn_cli.data.datasets.base import DatasetAdapter, Item, Manifest

__all__ = ["DatasetAdapter", "Item", "Manifest", "ENTRY_POINT_GROUP", "get_adapter", "list_adapters"]
