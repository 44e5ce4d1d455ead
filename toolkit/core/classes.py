"""The land-use class table: the six classes of the study, their conventional map colours and the name
fragments that mean each of them (so a bundle trained on `River` or `dRiverLake` draws water in blue)."""

from __future__ import annotations

CLASSES: tuple[str, ...] = ("forest", "cropland", "urban", "water", "barren", "wetland")

#: RGB colours for maps and legends, in CLASSES order.
CLASS_COLOURS: dict[str, tuple[int, int, int]] = {
    "forest": (34, 110, 40),
    "cropland": (230, 200, 60),
    "urban": (200, 40, 40),
    "water": (40, 90, 220),
    "barren": (170, 130, 90),
    "wetland": (60, 190, 170),
}

#: name fragments that mean one of the land-use colours (checked in this order)
SYNONYMS: dict[str, tuple[str, ...]] = {
    "water": ("water", "river", "lake", "sea", "ocean", "pond"),
    "wetland": ("wetland", "marsh", "swamp", "mangrove"),
    "forest": ("forest", "tree", "wood"),
    "cropland": ("crop", "field", "farm", "agri"),
    "barren": ("barren", "bare", "desert", "sand", "rock"),
    "urban": ("urban", "resident", "city", "build", "industr"),
}
#: grass, meadow and pasture classes (RSSCN7's aGrass) get this colour
GRASS = (150, 205, 90)
