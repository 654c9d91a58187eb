"""A character's looks read from their description, and the portrait drawn from them.

"a red-haired fisherman in a yellow raincoat" gives red hair and yellow clothes; "an old
lighthouse keeper in a blue coat" grey hair, lines on the face and a blue coat; "a young girl"
a smaller, rounder face with long hair. What the description leaves open (the background, the
skin tone unless named, the hair style) is picked from the name, so two characters differ even
when described alike, and a character looks the same in every run.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass

from PIL import ImageDraw

Color = tuple[int, int, int]
Size = tuple[int, int]

COLORS: dict[str, Color] = {
    "red": (200, 45, 45), "crimson": (170, 20, 50), "scarlet": (220, 40, 30),
    "blue": (45, 85, 200), "navy": (25, 40, 100), "teal": (30, 130, 130),
    "green": (50, 140, 60), "olive": (110, 120, 50), "yellow": (235, 205, 50),
    "purple": (125, 60, 170), "violet": (140, 90, 200), "orange": (235, 130, 35),
    "pink": (235, 130, 175), "brown": (115, 75, 45), "black": (30, 30, 35),
    "white": (238, 238, 238), "grey": (130, 130, 138), "gray": (130, 130, 138),
    "gold": (212, 170, 55), "golden": (212, 170, 55), "silver": (192, 192, 200),
    "beige": (215, 195, 160), "tan": (200, 160, 110),
    "红": (200, 45, 45), "蓝": (45, 85, 200), "绿": (50, 140, 60), "黄": (235, 205, 50),
    "紫": (125, 60, 170), "橙": (235, 130, 35), "粉": (235, 130, 175), "棕": (115, 75, 45),
    "黑": (30, 30, 35), "白": (238, 238, 238), "灰": (130, 130, 138),
}  # fmt: skip
HAIR_COLORS: dict[str, Color] = {
    "red": (180, 70, 30), "ginger": (190, 85, 35), "auburn": (140, 50, 30),
    "blonde": (235, 205, 120), "blond": (235, 205, 120), "fair": (225, 195, 120),
    "golden": (220, 180, 80), "brown": (95, 60, 30), "brunette": (85, 50, 25),
    "black": (25, 22, 25), "dark": (40, 30, 25), "grey": (170, 170, 172),
    "gray": (170, 170, 172), "silver": (200, 200, 205), "white": (238, 238, 235),
    "红": (180, 70, 30), "金": (235, 205, 120), "棕": (95, 60, 30), "黑": (25, 22, 25),
    "白": (238, 238, 235), "灰": (170, 170, 172),
}  # fmt: skip
CLOTHES = (
    "coat|jacket|raincoat|dress|shirt|sweater|jumper|hat|scarf|cloak|robe|suit|uniform|hoodie|"
    "t-shirt|vest|gown|apron|overalls|cardigan|blouse|tunic|armor|armour|cape|jersey|clothes"
)
CHINESE_CLOTHES = "外套|大衣|衣服|裙|衬衫|毛衣|帽|围巾|长袍|西装|制服|夹克"
SKINS: dict[str, Color] = {
    "pale": (250, 222, 200),
    "fair-skinned": (248, 218, 190),
    "tanned": (200, 145, 95),
    "dark-skinned": (120, 75, 45),
    "brown-skinned": (150, 100, 60),
}
DEFAULT_SKINS: list[Color] = [
    (241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36), (255, 219, 172),
]  # fmt: skip
OLD = ("old", "elderly", "aged", "grandmother", "grandfather", "grandma", "grandpa", "retired",
       "wrinkled", "veteran", "老", "爷爷", "奶奶")  # fmt: skip
YOUNG = ("child", "kid", "boy", "girl", "little", "young", "teenager", "teen", "toddler",
         "student", "孩子", "男孩", "女孩", "小")  # fmt: skip
FEMININE = ("woman", "girl", "she", "her", "lady", "mother", "grandmother", "queen", "princess",
            "女", "她", "奶奶", "妈妈")  # fmt: skip
MASCULINE = ("man", "boy", "he", "his", "gentleman", "father", "grandfather", "king", "prince",
             "男", "他", "爷爷", "爸爸")  # fmt: skip


@dataclass(frozen=True)
class Looks:
    hair: Color | None  # None: bald
    clothes: Color
    skin: Color
    age: str  # "child", "adult" or "old"
    long_hair: bool
    beard: bool
    glasses: bool
    background: tuple[Color, Color]


def read_looks(name: str, description: str) -> Looks:
    """What the description says of hair, clothes, age and more; the rest from the name."""
    text = description.lower()
    words = set(re.findall(r"[a-z-]+", text))
    rng = random.Random(hashlib.sha256(f"{name}\x1f{description}".encode()).hexdigest())
    age = (
        "old"
        if _any(OLD, words, text)
        else "child"
        if _any(YOUNG, words, text) and "young man" not in text and "young woman" not in text
        else "adult"
    )
    hair = _hair_color(text)
    if hair is None:
        hair = (
            HAIR_COLORS["grey"]
            if age == "old"
            else rng.choice(
                [HAIR_COLORS[c] for c in ("brown", "black", "blonde", "auburn", "dark")]
            )
        )
    bald = "bald" in words or "光头" in text
    feminine, masculine = _any(FEMININE, words, text), _any(MASCULINE, words, text)
    long_hair = "long hair" in text or "long-haired" in text or (feminine and not masculine)
    skin = next((c for word, c in SKINS.items() if word in text), rng.choice(DEFAULT_SKINS))
    clothes = _clothes_color(text) or _any_color(text) or _random_color(rng, 40, 220)
    # The backdrop from the name: two characters described alike still differ.
    named = random.Random(hashlib.sha256(name.encode()).hexdigest())
    background = (_random_color(named, 120, 235), _random_color(named, 40, 160))
    return Looks(
        hair=None if bald else hair,
        clothes=clothes,
        skin=skin,
        age=age,
        long_hair=long_hair and not bald,
        beard=bool({"beard", "bearded"} & words) or "胡子" in text,
        glasses=bool({"glasses", "spectacles", "bespectacled"} & words) or "眼镜" in text,
        background=background,
    )


def _any(names: tuple[str, ...], words: set[str], text: str) -> bool:
    return any((name in words) if name.isascii() else (name in text) for name in names)


def _hair_color(text: str) -> Color | None:
    names = "|".join(sorted(HAIR_COLORS, key=len, reverse=True))
    english = re.search(rf"\b({names})[- ]?(?:haired|hair|curls|braids?|beard)\b", text)
    english = english or re.search(rf"\bhair (?:is |of )?({names})\b", text)
    if english:
        return HAIR_COLORS[english.group(1)]
    chinese = re.search(r"([红金棕黑白灰])色?(?:的)?(?:头发|发)", text)
    if chinese:
        return HAIR_COLORS[chinese.group(1)]
    if re.search(r"\b(blonde|blond|brunette|redhead|ginger)\b", text):
        word = re.search(r"\b(blonde|blond|brunette|redhead|ginger)\b", text).group(1)  # type: ignore[union-attr]
        return HAIR_COLORS["red" if word == "redhead" else word]
    return None


def _clothes_color(text: str) -> Color | None:
    names = "|".join(sorted((c for c in COLORS if c.isascii()), key=len, reverse=True))
    found = re.search(rf"\b({names})\b(?:[\w-]+ ){{0,2}}?\s*(?:{CLOTHES})\b", text)
    if found:
        return COLORS[found.group(1)]
    chinese = re.search(rf"([红蓝绿黄紫橙粉棕黑白灰])色?(?:的)?(?:{CHINESE_CLOTHES})", text)
    return COLORS[chinese.group(1)] if chinese else None


def _any_color(text: str) -> Color | None:
    """A colour named anywhere but in the hair: the character's colour."""
    text = re.sub(r"\b\w+[- ]?(?:haired|hair)\b", " ", text)
    for word in re.findall(r"[a-z]+|[\u4e00-\u9fff]", text):
        if word in COLORS:
            return COLORS[word]
    return None


