"""Local images drawn with Pillow: character portraits, scene frames and subtitle bands."""

from __future__ import annotations

import hashlib
import random
import re
from functools import cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from engines.errors import EngineError
from engines.interfaces import Size
from engines.looks import draw_figure, read_looks
from engines.scenery import draw_backdrop, read_setting

Color = tuple[int, int, int]

LATIN_FONTS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
)
CJK_FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
)
FONT_FOLDERS = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.local/share/fonts", "~/.fonts")
CJK_FONT_NAME = re.compile(
    r"(?i)(cjk|wqy|zenhei|microhei|uming|ukai|sourcehan|droidsansfallback|notoserifsc|"
    r"notosanssc|simhei|simsun|msyh|pingfang|heiti)"
)


class LocalImageEngine:
    """The image engine drawing with Pillow, offline; `font_path` overrides the built-in fonts."""

    def __init__(self, font_path: str = "") -> None:
        self.font_path = font_path

    def draw_portrait(
        self, name: str, description: str, out_path: Path, *, size: Size = (512, 512)
    ) -> Path:
        return draw_portrait(name, description, out_path, size=size, font_path=self.font_path)

    def draw_scene(
        self,
        text: str,
        description: str,
        *,
        portrait: Path | None,
        subtitle: str,
        out_path: Path,
        size: Size = (1280, 720),
    ) -> Path:
        return draw_scene(
            text,
            description,
            portrait=portrait,
            subtitle=subtitle,
            out_path=out_path,
            size=size,
            font_path=self.font_path,
        )


def draw_portrait(
    name: str, description: str, out_path: Path, *, size: Size = (512, 512), font_path: str = ""
) -> Path:
    """Draw a deterministic character portrait (PNG) that follows the description: hair and
    clothing colours, age words, beard and glasses (`engines.looks`)."""
    character = read_looks(name, description)
    image = gradient(size, *character.background)
    draw_figure(ImageDraw.Draw(image), size, character)
    band = draw_subtitle_band(name, image.width, font_path=font_path)
    image.paste(band, (0, image.height - band.height), band)
    return _save(image, out_path)


def draw_scene(
    text: str,
    description: str,
    *,
    portrait: Path | None,
    subtitle: str,
    out_path: Path,
    size: Size = (1280, 720),
    font_path: str = "",
) -> Path:
    """Draw a scene frame: the backdrop of the setting the description (or else the line) names
    (night or day, weather, sea, city, forest, indoors...: `engines.scenery`), the portrait and
    an optional subtitle.

    Pass subtitle="" for frames that video.compose will subtitle itself.
    """
    rng = _rng(text, description)
    setting = read_setting(description, read_setting(text))
    background = draw_backdrop(size, setting, rng)
    scene = finish_scene(background, portrait=portrait, subtitle=subtitle, font_path=font_path)
    return _save(scene, out_path)


def finish_scene(
    background: Image.Image, *, portrait: Path | None, subtitle: str, font_path: str = ""
) -> Image.Image:
    """Paste the portrait into a round frame and draw the subtitle; shared with remote images."""
    image = background.convert("RGB")
    if portrait is not None:
        _paste_portrait(image, portrait)
    if subtitle.strip():
        band = draw_subtitle_band(subtitle, image.width, font_path=font_path)
        image.paste(band, (0, image.height - band.height), band)
    return image


def draw_subtitle_band(
    text: str, width: int, *, fixed_lines: int | None = None, font_path: str = ""
) -> Image.Image:
    """A transparent full-width RGBA band with up to three wrapped, bottom-aligned subtitle lines.

    With fixed_lines the band always has room for that many lines, so every band of a video has
    one size; the dark backing covers only the lines in use.
    """
    font_size = max(16, width // 40)
    font = load_font(font_size, text, font_path=font_path)
    lines = wrap(text, font, int(width * 0.9), max_lines=fixed_lines or 3) if text.strip() else []
    line_height = int(font_size * 1.35)
    rows = fixed_lines or max(len(lines), 1)
    band = Image.new("RGBA", (width, line_height * rows + font_size), (0, 0, 0, 0))
    if not lines:
        return band
    draw = ImageDraw.Draw(band)
    top = band.height - line_height * len(lines) - font_size
    draw.rectangle((0, top, width, band.height), fill=(0, 0, 0, 150))
    for index, line in enumerate(lines):
        y = top + font_size // 2 + index * line_height
        draw.text(
            (width // 2, y),
            line,
            font=font,
            fill="white",
            anchor="ma",
            stroke_width=max(1, font_size // 14),
            stroke_fill="black",
        )
    return band


def gradient(size: Size, top: Color, bottom: Color) -> Image.Image:
    """A vertical two-colour gradient, built from Pillow's ramp (no per-pixel Python loop)."""
    mask = Image.linear_gradient("L").resize(size)
    return Image.composite(Image.new("RGB", size, bottom), Image.new("RGB", size, top), mask)


def load_font(
    size: int, text: str = "", *, font_path: str = ""
) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A TrueType font able to draw `text` (CJK if needed); `font_path` comes first."""
    for path in _font_candidates(has_cjk(text), font_path):
        if Path(path).is_file():
            return _truetype(path, size)
    return ImageFont.load_default(size)


def has_cjk(text: str) -> bool:
    return any("\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff" for ch in text)


def wrap(
    text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int, *, max_lines: int
) -> list[str]:
    """Greedy wrap by pixel width; Chinese wraps between characters, other text between words."""
    tokens = list(text.strip()) if has_cjk(text) else text.split()
    joiner = "" if has_cjk(text) else " "
    lines: list[str] = [""]
    for token in tokens:
        candidate = f"{lines[-1]}{joiner}{token}" if lines[-1] else token
        if font.getlength(candidate) <= width or not lines[-1]:
            lines[-1] = candidate
        else:
            lines.append(token)
    if len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], lines[max_lines - 1].rstrip(" .,") + "…"]
    return lines


def _font_candidates(cjk: bool, font_path: str) -> list[str]:
    cjk_fonts = (*CJK_FONTS, *_found_cjk_fonts()) if cjk else ()
    return [p for p in (font_path, *cjk_fonts, *LATIN_FONTS) if p]


@cache
def _found_cjk_fonts() -> tuple[str, ...]:
    """CJK fonts installed anywhere under the usual font folders (the bootstrap installs
    fonts-wqy-zenhei; any Noto/Source Han/WenQuanYi/AR PL/Droid fallback font found works)."""
    found: list[str] = []
    for folder in FONT_FOLDERS:
        root = Path(folder).expanduser()
        if root.is_dir():
            found += sorted(
                str(path)
                for path in root.rglob("*")
                if path.suffix.lower() in (".ttc", ".ttf", ".otf")
                and CJK_FONT_NAME.search(path.name)
            )
    return tuple(found)


@cache
def _truetype(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def _rng(*parts: str) -> random.Random:
    # Seeded from the content, so the same character always looks the same across runs.
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return random.Random(digest)


def _paste_portrait(image: Image.Image, portrait: Path) -> None:
    side = int(image.height * 0.45)
    try:
        with Image.open(portrait) as source:
            face = source.convert("RGB").resize((side, side))
    except OSError as exc:
        raise EngineError(f"cannot read portrait {portrait}: {exc}") from exc
    mask = Image.new("L", (side, side), 0)
    ImageDraw.Draw(mask).ellipse((0, 0, side - 1, side - 1), fill=255)
    margin = image.height // 20
    image.paste(face, (image.width - side - margin, image.height // 6), mask)


def _save(image: Image.Image, out_path: Path) -> Path:
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    image.save(out_path, format="PNG")
    return out_path
