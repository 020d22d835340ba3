"""Sample data and the manifest's contributions, through napari itself."""

import numpy as np

from napari_plugin.sample_data import SAMPLE_CONFIG, synthetic_stream


def test_sample_data_is_a_small_rgb_stream_with_a_blink():
    [(data, meta, kind)] = synthetic_stream()
    assert kind == "image"
    assert data.shape == (SAMPLE_CONFIG.n_frames, SAMPLE_CONFIG.height, SAMPLE_CONFIG.width, 3)
    assert data.dtype == np.uint8 and meta["rgb"]
    assert meta["metadata"]["blinks"], "the sample should show at least one blink"
    assert data[0].std() > 10  # an eye, not a blank frame


def test_sample_opens_from_the_menu_entry(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("tfll-live", "synthetic_tfll_stream")
    [layer] = viewer.layers
    assert layer.name == "Synthetic TFLL stream"
    assert layer.rgb and layer.data.shape[0] == SAMPLE_CONFIG.n_frames
