"""The catalogue's world in Indonesian: a table beside the English names of ``vocabulary``.

Keys are the English names (``OBJECTS``, ``COLORS``, ``BACKGROUNDS``), values
what an Indonesian shopper types. Indonesian has no articles and puts the
colour after the noun, so every template names its parts directly:
"jam tangan emas di atas latar putih" is the canonical caption of
``Item("watch", "gold", "white background")``.
"""

from __future__ import annotations

from assetlens.catalogue.vocabulary import Item

#: Object kinds, by their English name.
OBJECTS: dict[str, str] = {
    "mug": "mug",
    "watch": "jam tangan",
    "shoe": "sepatu",
    "handbag": "tas tangan",
    "lamp": "lampu",
    "bottle": "botol",
    "chair": "kursi",
    "hat": "topi",
    "t-shirt": "kaus",
    "sunglasses": "kacamata hitam",
    "headphones": "headphone",
}

#: Other words for the object kinds (training variety only).
SYNONYMS: dict[str, tuple[str, ...]] = {
    "mug": ("cangkir", "cangkir kopi"),
    "watch": ("arloji",),
    "shoe": ("sepatu kets",),
    "handbag": ("tas", "tas jinjing"),
    "lamp": ("lampu meja",),
    "bottle": ("botol minum",),
    "chair": (),
    "hat": (),
    "t-shirt": ("kaos", "baju kaus"),
    "sunglasses": ("kacamata", "kacamata surya"),
    "headphones": ("headset",),
}

COLORS: dict[str, str] = {
    "red": "merah",
    "orange": "oranye",
    "yellow": "kuning",
    "green": "hijau",
    "blue": "biru",
    "purple": "ungu",
    "pink": "merah muda",
    "black": "hitam",
    "white": "putih",
    "gold": "emas",
    "silver": "perak",
}

BACKGROUNDS: dict[str, str] = {
    "white background": "latar putih",
    "black background": "latar hitam",
    "gray background": "latar abu-abu",
    "blue background": "latar biru",
    "wooden table": "meja kayu",
}

#: Other ways to name the backgrounds (training variety only).
BACKGROUND_SYNONYMS: dict[str, tuple[str, ...]] = {
    "white background": ("latar belakang putih",),
    "black background": ("latar belakang hitam",),
    "gray background": ("latar belakang abu-abu",),
    "blue background": ("latar belakang biru",),
    "wooden table": ("meja dari kayu", "meja kayu cokelat"),
}

#: Caption templates: ``{object}``, ``{color}`` and ``{background}`` are the Indonesian names. The first
#: is the canonical caption; those without ``{background}`` name colour and object only, the first of
#: them being the short caption ("jam tangan emas").
CAPTION_TEMPLATES: tuple[str, ...] = (
    "{object} {color} di atas {background}",
    "foto {object} {color} di atas {background}",
    "foto produk {object} {color} di atas {background}",
    "{object} {color}, {background}",
    "{object} {color} di depan {background}",
    "{object} berwarna {color} di atas {background}",
    "{object} {color}",
    "foto {object} {color}",
    "{object} berwarna {color}",
)
SHORT_TEMPLATE = CAPTION_TEMPLATES[6]

#: Captions naming fewer attributes, with which they name: (colour, object, background) (training only).
PARTIAL_TEMPLATES: tuple[tuple[str, tuple[bool, bool, bool]], ...] = (
    ("sesuatu berwarna {color} di atas {background}", (True, False, True)),
    ("produk {color} di atas {background}", (True, False, True)),
    ("sesuatu berwarna {color}", (True, False, False)),
    ("produk {color}", (True, False, False)),
    ("{object}", (False, True, False)),
    ("foto {object}", (False, True, False)),
    ("{object} di atas {background}", (False, True, True)),
    ("{object}, {background}", (False, True, True)),
    ("produk di atas {background}", (False, False, True)),
)

#: Captions naming the object only (training only, for recoloured pictures).
OBJECT_TEMPLATES: tuple[str, ...] = ("{object}", "foto {object}", "foto produk {object}")


def caption(item: Item, template: str | None = None, noun: str | None = None, background: str | None = None) -> str:
    """The canonical Indonesian caption of ``item``, or one template filled in; ``noun`` and ``background``
    (Indonesian words) replace the object's and background's names."""
    return (template or CAPTION_TEMPLATES[0]).format(
        object=noun or OBJECTS[item.object],
        color=COLORS[item.color],
        background=background or BACKGROUNDS[item.background],
    )


def short_caption(item: Item) -> str:
    """Colour and object only: "jam tangan emas"."""
    return caption(item, SHORT_TEMPLATE)
