"""SSL feature sets with randomly initialised torchaudio models, loaded through a local file.

Oracle: the same random model called directly (extract_features, mean over frames).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch
import torchaudio

from sergrad.audio import write_wav
from sergrad.errors import ConfigError, DataError
from sergrad.features import get_feature_set
from sergrad.features.base import resolve_params
from sergrad.features.extract import extract_features
from sergrad.features.keys import cache_key
from sergrad.features.ssl import MODELS, default_weights_path

SR = 16_000


def build(name: str, **params):
    spec = get_feature_set(name)
    return spec.build(resolve_params(name, params, spec.defaults))


def wave(seconds: float = 0.3) -> np.ndarray:
    t = np.arange(round(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * 150 * t)).astype(np.float32)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """name -> (random model, its state_dict file, our extractor loaded from that file).

    hubert_base is loaded from the default torch hub location, the others via `weights`.
    """
    out = {}
    root = tmp_path_factory.mktemp("weights")
    hub = tmp_path_factory.mktemp("hub")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.hub, "get_dir", lambda: str(hub))
        for name, model in MODELS.items():
            net = getattr(torchaudio.models, model.constructor)(aux_num_out=None).eval()
            path = root / model.file
            torch.save(net.state_dict(), path)
            if name == "hubert_base":
                (hub / "checkpoints").mkdir()
                (hub / "checkpoints" / model.file).symlink_to(path)
                extractor = build(name)
            else:
                extractor = build(name, weights=str(path))
            out[name] = (net, path, extractor)
    return out


def direct(net: torch.nn.Module, x: np.ndarray, layer: int) -> np.ndarray:
    with torch.inference_mode():
        layers, _ = net.extract_features(torch.from_numpy(x)[None], num_layers=layer)
    return layers[layer - 1][0].mean(dim=0).numpy()  # [768]


def test_file_names_match_the_torchaudio_bundles():
    for model in MODELS.values():
        assert getattr(torchaudio.pipelines, model.bundle)._path == model.file


@pytest.mark.parametrize("name", sorted(MODELS))
def test_random_model_through_local_file_equals_direct_call(name, models):
    net, _, ex = models[name]
    x = wave()
    got = ex(x)
    assert got.shape == (768,) and got.dtype == np.float32
    np.testing.assert_allclose(got, direct(net, x, 12), rtol=1e-4, atol=1e-4)


def test_layer_is_selectable(models):
    net, path, _ = models["wav2vec2_base"]
    x = wave()
    got = build("wav2vec2_base", weights=str(path), layer=3)(x)
    np.testing.assert_allclose(got, direct(net, x, 3), rtol=1e-4, atol=1e-4)
    assert not np.allclose(got, direct(net, x, 12), atol=1e-3)


def test_extract_features_with_ssl_and_key_tracks_weights(tmp_path, models):
    net, path, _ = models["wav2vec2_base"]
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"u{i}.wav")
        write_wav(paths[-1], wave(0.3 + 0.1 * i), SR)
    utts = pa.table({"utt_id": ["u0", "u1"], "path": [str(p) for p in paths]})
    table, problems = extract_features(
        utts, feature_set="wav2vec2_base", params={"weights": str(path), "layer": 2}, progress=False
    )
    assert problems.count == 0 and table.num_rows == 2
    assert table.schema.field("x").type.list_size == 768
    np.testing.assert_allclose(
        table.column("x").to_pylist()[1], direct(net, wave(0.4), 2), atol=1e-3
    )
    key = cache_key(utts, feature_set="wav2vec2_base", params={"weights": str(path), "layer": 2})
    copy = tmp_path / "copy.pth"
    copy.write_bytes(path.read_bytes())
    assert (
        cache_key(utts, feature_set="wav2vec2_base", params={"weights": str(copy), "layer": 2})
        != key
    )


def test_missing_weights_say_which_file_goes_where(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    for name, model in MODELS.items():
        expected = tmp_path / "hub" / "checkpoints" / model.file
        assert default_weights_path(model) == expected
        with pytest.raises(DataError) as err:
            build(name)
        text = str(err.value)
        assert str(expected) in text and model.file in text and "never downloads" in text
        assert f"https://download.pytorch.org/torchaudio/models/{model.file}" in text
    with pytest.raises(DataError, match="nope.pth not found"):
        build("hubert_base", weights=str(tmp_path / "nope.pth"))


def test_bad_layer_and_wrong_file(tmp_path, models):
    _, path, _ = models["wavlm_base"]
    with pytest.raises(ConfigError, match="layer=13 out of range"):
        build("wavlm_base", weights=str(path), layer=13)
    with pytest.raises(DataError, match="not a wav2vec2_base state_dict"):
        build("wav2vec2_base", weights=str(path))  # WavLM weights in a wav2vec2 model
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="junk.pth: not a hubert_base state_dict"):
        build("hubert_base", weights=str(junk))


def test_too_short_audio_is_a_data_error(models):
    with pytest.raises(DataError, match="too short"):
        models["wav2vec2_base"][2](np.zeros(100, np.float32))
