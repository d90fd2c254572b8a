"""The SavedModel contract: its names are consistent, its readers say what is wrong with a
missing or damaged file (pure Python: no TensorFlow needed)."""

import json
import subprocess
import sys

import pytest

from rectifier_zoo.serving import contract


def _export_folder(tmp_path, class_names="a\nb\n", metadata='{"architecture": "m"}'):
    folder = tmp_path / "1"
    (folder / contract.ASSETS_DIR).mkdir(parents=True)
    for name, text in [
        (contract.CLASS_NAMES_FILE, class_names),
        (contract.METADATA_FILE, metadata),
    ]:
        if text is not None:
            mode = "wb" if isinstance(text, bytes) else "w"
            with open(folder / contract.ASSETS_DIR / name, mode) as f:
                f.write(text)
    return folder


def test_names_are_consistent():
    assert set(contract.INPUTS) == set(contract.OUTPUTS) == set(contract.ENDPOINTS)
    assert contract.INPUT_CONTRACT in contract.METADATA_KEYS
    assert set(contract.ENDPOINTS) <= set(contract.INPUT_CONTRACT_KEYS)
    assert contract.FORMATS == (contract.SAVED_MODEL, *contract.FILE_FORMATS)


def test_importing_the_contract_loads_no_tensorflow():
    code = (
        "import sys; import rectifier_zoo.serving.contract, rectifier_zoo.serving.protocols, "
        "rectifier_zoo.serving.publish; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_write_then_read(tmp_path):
    contract.write_assets(tmp_path, ["cat", "hot dog"], {"steps": 3, "input_contract": {}})
    assert contract.read_class_names(tmp_path) == ["cat", "hot dog"]
    assert contract.read_metadata(tmp_path) == {"steps": 3, "input_contract": {}}


def test_windows_line_endings_are_read(tmp_path):
    folder = _export_folder(tmp_path, class_names=b"a\r\nb\r\n")
    assert contract.read_class_names(folder) == ["a", "b"]


@pytest.mark.parametrize("missing", [contract.CLASS_NAMES_FILE, contract.METADATA_FILE])
def test_a_missing_asset_says_it_is_not_an_export(tmp_path, missing):
    folder = _export_folder(tmp_path)
    (folder / contract.ASSETS_DIR / missing).unlink()
    read = {
        contract.CLASS_NAMES_FILE: contract.read_class_names,
        contract.METADATA_FILE: contract.read_metadata,
    }[missing]
    with pytest.raises(FileNotFoundError, match=f"no assets.extra/{missing}: not a rectifier_zoo"):
        read(folder)


@pytest.mark.parametrize(
    "metadata, message",
    [
        ('{"architecture": ', "is not valid JSON"),
        ("[1, 2]", "must hold a JSON object. Received: list"),
        (b"\xff\xfe{}", "is not UTF-8 text"),
    ],
)
def test_garbled_metadata_is_one_clear_error(tmp_path, metadata, message):
    folder = _export_folder(tmp_path, metadata=metadata)
    with pytest.raises(ValueError, match=message) as raised:
        contract.read_metadata(folder)
    assert contract.METADATA_FILE in str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    "class_names, message",
    [("\n\n  \n", "holds no class names"), (b"caf\xe9\n", "is not UTF-8 text")],
)
def test_garbled_class_names_are_one_clear_error(tmp_path, class_names, message):
    folder = _export_folder(tmp_path, class_names=class_names)
    with pytest.raises(ValueError, match=message):
        contract.read_class_names(folder)


def test_metadata_round_trips_non_json_values(tmp_path):
    contract.write_assets(tmp_path, ["a"], {"path": tmp_path})  # written with str()
    assert json.loads((tmp_path / contract.ASSETS_DIR / contract.METADATA_FILE).read_text()) == {
        "path": str(tmp_path)
    }
