"""napari adapter of tfll-live: live dock widget, overlays, spread plot, reader and sample data.

Everything here only converts what ``tfll_live`` computes into napari layers and Qt widgets;
no tracking math lives in this package.
"""

__all__: list[str] = []
