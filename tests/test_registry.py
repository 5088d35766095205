"""The name grammar, the catalogue and the paper's exact parameter counts."""

from __future__ import annotations

import pytest

from samplecnn_cli.core.errors import UsageError
from samplecnn_cli.models.registry import (
    canonical_name,
    config_for_rate,
    create_model,
    list_models,
    model_info,
    native_sample_rate,
    parse_name,
)

TABLE1_LAYER_PARAMS = [512, 49_280, 49_280, 98_560, 196_864, 196_864, 196_864, 196_864, 393_728, 786_944,
                       262_656, 25_650]

TABLE3 = {  # alias: (digits name, rate, input samples, conv/dense weights + biases)
    "sample-2k": ("sample-3-3-3-3-2-2-2-2-2-2", 2000, 5184, 1_798_706),
    "sample-4k": ("sample-3-3-3-3-2-2-2-4-2-2", 4000, 10368, 1_929_778),
    "sample-8k": ("sample-3-3-3-3-2-2-4-4-2-2", 8000, 20736, 2_060_850),
    "sample-12k": ("sample-3-3-3-3-3-2-4-4-2-2", 12000, 31104, 2_126_386),
    "sample-16k": ("sample-3-3-3-3-3-3-3-5-2-2", 16000, 43740, 2_191_922),
    "sample-20k": ("sample-3-3-3-3-3-3-3-3-4-2", 20000, 52488, 2_322_994),
    "sample-22k": ("sample-3^9", 22050, 59049, 2_454_066),
}

TABLE2 = ["frame-mel-729", "frame-mel-729x243", "frame-mel-243", "frame-mel-243x81", "frame-mel-81",
          "frame-raw-729", "frame-raw-729x243", "frame-raw-243", "frame-raw-243x81", "frame-raw-81",
          "sample-27x3^7", "sample-9x3^8", "sample-3^9"]
TABLE4 = ["sample-2^13", "sample-2^14", "sample-3^8", "sample-3^9", "sample-4^6", "sample-4^7", "sample-5^5",
          "sample-5^6"]


def test_table1_layer_counts():
    info = model_info("sample-3^9")
    assert [row["params"] for row in info["layers"]] == TABLE1_LAYER_PARAMS
    assert info["params_conv_dense"] == 2_454_066
    assert info["params"] == 2_460_466  # plus BN gamma/beta: 2 x 3,200 channels
    assert info["input_samples"] == 59_049
    lengths = [row["output_length"] for row in info["layers"][:10]]
    assert lengths == [19683, 6561, 2187, 729, 243, 81, 27, 9, 3, 1]


@pytest.mark.parametrize("alias", sorted(TABLE3))
def test_table3_configs(alias):
    digits, rate, samples, params = TABLE3[alias]
    for name in (alias, digits):
        info = model_info(name)
        assert info["name"] == digits
        assert info["input_samples"] == samples
        assert info["sample_rate"] == rate
        assert info["params_conv_dense"] == params


@pytest.mark.parametrize("name", TABLE2 + TABLE4)
def test_every_table_row_is_listed_and_builds(name):
    assert name in list_models()
    model = create_model(name, num_outputs=7)
    assert model.num_outputs == 7 and model.classifier.out_features == 7
    if name in TABLE2:
        assert model.input_samples == 59_049


def test_table4_input_sizes():
    sizes = {name: create_model(name).input_samples for name in TABLE4}
    assert sizes == {"sample-2^13": 2 ** 14, "sample-2^14": 2 ** 15, "sample-3^8": 3 ** 9, "sample-3^9": 3 ** 10,
                     "sample-4^6": 4 ** 7, "sample-4^7": 4 ** 8, "sample-5^5": 5 ** 6, "sample-5^6": 5 ** 7}


@pytest.mark.parametrize("spelling", ["sample-3^9", "sample-3pow9", "sample-3-3-3-3-3-3-3-3-3-3", "sample-22k",
                                      "sample-3x3^9"])
def test_spellings_of_3pow9(spelling):
    assert canonical_name(spelling) == "sample-3^9"


def test_frame_names():
    assert parse_name("frame-mel-243x243").canonical == "frame-mel-243"
    spec = parse_name("frame-raw-729x243")
    assert (spec.family, spec.window, spec.hop) == ("frame-raw", 729, 243)
    assert create_model("frame-mel-729").num_modules == 4
    assert create_model("frame-mel-243x81").num_modules == 6


@pytest.mark.parametrize("bad", ["sample-3^99", "sample-1^9", "samp-3^9", "frame-mel-100", "frame-mel-81x243",
                                 "frame-mel-2187", "sample-3-1-3", "", "resnet50"])
def test_bad_names_are_usage_errors_with_a_hint(bad):
    with pytest.raises(UsageError) as info:
        create_model(bad)
    assert info.value.hint


def test_close_names_are_suggested():
    with pytest.raises(UsageError) as info:
        create_model("sample-3^19")
    assert "sample-3^9" in info.value.hint


def test_weights_tag_is_reserved():
    with pytest.raises(UsageError, match="reserved"):
        create_model("sample-3^9.mtat")


def test_overrides_and_none_dropping():
    model = create_model("sample-3^5", num_outputs=3, sample_rate=8000, dropout=0.25, seed=None)
    assert (model.num_outputs, model.sample_rate, model.dropout_rate) == (3, 8000, 0.25)
    with pytest.raises(UsageError, match="bad override"):
        create_model("sample-3^5", colour="red")


def test_wildcards():
    assert set(list_models("frame-mel-*")) == {n for n in TABLE2 if n.startswith("frame-mel")}
    assert list_models("sample-8k") == ["sample-3-3-3-3-2-2-4-4-2-2"]  # aliases match
    assert list_models("nothing*") == []


def test_native_rates():
    assert native_sample_rate("sample-8k") == 8000
    assert native_sample_rate("sample-3^9") == 22050
    assert config_for_rate(8000).aliases == ["sample-8k"]
    assert config_for_rate(11025) is None
