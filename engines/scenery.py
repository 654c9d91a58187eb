"""A scene's setting read from its words, and the backdrop drawn for it (Pillow, offline).

`read_setting("a storm reaches the harbour at night")` gives Setting(time="night",
weather="storm", place="sea"); `draw_backdrop` paints the sky for the time and weather, the place
(sea, city, forest, indoors, mountains or meadow) and the weather over it, so a night storm and a
sunny meadow look nothing alike. English and Chinese words are read. A setting not named keeps
the one before (`read_setting(text, before)`): the scenes of one story share their place.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, replace

from PIL import Image, ImageDraw

Color = tuple[int, int, int]
Size = tuple[int, int]

WORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "time": {
        "night": ("night", "midnight", "moon", "stars", "starry", "dark", "夜", "晚上", "月亮",
                  "星"),
        "dusk": ("dusk", "sunset", "evening", "twilight", "黄昏", "傍晚", "日落"),
        "dawn": ("dawn", "sunrise", "daybreak", "morning", "黎明", "清晨", "早晨", "日出"),
        "day": ("noon", "midday", "afternoon", "daylight", "day", "sunny", "sunlit", "白天",
                "中午", "阳光"),
    },
    "weather": {
        "storm": ("storm", "stormy", "thunder", "lightning", "gale", "hurricane", "tempest",
                  "暴风", "风暴", "雷", "闪电"),
        "rain": ("rain", "rainy", "raining", "drizzle", "downpour", "wet", "雨"),
        "snow": ("snow", "snowy", "snowing", "blizzard", "winter", "frost", "雪", "冬"),
        "fog": ("fog", "foggy", "mist", "misty", "haze", "雾"),
        "clear": ("sunny", "clear", "sunlit", "cloudless", "晴"),
    },
    "place": {
        "indoors": ("indoors", "inside", "room", "kitchen", "office", "library", "house", "home",
                    "hall", "classroom", "shop", "cafe", "café", "bedroom", "lab", "laboratory",
                    "studio", "屋", "房间", "室内", "厨房", "办公室", "图书馆", "教室", "家"),
        "sea": ("sea", "harbour", "harbor", "ocean", "beach", "shore", "coast", "port", "boat",
                "ship", "lighthouse", "waves", "lake", "river", "bay", "sail", "海", "港", "湖",
                "河", "船", "岸"),
        "city": ("city", "street", "town", "downtown", "market", "skyline", "buildings",
                 "avenue", "square", "城", "街", "市"),
        "forest": ("forest", "woods", "wood", "jungle", "trees", "grove", "森林", "树林", "林"),
        "mountains": ("mountain", "mountains", "peak", "cliff", "alps", "valley", "山"),
        "meadow": ("meadow", "field", "fields", "garden", "farm", "hill", "hills", "park",
                   "countryside", "草地", "田野", "花园", "草原"),
    },
}  # fmt: skip
ASPECTS = ("time", "weather", "place")
SKIES: dict[str, tuple[Color, Color]] = {
    "day": ((110, 170, 230), (195, 225, 245)),
    "dawn": ((120, 140, 200), (250, 190, 140)),
    "dusk": ((60, 50, 110), (240, 130, 80)),
    "night": ((8, 12, 35), (30, 40, 75)),
}
# How bright the land is under each sky, and what weather does to the sky.
LIGHT = {"day": 1.0, "dawn": 0.8, "dusk": 0.6, "night": 0.3}
WEATHER_SKY = {"storm": 0.45, "rain": 0.7, "fog": 0.9, "snow": 0.95}


@dataclass(frozen=True)
class Setting:
    time: str = "day"
    weather: str = "clear"
    place: str = "meadow"

    def words(self) -> str:
        """The setting as words a description carries (and `read_setting` reads back)."""
        place = {"sea": "by the sea", "indoors": "indoors", "meadow": "in a meadow"}.get(
            self.place, f"in the {self.place}"
        )
        weather = "" if self.weather == "clear" else f"{self.weather}, "
        return f"{weather}{self.time}, {place}"


def read_setting(text: str, before: Setting | None = None) -> Setting:
    """The setting the words name; what they do not name is kept from `before`."""
    lowered = text.lower()
    words = set(re.findall(r"[a-zé]+", lowered))
    found: dict[str, str] = {}
    for aspect in ASPECTS:
        for value, names in WORDS[aspect].items():
            if any(_named(name, words, lowered) for name in names):
                found[aspect] = value
                break
    setting = replace(before or Setting(), **found)
    if "weather" in found and found["weather"] == "clear" and "time" not in found:
        setting = replace(setting, time="day" if setting.time == "night" else setting.time)
    return setting


def _named(name: str, words: set[str], lowered: str) -> bool:
    return name in lowered if not name.isascii() else name in words


def draw_backdrop(size: Size, setting: Setting, rng: random.Random) -> Image.Image:
    """The backdrop of a scene: sky, place and weather."""
    h = size[1]
    top, bottom = SKIES[setting.time]
    dim = WEATHER_SKY.get(setting.weather, 1.0)
    grey = setting.weather in ("storm", "rain", "fog")
    image = _gradient(size, _weathered(top, dim, grey), _weathered(bottom, dim, grey))
    draw = ImageDraw.Draw(image, "RGBA")
    light = LIGHT[setting.time] * (0.75 if setting.weather in ("storm", "rain") else 1.0)
    horizon = int(h * 0.6)
    if setting.place == "indoors":
        _indoors(draw, size, setting, rng, light)
    else:
        _sky_objects(draw, size, setting, rng)
        PLACES[setting.place](draw, size, horizon, rng, light, setting)
    _weather(draw, size, setting, rng)
    return image


def _gradient(size: Size, top: Color, bottom: Color) -> Image.Image:
    mask = Image.linear_gradient("L").resize(size)
    return Image.composite(Image.new("RGB", size, bottom), Image.new("RGB", size, top), mask)


def _weathered(color: Color, dim: float, grey: bool) -> Color:
    if grey:  # clouded skies lose their colour
        mean = sum(color) / 3
        color = tuple(int(0.4 * c + 0.6 * mean) for c in color)  # type: ignore[assignment]
    return _scaled(color, dim)


def _scaled(color: Color, factor: float) -> Color:
    r, g, b = (max(0, min(255, int(c * factor))) for c in color)
    return (r, g, b)


def _sky_objects(draw: ImageDraw.ImageDraw, size: Size, s: Setting, rng: random.Random) -> None:
    w, h = size
    if s.weather in ("storm", "rain", "fog", "snow"):
        for _ in range(7):  # a lid of cloud
            x, y, r = rng.randint(0, w), rng.randint(0, h // 4), rng.randint(h // 8, h // 4)
            shade = 60 if s.weather == "storm" else 150
            shade = int(shade * (0.4 if s.time == "night" else 1.0))
            draw.ellipse((x - 2 * r, y - r, x + 2 * r, y + r), fill=(shade, shade, shade + 10, 200))
        return
    cx, cy = rng.randint(w // 8, w - w // 8), rng.randint(h // 10, h // 3)
    r = h // 12
    if s.time == "night":
        for _ in range(90):
            x, y = rng.randint(0, w), rng.randint(0, int(h * 0.55))
            draw.point((x, y), fill=(255, 255, 230))
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(235, 235, 215))
        draw.ellipse((cx - r // 2, cy - r, cx + 3 * r // 2, cy + r), fill=SKIES["night"][0])
    else:
        sun = {"dawn": (255, 200, 120), "dusk": (255, 150, 80)}.get(s.time, (255, 240, 170))
        if s.time in ("dawn", "dusk"):
            cy = int(h * 0.5)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=sun)


def _sea(draw, size, horizon, rng, light, s) -> None:
    w, h = size
    water = _scaled((40, 100, 160) if s.weather == "clear" else (50, 75, 95), light)
    draw.rectangle((0, horizon, w, h), fill=water)
    crest = _scaled((200, 225, 240), light)
    rough = 3 if s.weather == "storm" else 1
    for _ in range(40 * rough):
        x, y = rng.randint(0, w), rng.randint(horizon + 4, h)
        span = rng.randint(w // 40, w // 12)
        draw.arc((x, y, x + span, y + 6 * rough), 200, 340, fill=crest, width=max(1, rough))
    # A lighthouse on its rock, its lamp lit when the light is low.
    x = int(w * 0.12)
    rock = _scaled((70, 60, 55), light)
    draw.polygon([(x - w // 14, horizon + h // 12), (x + w // 14, horizon + h // 12),
                  (x + w // 20, horizon - 2), (x - w // 20, horizon - 2)], fill=rock)  # fmt: skip
    tower = _scaled((235, 235, 230), light)
    draw.polygon([(x - w // 50, horizon), (x + w // 50, horizon), (x + w // 80, horizon - h // 4),
                  (x - w // 80, horizon - h // 4)], fill=tower)  # fmt: skip
    lamp_y = horizon - h // 4 - h // 30
    if light < 0.8:
        draw.polygon([(x, lamp_y), (w // 2, lamp_y - h // 12), (w // 2, lamp_y + h // 12)],
                     fill=(255, 240, 170, 70))  # fmt: skip
    draw.ellipse((x - w // 70, lamp_y - h // 40, x + w // 70, lamp_y + h // 40),
                 fill=(255, 230, 120))  # fmt: skip


def _city(draw, size, horizon, rng, light, s) -> None:
    w, h = size
    draw.rectangle((0, horizon + h // 8, w, h), fill=_scaled((80, 80, 85), light))
    x = 0
    while x < w:
        width, height = rng.randint(w // 16, w // 8), rng.randint(h // 5, int(h * 0.55))
        shade = rng.randint(70, 130)
        body = _scaled((shade, shade, shade + 15), light)
        top = horizon + h // 8 - height
        draw.rectangle((x, top, x + width, horizon + h // 8), fill=body)
        lit = light < 0.7
        for wy in range(top + 8, horizon + h // 8 - 8, max(10, h // 30)):
            for wx in range(x + 6, x + width - 8, max(10, w // 80)):
                on = lit and rng.random() < 0.55
                glass = (255, 220, 120) if on else _scaled((150, 180, 200), light)
                draw.rectangle((wx, wy, wx + 4, wy + 6), fill=glass)
        x += width + rng.randint(2, w // 60)


def _forest(draw, size, horizon, rng, light, s) -> None:
    w, h = size
    draw.rectangle((0, horizon, w, h), fill=_scaled((40, 90, 40), light))
    for row in range(3):
        base = horizon + row * h // 10
        for _ in range(14):
            x = rng.randint(-w // 20, w)
            tall = rng.randint(h // 5, h // 3) + row * h // 20
            green = _scaled((20 + 15 * row, 70 + 25 * row + rng.randint(0, 20), 30), light)
            draw.polygon([(x, base - tall), (x - tall // 3, base), (x + tall // 3, base)],
                         fill=green)  # fmt: skip
            draw.rectangle((x - 3, base, x + 3, base + h // 30), fill=_scaled((80, 50, 30), light))


def _mountains(draw, size, horizon, rng, light, s) -> None:
    w, h = size
    for layer in range(2):
        base = horizon + layer * h // 8
        x = -w // 10
        while x < w:
            peak, half = rng.randint(h // 4, h // 2), rng.randint(w // 8, w // 4)
            rock = _scaled((110 - 30 * layer, 110 - 30 * layer, 125 - 30 * layer), light)
            draw.polygon([(x, base), (x + half, base - peak), (x + 2 * half, base)], fill=rock)
            cap = _scaled((245, 245, 250), light)
            draw.polygon([(x + half, base - peak), (x + half - half // 4, base - peak + peak // 4),
                          (x + half + half // 4, base - peak + peak // 4)], fill=cap)  # fmt: skip
            x += half + rng.randint(0, half)
    draw.rectangle((0, horizon + h // 4, w, h), fill=_scaled((70, 110, 60), light))


def _meadow(draw, size, horizon, rng, light, s) -> None:
    w, h = size
    for layer in range(3):  # rolling hills, darker towards the viewer
        base = int(h * (0.58 + 0.12 * layer))
        points = [(0, h)] + [(x, base - rng.randint(0, h // 10)) for x in range(0, w + 80, w // 6)]
        green = _scaled((110 - 25 * layer, 190 - 35 * layer, 80 - 15 * layer), light)
        draw.polygon([*points, (w, h)], fill=green)
    if s.weather != "snow":
        for _ in range(60):
            x, y = rng.randint(0, w), rng.randint(int(h * 0.75), h)
            petal = rng.choice([(250, 240, 120), (250, 160, 200), (255, 255, 255)])
            draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=_scaled(petal, light))


def _indoors(draw, size, s: Setting, rng: random.Random, light: float) -> None:
    w, h = size
    lamp = s.time in ("night", "dusk")
    room_light = max(light, 0.55) if lamp else light
    draw.rectangle((0, 0, w, int(h * 0.7)), fill=_scaled((200, 170, 130), room_light))
    draw.rectangle((0, int(h * 0.7), w, h), fill=_scaled((120, 80, 50), room_light))
    for x in range(0, w, w // 12):  # floorboards
        draw.line((x, int(h * 0.7), x - w // 20, h), fill=_scaled((95, 60, 40), room_light))
    # A window onto the sky outside.
    wx0, wy0, wx1, wy1 = int(w * 0.1), int(h * 0.12), int(w * 0.35), int(h * 0.5)
    bottom = SKIES[s.time][1]
    draw.rectangle((wx0, wy0, wx1, wy1), fill=_weathered(bottom, WEATHER_SKY.get(s.weather, 1),
                                                         s.weather != "clear"))  # fmt: skip
    draw.rectangle((wx0, wy0, wx1, wy1), outline=(90, 60, 40), width=max(3, w // 200))
    draw.line(((wx0 + wx1) // 2, wy0, (wx0 + wx1) // 2, wy1), fill=(90, 60, 40), width=3)
    # A table, and a lamp glowing when it is dark.
    draw.rectangle((int(w * 0.45), int(h * 0.62), int(w * 0.75), int(h * 0.66)),
                   fill=_scaled((100, 65, 40), room_light))  # fmt: skip
    if lamp:
        cx, cy = int(w * 0.6), int(h * 0.5)
        draw.ellipse((cx - h // 5, cy - h // 5, cx + h // 5, cy + h // 5), fill=(255, 220, 140, 60))
        draw.polygon([(cx - h // 20, cy), (cx + h // 20, cy), (cx, cy - h // 16)],
                     fill=(255, 230, 160))  # fmt: skip


def _weather(draw: ImageDraw.ImageDraw, size: Size, s: Setting, rng: random.Random) -> None:
    w, h = size
    if s.weather in ("rain", "storm") and s.place != "indoors":
        for _ in range(260 if s.weather == "storm" else 160):
            x, y = rng.randint(-w // 10, w), rng.randint(0, h)
            draw.line((x, y, x + w // 120, y + h // 25), fill=(190, 200, 220, 150), width=1)
    if s.weather == "storm":
        x, y = rng.randint(w // 3, w - w // 6), 0
        bolt = [(x, y)]
        while y < h * 0.55:
            x, y = x + rng.randint(-w // 30, w // 30), y + rng.randint(h // 20, h // 10)
            bolt.append((x, y))
        draw.line(bolt, fill=(255, 255, 210), width=max(3, w // 300))
    if s.weather == "snow" and s.place != "indoors":
        for _ in range(220):
            x, y, r = rng.randint(0, w), rng.randint(0, h), rng.randint(1, 3)
            draw.ellipse((x - r, y - r, x + r, y + r), fill=(255, 255, 255, 220))
    if s.weather == "fog":
        draw.rectangle((0, 0, w, h), fill=(210, 210, 215, 110))


PLACES = {
    "sea": _sea,
    "city": _city,
    "forest": _forest,
    "mountains": _mountains,
    "meadow": _meadow,
}
