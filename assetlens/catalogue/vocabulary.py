"""The catalogue's world: object kinds, colours, backgrounds, and the captions that name them.

``Item(object, color, background)`` names one product shot; ``caption()``
gives its canonical caption ("a red mug on a wooden table") and
``captions()`` the training templates. Colour/background pairs that would be
invisible (a white product on a white background, black on black, blue on
blue, silver on gray) are refused.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Object kinds, in a fixed order (the order matters for ``split``).
OBJECTS: tuple[str, ...] = (
    "mug",
    "watch",
    "shoe",
    "handbag",
    "lamp",
    "bottle",
    "chair",
    "hat",
    "t-shirt",
    "sunglasses",
    "headphones",
)

#: Plural nouns take no article: "red sunglasses", not "a red sunglasses".
PLURAL_OBJECTS: frozenset[str] = frozenset({"sunglasses", "headphones", "glasses", "shades"})

#: Other words people use for the object kinds (training variety only; the
#: canonical caption always uses the name in ``OBJECTS``).
SYNONYMS: dict[str, tuple[str, ...]] = {
    "mug": ("cup", "coffee mug"),
    "watch": ("wristwatch",),
    "shoe": ("sneaker",),
    "handbag": ("bag", "purse"),
    "lamp": ("table lamp",),
    "bottle": ("water bottle",),
    "chair": (),
    "hat": (),
    "t-shirt": ("shirt", "tee"),
    "sunglasses": ("glasses", "shades"),
    "headphones": ("headset",),
}

#: Colour name -> base sRGB. Gold and silver are drawn with a metallic sheen.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (205, 32, 38),
    "orange": (243, 128, 22),
    "yellow": (246, 214, 40),
    "green": (38, 150, 62),
    "blue": (34, 82, 205),
    "purple": (122, 52, 165),
    "pink": (242, 125, 178),
    "black": (34, 34, 38),
    "white": (243, 243, 240),
    "gold": (200, 155, 48),
    "silver": (178, 182, 190),
}
METALLIC: frozenset[str] = frozenset({"gold", "silver"})

#: Backgrounds, named as they appear in captions after "on a".
BACKGROUNDS: tuple[str, ...] = (
    "white background",
    "black background",
    "gray background",
    "blue background",
    "wooden table",
)

#: Other ways to name the backgrounds (training variety only).
BACKGROUND_SYNONYMS: dict[str, tuple[str, ...]] = {
    "white background": ("white backdrop",),
    "black background": ("black backdrop",),
    "gray background": ("grey background",),
    "blue background": ("blue backdrop",),
    "wooden table": ("wood table", "wooden desk"),
}

#: (colour, background) pairs never drawn: the product would vanish.
INVISIBLE: frozenset[tuple[str, str]] = frozenset(
    {
        ("white", "white background"),
        ("black", "black background"),
        ("blue", "blue background"),
        ("silver", "gray background"),
    }
)

#: Caption templates. ``{thing}`` is "a red mug" / "red sunglasses",
#: ``{bg}`` is "a wooden table"; the first template is the canonical caption.
CAPTION_TEMPLATES: tuple[str, ...] = (
    "{thing} on {bg}",
    "a photo of {thing} on {bg}",
    "a product photo of {thing} on {bg}",
    "{color} {object} on {bg}",
    "{thing}, {background}",
    "{thing} in front of {bg}",
    "{thing}",
    "a photo of {thing}",
    "{color} {object}",
    "{object} in {color} on {bg}",
    "{object} in {color}",
)


def article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


@dataclass(frozen=True)
class Item:
    """One product shot: an object kind, its colour and the background."""

    object: str
    color: str
    background: str

    def __post_init__(self) -> None:
        if self.object not in OBJECTS:
            raise ValueError(f"Unknown object kind {self.object!r}; choose one of {', '.join(OBJECTS)}.")
        if self.color not in COLORS:
            raise ValueError(f"Unknown colour {self.color!r}; choose one of {', '.join(COLORS)}.")
        if self.background not in BACKGROUNDS:
            raise ValueError(f"Unknown background {self.background!r}; choose one of {', '.join(BACKGROUNDS)}.")
        if (self.color, self.background) in INVISIBLE:
            raise ValueError(f"A {self.color} product on a {self.background} would be invisible.")

    @property
    def pair(self) -> tuple[str, str]:
        """The (colour, object) combination that ``split`` holds out or not."""
        return (self.color, self.object)

    @property
    def thing(self) -> str:
        """ "a red mug", "an orange hat", "red sunglasses"."""
        return self._thing(self.object)

    def _thing(self, noun: str) -> str:
        phrase = f"{self.color} {noun}"
        return phrase if noun in PLURAL_OBJECTS else f"{article(self.color)} {phrase}"

    def caption(self, template: str | None = None, noun: str | None = None, background: str | None = None) -> str:
        """The canonical caption ("a red mug on a wooden table") or one template filled in.

        ``noun`` and ``background`` replace the object's and background's
        names (synonyms, for training variety).
        """
        noun = noun or self.object
        background = background or self.background
        template = template or CAPTION_TEMPLATES[0]
        obj = noun
        if template.startswith("{object}") and noun not in PLURAL_OBJECTS:
            obj = f"{article(noun)} {noun}"
        return template.format(
            thing=self._thing(noun),
            color=self.color,
            object=obj,
            bg=f"{article(background)} {background}",
            background=background,
        )

    def short_caption(self) -> str:
        """Colour and object only: "a red mug"."""
        return self.thing

    def captions(self) -> list[str]:
        """Every template filled in (for training variety)."""
        return [self.caption(t) for t in CAPTION_TEMPLATES]

    @property
    def slug(self) -> str:
        """A file-name-friendly description: ``red-mug-on-wooden-table``."""
        return f"{self.color}-{self.object}-on-{self.background}".replace(" ", "-")
