"""Model plugins through the `samplecnn.models` entry-point group, with real distribution metadata."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from samplecnn_cli.core.errors import UsageError
from samplecnn_cli.data.datasets import adapters as dataset_registry
from samplecnn_cli.models import registry

PLUGIN_MODULE = """
from samplecnn_cli.models.sample_level import SampleCNN

def tiny(**overrides):
    return SampleCNN([2, 2, 2], name="tinycnn", **overrides)
"""


def _install_fake_distribution(site: Path, dist: str, module: str, source: str, entries: dict[str, str],
                               group: str = "samplecnn.models") -> None:
    """Write what pip would: a module and a .dist-info with METADATA and entry_points.txt."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    lines = "\n".join(f"{name} = {target}" for name, target in entries.items())
    (info / "entry_points.txt").write_text(f"[{group}]\n{lines}\n")


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.clear_caches()
    dataset_registry.clear_caches()
    yield tmp_path
    for name in ("tinyplugin", "brokenplugin", "otherplugin", "mydata", "otherdata"):
        sys.modules.pop(name, None)
    registry.clear_caches()
    dataset_registry.clear_caches()


def test_plugin_is_discovered_listed_and_built(site):
    _install_fake_distribution(site, "tiny-plugin", "tinyplugin", PLUGIN_MODULE, {"tinycnn": "tinyplugin:tiny"})
    assert "tinycnn" in registry.list_models()
    assert "tinyplugin" not in sys.modules  # listing names does not import the plugin
    model = registry.create_model("tinycnn", num_outputs=3)
    assert model.num_outputs == 3 and model.input_samples == 8
    info = registry.model_info("tinycnn")
    assert info["provider"].startswith("tiny-plugin 1.0")


def test_broken_plugin_warns_and_the_rest_works(site):
    _install_fake_distribution(site, "broken-plugin", "brokenplugin", "raise ImportError('no such lib')",
                               {"brokencnn": "brokenplugin:build"})
    _install_fake_distribution(site, "tiny-plugin", "tinyplugin", PLUGIN_MODULE, {"tinycnn": "tinyplugin:tiny"})
    with pytest.warns(UserWarning, match="brokencnn.*failed to load"):
        with pytest.raises(UsageError, match="failed to load"):
            registry.create_model("brokencnn")
    assert registry.create_model("tinycnn").input_samples == 8
    assert registry.create_model("sample-2^3").input_samples == 16


def test_duplicate_names_name_both_providers(site):
    _install_fake_distribution(site, "tiny-plugin", "tinyplugin", PLUGIN_MODULE, {"tinycnn": "tinyplugin:tiny"})
    _install_fake_distribution(site, "other-plugin", "otherplugin", PLUGIN_MODULE, {"tinycnn": "otherplugin:tiny"})
    with pytest.raises(registry.RegistryError) as info:
        registry.list_models()
    assert "tiny-plugin" in info.value.message and "other-plugin" in info.value.message


def test_plugin_may_not_shadow_a_builtin(site):
    _install_fake_distribution(site, "tiny-plugin", "tinyplugin", PLUGIN_MODULE, {"sample-3^9": "tinyplugin:tiny"})
    with pytest.raises(registry.RegistryError, match="built-in"):
        registry.create_model("sample-3^9")


def test_in_process_registration(site):
    registry.register_model("mine", lambda **kw: registry.create_model("sample-2^3", **kw), provider="me")
    assert registry.create_model("mine", num_outputs=2).num_outputs == 2
    with pytest.raises(registry.RegistryError, match="both 'me' and 'again'"):
        registry.register_model("mine", lambda **kw: None, provider="again")


# -- datasets follow the same rules ------------------------------------------------------------------
DATASET_MODULE = """
from samplecnn_cli.data.datasets.folder import Folder

class Mine(Folder):
    name = ""
    description = "my own dataset"
"""


def _install_dataset(site, dist, module, entries, source=DATASET_MODULE):
    _install_fake_distribution(site, dist, module, source, entries, group="samplecnn.datasets")


def test_dataset_plugin_is_listed_and_loaded(site):
    _install_dataset(site, "my-data", "mydata", {"mine": "mydata:Mine"})
    rows = {row["name"]: row for row in dataset_registry.list_adapters()}
    assert rows["mine"]["description"] == "my own dataset" and rows["mine"]["source"].startswith("my-data 1.0")
    assert dataset_registry.get_adapter("mine").name == "mine"


def test_dataset_duplicates_name_both_providers(site):
    _install_dataset(site, "my-data", "mydata", {"mine": "mydata:Mine"})
    _install_dataset(site, "other-data", "otherdata", {"mine": "otherdata:Mine"})
    with pytest.raises(registry.RegistryError) as info:
        dataset_registry.get_adapter("folder")
    assert "my-data" in info.value.message and "other-data" in info.value.message


def test_dataset_plugin_may_not_shadow_a_builtin(site):
    _install_dataset(site, "my-data", "mydata", {"gtzan": "mydata:Mine"})
    with pytest.raises(registry.RegistryError, match="built-in"):
        dataset_registry.list_adapters()


def test_broken_dataset_plugin_warns_and_the_rest_works(site):
    _install_dataset(site, "broken-data", "brokenplugin", {"broken": "brokenplugin:X"},
                     source="raise ImportError('no such lib')")
    with pytest.warns(UserWarning, match="broken.*failed to load"):
        rows = {row["name"]: row for row in dataset_registry.list_adapters()}
    assert rows["broken"]["description"].startswith("(failed to load")
    assert rows["folder"]["source"] == "builtin"
    with pytest.raises(UsageError, match="failed to load"):
        dataset_registry.get_adapter("broken")
    assert dataset_registry.get_adapter("folder").name == "folder"