def _random_color(rng: random.Random, low: int, high: int) -> Color:
    return (rng.randint(low, high), rng.randint(low, high), rng.randint(low, high))


def draw_figure(draw: ImageDraw.ImageDraw, size: Size, looks: Looks) -> None:
    """Head and shoulders as the looks say: hair, clothes, age, beard and glasses."""
    w, h = size
    child, old = looks.age == "child", looks.age == "old"
    r = int(min(w, h) * (0.17 if child else 0.2))
    cx, cy = w // 2, int(h * (0.47 if child else 0.42))
    shoulders = 1.6 if child else 2.0
    # Shoulders in the clothes' colour, with a collar.
    top = h - int(1.9 * r)  # high enough to show above the name tag
    draw.ellipse((cx - shoulders * r, top, cx + shoulders * r, h + 2 * r), fill=looks.clothes)
    draw.polygon([(cx - r // 3, top), (cx + r // 3, top), (cx, top + r // 2)], fill=looks.skin)
    if looks.hair is not None and looks.long_hair:  # hair falling behind the head
        draw.rounded_rectangle((cx - int(1.15 * r), cy - r, cx + int(1.15 * r), cy + int(1.5 * r)),
                               radius=r // 2, fill=looks.hair)  # fmt: skip
    draw.rectangle((cx - r // 3, cy + int(0.8 * r), cx + r // 3, cy + int(1.3 * r)),
                   fill=looks.skin)  # neck  # fmt: skip
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=looks.skin)  # head
    if looks.hair is not None:
        draw.chord((cx - r, cy - r - r // 4, cx + r, cy + r // 2), 180, 360, fill=looks.hair)
    eye = max(2, r // (6 if child else 8))
    for dx in (-r // 3, r // 3):
        draw.ellipse((cx + dx - eye, cy - eye, cx + dx + eye, cy + eye), fill=(30, 30, 40))
        if looks.glasses:
            g = eye * 3
            draw.ellipse((cx + dx - g, cy - g, cx + dx + g, cy + g), outline=(20, 20, 20),
                         width=max(2, r // 25))  # fmt: skip
    if looks.glasses:
        draw.line((cx - r // 3 + eye * 3, cy, cx + r // 3 - eye * 3, cy), fill=(20, 20, 20),
                  width=max(2, r // 25))  # fmt: skip
    if old:  # lines on the brow and by the eyes
        for dy in (-r // 2, -r // 2 + r // 8):
            draw.arc((cx - r // 2, cy + dy, cx + r // 2, cy + dy + r // 4), 200, 340,
                     fill=(120, 80, 60), width=max(1, r // 40))  # fmt: skip
    if looks.beard:
        beard = looks.hair or (90, 70, 50)
        draw.chord((cx - int(0.85 * r), cy - r // 6, cx + int(0.85 * r), cy + int(1.1 * r)),
                   0, 180, fill=beard)  # fmt: skip
    draw.arc((cx - r // 3, cy + r // 6, cx + r // 3, cy + r // 2), 20, 160, fill=(120, 40, 40),
             width=max(2, r // 20))  # fmt: skip
