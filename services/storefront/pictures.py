"""A picture for every product, drawn here: an SVG with the category's symbol on colours taken
from the product's SKU. The shop never fetches an image from anywhere else, and the same product
always gets the same picture (so browsers may cache it for a long time)."""

from __future__ import annotations

import hashlib
import re
from html import escape

CATEGORY = re.compile(r"^[a-z0-9][a-z0-9-]{0,49}$")
SKU = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

# One symbol per category of the sample catalogue, drawn in a 100x100 box centred at (50, 50);
# any other category gets the parcel.
_STROKE = (
    'fill="none" stroke="#fff" stroke-width="6" stroke-linecap="round" stroke-linejoin="round"'
)
SYMBOLS = {
    "audio": f'<path d="M22 62v-8a28 28 0 0 1 56 0v8" {_STROKE}/>'
    '<rect x="16" y="58" width="14" height="24" rx="5" fill="#fff"/>'
    '<rect x="70" y="58" width="14" height="24" rx="5" fill="#fff"/>',
    "accessories": f'<rect x="22" y="36" width="56" height="44" rx="6" {_STROKE}/>'
    f'<path d="M38 36v-8a12 12 0 0 1 24 0v8" {_STROKE}/>',
    "peripherals": f'<rect x="14" y="34" width="72" height="36" rx="6" {_STROKE}/>'
    f'<path d="M26 46h4M38 46h4M50 46h4M62 46h4M74 46h0M30 58h40" {_STROKE}/>',
    "furniture": f'<path d="M32 18v40h36M32 58v24M68 58v24M32 40h30" {_STROKE}/>',
    "displays": f'<rect x="14" y="20" width="72" height="46" rx="5" {_STROKE}/>'
    f'<path d="M50 66v12M34 80h32" {_STROKE}/>',
    "storage": f'<ellipse cx="50" cy="28" rx="28" ry="10" {_STROKE}/>'
    f'<path d="M22 28v44c0 6 12 10 28 10s28-4 28-10V28M22 50c0 6 12 10 28 10s28-4 28-10" '
    f"{_STROKE}/>",
    "power": '<path d="M56 10 26 56h22l-6 34 32-48H52z" fill="#fff"/>',
    "networking": f'<path d="M50 30v18M50 48 24 70M50 48l26 22" {_STROKE}/>'
    '<circle cx="50" cy="24" r="9" fill="#fff"/><circle cx="22" cy="74" r="9" fill="#fff"/>'
    '<circle cx="78" cy="74" r="9" fill="#fff"/>',
    "video": f'<rect x="12" y="32" width="52" height="38" rx="6" {_STROKE}/>'
    f'<path d="m64 44 22-12v38L64 58" {_STROKE}/>',
    "lighting": '<path d="M38 62c-8-6-12-14-12-22a24 24 0 0 1 48 0c0 8-4 16-12 22v8H38z" '
    f"{_STROKE}/>"
    f'<path d="M40 82h20" {_STROKE}/>',
}
PARCEL = (
    f'<path d="M18 34 50 18l32 16v34L50 84 18 68z" {_STROKE}/>'
    f'<path d="M18 34l32 16 32-16M50 50v34" {_STROKE}/>'
)


def _hue(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:2], "big") % 360


def product_picture(category: str, sku: str) -> str:
    """The SVG for a product; ``category`` and ``sku`` must match CATEGORY and SKU."""
    hue = _hue(category)
    shade = _hue(sku) % 40 - 20  # a little variety between products of one category
    first, second = f"hsl({hue} 55% 38%)", f"hsl({(hue + 30 + shade) % 360} 60% 28%)"
    symbol = SYMBOLS.get(category, PARCEL)
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 400 300" width="400" height="300" '
        f'role="img" aria-label="{escape(category)}">'
        '<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1">'
        f'<stop offset="0" stop-color="{first}"/><stop offset="1" stop-color="{second}"/>'
        "</linearGradient></defs>"
        '<rect width="400" height="300" fill="url(#g)"/>'
        f'<g transform="translate(130 80) scale(1.4)">{symbol}</g>'
        '<text x="380" y="284" text-anchor="end" font-family="sans-serif" font-size="16" '
        f'fill="rgba(255,255,255,.75)">{escape(sku)}</text>'
        "</svg>"
    )
